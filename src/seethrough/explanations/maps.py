"""Map arithmetic for explanations: normalize, upsample to the image, pick classes.

The two steps every explanation goes through (in this order, see :mod:`.api`), on ``B×C×h×w``
maps, as batched tensor ops on whatever device the maps live on.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..core.minmax import minmax

#: Valid values of ``normalize``: per map, over all classes of an image, or none.
NORMALIZE_MODES: tuple[str, ...] = ("minmax", "joint", "none")
#: Valid values of ``upsample`` (``"none"`` keeps the explainer's resolution).
UPSAMPLE_MODES: tuple[str, ...] = ("bilinear", "nearest", "bicubic", "none")

#: Dimensions of a ``B×C×h×w`` tensor reduced by each min-max mode.
_REDUCE_DIMS: dict[str, tuple[int, ...]] = {"joint": (1, 2, 3), "minmax": (2, 3)}


def normalize(maps: torch.Tensor, mode: str = "joint", *, nonfinite: str = "raise") -> torch.Tensor:
    """Min-max normalize ``B×C×h×w`` maps to ``[0, 1]``.

    Args:
        maps: per-class evidence maps.
        mode: ``"joint"`` — one min and max over all classes of an image (official SCOUTER,
            so a class with weak evidence stays dim); ``"minmax"`` — every map stretched to its
            own full range; ``"none"`` — unchanged (raw values, as FACT-2022 uses).
        nonfinite: NaN/Inf policy of :func:`~seethrough.core.minmax.minmax` (default: refuse).

    A constant map (or, under "joint", a constant image) becomes zeros, not NaN.
    """
    if mode not in NORMALIZE_MODES:
        raise ValueError(f"unknown normalize mode {mode!r}; valid: {', '.join(NORMALIZE_MODES)}")
    _check_4d(maps)
    if mode == "none":
        if nonfinite == "raise" and not bool(torch.isfinite(maps).all()):
            raise ValueError("explanation maps contain NaN or Inf; the model's maps are not usable")
        return maps if maps.is_floating_point() else maps.float()
    return minmax(maps, _REDUCE_DIMS[mode], nonfinite=nonfinite)


def upsample(maps: torch.Tensor, size: int | tuple[int, int], mode: str = "bilinear") -> torch.Tensor:
    """Resize ``B×C×h×w`` maps to ``size`` (``align_corners=False`` except for nearest).

    Bilinear is the resize of SCOUTER's ``test.py``; its weights are convex, so maps in
    ``[0, 1]`` stay in ``[0, 1]`` (bicubic overshoots: callers clamp normalized maps).
    """
    if mode not in UPSAMPLE_MODES:
        raise ValueError(f"unknown upsample mode {mode!r}; valid: {', '.join(UPSAMPLE_MODES)}")
    _check_4d(maps)
    if not maps.is_floating_point():
        maps = maps.float()
    target = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
    if mode == "none" or tuple(maps.shape[-2:]) == target:
        return maps
    return F.interpolate(maps, size=target, mode=mode, **({} if mode == "nearest" else {"align_corners": False}))


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
