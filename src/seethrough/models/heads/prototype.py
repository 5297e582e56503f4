"""ProtoPNet ("This Looks Like That", Chen et al., NeurIPS 2019) and Learnable Visual Words
(Xiao, Ding, Liu 2022): a prototype layer on a timm backbone.

With backbone features F (B×C×h×w), add-on layers give the latent map z = f(F) ∈ [0, 1]^{D×h×w}
(sigmoid output). For P prototypes p_j ∈ R^D (stored P×D×1×1, initialized U[0, 1))::

    d_j(x, y) = max(0, ‖z(x, y)‖² − 2 z(x, y)·p_j + ‖p_j‖²)       squared L2, by convolutions   (1)
    d_j       = min_{x,y} d_j(x, y)                                  min-pooling                   (2)
    g_j       = log((d_j + 1) / (d_j + ε)),  ε = 1e-4                 similarity ("log"; or −d_j)   (3)
    z_c       = Σ_j w_cj g_j                                         last layer, no bias           (4)

The last layer starts at +1 for a prototype's own class and −0.5 elsewhere. ProtoPNet assigns
``P / C`` prototypes to each class (class-specific); LVW shares one vocabulary of words across
classes (``class_specific=False``) while keeping the nominal identity for that initialization.

Outputs: ``logits`` (4); ``maps`` per class = Σ_j w_cj · g_j(x, y), the last-layer-weighted
similarity maps; ``extras``: ``prototype_similarity`` B×P×h×w (g applied per position),
``prototype_distances`` B×P×h×w (1) and ``min_distances`` B×P (2). Training losses are in
:mod:`..prototype_losses`.
"""
from __future__ import annotations

from typing import cast

import torch
from torch import nn
from torch.nn import functional as F

from ..backbone import Backbone
from ..base import SeeThroughModel, build_model
from ..output import ModelOutput
from ..prototype_losses import ALIGNMENT_UPSAMPLES, PROTOTYPE_LOSS_DEFAULTS, prototype_loss
from ..registry import register_model

#: ε of the log similarity (3).
LOG_EPSILON = 1e-4
#: Last-layer initialization: own class, other classes (ProtoPNet's set_last_layer_incorrect_connection).
CORRECT_CLASS_WEIGHT, INCORRECT_CLASS_WEIGHT = 1.0, -0.5
ADD_ON_TYPES = ("regular", "bottleneck")
ACTIVATIONS = ("log", "linear")
#: ProtoPNet's defaults: 10 prototypes per class, 128 channels; LVW: 5 words per class.
PROTOTYPES_PER_CLASS, LVW_WORDS_PER_CLASS, PROTOTYPE_DIM = 10, 5, 128


def add_on_layers(in_channels: int, dim: int, kind: str) -> nn.Sequential:
    """ProtoPNet's add-on: ``regular`` = 1×1 conv C→D, ReLU, 1×1 conv D→D, Sigmoid;
    ``bottleneck`` halves the channels (conv, ReLU, conv, ReLU) until D, ending in Sigmoid.
    Kaiming-normal (fan_out, ReLU) weights, zero biases."""
    layers: list[nn.Module] = []
    if kind == "regular":
        layers = [nn.Conv2d(in_channels, dim, 1), nn.ReLU(), nn.Conv2d(dim, dim, 1), nn.Sigmoid()]
    else:
        current = in_channels
        while current > dim or not layers:
            out = max(dim, current // 2)
            layers += [nn.Conv2d(current, out, 1), nn.ReLU(), nn.Conv2d(out, out, 1)]
            layers.append(nn.ReLU() if out > dim else nn.Sigmoid())
            current //= 2
    for layer in layers:
        if isinstance(layer, nn.Conv2d):
            nn.init.kaiming_normal_(layer.weight, mode="fan_out", nonlinearity="relu")
            nn.init.zeros_(cast(torch.Tensor, layer.bias))   # Conv2d(..., bias=True): never None
    return nn.Sequential(*layers)


def squared_distances(latent: torch.Tensor, prototypes: torch.Tensor) -> torch.Tensor:
    """Eq. (1): B×P×h×w squared L2 distances between every latent position and every prototype
    (P×D×1×1), as ‖z‖² − 2 z·p + ‖p‖² (the original's 1×1 convolutions, written as one matrix
    product), clamped at 0."""
    z2 = (latent ** 2).sum(dim=1, keepdim=True)
    zp = torch.einsum("pd,bdhw->bphw", prototypes.flatten(1), latent)
    p2 = (prototypes ** 2).sum(dim=(1, 2, 3)).view(1, -1, 1, 1)
    return F.relu(z2 - 2 * zp + p2)


def similarity(distances: torch.Tensor, activation: str = "log") -> torch.Tensor:
    """Eq. (3): ``log((d + 1)/(d + ε))`` (decreasing in d), or ``−d`` for ``linear``."""
    if activation == "log":
        return torch.log((distances + 1) / (distances + LOG_EPSILON))
    return -distances


def class_identity(num_prototypes: int, num_classes: int, classes: list[int] | None = None) -> torch.Tensor:
    """P×C one-hot: prototype j belongs to class ``j // (P / C)``, or to ``classes[j]`` (a
    pruned model, whose classes keep different numbers of prototypes)."""
    if classes is None:
        classes = (torch.arange(num_prototypes) // (num_prototypes // num_classes)).tolist()
    return F.one_hot(torch.tensor(classes, dtype=torch.long), num_classes).float()


class PrototypeNet(SeeThroughModel):
    """Backbone → add-on → prototype layer → last layer (ProtoPNet; LVW with shared words)."""

    stage_recipe = "prototype"

    def __init__(self, config: dict, backbone: Backbone) -> None:
        super().__init__(config, backbone)
        p, d, c = config["num_prototypes"], config["prototype_dim"], config["num_classes"]
        self.add_on = add_on_layers(backbone.num_features, d, config["add_on"])
        self.prototypes = nn.Parameter(torch.rand(p, d, 1, 1))
        self.prototype_class_identity: torch.Tensor
        self.register_buffer("prototype_class_identity", class_identity(p, c, config.get("prototype_classes")),
                             persistent=False)
        self.last_layer = nn.Linear(p, c, bias=False)
        identity = self.prototype_class_identity.t()
        self.last_layer.weight.data.copy_(CORRECT_CLASS_WEIGHT * identity + INCORRECT_CLASS_WEIGHT * (1 - identity))
        #: The training stage the engine runs (losses depend on it: LVW aligns only after warm-up).
        self.stage = "joint"
        #: Recipe defaults of this model (under --stage-opt): LVW's main_lvw.py:201-213 steps the
        #: joint StepLR after each joint epoch, ProtoPNet's main.py:148-149 before it.
        self.stage_defaults = {"joint_lr_step": "after"} if config["name"] == "lvw" else {}

    @property
    def num_prototypes(self) -> int:
        return int(self.config["num_prototypes"])

    def latent(self, images: torch.Tensor) -> torch.Tensor:
        """z = add_on(backbone(x)), B×D×h×w in [0, 1]: the space prototypes live in."""
        return self.add_on(self.backbone(images))

    def head_forward(self, features: torch.Tensor) -> ModelOutput:
        distances = squared_distances(self.add_on(features), self.prototypes)
        min_distances = distances.flatten(2).min(dim=-1).values
        logits = self.last_layer(similarity(min_distances, self.config["activation"]))
        similarity_maps = similarity(distances, self.config["activation"])
        maps = torch.einsum("cp,bphw->bchw", self.last_layer.weight, similarity_maps)
        return ModelOutput(logits=logits, maps=maps, extras={
            "prototype_similarity": similarity_maps, "prototype_distances": distances,
            "min_distances": min_distances})

    def compute_loss(self, output: ModelOutput, labels: torch.Tensor, batch: dict | None = None
                     ) -> dict[str, torch.Tensor]:
        """CE + cluster + separation + L1 (+ LVW's attention alignment), see :mod:`..prototype_losses`."""
        return prototype_loss(self, output, labels, batch=batch)


def _prototype_model(name: str, *, num_classes: int, backbone: str, pretrained: bool, num_prototypes: int | None,
                     per_class: int, prototype_dim: int, add_on: str, activation: str, class_specific: bool,
                     loss_weights: dict | None, backbone_options: dict,
                     prototype_classes: list[int] | None = None, **head_options) -> PrototypeNet:
    p = num_prototypes if num_prototypes is not None else per_class * num_classes
    if prototype_classes is not None:
        prototype_classes = [int(c) for c in prototype_classes]
        if len(prototype_classes) != p or not all(0 <= c < num_classes for c in prototype_classes):
            raise ValueError(f"prototype_classes must give each of the {p} prototypes a class in [0, {num_classes}), "
                             f"got {len(prototype_classes)} entries")
    checks = [
        (add_on in ADD_ON_TYPES, f"add_on must be one of {', '.join(ADD_ON_TYPES)}, got {add_on!r}"),
        (activation in ACTIVATIONS, f"activation must be one of {', '.join(ACTIVATIONS)}, got {activation!r}"),
        (isinstance(prototype_dim, int) and prototype_dim >= 1, f"prototype_dim must be ≥ 1, got {prototype_dim!r}"),
        (isinstance(p, int) and p >= num_classes,
         f"num_prototypes must be an integer ≥ num_classes ({num_classes}), got {p!r}"),
    ]
    for ok, message in checks:
        if not ok:
            raise ValueError(message)
    if p % num_classes and prototype_classes is None:
        raise ValueError(f"num_prototypes={p} is not divisible by num_classes={num_classes}: each class gets "
                         f"num_prototypes / num_classes prototypes (e.g. {num_classes * (p // num_classes or 1)} or "
                         f"{num_classes * (p // num_classes + 1)})")
    weights = {**PROTOTYPE_LOSS_DEFAULTS[name], **(loss_weights or {})}
    unknown = sorted(set(weights) - set(PROTOTYPE_LOSS_DEFAULTS[name]))
    if unknown:
        raise ValueError(f"unknown loss_weights {unknown}; valid: {', '.join(PROTOTYPE_LOSS_DEFAULTS[name])}")
    return build_model(PrototypeNet, name, num_classes=num_classes, backbone=backbone, pretrained=pretrained,
                       backbone_options=backbone_options, num_prototypes=p, prototype_dim=prototype_dim,
                       add_on=add_on, activation=activation, class_specific=class_specific, loss_weights=weights,
                       prototype_classes=prototype_classes, **head_options)


@register_model("protopnet")
def protopnet(*, num_classes: int, backbone: str = "resnet34", pretrained: bool = False,
              num_prototypes: int | None = None, prototype_dim: int = PROTOTYPE_DIM, add_on: str = "bottleneck",
              activation: str = "log", class_specific: bool = True, loss_weights: dict | None = None,
              prototype_classes: list[int] | None = None, **backbone_options) -> PrototypeNet:
    """ProtoPNet: ``num_prototypes`` (default 10 per class) class-specific prototypes of
    ``prototype_dim`` (128) channels, ``add_on`` ``bottleneck`` (or ``regular``), ``activation``
    ``log`` (or ``linear``); ``loss_weights`` override CE 1, cluster 0.8, separation 0.08, L1 1e-4;
    ``prototype_classes`` (one class per prototype) after pruning, else ``j // (P / C)``."""
    return _prototype_model("protopnet", num_classes=num_classes, backbone=backbone, pretrained=pretrained,
                            num_prototypes=num_prototypes, per_class=PROTOTYPES_PER_CLASS,
                            prototype_dim=prototype_dim, add_on=add_on, activation=activation,
                            class_specific=class_specific, loss_weights=loss_weights,
                            backbone_options=backbone_options, prototype_classes=prototype_classes)


@register_model("lvw")
def lvw(*, num_classes: int, backbone: str = "resnet34", pretrained: bool = False,
        num_prototypes: int | None = None, prototype_dim: int = PROTOTYPE_DIM, add_on: str = "regular",
        activation: str = "log", class_specific: bool = False, loss_weights: dict | None = None,
        prototype_classes: list[int] | None = None, alignment_upsample: str = "original",
        **backbone_options) -> PrototypeNet:
    """Learnable Visual Words: ``num_prototypes`` (default 5 per class) words shared by every
    class (class-agnostic cluster cost, no separation, unmasked L1), ``regular`` add-on, and the
    attention alignment to the base model's Grad-CAM maps (weight 10, top-10 words).
    ``class_specific=True`` gives the words ProtoPNet's class-specific costs and push.
    ``alignment_upsample``: ``original`` (train_and_test.py:117,120: bilinear with
    align_corners=True, ÷ (max + 1e-5)) or ``half_pixel`` (align_corners=False, ÷ max)."""
    if alignment_upsample not in ALIGNMENT_UPSAMPLES:
        raise ValueError(f"alignment_upsample must be one of {', '.join(ALIGNMENT_UPSAMPLES)}, got "
                         f"{alignment_upsample!r}")
    return _prototype_model("lvw", num_classes=num_classes, backbone=backbone, pretrained=pretrained,
                            num_prototypes=num_prototypes, per_class=LVW_WORDS_PER_CLASS,
                            prototype_dim=prototype_dim, add_on=add_on, activation=activation,
                            class_specific=class_specific, loss_weights=loss_weights,
                            backbone_options=backbone_options, prototype_classes=prototype_classes,
                            alignment_upsample=alignment_upsample)
