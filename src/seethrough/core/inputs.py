"""Checking and shaping what every metric receives: images, maps, targets, ground truth.

Conventions shared by all metrics (so a result never depends on a silent guess):

- ``images``: ``B×C×H×W`` normalized model inputs; ``maps``: ``B×H×W`` (``B×1×H×W`` is
  accepted) at the image resolution — upsample with :func:`seethrough.explain` first. A map
  of any other size is an error, never resized behind the user's back.
- ``targets``: ``B`` class indices (the explained class of every image).
- Degenerate maps: a map with NaN or Inf gives NaN for that sample (counted and reported by
  the stateful form, never averaged); constant and all-zero maps have a value defined by
  each metric's docstring.
- Ground truth: ``masks`` ``B×H×W`` bool, or ``boxes`` (one ``N×4`` pixel ``xyxy`` tensor per
  image, in the coordinates of ``images``) turned into the union of the boxes (a pixel is
  inside when its centre lies in at least one box). The union rule is the documented choice:
  FACT double-counts overlapping boxes, the ReScience reproduction keeps the best single box.
"""
from __future__ import annotations

from typing import Sequence

import torch


def check_images(images: torch.Tensor) -> torch.Tensor:
    """Validate ``B×C×H×W`` floating images."""
    if not isinstance(images, torch.Tensor) or images.ndim != 4:
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(f"expected images of shape B×C×H×W, got {shape}")
    if not images.is_floating_point():
        raise ValueError(f"expected normalized floating-point images, got dtype {images.dtype}")
    return images


def check_maps(maps: torch.Tensor, images: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Return ``(maps, finite)``: float ``B×H×W`` maps and a ``B`` bool tensor, False where a
    map holds NaN or Inf (those samples score NaN). Non-finite entries are replaced by 0 in
    the returned maps so that batched arithmetic on the other samples stays clean.

    Raises:
        ValueError: wrong rank, or a size or batch that differs from ``images``.
    """
    if not isinstance(maps, torch.Tensor):
        raise ValueError(f"expected maps as a tensor of shape B×H×W, got {type(maps).__name__}")
    if maps.ndim == 4 and maps.shape[1] == 1:
        maps = maps[:, 0]
    if maps.ndim != 3:
        raise ValueError(f"expected maps of shape B×H×W (one map per image, for its target class), "
                         f"got {tuple(maps.shape)}")
    if images is not None:
        if maps.shape[0] != images.shape[0]:
            raise ValueError(f"got {maps.shape[0]} maps for {images.shape[0]} images")
        if maps.shape[-2:] != images.shape[-2:]:
            raise ValueError(f"maps are {tuple(maps.shape[-2:])} but images are {tuple(images.shape[-2:])}; "
                             "upsample the maps to the image size (seethrough.explain does by default)")
    maps = maps.float()
    finite = torch.isfinite(maps).flatten(1).all(dim=1)
    if not bool(finite.all()):
        maps = torch.where(torch.isfinite(maps), maps, torch.zeros_like(maps))
    return maps, finite


def check_targets(targets: torch.Tensor | Sequence[int] | int, batch: int, device: torch.device | None = None,
                  num_classes: int | None = None) -> torch.Tensor:
    """``B`` long class indices (an int is broadcast); range-checked when ``num_classes`` is known."""
    targets = torch.as_tensor(targets, dtype=torch.long, device=device).reshape(-1)
    if targets.numel() == 1 and batch != 1:
        targets = targets.expand(batch).clone()
    if targets.numel() != batch:
        raise ValueError(f"got {targets.numel()} targets for a batch of {batch}; give one class per image")
    bad = targets < 0 if num_classes is None else (targets < 0) | (targets >= num_classes)
    if bool(bad.any()):
        limit = "" if num_classes is None else f" for a model with {num_classes} classes"
        raise ValueError(f"target class {int(targets[bad][0])} is out of range{limit}")
    return targets


def check_sample_ids(sample_ids: torch.Tensor | Sequence[int] | None, batch: int) -> torch.Tensor:
    """``B`` long sample ids (default ``0..B-1``); they seed per-sample noise."""
    if sample_ids is None:
        return torch.arange(batch)
    ids = torch.as_tensor(sample_ids, dtype=torch.long).reshape(-1).cpu()
    if ids.numel() != batch:
        raise ValueError(f"got {ids.numel()} sample_ids for a batch of {batch}")
    return ids


def boxes_to_mask(boxes: Sequence[torch.Tensor], size: tuple[int, int],
                  device: torch.device | None = None) -> torch.Tensor:
    """Union mask ``B×H×W`` of per-image ``N×4`` pixel ``xyxy`` boxes.

    A pixel (row ``y``, column ``x``) is inside a box when its centre ``(x + 0.5, y + 0.5)``
    lies in ``[x1, x2] × [y1, y2]``. An image without boxes gets an all-False mask.
    """
    height, width = size
    ys = torch.arange(height, device=device, dtype=torch.float32) + 0.5
    xs = torch.arange(width, device=device, dtype=torch.float32) + 0.5
    masks = torch.zeros(len(boxes), height, width, dtype=torch.bool, device=device)
    for index, image_boxes in enumerate(boxes):  # boxes per image vary in count
        b = torch.as_tensor(image_boxes, dtype=torch.float32, device=device).reshape(-1, 4)
        if b.numel() == 0:
            continue
        inside_y = (ys[None, :] >= b[:, 1:2]) & (ys[None, :] <= b[:, 3:4])   # N×H
        inside_x = (xs[None, :] >= b[:, 0:1]) & (xs[None, :] <= b[:, 2:3])   # N×W
        masks[index] = (inside_y[:, :, None] & inside_x[:, None, :]).any(dim=0)
    return masks


def ground_truth_mask(
    *,
    masks: torch.Tensor | None = None,
    boxes: Sequence[torch.Tensor] | None = None,
    size: tuple[int, int],
    batch: int,
    device: torch.device | None = None,
    metric: str = "this metric",
) -> torch.Tensor:
    """The ``B×H×W`` bool ground-truth region from ``masks`` or ``boxes`` (masks win if both).

    Raises:
        ValueError: neither given, or a shape that does not match the images.
    """
    if masks is not None:
        masks = torch.as_tensor(masks, device=device)
        if masks.ndim == 4 and masks.shape[1] == 1:
            masks = masks[:, 0]
        if masks.ndim != 3 or masks.shape[0] != batch or tuple(masks.shape[-2:]) != tuple(size):
            raise ValueError(f"expected ground-truth masks of shape {batch}×{size[0]}×{size[1]}, "
                             f"got {tuple(masks.shape)}")
        return masks.bool()
    if boxes is not None:
        if len(boxes) != batch:
            raise ValueError(f"got boxes for {len(boxes)} images in a batch of {batch}")
        return boxes_to_mask(boxes, size, device=device)
    raise ValueError(f"{metric} needs ground truth: pass masks= (B×H×W) or boxes= (one N×4 xyxy tensor per image)")
