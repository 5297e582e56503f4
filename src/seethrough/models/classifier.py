"""The backbone's own classifier, taken out of timm's head so a pooled vector can be fed to it.

timm's CNN heads compute ``fc(norm(GAP(F)))``: ResNet, EfficientNet and RegNet have no norm,
ConvNeXt has a LayerNorm over channels. CA-Stream replaces GAP(F) by its token ``u`` and keeps
the rest, so :class:`ReusedClassifier` computes ``z = fc(norm(u))`` and its exact decomposition
over positions (used for the class activation maps, see :meth:`ReusedClassifier.class_maps`):

    z_c = w̃_cᵀ u / σ(u) + κ_c      with  w̃_c = g_c − mean_k(g_c),  g_c = γ ⊙ w_c,
                                         σ(u) = sqrt(Var_k(u_k) + ε),  κ_c = w_cᵀβ + bias_c

for a LayerNorm(γ, β, ε) head, and ``w̃_c = w_c, σ = 1, κ_c = bias_c`` without one. Because
``u`` is a sum of per-position contributions, so is ``z_c − κ_c``.
"""
from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

#: Batch and spatial size of the random feature map that checks a head is GAP → [norm] → linear.
PROBE_SHAPE = (2, 3, 2)
#: Tolerance of that check (float32 rounding of the two computation orders).
PROBE_ATOL = 1e-4


class ReusedClassifier(nn.Module):
    """``fc`` (a copy of timm's classifier, pretrained when timm loaded it) and, by reference,
    the LayerNorm the backbone's head applies first (it stays a backbone parameter)."""

    def __init__(self, fc: nn.Linear) -> None:
        super().__init__()
        self.fc = fc

    @staticmethod
    def take_from(body: Any, backbone: str) -> "ReusedClassifier":   # body: a timm model (untyped attributes)
        """Copy ``body``'s classifier after checking that its head is GAP → [LayerNorm] → Linear
        (by running timm's ``forward_head`` on a random map), then strip it from ``body``."""
        fc = body.get_classifier() if hasattr(body, "get_classifier") else None
        if not isinstance(fc, nn.Linear):
            raise ValueError(f"backbone {backbone!r} has no linear classifier to reuse (its classifier is "
                             f"{type(fc).__name__}); CA-Stream feeds its token to the backbone's classifier in place "
                             "of global average pooling: use a CNN such as resnet50, convnext_base, efficientnet_b0")
        not_gap_linear = ValueError(
            f"backbone {backbone!r}'s head is not global average pooling → [LayerNorm] → Linear (timm's forward_head "
            "computes something else, e.g. a hidden layer after pooling), so CA-Stream cannot replace its pooling; "
            "use a ResNet, ConvNeXt, EfficientNet or RegNet")
        width = getattr(body, "num_features", fc.in_features)
        if fc.in_features != width:
            raise not_gap_linear
        reused = ReusedClassifier(copy.deepcopy(fc))
        norm = head_norm(body)
        batch, rows, cols = PROBE_SHAPE
        probe = torch.randn(batch, width, rows, cols)
        was_training = body.training
        body.eval()
        try:
            with torch.no_grad():
                expected = body.forward_head(probe)
                ours = reused(probe.mean(dim=(-2, -1)), norm)
        except Exception as err:  # noqa: BLE001 - any failure means the head is not GAP → linear
            raise ValueError(f"backbone {backbone!r}: its head does not take a pooled B×{fc.in_features} vector "
                             f"({err}); CA-Stream needs a head that is global average pooling, optionally a "
                             "LayerNorm, then one Linear (ResNet, ConvNeXt, EfficientNet, RegNet...)") from err
        finally:
            body.train(was_training)
        if expected.shape != ours.shape or not torch.allclose(expected, ours, atol=PROBE_ATOL):
            raise not_gap_linear
        body.reset_classifier(0, "")
        return reused

    def forward(self, pooled: torch.Tensor, norm: nn.LayerNorm | None = None) -> torch.Tensor:
        """Logits ``fc(norm(u))`` of pooled vectors ``u`` (B×D)."""
        if norm is not None:
            pooled = F.layer_norm(pooled, pooled.shape[-1:], norm.weight, norm.bias, norm.eps)
        return self.fc(pooled)

    def class_maps(self, weighted: torch.Tensor, pooled: torch.Tensor, norm: nn.LayerNorm | None = None, *,
                   proj: nn.Linear | None = None) -> torch.Tensor:
        """``B×C×t`` maps M_c(p) = w̃_cᵀ P(weighted(p)) / σ(u), with ``P`` the linear part of ``proj``
        (identity when ``None``) and ``u`` (B×D) the pooled vector: the per-position terms of
        z_c − κ_c when ``Σ_p P(weighted(p))`` is ``u`` minus a constant (see the module docstring).

        The contraction order (project each position, or pull the class weights back through
        ``proj`` first) is the cheaper one for this batch."""
        weight = self.fc.weight
        if norm is not None:
            scaled = weight * norm.weight                        # g_c = γ ⊙ w_c
            weight = scaled - scaled.mean(dim=1, keepdim=True)   # w̃_c
        weight = weight.to(weighted.dtype)
        if proj is not None:
            b, d, t = weighted.shape
            classes, width = weight.shape
            per_position = b * t * d * width + b * classes * width * t
            pulled_back = classes * width * d + b * classes * d * t
            if per_position <= pulled_back:
                weighted = torch.einsum("od,bdt->bot", proj.weight.to(weighted.dtype), weighted)
            else:
                weight = weight @ proj.weight.to(weighted.dtype)
        maps = torch.einsum("cd,bdt->bct", weight, weighted)
        if norm is None:
            return maps
        sigma = torch.sqrt(pooled.float().var(dim=1, unbiased=False) + norm.eps).to(maps.dtype)
        return maps / sigma[:, None, None]


def head_norm(body: nn.Module) -> nn.LayerNorm | None:
    """The LayerNorm a timm head applies after pooling (ConvNeXt's ``head.norm``), if any."""
    head = getattr(body, "head", None)
    norm = getattr(head, "norm", None) if isinstance(head, nn.Module) else None
    if norm is None or isinstance(norm, nn.Identity):
        return None
    if not isinstance(norm, nn.LayerNorm):
        raise ValueError(f"the backbone's head normalizes with {type(norm).__name__}, not a LayerNorm; "
                         "CA-Stream reuses heads of the form GAP → [LayerNorm] → Linear")
    return norm
