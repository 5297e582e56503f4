"""INTR: each class looks for itself, through class-specific queries in a DETR decoder.

Paul et al., "A Simple Interpretable Transformer for Fine-Grained Image Classification and
Analysis", ICLR 2024 (official code Imageomics/INTR, models/intr.py). With backbone features
of the last stage and C classes::

    F  = input_proj(backbone(x))              1×1 conv to d_model, B×d×h×w
    P  = sine position encoding of F           (DETR, normalized, d/2 features per axis)
    M  = Encoder(F, P)                          (see intr_transformer: q = k = F + P, v = F)
    z  = LN(Decoder(z⁰ = 0, M; query_pos = Q))  Q ∈ R^{C×d}: one learned query per class
    s_c = wᵀ z_c + b                            ONE shared "presence vector" Linear(d, 1)

Because ``w`` is shared by all classes, a class can score high only through what its query
attends to: the cross-attention α_c ∈ R^{h·w} of class c's query is the explanation. Loss:
plain cross-entropy over the C scores (the base class's default).

Outputs (one forward pass): ``logits`` B×C; ``extras["attention"]`` the per-head
cross-attention of every decoder layer, L×B×heads×C×(h·w); ``maps`` the last layer's
attention averaged over heads, B×C×h×w (each map sums to 1 over the valid positions).

Initialization as DETR / INTR: Xavier-uniform on the transformer's weight matrices, torch's
defaults for ``input_proj`` and ``query_embed`` (N(0, 1)), and the presence vector torch's
``nn.Linear`` default (INTR without ``--finetune``); ``presence_init="xavier"`` is INTR's
util/misc.py:492-494 init (Xavier-uniform, zero bias), which it applies only when starting from
DETR weights — as ``from_official("detr", ...)`` does here.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from ..backbone import Backbone
from ..base import SeeThroughModel, build_model
from ..output import ModelOutput
from ..position import sine_position_encoding
from ..registry import register_model
from .intr_transformer import Transformer, sine_position_encoding_masked

#: INTR's defaults (official main.py): hidden_dim, nheads, enc_layers, dec_layers, dim_feedforward, dropout.
D_MODEL, NHEADS, ENC_LAYERS, DEC_LAYERS, DIM_FEEDFORWARD, DROPOUT = 256, 8, 6, 6, 2048, 0.1


#: ``presence_init`` values: torch's nn.Linear default (INTR trained from scratch / ImageNet
#: weights) or INTR's Xavier-uniform with zero bias (its DETR fine-tuning path).
PRESENCE_INITS = ("default", "xavier")

class INTR(SeeThroughModel):
    """Backbone → input_proj → Transformer(class queries) → shared presence vector.

    Module names mirror DETR / INTR (``input_proj``, ``query_embed``, ``transformer``; the
    official ``presence_vector`` is ``presence`` here) so official state dicts map by renaming.
    """

    non_finite_hint = ("INTR trains with gradient clipping 0.1 (--clip-grad 0.1) and small learning rates "
                       "(5e-5 transformer, 1e-5 backbone: --preset intr); try those")

    def __init__(self, config: dict, backbone: Backbone) -> None:
        super().__init__(config, backbone)
        d = config["d_model"]
        self.input_proj = nn.Conv2d(backbone.num_features, d, kernel_size=1)
        self.query_embed = nn.Embedding(config["num_classes"], d)
        self.transformer = Transformer(d, config["nheads"], config["num_encoder_layers"],
                                       config["num_decoder_layers"], config["dim_feedforward"],
                                       config["dropout"], config["pre_norm"])
        self.presence = nn.Linear(d, 1)   # torch's default init, as INTR's models/intr.py
        if config.get("presence_init", "default") == "xavier":   # INTR's util/misc.py:492-494 with --finetune
            nn.init.xavier_uniform_(self.presence.weight)
            nn.init.zeros_(self.presence.bias)

    def forward(self, images: torch.Tensor, padding_mask: torch.Tensor | None = None) -> ModelOutput:
        """``images`` B×C×H×W; ``padding_mask`` B×H×W bool, True on padded pixels (DETR's
        convention), downsampled to the feature grid by nearest interpolation as DETR does."""
        if images.ndim != 4:
            raise ValueError(f"expected images of shape B×C×H×W, got {tuple(images.shape)}")
        if padding_mask is not None:
            b, _, height, width = images.shape
            if padding_mask.shape != (b, height, width):
                raise ValueError(f"padding_mask must be B×H×W = {(b, height, width)} (True = padded pixel), "
                                 f"got {tuple(padding_mask.shape)}")
        features = self.backbone(images)
        mask = None
        if padding_mask is not None and features.shape[-2] * features.shape[-1] > 0:
            mask = F.interpolate(padding_mask[:, None].float(), size=features.shape[-2:]).to(torch.bool)[:, 0]
        return self.head_forward(features, mask, image_size=(images.shape[-2], images.shape[-1]))

    def head_forward(self, features: torch.Tensor, mask: torch.Tensor | None = None, *,
                     image_size: tuple[int, int] | None = None) -> ModelOutput:
        """The INTR head on backbone features ``B×D×h×w``; ``mask`` B×h×w, True = padded position."""
        b, _, h, w = features.shape
        if h == 0 or w == 0:
            where = f"images of {image_size[0]}×{image_size[1]} px give" if image_size else "got"
            raise ValueError(f"{where} a {h}×{w} feature map from backbone {self.backbone.name!r}: the images are "
                             "smaller than the backbone's stride; use larger images or a smaller output_stride")
        if mask is not None:
            if mask.shape != (b, h, w):
                raise ValueError(f"mask must match the feature map, B×h×w = {(b, h, w)}, got {tuple(mask.shape)}")
            empty = mask.flatten(1).all(1)
            if empty.any():
                raise ValueError(f"images {empty.nonzero().flatten().tolist()} are padded everywhere on the "
                                 f"{h}×{w} feature grid; every image needs at least one unpadded position")
        src = self.input_proj(features)
        d = src.shape[1]
        if mask is None:
            pos = sine_position_encoding(h, w, d, device=src.device, dtype=src.dtype)
        else:
            pos = sine_position_encoding_masked(mask, d).to(src.dtype)
        hs, attention = self.transformer(src, mask, self.query_embed.weight, pos)
        logits = self.presence(hs).squeeze(-1)
        maps = attention[-1].mean(dim=1).reshape(b, self.num_classes, h, w)
        return ModelOutput(logits=logits, maps=maps, extras={"attention": attention})


@register_model("intr")
def intr(
    *,
    num_classes: int,
    backbone: str = "resnet50",
    pretrained: bool = False,
    d_model: int = D_MODEL,
    nheads: int = NHEADS,
    num_encoder_layers: int = ENC_LAYERS,
    num_decoder_layers: int = DEC_LAYERS,
    dim_feedforward: int = DIM_FEEDFORWARD,
    dropout: float = DROPOUT,
    pre_norm: bool = False,
    frozen_bn: bool = True,
    presence_init: str = "default",
    **backbone_options,
) -> INTR:
    """INTR with its defaults (d_model 256, 8 heads, 6 + 6 layers, FFN 2048, dropout 0.1, post-norm,
    ResNet-50 with frozen BatchNorm). The original also freezes conv1 and layer1
    (``freeze_layers=1``) and trains the backbone at a tenth of the learning rate.

    ``backbone_options``: ``in_chans``, ``output_stride``, ``freeze_layers``, ``stem`` (see :class:`Backbone`).
    """
    checks = [
        (isinstance(d_model, int) and d_model > 0 and d_model % 2 == 0,
         f"d_model must be a positive even integer (the sine position encoding gives d_model/2 features per axis), "
         f"got {d_model}"),
        (isinstance(nheads, int) and nheads >= 1, f"nheads must be a positive integer, got {nheads}"),
        (isinstance(num_encoder_layers, int) and num_encoder_layers >= 0,
         f"num_encoder_layers must be ≥ 0, got {num_encoder_layers}"),
        (isinstance(num_decoder_layers, int) and num_decoder_layers >= 1,
         f"num_decoder_layers must be ≥ 1 (the explanation is its cross-attention), got {num_decoder_layers}"),
        (isinstance(dim_feedforward, int) and dim_feedforward >= 1,
         f"dim_feedforward must be ≥ 1, got {dim_feedforward}"),
        (0 <= dropout < 1, f"dropout must be in [0, 1), got {dropout}"),
        (presence_init in PRESENCE_INITS, f"presence_init must be one of {', '.join(PRESENCE_INITS)}, got "
                                           f"{presence_init!r}"),
    ]
    for ok, message in checks:
        if not ok:
            raise ValueError(message)
    if d_model % nheads:
        raise ValueError(f"nheads={nheads} does not divide d_model={d_model}; choose nheads among the divisors "
                         f"of d_model (e.g. {', '.join(str(k) for k in (1, 2, 4, 8) if d_model % k == 0)})")
    return build_model(INTR, "intr", num_classes=num_classes, backbone=backbone, pretrained=pretrained,
                       backbone_options={**backbone_options, "frozen_bn": frozen_bn}, d_model=d_model,
                       nheads=nheads, num_encoder_layers=num_encoder_layers, num_decoder_layers=num_decoder_layers,
                       dim_feedforward=dim_feedforward, dropout=dropout, pre_norm=pre_norm,
                       presence_init=presence_init)
