"""RISE: Randomized Input Sampling for Explanation (Petsiuk, Das & Saenko, BMVC 2018).

The saliency of pixel λ for class c is the expected score of c over random masks that keep
λ (paper eq. 6, Monte-Carlo estimate):

    S_c(λ) = 1 / (N · p) · Σ_{i=1..N} f_c(I ⊙ M_i) · M_i(λ)

with ``f_c`` the softmax probability of c. The masks are the paper's smooth masks (§3.2):
a binary ``s×s`` grid whose cells are kept with probability ``p``, upsampled bilinearly to
``(s+1)·C`` pixels (cell size ``C = ⌈H/s⌉``) and cropped at a random shift in ``[0, C)``.
The upsampling reproduces the official code exactly (``skimage.transform.resize(grid,
order=1, mode="reflect", anti_aliasing=False)``, i.e. pixel-centre bilinear interpolation
with mirror boundaries — ``torch.nn.functional.interpolate`` replicates the edge instead and
differs by up to 0.5 in the outer half cell); it is written as two interpolation matrices,
so a chunk of masks is one batched matmul on the device.

Masked-out pixels take ``substrate`` (default 0 in normalized space, i.e. the dataset mean
colour, as the official code multiplies the normalized image by the mask).

Randomness is per sample: the masks of image ``i`` come from a generator seeded by ``(seed,
sample_ids[i], RISE_STREAM)`` (:mod:`seethrough.core.noise`), drawn on the CPU, so a map
does not depend on the batch it was computed in, on ``batch_size`` or on the device.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..core.calls import eval_mode, logits_of
from ..core.inputs import check_sample_ids, check_targets
from ..core.noise import RISE_STREAM, sample_generator
from ..core.scoring import SCORES, target_scores
from .registry import register_explainer

#: Number of masks N. The paper's ImageNet setting for ResNet50 (also xplique's default);
#: the official PyTorch notebook uses 6000 and TorchRay 8000.
NUM_MASKS = 4000
#: Grid size s (cells per side). The paper uses 7 (the official notebook 8).
GRID_SIZE = 7
#: Probability p of keeping a grid cell. The paper uses 0.5 (the official notebook 0.1).
KEEP_PROB = 0.5
#: Masked images per forward pass (the official code's ``gpu_batch``).
BATCH_SIZE = 100
#: Default seed of the mask generators.
SEED = 0
#: Stream of :func:`seethrough.core.noise.sample_generator` used by RISE masks ("RISE" in ASCII),
#: so they never coincide with a metric's noise for the same (seed, sample id).


@register_explainer("rise")
def rise_maps(
    model: nn.Module,
    images: torch.Tensor,
    targets: torch.Tensor,
    *,
    num_masks: int = NUM_MASKS,
    grid_size: int = GRID_SIZE,
    keep_prob: float = KEEP_PROB,
    seed: int = SEED,
    sample_ids: torch.Tensor | None = None,
    batch_size: int = BATCH_SIZE,
    substrate: float | torch.Tensor = 0.0,
    score: str = "prob",
) -> torch.Tensor:
    """RISE saliency of one target class per image, ``B×H×W`` at the image resolution.

    Args:
        model: any classifier (seethrough model or logits); run in eval mode, flags restored.
        images: ``B×C×H×W`` normalized images.
        targets: ``B`` class indices.
        num_masks: N, masks per image.
        grid_size: s, grid cells per side.
        keep_prob: p, probability of keeping a cell (also the normalizer ``1/(N·p)``).
        seed: seed of the per-sample mask generators.
        sample_ids: ``B`` dataset indices of the images (default ``0..B-1``); the same id
            gets the same masks in any batch.
        batch_size: masked images per forward pass (across images).
        substrate: value of masked-out pixels: a number, or a tensor broadcastable to
            ``images`` (``B×C×H×W`` is taken per image).
        score: ``"prob"`` (softmax probability, RISE), ``"log_prob"`` or ``"logit"``.

    Returns:
        float32 maps on the images' device, unnormalized (``1/(N·p)`` scaling as the paper).
    """
    _check_options(num_masks, grid_size, keep_prob, batch_size, score)
    batch, _, height, width = images.shape
    targets = check_targets(targets, batch, device=images.device)
    ids = check_sample_ids(sample_ids, batch)
    device = images.device
    cells = (math.ceil(height / grid_size), math.ceil(width / grid_size))
    grids, shifts = draw_masks(ids, num_masks, grid_size, keep_prob, cells, seed=seed)
    grids, shifts = grids.to(device), shifts.to(device)
    rows = upsample_matrix(grid_size, (grid_size + 1) * cells[0]).to(device)   # (s+1)C_h × s
    cols = upsample_matrix(grid_size, (grid_size + 1) * cells[1]).to(device)   # (s+1)C_w × s
    row_offsets, col_offsets = torch.arange(height, device=device), torch.arange(width, device=device)
    fill_values = _substrate(substrate, images)

    saliency = torch.zeros(batch, height * width, device=device)
    with eval_mode(model):
        with torch.no_grad():  # one image, to range-check the targets before any device-side gather
            check_targets(targets, batch, num_classes=logits_of(model, images[:1]).shape[1])
        for start in range(0, batch * num_masks, batch_size):  # (image, mask) pairs, image-major
            stop = min(start + batch_size, batch * num_masks)
            first, last = start // num_masks, (stop - 1) // num_masks   # images of this chunk
            pair = torch.arange(start, stop, device=device)
            image, mask = pair // num_masks, pair % num_masks
            masks = smooth_masks(grids[image, mask], shifts[image, mask], rows, cols, row_offsets, col_offsets)
            masked = images[image] * masks[:, None].to(images.dtype)
            if fill_values is not None:
                fill = fill_values[image] if fill_values.ndim == 4 and fill_values.shape[0] == batch else fill_values
                masked = masked + fill * (1 - masks[:, None]).to(images.dtype)
            scores = target_scores(model, masked, targets[image], score=score, batch_size=pair.numel())
            # Σ_i f_c(I ⊙ M_i) M_i per image of the chunk, as one matmul (no scatter: deterministic)
            owner = F.one_hot(image - first, last - first + 1).T.float()   # images × pairs
            saliency[first:last + 1] += (owner * scores[None]) @ masks.flatten(1)
    return (saliency / (num_masks * keep_prob)).reshape(batch, height, width)


def draw_masks(sample_ids: torch.Tensor, num_masks: int, grid_size: int, keep_prob: float,
               cells: tuple[int, int], *, seed: int = SEED) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample mask parameters on the CPU: grids ``B×N×s×s`` (float 0/1) and shifts ``B×N×2``.

    Sample ``i``'s generator (seed, id, :data:`RISE_STREAM`) draws its N grids (cell kept when
    ``U[0,1) < p``), then N row shifts in ``[0, C_h)``, then N column shifts in ``[0, C_w)``.
    """
    grids, shifts = [], []
    for sample_id in sample_ids.tolist():  # one generator per sample (not a hot path)
        generator = sample_generator(seed, sample_id, RISE_STREAM)
        grids.append(torch.rand(num_masks, grid_size, grid_size, generator=generator) < keep_prob)
        dy = torch.randint(0, cells[0], (num_masks,), generator=generator)
        dx = torch.randint(0, cells[1], (num_masks,), generator=generator)
        shifts.append(torch.stack([dy, dx], dim=1))
    return torch.stack(grids).float(), torch.stack(shifts)


def upsample_matrix(cells: int, size: int) -> torch.Tensor:
    """``size×cells`` bilinear interpolation weights of one axis: ``up = W @ grid``.

    Pixel-centre alignment (output pixel o samples input coordinate ``(o + ½)·cells/size − ½``)
    with mirror boundaries (index −1 reads 1, index ``cells`` reads ``cells − 2``): the
    weights of ``skimage.transform.resize(order=1, mode="reflect", anti_aliasing=False)``.
    """
    coord = (torch.arange(size, dtype=torch.float64) + 0.5) * cells / size - 0.5
    low = torch.floor(coord)
    frac = coord - low
    low = low.long()
    weights = torch.zeros(size, cells, dtype=torch.float64)
    rows = torch.arange(size)
    weights.index_put_((rows, _mirror(low, cells)), 1 - frac, accumulate=True)
    weights.index_put_((rows, _mirror(low + 1, cells)), frac, accumulate=True)
    return weights.float()


def smooth_masks(grids: torch.Tensor, shifts: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor,
                 row_offsets: torch.Tensor, col_offsets: torch.Tensor) -> torch.Tensor:
    """``K×H×W`` masks: each ``s×s`` grid upsampled (``rows @ grid @ colsᵀ``) and cropped at its shift."""
    row_weights = rows[shifts[:, 0, None] + row_offsets]   # K×H×s
    col_weights = cols[shifts[:, 1, None] + col_offsets]   # K×W×s
    return row_weights @ grids @ col_weights.transpose(1, 2)


def _mirror(index: torch.Tensor, cells: int) -> torch.Tensor:
    if cells == 1:
        return torch.zeros_like(index)
    period = 2 * (cells - 1)
    index = index.abs() % period
    return torch.where(index >= cells, period - index, index)


def _substrate(substrate: float | torch.Tensor, images: torch.Tensor) -> torch.Tensor | None:
    """``None`` for a zero substrate (plain multiplication, as RISE), else a tensor on the device."""
    if isinstance(substrate, torch.Tensor):
        try:
            torch.broadcast_shapes(substrate.shape, images.shape)
        except RuntimeError as err:
            raise ValueError(f"substrate of shape {tuple(substrate.shape)} does not broadcast to images "
                             f"{tuple(images.shape)}") from err
        return substrate.to(device=images.device, dtype=images.dtype)
    if not isinstance(substrate, (int, float)) or not math.isfinite(substrate):
        raise ValueError(f"substrate must be a finite number or a tensor, got {substrate!r}")
    return None if substrate == 0 else torch.tensor(float(substrate), device=images.device, dtype=images.dtype)


def _check_options(num_masks: int, grid_size: int, keep_prob: float, batch_size: int, score: str) -> None:
    checks = [
        (isinstance(num_masks, int) and num_masks >= 1, f"num_masks must be a positive int, got {num_masks!r}"),
        (isinstance(grid_size, int) and grid_size >= 1, f"grid_size must be a positive int, got {grid_size!r}"),
        (0 < keep_prob <= 1, f"keep_prob must be in (0, 1], got {keep_prob!r}"),
        (isinstance(batch_size, int) and batch_size >= 1, f"batch_size must be a positive int, got {batch_size!r}"),
        (score in SCORES, f"unknown score {score!r}; valid: {', '.join(SCORES)}"),
    ]
    for ok, message in checks:
        if not ok:
            raise ValueError(message)
