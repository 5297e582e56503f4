"""Substrates of the insertion and deletion games (Petsiuk et al., RISE, BMVC 2018, §4.1).

A substrate is the image that "removed" pixels take: deletion replaces the most salient
pixels of the image by the substrate, insertion starts from the substrate and pastes the
original pixels back. Every substrate is computed in the *normalized* input space (what the
model receives), as RISE does:

``"zero"``   zeros, i.e. the dataset mean colour (RISE's deletion substrate);
``"mean"``   the per-image, per-channel mean of the normalized image, broadcast over its
             pixels (a flat image of the image's own average colour);
``"blur"``   a Gaussian blur of the image, applied per channel by a ``kernel_size`` ×
             ``kernel_size`` convolution with **zero padding** (RISE's insertion substrate:
             kernel 11, σ 5, ``padding=kernel_size // 2``, which darkens the border towards
             zero, i.e. towards the mean colour).

Blur kernels (``blur_kernel``):

``"rise"``      the kernel RISE's ``gkern`` builds: ``scipy.ndimage.gaussian_filter`` of a
                ``kernel_size``² Dirac delta with σ = ``sigma`` (scipy's defaults: radius
                ``int(4σ + 0.5)``, mode ``"reflect"``). With σ = 5 the Gaussian's radius (20)
                exceeds the 11×11 window, so reflection folds the tails back and the kernel is
                almost flat (0.00774..0.00883 for 11×11, σ 5). CA-Stream's ``gkern(5, 5)``
                (``engine/evaluation.py:439-443``, ``engine/interpretable/ins_del.py:21``) is
                the same construction at 5×5: the folding makes it uniform to within 3e-6
                (0.039998..0.040003), a 0.04 box blur. Computed here in torch (no scipy at run time); the tests check it
                against scipy. This is the default: it is what published RISE numbers used.
``"gaussian"``  a truncated, normalized Gaussian ``exp(-d²/2σ²)`` over the window (what
                ``torchvision.transforms.GaussianBlur(11, 5)`` uses; 0.0073..0.0120 centre
                row for 11×11, σ 5): a stronger blur centre weight than RISE's kernel.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

#: Substrate names accepted by the insertion and deletion metrics.
SUBSTRATES: tuple[str, ...] = ("zero", "mean", "blur")
#: The substrate that is the same scene with its evidence removed (data with part interventions,
#: :mod:`seethrough.data.interventions`): what "the evidence is absent" really looks like.
ABSENT_SUBSTRATE = "absent"

#: RISE's insertion blur: an 11×11 kernel with σ = 5 (``gkern(11, 5)`` in RISE's code).
RISE_BLUR_KERNEL_SIZE = 11
RISE_BLUR_SIGMA = 5.0

#: Blur kernel constructions, see the module docstring.
BLUR_KERNELS: tuple[str, ...] = ("rise", "gaussian")

#: scipy.ndimage.gaussian_filter's default ``truncate``: the 1-D kernel radius is
#: ``int(truncate * sigma + 0.5)``.
SCIPY_TRUNCATE = 4.0

#: A substrate given as a function: normalized images ``B×C×H×W`` → substrate, same shape.
SubstrateFn = Callable[[torch.Tensor], torch.Tensor]


def _gaussian_1d(sigma: float, radius: int) -> torch.Tensor:
    """Normalized weights ``exp(-x²/2σ²)`` for ``x = -radius..radius`` (float64)."""
    x = torch.arange(-radius, radius + 1, dtype=torch.float64)
    weights = torch.exp(-0.5 * (x / sigma) ** 2)
    return weights / weights.sum()


def _rise_kernel_1d(kernel_size: int, sigma: float) -> torch.Tensor:
    """1-D slice of RISE's kernel: scipy's ``gaussian_filter1d`` of a Dirac delta at the centre
    of a ``kernel_size`` long array, with mode "reflect" (``d c b a | a b c d | d c b a``).

    Output ``i`` collects the weight ``w[j]`` of every offset ``j`` whose reflected position
    ``i + j`` lands on the delta.
    """
    radius = int(SCIPY_TRUNCATE * float(sigma) + 0.5)
    weights = _gaussian_1d(sigma, radius)
    offsets = torch.arange(-radius, radius + 1)
    positions = torch.arange(kernel_size)[:, None] + offsets[None, :]        # K × (2r+1)
    period = positions.remainder(2 * kernel_size)
    reflected = torch.where(period < kernel_size, period, 2 * kernel_size - 1 - period)
    hits = (reflected == kernel_size // 2).to(torch.float64)
    return hits @ weights


def blur_kernel2d(kernel_size: int = RISE_BLUR_KERNEL_SIZE, sigma: float = RISE_BLUR_SIGMA, *,
                  kind: str = "rise") -> torch.Tensor:
    """The ``kernel_size × kernel_size`` blur kernel (float64, sums to 1).

    Args:
        kernel_size: odd window size (RISE: 11).
        sigma: Gaussian standard deviation in pixels (RISE: 5).
        kind: ``"rise"`` (RISE's scipy-built, reflect-folded kernel) or ``"gaussian"``
            (truncated, normalized Gaussian); see the module docstring.

    Raises:
        ValueError: an even or non-positive ``kernel_size``, ``sigma <= 0`` or an unknown ``kind``.
    """
    if int(kernel_size) != kernel_size or kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"kernel_size must be a positive odd integer (RISE: {RISE_BLUR_KERNEL_SIZE}), "
                         f"got {kernel_size!r}")
    if not sigma > 0:
        raise ValueError(f"sigma must be > 0 (RISE: {RISE_BLUR_SIGMA}), got {sigma!r}")
    if kind == "rise":
        line = _rise_kernel_1d(int(kernel_size), float(sigma))
    elif kind == "gaussian":
        line = _gaussian_1d(float(sigma), int(kernel_size) // 2)
    else:
        raise ValueError(f"unknown blur_kernel {kind!r}; valid: {', '.join(BLUR_KERNELS)}")
    return torch.outer(line, line)  # both constructions are separable


def gaussian_blur(images: torch.Tensor, kernel_size: int = RISE_BLUR_KERNEL_SIZE, sigma: float = RISE_BLUR_SIGMA,
                  *, kind: str = "rise") -> torch.Tensor:
    """Blur ``B×C×H×W`` images channel by channel with zero padding (RISE's ``blur``)."""
    channels = images.shape[1]
    kernel = blur_kernel2d(kernel_size, sigma, kind=kind).to(device=images.device, dtype=images.dtype)
    weight = kernel.expand(channels, 1, *kernel.shape).contiguous()
    return F.conv2d(images, weight, padding=int(kernel_size) // 2, groups=channels)


def make_substrate(images: torch.Tensor, substrate: str | SubstrateFn, *,
                   kernel_size: int = RISE_BLUR_KERNEL_SIZE, sigma: float = RISE_BLUR_SIGMA,
                   blur_kernel: str = "rise") -> torch.Tensor:
    """The substrate of every image, ``B×C×H×W`` in the normalized input space.

    Args:
        images: normalized model inputs.
        substrate: ``"zero"``, ``"mean"``, ``"blur"`` or a function ``images → substrate``.
        kernel_size, sigma, blur_kernel: the blur (used by ``"blur"`` only).

    Raises:
        ValueError: an unknown substrate name, or a function returning another shape.
    """
    if callable(substrate):
        out = substrate(images)
        if not isinstance(out, torch.Tensor) or out.shape != images.shape:
            shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise ValueError(f"substrate function returned {shape}; expected a tensor of the images' shape "
                             f"{tuple(images.shape)}")
        return out.to(dtype=images.dtype, device=images.device)
    if substrate == "zero":
        return torch.zeros_like(images)
    if substrate == "mean":
        return images.mean(dim=(2, 3), keepdim=True).expand_as(images).contiguous()
    if substrate == "blur":
        return gaussian_blur(images, kernel_size, sigma, kind=blur_kernel)
    raise ValueError(f"unknown substrate {substrate!r}; valid: {', '.join(SUBSTRATES)} or a function "
                     "images -> substrate")
