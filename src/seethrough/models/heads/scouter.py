"""SCOUTER: slot-attention classifier with positive or negative explanations.

Li et al., "SCOUTER: Slot Attention-based Classifier for Explainable Image Recognition",
ICCV 2021 (official code wbw520/scouter). With backbone features F, the xSlot head computes

    F′ = ReLU(Conv1×1(F))                    (B×N×d, N = h·w, d = hidden_dim)
    k  = to_k(F′ + P)                        (P: DETR sine position encoding, keys only)
    for t = 1..T (iters):
        dots_ij = q_i·k_j / √d               (q = slots; no to_q projection)
        dots_ij ← dots_ij / Σ_j dots_ij · Σ_ij dots_ij     (official row normalization)
        A = sigmoid(dots)                    (sigmoid, not softmax over slots)
        U = A · F′ / d
        slots = GRU(U, slots)
    z_c = e · Σ_{s ∈ c} Σ_d U_s,d            (e = sign = loss_status: +1 SCOUTER+, −1 SCOUTER−)

with the last U and A. The explanation of class c is Σ_{s ∈ c} A_s reshaped to h×w; a
positive model's map answers "why c", a negative model's "why not c". The loss is
NLL(log_softmax(z), y) + λ · mean(A)^power (the area term, mean over B·K·N).
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

NORMALIZATIONS = ("official", "safe")
#: Floor of |row sum| in the "safe" normalization.
SAFE_EPS = 1e-6
#: SCOUTER's defaults (official train.py): hidden_dim 64, 3 iterations.
HIDDEN_DIM, ITERS = 64, 3


class XSlot(nn.Module):
    """The explainable slot attention module (xSlot) over ``num_classes × slots_per_class`` slots."""

    def __init__(self, num_classes: int, slots_per_class: int, dim: int, *, iters: int = ITERS,
                 to_k_layer: int = 1, sign: int = 1, normalization: str = "official") -> None:
        super().__init__()
        self.num_classes, self.slots_per_class, self.dim = num_classes, slots_per_class, dim
        self.iters, self.sign, self.normalization = iters, sign, normalization
        num_slots = num_classes * slots_per_class
        # drawn once at construction: slots ~ N(mu, |sigma|) with mu, sigma ~ N(0, 1) per channel
        mu, sigma = torch.randn(1, 1, dim), torch.randn(1, 1, dim)
        self.initial_slots = nn.Parameter(torch.normal(mu.expand(1, num_slots, dim),
                                                       sigma.abs().expand(1, num_slots, dim)))
        layers: list[nn.Module] = [nn.Linear(dim, dim)]
        for _ in range(to_k_layer - 1):
            layers += [nn.ReLU(inplace=True), nn.Linear(dim, dim)]
        self.to_k = nn.Sequential(*layers)
        self.gru = nn.GRU(dim, dim)

    def normalize(self, dots: torch.Tensor) -> torch.Tensor:
        """Rescale each slot's row to a common total: ``dots / Σ_j dots · Σ_ij dots``.

        ``"official"`` divides by the raw row sum (NaN/Inf when it reaches 0). ``"safe"`` keeps
        the row sum's sign but floors its magnitude at ``SAFE_EPS`` — identical to the official
        result wherever that is finite and the row sum is not tiny.
        """
        row = dots.sum(dim=2, keepdim=True)
        total = dots.sum(dim=(1, 2), keepdim=True)
        if self.normalization == "safe":
            row = row.abs().clamp_min(SAFE_EPS) * row.sign().masked_fill(row == 0, 1)
        return dots / row * total

    def forward(self, keys: torch.Tensor, values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``keys`` = F′ + P and ``values`` = F′ (B×N×d) → class scores B×C and attention B×K×N."""
        b, _, d = values.shape
        k = self.to_k(keys)
        slots = self.initial_slots.expand(b, -1, -1)
        for step in range(self.iters):
            dots = torch.einsum("bid,bjd->bij", slots, k) * d ** -0.5
            attn = torch.sigmoid(self.normalize(dots))
            updates = torch.einsum("bjd,bij->bid", values, attn) / d
            if step < self.iters - 1:  # the last GRU output is never used (the scores use U and A)
                slots = self.gru(updates.reshape(1, -1, d), slots.reshape(1, -1, d))[0].reshape(b, -1, d)
        per_class = updates.reshape(b, self.num_classes, self.slots_per_class, d).sum(dim=(2, 3))
        return self.sign * per_class, attn


class Scouter(SeeThroughModel):
    """Backbone → 1×1 conv + ReLU → xSlot; ``maps`` = attention summed over each class's slots."""

    def __init__(self, config: dict, backbone: Backbone) -> None:
        super().__init__(config, backbone)
        self.conv1x1 = nn.Conv2d(backbone.num_features, config["hidden_dim"], kernel_size=1)
        self.slot = XSlot(config["num_classes"], config["slots_per_class"], config["hidden_dim"],
                          iters=config["iters"], to_k_layer=config["to_k_layer"], sign=config["sign"],
                          normalization=config["normalization"])
        self.lambda_value, self.power = config["lambda_value"], config["power"]
        self.non_finite_hint = ("SCOUTER's official row normalization divides by a row sum that can reach 0; "
                                "try --model-opt normalization=safe")

    def head_forward(self, features: torch.Tensor) -> ModelOutput:
        x = F.relu(self.conv1x1(features))
        b, d, h, w = x.shape
        pos = sine_position_encoding(h, w, d, device=x.device, dtype=x.dtype)
        values = x.flatten(2).transpose(1, 2)
        keys = (x + pos).flatten(2).transpose(1, 2)
        logits, attn = self.slot(keys, values)
        spc = self.slot.slots_per_class
        maps = attn.reshape(b, self.num_classes, spc, h, w).sum(dim=2)
        return ModelOutput(logits=logits, maps=maps, extras={"attention": attn.reshape(b, -1, h, w)})

    def compute_loss(self, output: ModelOutput, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        """NLL(log_softmax(z), y) + λ · mean(A)^power; both terms returned for logging."""
        nll = F.nll_loss(F.log_softmax(output.logits.float(), dim=1), labels)
        area = output.extras["attention"].float().mean() ** self.power
        return {"loss": nll + self.lambda_value * area, "nll": nll, "area": area}


#: The original train.py's argparse defaults (--slots_per_class "3", --power "2", --lambda_value 1;
#: audit S6) and its learning rate (--lr 0.0001, every SCOUTER preset's ``lr``).
SCOUTER_SLOTS_PER_CLASS, SCOUTER_POWER, SCOUTER_LAMBDA_VALUE = 3, 2.0, 1.0
SCOUTER_LR = 1e-4


@register_model("scouter")
def scouter(
    *,
    num_classes: int,
    backbone: str = "resnet18",
    pretrained: bool = False,
    slots_per_class: int = SCOUTER_SLOTS_PER_CLASS,
    hidden_dim: int = HIDDEN_DIM,
    iters: int = ITERS,
    to_k_layer: int = 1,
    sign: int | None = None,
    loss_status: int | None = None,
    lambda_value: float = SCOUTER_LAMBDA_VALUE,
    power: float = SCOUTER_POWER,
    normalization: str = "official",
    **backbone_options,
) -> Scouter:
    """SCOUTER+ (``sign=1``) or SCOUTER− (``sign=-1``; the original's ``loss_status`` is accepted).

    Defaults of the model's own options are the original train.py's argparse defaults
    (slots_per_class 3, power 2, to_k_layer 1, lambda_value 1, hidden_dim 64, loss_status 1).

    ``backbone_options``: ``in_chans``, ``output_stride``, ``freeze_layers``, ``stem`` (see :class:`Backbone`).
    """
    if sign is not None and loss_status is not None and sign != loss_status:
        raise ValueError(f"sign={sign} and loss_status={loss_status} disagree; give one of them")
    sign = sign if sign is not None else (loss_status if loss_status is not None else 1)
    checks = [
        (sign in (1, -1), f"sign (loss_status) must be +1 (positive) or -1 (negative), got {sign}"),
        (isinstance(slots_per_class, int) and slots_per_class >= 1,
         f"slots_per_class must be ≥ 1, got {slots_per_class}"),
        (hidden_dim > 0 and hidden_dim % 2 == 0,
         f"hidden_dim must be positive and even (sine encoding), got {hidden_dim}"),
        (lambda_value >= 0, f"lambda_value must be ≥ 0, got {lambda_value}"),
        (power >= 0, f"power must be ≥ 0, got {power}"),
        (iters >= 1, f"iters must be ≥ 1, got {iters}"),
        (to_k_layer >= 1, f"to_k_layer must be ≥ 1, got {to_k_layer}"),
        (normalization in NORMALIZATIONS,
         f"normalization must be one of {', '.join(NORMALIZATIONS)}, got {normalization!r}"),
    ]
    for ok, message in checks:
        if not ok:
            raise ValueError(message)
    return build_model(Scouter, "scouter", num_classes=num_classes, backbone=backbone, pretrained=pretrained,
                       backbone_options=backbone_options, slots_per_class=slots_per_class, hidden_dim=hidden_dim,
                       iters=iters, to_k_layer=to_k_layer, sign=sign, lambda_value=lambda_value, power=power,
                       normalization=normalization)
