"""timm feature extractor shared by every head: last-stage map, stage freezing, stride."""
from __future__ import annotations

from typing import Any

import timm
import torch
from torch import nn

#: Feature taps whose reduction is at most this many pixels belong to the stem, not a stage.
STEM_MAX_REDUCTION = 2
#: SCOUTER's MNIST stem (official slot_model.py): conv1 → Conv2d(1, 64, 3, stride 2, padding 1, bias=False).
MNIST_STEM: dict[str, Any] = dict(in_channels=1, out_channels=64, kernel_size=3, stride=2, padding=1, bias=False)
STEMS = ("mnist",)


def backbone_architecture(name: str) -> str:
    """The timm architecture of a backbone name without its pretrained tag
    (``"resnet50.tv_in1k"`` → ``"resnet50"``): what fixes the parameter shapes."""
    return timm.models.split_model_name_tag(name)[0]


def check_pretrained_tag(name: str) -> None:
    """Refuse ``ARCH.TAG`` when timm has no weights under that tag, listing the tags it has."""
    arch, tag = timm.models.split_model_name_tag(name)
    if not tag:
        return
    tags = [n.split(".", 1)[1] for n in timm.list_pretrained(f"{arch}.*") if n.startswith(arch + ".")]
    if tag not in tags:
        raise ValueError(f"backbone {name!r}: timm has no pretrained tag {tag!r} for {arch!r}; its tags are "
                         f"{', '.join(tags) or 'none'} (e.g. --backbone {arch}.{tags[-1] if tags else 'TAG'}), "
                         f"or give {arch!r} alone for timm's default")


class Backbone(nn.Module):
    """A timm model with its global pool and classifier removed.

    ``forward(x)`` returns the last-stage feature map ``B×D×h×w`` (token backbones such as ViT
    are reshaped to their patch grid, prefix tokens dropped), so every head sees a spatial map.

    Args:
        name: any timm model name, optionally with a pretrained tag (``"resnet50.tv_in1k"``:
            torchvision's weights; ``"resnet50"``: timm's default tag, ``a1_in1k``).
        pretrained: load timm's pretrained weights (downloads on first use); the weights
            actually loaded are named in :attr:`pretrained_weights` (``ARCH.TAG``).
        in_chans: input channels (1 for grayscale; timm adapts pretrained stems).
        output_stride: timm's dilation option (8, 16 or 32) so small images keep spatial maps.
        freeze_layers: SCOUTER's ``freeze_layers k``: freeze the stem and the first ``k``
            stages (ResNet: k=2 freezes conv1, bn1, layer1, layer2; k=0 freezes nothing).
        stem: ``"mnist"`` replaces a ResNet's ``conv1`` by SCOUTER's MNIST stem
            ``Conv2d(1, 64, 3, stride 2, padding 1, bias=False)`` (needs ``in_chans=1``); the
            replacement happens before freezing, as in the original.
        frozen_bn: replace every BatchNorm by timm's frozen BatchNorm (statistics and affine
            parameters become fixed buffers), as DETR and INTR train their ResNet-50; the
            replacement keeps the loaded (pretrained) values and happens after ``stem``.
        head_classes: keep timm's classifier head for this many classes (pretrained when the
            count matches the weights') for a head that reuses it (CA-Stream takes it with
            :meth:`ReusedClassifier.take_from`); 0 removes it, as every other head wants.
    """

    #: The timm model; its attributes (pretrained_cfg, num_features, feature_info, ...) are untyped.
    body: Any

    def __init__(
        self,
        name: str = "resnet18",
        *,
        pretrained: bool = False,
        in_chans: int = 3,
        output_stride: int | None = None,
        freeze_layers: int = 0,
        stem: str | None = None,
        frozen_bn: bool = False,
        drop_path_rate: float = 0.0,
        head_classes: int = 0,
    ) -> None:
        super().__init__()
        kwargs: dict = {"in_chans": in_chans}
        if output_stride is not None:
            kwargs["output_stride"] = output_stride
        if drop_path_rate:   # timm's stochastic depth (active in train mode only)
            kwargs["drop_path_rate"] = drop_path_rate
        if name not in timm.list_models() and not timm.is_model(name):
            raise ValueError(
                f"unknown timm backbone {name!r}; see timm.list_models() for the names "
                "(e.g. resnet18, resnet50, resnest26d, convnext_tiny, test_efficientnet)"
            )
        check_pretrained_tag(name)
        try:
            pool: dict[str, Any] = {} if head_classes else {"global_pool": ""}
            self.body = timm.create_model(name, pretrained=pretrained, num_classes=head_classes, **pool, **kwargs)
        except TypeError as err:  # e.g. output_stride on a model without dilation support
            raise ValueError(f"timm backbone {name!r} rejected options {kwargs}: {err}") from err
        self.name = name
        self.pretrained = pretrained
        #: ``ARCH.TAG`` of the timm weights loaded (timm's default tag when ``name`` has none),
        #: None without pretrained weights.
        self.pretrained_weights: str | None = _loaded_weights(self.body) if pretrained else None
        self.num_features: int = self.body.num_features
        self.num_prefix_tokens: int = getattr(self.body, "num_prefix_tokens", 0)
        self.stage_names = _stage_names(self.body)
        if stem is not None:
            self._replace_stem(stem, in_chans)
        if frozen_bn:
            self.body = timm.layers.freeze_batch_norm_2d(self.body)
        self.freeze(freeze_layers)

    def _replace_stem(self, stem: str, in_chans: int) -> None:
        if stem not in STEMS:
            raise ValueError(f"unknown stem {stem!r}; choose one of {', '.join(STEMS)} (or none)")
        conv1 = getattr(self.body, "conv1", None)
        if not isinstance(conv1, nn.Conv2d) or conv1.out_channels != MNIST_STEM["out_channels"]:
            raise ValueError(f"stem 'mnist' replaces a ResNet's 64-channel conv1; backbone {self.name!r} has none "
                             "(use a ResNet such as resnet18, or --in-chans 1 without --stem)")
        if in_chans != MNIST_STEM["in_channels"]:
            raise ValueError(f"stem 'mnist' takes 1-channel images; add --in-chans 1 (got {in_chans})")
        self.body.conv1 = nn.Conv2d(**MNIST_STEM)

    @property
    def data_config(self) -> dict:
        """Preprocessing of the pretrained weights (mean, std, input size) as timm resolves it."""
        return timm.data.resolve_data_config({}, model=self.body)

    def freeze(self, freeze_layers: int) -> None:
        """Freeze the stem and the first ``freeze_layers`` stages (SCOUTER's meaning).

        Every parameter registered up to and including the last module of stage ``k`` stops
        requiring gradients; later stages (and anything after them) stay trainable.
        """
        n = len(self.stage_names)
        if not 0 <= freeze_layers <= n:
            raise ValueError(
                f"freeze_layers must be between 0 and {n} for backbone {self.name!r} "
                f"(its stages: {', '.join(self.stage_names)}), got {freeze_layers}"
            )
        if freeze_layers == 0:
            return
        params = list(self.body.named_parameters())
        if freeze_layers == n:
            last = len(params) - 1
        else:
            prefix = self.stage_names[freeze_layers - 1] + "."
            last = max(i for i, (pname, _) in enumerate(params) if pname.startswith(prefix))
        for _, p in params[: last + 1]:
            p.requires_grad_(False)

    def forward_stages(self, x: torch.Tensor, indices: int | list[int] | None = None) -> list[torch.Tensor]:
        """Intermediate feature maps (B×D_i×h_i×w_i), for heads that tap several stages.

        ``indices``: stage indices as timm's ``forward_intermediates`` takes them (a list, or
        ``n`` for the last ``n``); ``None`` returns every stage.
        """
        if not hasattr(self.body, "forward_intermediates"):
            raise ValueError(f"backbone {self.name!r} does not expose intermediate stages in timm; "
                             "choose a backbone that supports forward_intermediates (e.g. resnet, convnext)")
        return self.body.forward_intermediates(x, indices=indices, intermediates_only=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = self.body.forward_features(x)
        if feats.ndim == 3:  # tokens B×N×D → B×D×h×w
            tokens = feats[:, self.num_prefix_tokens :]
            side = int(round(tokens.shape[1] ** 0.5))
            if side * side != tokens.shape[1]:
                raise ValueError(f"backbone {self.name!r} returned {tokens.shape[1]} tokens, not a square grid")
            return tokens.transpose(1, 2).reshape(x.shape[0], -1, side, side)
        if feats.shape[1] != self.num_features and feats.shape[-1] == self.num_features:  # NHWC
            feats = feats.permute(0, 3, 1, 2)
        return feats


def _loaded_weights(body: nn.Module) -> str | None:
    """``ARCH.TAG`` from timm's ``pretrained_cfg`` (filled by ``create_model`` with the tag it resolved)."""
    cfg = getattr(body, "pretrained_cfg", None) or {}
    arch, tag = cfg.get("architecture"), cfg.get("tag")
    return f"{arch}.{tag}" if arch and tag else arch


def _stage_names(body: nn.Module) -> list[str]:
    """Module names of the backbone's stages, from timm's ``feature_info``, stem tap dropped."""
    info = getattr(body, "feature_info", None)
    if not info:
        return []
    entries = info if isinstance(info, list) else info.get_dicts()
    return [e["module"] for e in entries if e.get("reduction", 0) > STEM_MAX_REDUCTION]
