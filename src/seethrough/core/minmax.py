"""Min-max normalization of maps, written once, with an explicit policy for NaN and Inf.

    minmax(x)_i = (x_i − min x) / (max x − min x)     over the reduced dimensions

A constant map becomes zeros (not NaN: a flat explanation says "nothing stands out"). A map
holding NaN or Inf is, by ``nonfinite``:

- ``"nan"``   — returned as all-NaN, so a metric counts it as undefined instead of failing;
- ``"raise"`` — refused with a ValueError (pictures: a NaN map cannot be drawn honestly);
- ``"ignore"``— normalized over its finite values; non-finite entries become 0.
"""
from __future__ import annotations

from typing import Sequence

import torch

#: Valid values of ``nonfinite``.
NONFINITE_POLICIES: tuple[str, ...] = ("nan", "raise", "ignore")


def minmax(maps: torch.Tensor, dims: int | Sequence[int] = -1, *, nonfinite: str = "nan") -> torch.Tensor:
    """Min-max normalize ``maps`` to [0, 1] over ``dims`` (one min and max per remaining index).

    Args:
        maps: any float tensor (integers are cast to float32).
        dims: the dimension(s) that form one map, e.g. ``(1, 2, 3)`` for one min and max per
            image of a ``B×C×h×w`` tensor, ``(2, 3)`` per class map, ``-1`` for flattened maps.
        nonfinite: ``"nan"``, ``"raise"`` or ``"ignore"`` (module docstring).
    """
    if nonfinite not in NONFINITE_POLICIES:
        raise ValueError(f"unknown nonfinite={nonfinite!r}; valid: {', '.join(NONFINITE_POLICIES)}")
    if not maps.is_floating_point():
        maps = maps.float()
    dims = (dims,) if isinstance(dims, int) else tuple(dims)
    finite_entries = torch.isfinite(maps)
    finite = finite_entries.all(dim=dims, keepdim=True)
    if nonfinite == "raise" and not bool(finite.all()):
        raise ValueError("explanation maps contain NaN or Inf; the model's maps are not usable")
    if nonfinite == "ignore":
        low = torch.where(finite_entries, maps, torch.full_like(maps, float("inf"))).amin(dim=dims, keepdim=True)
        high = torch.where(finite_entries, maps, torch.full_like(maps, float("-inf"))).amax(dim=dims, keepdim=True)
        low, high = torch.nan_to_num(low, posinf=0.0), torch.nan_to_num(high, neginf=0.0)
        clean = torch.where(finite_entries, maps, low)
    else:
        clean = torch.where(finite, maps, torch.zeros_like(maps))
        low, high = clean.amin(dim=dims, keepdim=True), clean.amax(dim=dims, keepdim=True)
    span = high - low
    out = (clean - low) / torch.where(span > 0, span, torch.ones_like(span))
    if nonfinite == "nan":
        out = torch.where(finite, out, torch.full_like(out, float("nan")))
    return out
