"""Sanity baselines: model-independent maps that every real explainer must beat.

- ``random`` — seeded uniform noise per sample (the same map for a sample in any batch);
- ``center`` — a centred isotropic Gaussian ``exp(−‖x − c‖² / (2 (σ·side)²))`` (the centre bias of
  natural images and of many datasets' objects);
- ``edges`` — the image gradient magnitude ``‖∇I‖`` (Sobel) of the channel-mean image, the
  "edge detector" that Adebayo et al. (NeurIPS 2018, "Sanity checks for saliency maps") showed
  many saliency maps resemble.

None of them reads the model or the target class: a metric that cannot rank them below the
model's own maps cannot tell a faithful explanation from a useless one (``seethrough benchmark``'s
"can this metric tell?" table).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..core.inputs import check_sample_ids
from ..core.noise import per_sample
from .registry import register_explainer

#: Random stream of the ``random`` baseline (:mod:`seethrough.core.noise`).
RANDOM_BASELINE_STREAM = 0x52414E44  # "RAND" in ASCII
#: Default σ of the ``center`` baseline, as a share of the image side.
CENTER_SIGMA = 0.25
#: Sobel kernel (x derivative; its transpose is the y derivative).
SOBEL_X = ((-1.0, 0.0, 1.0), (-2.0, 0.0, 2.0), (-1.0, 0.0, 1.0))


@register_explainer("random")
def random_maps(model: nn.Module | None, images: torch.Tensor, targets: torch.Tensor, *,
                sample_ids: torch.Tensor | None = None, seed: int = 0) -> torch.Tensor:
    """``B×H×W`` uniform noise in [0, 1), drawn per sample from ``(seed, sample_id)``."""
    ids = check_sample_ids(sample_ids, images.shape[0])
    size = tuple(images.shape[-2:])
    maps = per_sample(lambda g: torch.rand(size, generator=g), ids, seed=seed, stream=RANDOM_BASELINE_STREAM)
    return maps.to(images.device)


@register_explainer("center")
def center_maps(model: nn.Module | None, images: torch.Tensor, targets: torch.Tensor, *,
                sigma: float = CENTER_SIGMA) -> torch.Tensor:
    """``B×H×W`` centred Gaussian with σ = ``sigma`` × the image side (the same for every image)."""
    if sigma <= 0:
        raise ValueError(f"center: sigma must be positive (a share of the image side), got {sigma}")
    height, width = images.shape[-2:]
    ys = (torch.arange(height, device=images.device, dtype=torch.float32) + 0.5 - height / 2) / height
    xs = (torch.arange(width, device=images.device, dtype=torch.float32) + 0.5 - width / 2) / width
    gaussian = torch.exp(-(ys[:, None] ** 2 + xs[None, :] ** 2) / (2 * sigma ** 2))
    return gaussian.expand(images.shape[0], height, width).clone()


@register_explainer("edges")
def edge_maps(model: nn.Module | None, images: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """``B×H×W`` Sobel gradient magnitude of the channel-mean image (replicate padding)."""
    gray = images.float().mean(dim=1, keepdim=True)
    kx = torch.tensor(SOBEL_X, device=images.device, dtype=torch.float32)[None, None]
    padded = F.pad(gray, (1, 1, 1, 1), mode="replicate")
    gx, gy = F.conv2d(padded, kx), F.conv2d(padded, kx.transpose(-2, -1))
    return torch.sqrt(gx ** 2 + gy ** 2)[:, 0]
