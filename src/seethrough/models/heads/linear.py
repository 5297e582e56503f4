"""FC baseline: global average pooling + linear classifier, explained by its CAM.

Zhou et al. (CVPR 2016), class activation mapping. For features F ∈ R^{D×h×w}:

    M_c(x, y) = Σ_k w_{c,k} F_k(x, y)                   (CAM, eq. 2 of the CAM paper)
    z_c       = Σ_k w_{c,k} · mean_{x,y} F_k(x, y) + b_c = mean_{x,y} M_c(x, y) + b_c

Both come from one forward pass over the same features. The logits are computed as
GAP → Linear (the SCOUTER "FC" model, ``--use_slot false``), which equals the mean of the
CAM plus the bias but keeps the backward pass of the loss off the C×h×w maps (at 1000
classes the map path costs ~15× the pooled one).
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from ..backbone import Backbone
from ..base import SeeThroughModel, build_model
from ..output import ModelOutput
from ..registry import register_model


class LinearHead(nn.Module):
    """``fc`` with the weight layout of ``nn.Linear`` (C×D), applied per position."""

    def __init__(self, in_features: int, num_classes: int) -> None:
        super().__init__()
        linear = nn.Linear(in_features, num_classes)  # torch's default initialization
        self.weight = linear.weight
        self.bias = linear.bias

    def forward(self, features: torch.Tensor) -> ModelOutput:
        cam = torch.einsum("cd,bdhw->bchw", self.weight, features)
        logits = F.linear(features.mean(dim=(-2, -1)), self.weight, self.bias)
        return ModelOutput(logits=logits, maps=cam)


class FCBaseline(SeeThroughModel):
    """Backbone → GAP → Linear; ``maps`` are the class activation maps."""

    def __init__(self, config: dict, backbone: Backbone) -> None:
        super().__init__(config, backbone)
        self.fc = LinearHead(backbone.num_features, config["num_classes"])

    def head_forward(self, features: torch.Tensor) -> ModelOutput:
        return self.fc(features)


@register_model("fc")
def fc(*, num_classes: int, backbone: str = "resnet18", pretrained: bool = False, **backbone_options) -> FCBaseline:
    """The FC baseline of SCOUTER (``--use_slot false``), with CAM explanations.

    ``backbone_options``: ``in_chans``, ``output_stride``, ``freeze_layers``, ``stem`` (see :class:`Backbone`).
    """
    return build_model(FCBaseline, "fc", num_classes=num_classes, backbone=backbone, pretrained=pretrained,
                       backbone_options=backbone_options)
