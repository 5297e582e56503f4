"""CA-Stream: a cross-attention stream that replaces global average pooling.

Torres, Hudelot, Avrithis, "Interpretability-Aware Pooling: a Cross-Attention Stream" (CVPR
XAI4CV workshop 2024; official code ftorres11/CA_Stream, models at commit 9489e8d). A learned
CLS token q runs beside a frozen backbone and is updated at each tap ℓ (see :mod:`..taps`) from
that stage's features F_ℓ ∈ R^{t_ℓ×d_ℓ} (t = h·w positions)::

    a_ℓ     = softmax(F_ℓ q_ℓ / sqrt(d_ℓ))           attention over positions, sums to 1   (1)
    q_{ℓ+1} = W_ℓ (F_ℓᵀ a_ℓ) + b_ℓ                    W_ℓ ∈ R^{d_{ℓ+1}×d_ℓ}, Xavier-uniform  (2)

No query/key/value projections, residual, LayerNorm or MLP; q₀ ~ N(1, 1) elementwise. The last
token u = q_{L+1} (width of the final map) goes into the backbone's own classifier in place of
GAP(F_L) — F_Lᵀ a_L is an attention-weighted mean where GAP uses the uniform weight 1/t, so a
uniform attention reduces the stream to GAP followed by the linear maps. ``pooling="gap"`` runs
the same network with GAP: the baseline of the paper's tables.

With ``heads`` > 1, (1) is computed per group of d_ℓ/heads channels and the pooled groups are
concatenated before W_ℓ; the scale stays 1/sqrt(d_ℓ), as in the original's ``CLS_Attention``.

Outputs of one forward pass:

* ``logits`` = classifier(u);
* ``maps`` (``maps="cam"``, default): the class activation map through the CA pooling,
  M_c(p) = t · w̃_cᵀ W_L (a_L(p) F_L(p)) / σ(u), whose mean over positions is z_c up to a class
  constant (with a linear classifier: exactly z_c − w_cᵀ b_L − bias_c; see
  :mod:`..classifier` for w̃, σ and the LayerNorm case). With ``pooling="gap"`` it is the usual
  CAM. ``maps="attention"``: the class-agnostic attention a_L (head mean) for every class;
* ``extras["ca_attention"]``: a_L, B×heads×h×w; ``extras["ca_attention.<tap>"]``: a_ℓ of each tap.

Training (the paper): the backbone and its classifier are frozen and the backbone stays in eval
mode, so BatchNorm statistics do not move (``bn_stats="updated"`` reproduces the original, whose
attempt to stop them is a no-op); only the stream learns, by cross-entropy.
"""
from __future__ import annotations

from typing import Sequence, cast

import torch
from torch import nn

from ..backbone import Backbone
from ..base import SeeThroughModel, build_model
from ..classifier import ReusedClassifier, head_norm
from ..output import ModelOutput
from ..registry import register_model
from ..taps import FINAL_TAP, TapRecorder, backbone_family, resolve_taps

#: q₀ ~ N(mean, std) elementwise (official ``torch.normal(ones, ones)``).
CLS_INIT_MEAN, CLS_INIT_STD = 1.0, 1.0
#: How the final feature map is pooled: the cross-attention stream, or the GAP baseline.
POOLINGS = ("ca", "gap")
#: What ``maps`` holds: the class activation map through the pooling, or the class-agnostic attention.
MAP_KINDS = ("cam", "attention")
#: ``frozen``: the backbone stays in eval mode (the paper's intent); ``updated``: BatchNorm running
#: statistics follow the training batches (what the original code does).
BN_STATS = ("frozen", "updated")
#: ``stream_init`` values: Xavier-uniform projections (the ResNet stream), or the ConvNeXt stream's
#: model-wide trunc_normal(std 0.02) with zero bias (convnext_stream.py:175-179); None picks by family.
STREAM_INITS = ("xavier", "trunc_normal")
#: std of the ConvNeXt stream's truncated-normal init (convnext_stream.py:177).
TRUNC_NORMAL_STD = 0.02
#: Side of the blank image run once at construction to read the tap widths.
PROBE_SIZE = 64
#: Key of the last tap's attention in ``ModelOutput.extras`` (per tap: ``"ca_attention.<tap>"``).
ATTENTION_KEY = "ca_attention"


class CrossAttentionBlock(nn.Module):
    """Eqs. (1)–(2): attention of the token over one feature map, then W_ℓ · pooled + b_ℓ."""

    def __init__(self, in_dim: int, out_dim: int, heads: int = 1) -> None:
        super().__init__()
        self.heads = heads
        self.scale = in_dim ** -0.5
        self.proj = nn.Linear(in_dim, out_dim)
        nn.init.xavier_uniform_(self.proj.weight)

    def attend(self, features: torch.Tensor, token: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``features`` B×d×h×w, ``token`` B×d → (a: B×heads×t, grouped features B×heads×d/heads×t)."""
        b, d, h, w = features.shape
        grouped = features.reshape(b, self.heads, d // self.heads, h * w)
        query = token.reshape(b, self.heads, d // self.heads)
        logits = torch.einsum("bnk,bnkt->bnt", query, grouped) * self.scale
        return logits.softmax(dim=-1), grouped

    def forward(self, features: torch.Tensor, token: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Next token B×out_dim and the attention B×heads×h×w."""
        attention, grouped = self.attend(features, token)
        pooled = torch.einsum("bnt,bnkt->bnk", attention, grouped).flatten(1)
        return self.proj(pooled), attention.reshape(features.shape[0], self.heads, *features.shape[-2:])


class CrossAttentionStream(nn.Module):
    """q₀ and one :class:`CrossAttentionBlock` per tap: widths d_0 … d_L, output ``out_dim``."""

    def __init__(self, widths: Sequence[int], out_dim: int, heads: int = 1) -> None:
        super().__init__()
        self.cls_token = nn.Parameter(torch.normal(torch.full((widths[0],), CLS_INIT_MEAN),
                                                   torch.full((widths[0],), CLS_INIT_STD)))
        outs = [*widths[1:], out_dim]
        self.blocks = nn.ModuleList(CrossAttentionBlock(d_in, d_out, heads) for d_in, d_out in zip(widths, outs))

    @property
    def block_list(self) -> list[CrossAttentionBlock]:
        """The blocks, typed (``nn.ModuleList`` indexing is typed as any module)."""
        return cast(list[CrossAttentionBlock], list(self.blocks))

    def forward(self, maps: Sequence[torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor], torch.Tensor]:
        """Tap maps in order → (last token u, attention per tap, the last map's a_L·F_L as B×d_L×t)."""
        token = self.cls_token.to(maps[0].dtype).expand(maps[0].shape[0], -1)
        attentions = []
        blocks = self.block_list
        for block, features in zip(blocks[:-1], maps[:-1]):
            token, attention = block(features, token)
            attentions.append(attention)
        last, features = blocks[-1], maps[-1]
        attention, grouped = last.attend(features, token)
        weighted = (attention[:, :, None, :] * grouped).flatten(1, 2)         # a_L(p) F_L(p), B×d_L×t
        token = last.proj(weighted.sum(dim=-1))
        attentions.append(attention.reshape(features.shape[0], last.heads, *features.shape[-2:]))
        return token, attentions, weighted


class CAStream(SeeThroughModel):
    """Frozen backbone + cross-attention stream + the backbone's frozen classifier."""

    runtime_options = {"pooling": POOLINGS, "maps": MAP_KINDS}

    def __init__(self, config: dict, backbone: Backbone) -> None:
        super().__init__(config, backbone)
        pretrained_classes = backbone.body.pretrained_cfg.get("num_classes")
        #: Where the classifier's weights come from: timm's pretrained head, an FC run, or nowhere yet.
        self.classifier_source = ("timm" if backbone.pretrained and pretrained_classes == config["num_classes"]
                                  else None)
        self.classifier = ReusedClassifier.take_from(backbone.body, config["backbone"])
        self.taps = resolve_taps(backbone.body, config["taps"], backbone=config["backbone"])
        self.config["taps"] = list(self.taps)
        self.tap_names = [*self.taps, FINAL_TAP]
        widths = self._tap_widths()
        bad = [(name, width) for name, width in zip(self.tap_names, widths) if width % config["heads"]]
        if bad:
            raise ValueError(f"heads={config['heads']} does not divide the width of taps {bad}; every tap's "
                             "channels are split evenly among the heads (heads=1 is the paper's)")
        self.stream = CrossAttentionStream(widths, backbone.num_features, config["heads"])
        init = config.get("stream_init") or ("trunc_normal" if backbone_family(backbone.body) == "convnext"
                                             else "xavier")
        self.config["stream_init"] = init
        if init == "trunc_normal":
            for block in self.stream.block_list:
                nn.init.trunc_normal_(block.proj.weight, std=TRUNC_NORMAL_STD)
                nn.init.zeros_(block.proj.bias)
        for param in self.backbone.parameters():
            param.requires_grad_(False)
        self.classifier.requires_grad_(bool(config["train_classifier"]))

    def _tap_widths(self) -> list[int]:
        """Channels of every tap, read from one forward of a blank image (no gradients)."""
        probe = torch.zeros(1, self.config["in_chans"], PROBE_SIZE, PROBE_SIZE)
        was_training = self.backbone.training
        self.backbone.eval()
        try:
            with torch.no_grad(), TapRecorder(self.backbone.body, self.taps) as recorder:
                final = self.backbone(probe)
                maps = recorder.outputs()
        finally:
            self.backbone.train(was_training)
        return [m.shape[1] for m in maps] + [final.shape[1]]

    @property
    def head_norm(self) -> nn.LayerNorm | None:
        """The LayerNorm of the backbone's head (ConvNeXt) applied before ``fc``, if used."""
        return head_norm(self.backbone.body) if self.config["head_norm"] else None

    def init_classifier_from(self, baseline: SeeThroughModel, *, source: str) -> None:
        """``use_pre``: the classifier of an FC baseline run on the same data (its backbone is
        copied by the caller), so the stream learns to feed a classifier trained with GAP."""
        if baseline.config.get("name") != "fc":
            raise ValueError(f"use_pre {source} is a {baseline.config.get('name')!r} model; CA-Stream reuses the "
                             "classifier of an FC baseline run (seethrough train --model fc ...)")
        if self.head_norm is not None:
            raise ValueError(f"backbone {self.config['backbone']!r} has a head LayerNorm that the FC baseline of "
                             f"{source} never applied; add --model-opt head_norm=false to reuse its classifier "
                             "as trained")
        fc = cast(nn.Linear, baseline.fc)   # the FC baseline's classifier (models.heads.linear)
        self.classifier.fc.load_state_dict({"weight": fc.weight, "bias": fc.bias})
        self.classifier_source = f"use_pre {source}"

    def training_warning(self) -> str | None:
        """Said by the trainer before training from scratch: a frozen classifier that nothing
        initialized makes the stream fit a random linear map."""
        if self.classifier_source is None and not self.config["train_classifier"]:
            return (f"castream: the frozen classifier is random (timm has no pretrained {self.num_classes}-class "
                    f"head for {self.config['backbone']!r}); train the FC baseline on this data first and pass "
                    "--use-pre RUN, or set --model-opt train_classifier=true")
        return None

    def train(self, mode: bool = True) -> "CAStream":
        super().train(mode)
        if self.config["bn_stats"] == "frozen":
            self.backbone.eval()
        return self

    def compute_loss(self, output: ModelOutput, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        if self.config["pooling"] == "gap" and not self.config["train_classifier"]:
            raise ValueError("pooling 'gap' with a frozen classifier has nothing to train: train with pooling 'ca' "
                             "(the stream), or set train_classifier true")
        return super().compute_loss(output, labels)

    def forward(self, images: torch.Tensor) -> ModelOutput:
        if images.ndim != 4:
            raise ValueError(f"expected images of shape B×C×H×W, got {tuple(images.shape)}")
        if self.config["pooling"] == "gap":
            features = self.backbone(images)
            pooled = features.mean(dim=(-2, -1))
            b, d, h, w = features.shape
            return self._output(pooled, features.flatten(2) / (h * w), None, {}, (h, w), proj=None)
        with TapRecorder(self.backbone.body, self.taps) as recorder:
            features = self.backbone(images)
        token, attentions, weighted = self.stream([*recorder.outputs(), features])
        extras = {f"{ATTENTION_KEY}.{name}": a for name, a in zip(self.tap_names, attentions)}
        extras[ATTENTION_KEY] = attentions[-1]
        return self._output(token, weighted, attentions[-1], extras, tuple(features.shape[-2:]),
                            proj=self.stream.block_list[-1].proj)

    def _output(self, pooled: torch.Tensor, contributions: torch.Tensor, attention: torch.Tensor | None,
                extras: dict, size: tuple[int, int], *, proj: nn.Linear | None) -> ModelOutput:
        norm = self.head_norm
        logits = self.classifier(pooled, norm)
        b, (h, w) = pooled.shape[0], size
        if self.config["maps"] == "attention":
            agnostic = attention.mean(dim=1) if attention is not None else pooled.new_full((b, h, w), 1.0 / (h * w))
            maps = agnostic[:, None].expand(b, self.num_classes, h, w)
        else:
            with torch.set_grad_enabled(torch.is_grad_enabled() and not self.training):  # the loss uses logits only
                maps = self.classifier.class_maps(contributions, pooled, norm, proj=proj) * (h * w)
            maps = maps.reshape(b, self.num_classes, h, w)
        return ModelOutput(logits=logits, maps=maps, extras=extras)


@register_model("castream")
def castream(
    *,
    num_classes: int,
    backbone: str = "resnet50",
    pretrained: bool = False,
    taps: str | Sequence[str] | None = None,
    heads: int = 1,
    pooling: str = "ca",
    maps: str = "cam",
    bn_stats: str = "frozen",
    train_classifier: bool = False,
    head_norm: bool = True,
    stream_init: str | None = None,
    **backbone_options,
) -> CAStream:
    """CA-Stream on any timm CNN whose head is GAP → [LayerNorm] → Linear.

    Args:
        taps: modules tapped before the final map: ``"paper"`` (ResNet: maxpool, layer1-3;
            ConvNeXt: stem, stages.1.downsample, stages.2.downsample), ``"feature_info"`` (timm's
            stages but the last), or a list of module names; default: ``"paper"`` when the
            backbone is a ResNet or ConvNeXt, else ``"feature_info"``. The resolved list is recorded.
        heads: attention heads per block (1 in the paper).
        pooling: ``"ca"`` (the stream) or ``"gap"`` (the baseline, same weights).
        maps: ``"cam"`` (class activation map through the pooling) or ``"attention"``.
        bn_stats: ``"frozen"`` (backbone in eval mode) or ``"updated"`` (the original code's behaviour).
        train_classifier: also train the classifier (the paper keeps it frozen); needed when timm
            has no pretrained classifier for ``num_classes`` and no ``use_pre`` FC run provides one.
        head_norm: apply the head's LayerNorm (ConvNeXt) before the classifier; false when the
            classifier was trained without it (a seethrough FC run of a ConvNeXt).
        stream_init: ``"xavier"`` or ``"trunc_normal"`` (std 0.02, zero bias); default as the
            original per family: trunc_normal for ConvNeXt (convnext_stream.py:175-179), else
            Xavier. The resolved value is recorded.

    The original trains with ``model.train()``, so a ConvNeXt backbone runs stochastic depth
    (torchvision's 0.5 for ConvNeXt-B) while frozen: ``bn_stats="updated"`` with the backbone
    option ``drop_path_rate=0.5`` reproduces it (not the presets' default, see the README).

    ``pretrained=True`` loads timm's weights, the classifier included when ``num_classes``
    matches them (1000 for ImageNet). ``backbone_options``: see :class:`Backbone`.
    """
    checks = [
        (pooling in POOLINGS, f"pooling must be one of {', '.join(POOLINGS)}, got {pooling!r}"),
        (maps in MAP_KINDS, f"maps must be one of {', '.join(MAP_KINDS)}, got {maps!r}"),
        (bn_stats in BN_STATS, f"bn_stats must be one of {', '.join(BN_STATS)}, got {bn_stats!r}"),
        (isinstance(heads, int) and heads >= 1, f"heads must be a positive integer, got {heads!r}"),
        (stream_init is None or stream_init in STREAM_INITS,
         f"stream_init must be one of {', '.join(STREAM_INITS)} (or omitted), got {stream_init!r}"),
    ]
    for ok, message in checks:
        if not ok:
            raise ValueError(message)
    return build_model(CAStream, "castream", num_classes=num_classes, backbone=backbone, pretrained=pretrained,
                       backbone_options=backbone_options, backbone_head_classes=num_classes,
                       taps=list(taps) if isinstance(taps, (list, tuple)) else taps, heads=heads, pooling=pooling,
                       maps=maps, bn_stats=bn_stats, train_classifier=bool(train_classifier), head_norm=bool(head_norm),
                       stream_init=stream_init)
