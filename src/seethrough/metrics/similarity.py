"""Similarity of two explanation maps per sample: Spearman rank correlation and SSIM.

Used by the sanity check (:func:`seethrough.metrics.randomization_check`) to compare the maps
of a model with those of its randomized copy (Adebayo et al., "Sanity Checks for Saliency
Maps", NeurIPS 2018, §3: rank correlation with and without absolute values, and SSIM).
Both functions take ``B×H×W`` (or ``B×N``) tensors and return ``B`` values, batched on the
device of the inputs.

- :func:`spearman`: Pearson correlation of the *average* ranks (ties share the mean of the
  ranks they span), i.e. ``scipy.stats.spearmanr``. Degenerate case (scipy gives NaN): a
  constant map has no ranking; the correlation is defined as 1 when both maps are constant
  (they are identical up to a constant) and 0 when only one is (no shared ranking).
- :func:`ssim`: Wang et al., "Image Quality Assessment: From Error Visibility to Structural
  Similarity", IEEE TIP 2004, with their settings: an 11×11 Gaussian window of σ = 1.5,
  ``K1 = 0.01``, ``K2 = 0.03``, population (not sample) covariances, and the mean SSIM over
  the positions where the whole window lies inside the map. This equals
  ``skimage.metrics.structural_similarity(a, b, gaussian_weights=True, sigma=1.5,
  use_sample_covariance=False, data_range=...)`` (skimage crops the border half-window
  before averaging, so its padding never enters the mean).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

#: SSIM constants and window of Wang et al. (2004).
SSIM_K1, SSIM_K2 = 0.01, 0.03
SSIM_SIGMA = 1.5
#: Window radius: the Gaussian truncated at 3.5 σ, as skimage (``int(3.5 · 1.5 + 0.5) = 5`` → 11×11).
SSIM_TRUNCATE = 3.5
#: Value range of the compared maps (min-max normalized maps lie in [0, 1]).
SSIM_DATA_RANGE = 1.0


def _flat_pair(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if a.shape != b.shape or a.ndim < 2:
        raise ValueError(f"expected two tensors of the same shape B×..., got {tuple(a.shape)} and {tuple(b.shape)}")
    return a.reshape(a.shape[0], -1).double(), b.reshape(b.shape[0], -1).double()


def average_ranks(values: torch.Tensor) -> torch.Tensor:
    """Ranks 1..N of every row of ``B×N`` ``values``, ties given the mean of their ranks
    (``scipy.stats.rankdata(method="average")``), as float64."""
    batch, n = values.shape
    sorted_values, order = torch.sort(values, dim=1, stable=True)
    new_group = torch.ones_like(sorted_values, dtype=torch.bool)
    new_group[:, 1:] = sorted_values[:, 1:] != sorted_values[:, :-1]
    group = torch.cumsum(new_group.long(), dim=1) - 1                       # B×N group index per row
    group = group + torch.arange(batch, device=values.device)[:, None] * n   # unique over the batch
    position = torch.arange(1, n + 1, device=values.device, dtype=torch.float64).expand(batch, n)
    first = torch.full((batch * n,), math.inf, dtype=torch.float64, device=values.device)
    last = torch.zeros(batch * n, dtype=torch.float64, device=values.device)
    first.scatter_reduce_(0, group.reshape(-1), position.reshape(-1), reduce="amin")
    last.scatter_reduce_(0, group.reshape(-1), position.reshape(-1), reduce="amax")
    mean_rank = ((first + last) / 2)[group]                                 # B×N, in sorted order
    ranks = torch.empty_like(mean_rank)
    ranks.scatter_(1, order, mean_rank)
    return ranks


def spearman(a: torch.Tensor, b: torch.Tensor, *, absolute: bool = False) -> torch.Tensor:
    """Spearman rank correlation of ``a[i]`` and ``b[i]`` for every sample, ``B`` floats.

    Args:
        a, b: ``B×H×W`` (or ``B×N``) maps.
        absolute: rank ``|a|`` and ``|b|`` (Adebayo et al.'s "absolute value" variant, which
            ignores the sign of the attributions) instead of the signed values.

    A constant map gives 1 when the other map is constant too, else 0 (see module docstring).
    """
    a, b = _flat_pair(a, b)
    if absolute:
        a, b = a.abs(), b.abs()
    ra, rb = average_ranks(a), average_ranks(b)
    ra = ra - ra.mean(dim=1, keepdim=True)
    rb = rb - rb.mean(dim=1, keepdim=True)
    var_a, var_b = (ra * ra).sum(dim=1), (rb * rb).sum(dim=1)
    both = var_a * var_b
    rho = (ra * rb).sum(dim=1) / torch.where(both > 0, both, torch.ones_like(both)).sqrt()
    const_a, const_b = var_a == 0, var_b == 0
    rho = torch.where(const_a | const_b, torch.zeros_like(rho), rho)
    rho = torch.where(const_a & const_b, torch.ones_like(rho), rho)
    return rho.clamp(-1.0, 1.0).float()


def gaussian_window(sigma: float = SSIM_SIGMA, truncate: float = SSIM_TRUNCATE, *, device=None,
                    dtype=torch.float64) -> torch.Tensor:
    """Normalized 1-D Gaussian of radius ``int(truncate · sigma + 0.5)`` (scipy's ``gaussian_filter``)."""
    radius = int(truncate * sigma + 0.5)
    x = torch.arange(-radius, radius + 1, device=device, dtype=dtype)
    window = torch.exp(-0.5 * (x / sigma) ** 2)
    return window / window.sum()


def ssim(a: torch.Tensor, b: torch.Tensor, *, sigma: float = SSIM_SIGMA, data_range: float = SSIM_DATA_RANGE,
         k1: float = SSIM_K1, k2: float = SSIM_K2) -> torch.Tensor:
    """Mean structural similarity of ``a[i]`` and ``b[i]`` (``B×H×W``), ``B`` floats.

    Gaussian-weighted local means, variances and covariance (population normalization) over
    the valid positions of the window (see module docstring); ``C1 = (k1·L)²``,
    ``C2 = (k2·L)²`` with ``L = data_range``. Maps must be at least as large as the window
    (11×11 for σ = 1.5).
    """
    if a.shape != b.shape or a.ndim != 3:
        raise ValueError(f"expected two B×H×W maps of the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    window = gaussian_window(sigma, device=a.device)
    size = window.numel()
    if min(a.shape[-2:]) < size:
        raise ValueError(f"SSIM with σ={sigma} uses a {size}×{size} window; maps of {tuple(a.shape[-2:])} are "
                         "smaller — use maps of at least that size or similarity='spearman'")
    x = a.double()[:, None]
    y = b.double()[:, None]
    stack = torch.cat([x, y, x * x, y * y, x * y], dim=1)                       # B×5×H×W
    channels = stack.shape[1]
    rows = window.view(1, 1, size, 1).expand(channels, 1, size, 1)
    cols = window.view(1, 1, 1, size).expand(channels, 1, 1, size)
    filtered = F.conv2d(F.conv2d(stack, rows, groups=channels), cols, groups=channels)  # valid positions only
    mu_x, mu_y, xx, yy, xy = filtered.unbind(dim=1)
    var_x, var_y, cov = xx - mu_x * mu_x, yy - mu_y * mu_y, xy - mu_x * mu_y
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    s = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x * mu_x + mu_y * mu_y + c1) * (var_x + var_y + c2))
    return s.flatten(1).mean(dim=1).float()
