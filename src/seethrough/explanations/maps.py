"""Map arithmetic for explanations: upsample to the image, normalize, pick classes.

All functions are batched tensor ops on whatever device the maps live on.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

#: Valid values of ``mode`` in :func:`normalize`.
NORMALIZATIONS: tuple[str, ...] = ("joint", "per-class", "none")

#: Dimensions reduced by each min-max mode of a ``B×C×h×w`` tensor.
_REDUCE_DIMS: dict[str, tuple[int, ...]] = {"joint": (1, 2, 3), "per-class": (2, 3)}


def upsample(maps: torch.Tensor, size: int | tuple[int, int]) -> torch.Tensor:
    """Resize ``B×C×h×w`` maps bilinearly to ``size`` (``align_corners=False``).

    This is the resize of SCOUTER's ``test.py``; bilinear weights are convex, so maps in
    ``[0, 1]`` stay in ``[0, 1]``.
    """
    _check_4d(maps)
    if not maps.is_floating_point():
        maps = maps.float()
    return F.interpolate(maps, size=size, mode="bilinear", align_corners=False)


def normalize(maps: torch.Tensor, mode: str = "joint") -> torch.Tensor:
    """Min-max normalize ``B×C×h×w`` maps to ``[0, 1]``.

    Args:
        maps: per-class evidence maps.
        mode: ``"joint"`` — one min and max over all classes of an image (official SCOUTER,
            so a class with weak evidence stays dim); ``"per-class"`` — every map stretched
            to its own full range; ``"none"`` — unchanged (raw values, as FACT-2022 uses).

    A constant map (or, under "joint", a constant image) becomes zeros, not NaN.

    Raises:
        ValueError: unknown mode, wrong shape, or NaN/Inf in ``maps``.
    """
    if mode not in NORMALIZATIONS:
        raise ValueError(f"unknown normalization {mode!r}; valid: {', '.join(NORMALIZATIONS)}")
    _check_4d(maps)
    if not maps.is_floating_point():
        maps = maps.float()
    if not bool(torch.isfinite(maps).all()):
        raise ValueError("explanation maps contain NaN or Inf; the model's maps are not usable")
    if mode == "none":
        return maps
    dims = _REDUCE_DIMS[mode]
    low = maps.amin(dim=dims, keepdim=True)
    span = maps.amax(dim=dims, keepdim=True) - low
    return (maps - low) / torch.where(span > 0, span, torch.ones_like(span))


def gather(maps: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
    """Pick ``B×K×h×w`` maps from ``B×C×h×w`` for ``B×K`` class indices."""
    _check_4d(maps)
    if classes.ndim != 2 or classes.shape[0] != maps.shape[0]:
        raise ValueError(
            f"expected classes of shape B×K with B={maps.shape[0]}, got {tuple(classes.shape)}"
        )
    classes = classes.to(device=maps.device, dtype=torch.long)
    return torch.take_along_dim(maps, classes[:, :, None, None], dim=1)


def _check_4d(maps: torch.Tensor) -> None:
    if maps.ndim != 4:
        raise ValueError(f"expected maps of shape B×C×h×w, got {tuple(maps.shape)}")
