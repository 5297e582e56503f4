"""Complexity metrics: how concentrated is an explanation?

Both follow the metric contract of :mod:`seethrough.metrics` (``model`` and ``targets`` are
unused and may be ``None``; ``images`` only fixes the expected map size) and score the map's
magnitudes ``|m|`` over all ``N = H·W`` pixels, as Quantus does:

- :func:`sparseness` — Gini index (higher = sparser, more concentrated);
- :func:`entropy` — Shannon entropy of the map as a distribution (lower = more concentrated).

Both are invariant to scaling the map. Constant and all-zero maps are the least concentrated
maps and get the value of the uniform distribution (Gini 0, entropy ``ln N``), so a constant
map scores the same before and after min-max normalization turns it into zeros. NaN for a
non-finite map.
"""
from __future__ import annotations

import math

import torch

from ..core.inputs import check_maps


def sparseness(model, images: torch.Tensor | None, maps: torch.Tensor, targets=None, *,
               absolute: bool = True) -> torch.Tensor:
    """Gini index of the map's magnitudes (Chalasani et al., "Concise explanations of neural
    networks using adversarial training", ICML 2020; Hurley & Rickard 2009):

        G = Σ_i (2i − N − 1) · a_(i) / (N · Σ_i a_i),   a_(1) <= ... <= a_(N) sorted ascending,

    0 for a uniform map, ``(N − 1) / N`` when one pixel holds everything.

    Args:
        absolute: score ``|map|`` (default, as Chalasani et al. and Quantus ``Sparseness``).
            With ``False`` the map must be non-negative (the Gini index of signed values is
            not a concentration measure).

    Quantus adds ``1e-7`` to every value before the formula (to avoid 0/0), a relative
    difference of about ``1e-7 / mean(|m|)``, and refuses an all-zero map (assertion); here an
    all-zero map is 0, like any constant map.

    Raises:
        ValueError: ``absolute=False`` and a negative value.
    """
    values, finite = _magnitudes(maps, images, absolute, "sparseness")
    count = values.shape[1]
    ordered = values.sort(dim=1).values.double()
    weights = 2 * torch.arange(1, count + 1, device=values.device, dtype=torch.float64) - count - 1
    total = ordered.sum(dim=1)
    gini = (ordered * weights).sum(dim=1) / (count * torch.where(total > 0, total, torch.ones_like(total)))
    gini = torch.where(total > 0, gini, torch.zeros_like(gini)).float()
    return torch.where(finite, gini, torch.full_like(gini, math.nan))


def entropy(model, images: torch.Tensor | None, maps: torch.Tensor, targets=None, *,
            absolute: bool = True) -> torch.Tensor:
    """Shannon entropy (in nats) of the map's fractional contributions ``p_i = |m_i| / Σ|m|``:
    ``H = −Σ p_i ln p_i`` with ``0 ln 0 = 0`` — the "complexity" of Bhatt, Weller & Moura
    ("Evaluating and aggregating feature-based model explanations", IJCAI 2020) and
    Quantus ``Complexity``. Ranges from 0 (one pixel) to ``ln N`` (uniform).

    Args:
        absolute: score ``|map|`` (default, as Bhatt et al. and Quantus). With ``False`` the
            map must be non-negative.

    Quantus computes ``−Σ p ln(p + 1e-12)`` (at most ``N · 1e-12`` nats different) and refuses
    an all-zero map (assertion); here an all-zero map is the uniform distribution, ``ln N``,
    the value of any constant map.

    Raises:
        ValueError: ``absolute=False`` and a negative value.
    """
    values, finite = _magnitudes(maps, images, absolute, "entropy")
    count = values.shape[1]
    values = values.double()
    total = values.sum(dim=1, keepdim=True)
    p = values / torch.where(total > 0, total, torch.ones_like(total))
    terms = torch.where(p > 0, p * torch.log(torch.where(p > 0, p, torch.ones_like(p))), torch.zeros_like(p))
    result = -terms.sum(dim=1)
    result = torch.where(total[:, 0] > 0, result, torch.full_like(result, math.log(count))).float()
    return torch.where(finite, result, torch.full_like(result, math.nan))


def _magnitudes(maps: torch.Tensor, images: torch.Tensor | None, absolute: bool, metric: str):
    """Flattened ``B×N`` non-negative values and the finite flags."""
    maps, finite = check_maps(maps, images)
    flat = maps.flatten(1)
    if absolute:
        return flat.abs(), finite
    if bool((flat < 0).any()):
        raise ValueError(f"{metric} with absolute=False needs non-negative maps, got a minimum of "
                         f"{float(flat.min()):.4g}; pass absolute=True to score |map|")
    return flat, finite


__all__ = ["sparseness", "entropy"]
