"""Faithfulness: does the model's score follow the pixels the map calls important?

**Insertion and deletion** (Petsiuk et al., "RISE: Randomized Input Sampling for Explanation
of Black-box Models", BMVC 2018, §4.1). Pixels are ranked by the map, most salient first,
by a *stable* descending sort: among equal map values the raster order (row by row) decides,
so a constant map deletes or inserts pixels from the top-left corner onwards (RISE's code,
``np.flip(np.argsort(map))``, breaks ties by an unstable sort, reversed; maps without ties
rank identically). At step ``k = 0..n`` the ``c_k`` first-ranked pixels (all channels) are
taken from the *finish* image, the others from the *start* image:

- deletion: start = the image, finish = the substrate (default ``"zero"``: zeros in the
  normalized space, i.e. the dataset mean colour); a faithful map makes the score fall fast
  (lower AUC is better);
- insertion: start = the substrate (default ``"blur"``: RISE's 11×11, σ 5 blur with zero
  padding), finish = the image; a faithful map makes the score rise fast (higher is better).

Step schedule (exactly one of ``step`` and ``steps``): ``step`` pixels per step (RISE's
default: the image width, 224 px at 224², 225 points): ``n = ceil(H·W / step)``,
``c_k = min(k·step, H·W)`` (the last step may be partial, as in RISE); or ``steps = n``:
``c_k = floor(k·H·W / n)`` (exactly ``n`` steps, e.g. CA-Stream's 28). The score ``s_k`` is
the softmax probability of the target class (``score="prob"``, RISE), or its log-probability
or logit, of the class ``score_target`` names: ``"explained"`` (default: ``targets``, the
explained class) or ``"predicted"`` (the argmax on the clean image, as RISE's
``evaluation.py:61-62,86,130`` and the ReScience and FACT SCOUTER reproductions — FACT also for
negative models, whose explained class is another one).
AUC = normalized trapezoid over the ``n + 1`` points, ``(Σ_k s_k − s_0/2 − s_n/2) / n``
(RISE's ``auc``). ``return_details=True`` adds the curves,
``"curve"``: ``B×(n+1)``; :func:`pixel_counts` gives their x-axis ``c_k / (H·W)``.

The ``B·(n+1)`` perturbed images are never materialized at once: every image's rank tensor
(``rank[p]`` = position of pixel ``p`` in the order) turns a flat (image, step) pair index
into its image by one ``where(rank < c_k, finish, start)``, ``batch_size`` pairs per forward
pass. The result does not depend on ``batch_size`` (up to the model's own batch numerics).

**Average Drop, Increase in Confidence** (Chattopadhay et al., Grad-CAM++, WACV 2018, §5.1)
and **Average Gain** (Zhang et al., "Opti-CAM", 2023): with ``Y = p_c(x)`` the softmax
probability of the target on the image and ``O = p_c(x ⊙ S)`` on the image masked by the map
``S`` (min-max normalized to [0, 1]), per sample

- AD = max(0, Y − O) / Y,  IC = 1[O > Y],  AG = max(0, O − Y) / (1 − Y),

times 100 with ``percent=True`` (the papers report %); the papers' numbers are the means over
the data set (:class:`seethrough.metrics.Metric` averages). The masking is in *pixel* space:
the normalized image is denormalized with ``mean``/``std``, multiplied by ``S`` and
normalized again (so a zero in ``S`` is a black pixel, not the mean colour). Edge cases: AD
is 0 when ``Y = 0`` and AG is 0 when ``Y = 1`` (a float32 softmax saturates at 1.0 for
confident models; no drop, resp. gain, is possible there).

Degenerate maps: a map with NaN or Inf gives NaN (and a NaN curve); a constant map is ranked
in raster order by insertion/deletion, and becomes ``S = 0`` (a black image) under the
min-max normalization of AD/IC/AG, as :func:`seethrough.explain` does for constant maps.
AD/IC/AG take ``score_target`` too (the class whose ``Y`` and ``O`` are compared).

Means: every value here is per sample and :class:`~seethrough.metrics.Metric` averages over
samples. CA-Stream's ``engine/evaluation.py`` (``single_recognition``) averages each batch
first and then the batch means (an ``AverageMeter`` updated once per batch), which weights a
smaller last batch more; the two agree when every batch is full. Documented, not an option.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import torch
from torch import nn

from ..core.calls import eval_mode
from ..core.inputs import check_images, check_maps, check_targets
from ..core.minmax import minmax
from ..core.scoring import DEFAULT_BATCH_SIZE, SCORE_TARGETS, SCORES, scored_classes, target_scores
from .substrates import (
    ABSENT_SUBSTRATE,
    RISE_BLUR_KERNEL_SIZE,
    RISE_BLUR_SIGMA,
    SUBSTRATES,
    SubstrateFn,
    blur_kernel2d,
    make_substrate,
)

try:  # the normalization of timm's ImageNet models, the default of the pixel-space masking
    from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
except ImportError:  # pragma: no cover - timm is a dependency
    IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)

#: RISE's substrates: deletion to zeros (normalized space), insertion from a blur.
DELETION_SUBSTRATE = "zero"
INSERTION_SUBSTRATE = "blur"

#: How AD/IC/AG turn a map into the mask ``S`` in [0, 1].
MAP_NORMALIZATIONS: tuple[str, ...] = ("minmax", "none")

#: Papers report AD, IC and AG in percent.
PERCENT = 100.0


# --------------------------------------------------------------------------- insertion / deletion
def pixel_counts(num_pixels: int, *, width: int, step: int | None = None, steps: int | None = None,
                 device: torch.device | str | None = None) -> torch.Tensor:
    """Pixels perturbed at each of the ``n + 1`` points of the curve (long tensor, ``c_0 = 0``,
    ``c_n = num_pixels``). See the module docstring for the two schedules.

    Args:
        num_pixels: ``H·W``.
        width: the image width ``W``, the default ``step`` (RISE).
        step: pixels per step; ``steps``: number of steps. At most one of them.

    Raises:
        ValueError: both given, or a value < 1.
    """
    if step is not None and steps is not None:
        raise ValueError(f"give either step (pixels per step) or steps (number of steps), not both "
                         f"(got step={step}, steps={steps})")
    if steps is not None:
        if int(steps) != steps or steps < 1:
            raise ValueError(f"steps must be a positive integer, got {steps!r}")
        k = torch.arange(int(steps) + 1, device=device)
        return torch.div(k * num_pixels, int(steps), rounding_mode="floor")
    step = width if step is None else step
    if int(step) != step or step < 1:
        raise ValueError(f"step must be a positive integer number of pixels, got {step!r}")
    n = math.ceil(num_pixels / int(step))
    return (torch.arange(n + 1, device=device) * int(step)).clamp(max=num_pixels)


def pixel_ranks(maps: torch.Tensor) -> torch.Tensor:
    """``B×(H·W)`` long ranks: 0 for the most salient pixel of each map, ties in raster order
    (stable descending sort)."""
    flat = maps.flatten(1)
    order = torch.sort(flat, dim=1, descending=True, stable=True).indices
    positions = torch.arange(flat.shape[1], device=flat.device).expand_as(order)
    return torch.empty_like(order).scatter_(1, order, positions)


def perturbation_curves(model: nn.Module, start: torch.Tensor, finish: torch.Tensor, ranks: torch.Tensor,
                        counts: torch.Tensor, targets: torch.Tensor, *, score: str = "prob",
                        batch_size: int = DEFAULT_BATCH_SIZE) -> torch.Tensor:
    """Scores ``B×(n+1)`` of the images whose pixels of rank ``< counts[k]`` come from
    ``finish`` and the others from ``start`` (``B×C×H×W`` each), ``batch_size`` images per
    forward pass over the flat (image, step) pairs. The model must already be in eval mode."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    batch, channels, height, width = start.shape
    points = counts.numel()
    counts = counts.to(start.device)
    total = batch * points
    out = torch.empty(total, device=start.device)
    for first in range(0, total, batch_size):
        pair = torch.arange(first, min(first + batch_size, total), device=start.device)
        image, k = torch.div(pair, points, rounding_mode="floor"), pair.remainder(points)
        keep = (ranks[image] < counts[k][:, None]).view(-1, 1, height, width)
        perturbed = torch.where(keep, finish[image], start[image])
        out[first:first + pair.numel()] = target_scores(model, perturbed, targets[image], score=score,
                                                        batch_size=pair.numel()).to(out.device)
    return out.view(batch, points)


def auc(curves: torch.Tensor) -> torch.Tensor:
    """RISE's normalized trapezoid of ``B×(n+1)`` curves: ``(Σ s − s_0/2 − s_n/2) / n``."""
    n = curves.shape[-1] - 1
    if n < 1:
        raise ValueError(f"a curve needs at least 2 points, got {curves.shape[-1]}")
    return (curves.sum(-1) - curves[..., 0] / 2 - curves[..., -1] / 2) / n


def _causal_metric(mode: str, model, images, maps, targets, *, step, steps, substrate, kernel_size, sigma,
                   blur_kernel, score, batch_size, return_details, score_target="explained", parts=None):
    if model is None:
        raise ValueError(f"{mode} needs the model whose explanations are evaluated, got model=None")
    # protocol errors surface even when every map of the batch is non-finite
    if score not in SCORES:
        raise ValueError(f"unknown score {score!r}; valid: {', '.join(SCORES)}")
    if score_target not in SCORE_TARGETS:
        raise ValueError(f"unknown score_target {score_target!r}; valid: {', '.join(SCORE_TARGETS)}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if not callable(substrate) and substrate not in SUBSTRATES + (ABSENT_SUBSTRATE,):
        raise ValueError(f"unknown substrate {substrate!r}; valid: {', '.join(SUBSTRATES)}, {ABSENT_SUBSTRATE} "
                         "or a function images -> substrate")
    if substrate == ABSENT_SUBSTRATE and parts is None:
        raise ValueError(f"substrate {ABSENT_SUBSTRATE!r} is the same scene without its evidence: it needs parts= "
                         "(the synthetic data's part interventions; seethrough evaluate passes them)")
    if substrate == "blur":
        blur_kernel2d(kernel_size, sigma, kind=blur_kernel)
    images = check_images(images)
    maps, finite = check_maps(maps, images)
    batch, _, height, width = images.shape
    targets = check_targets(targets, batch, device=images.device)
    counts = pixel_counts(height * width, width=width, step=step, steps=steps, device=images.device)
    curves = torch.full((batch, counts.numel()), math.nan, device=images.device)
    kept = finite.to(images.device).nonzero().flatten()
    if kept.numel():
        x = images[kept]
        if substrate == ABSENT_SUBSTRATE:   # the ideal "absent" image: the scene re-rendered without its evidence
            base = parts.remove(parts.role_mask("evidence")).to(device=x.device, dtype=x.dtype)[kept]
        else:
            base = make_substrate(x, substrate, kernel_size=kernel_size, sigma=sigma, blur_kernel=blur_kernel)
        start, finish = (x, base) if mode == "deletion" else (base, x)
        ranks = pixel_ranks(maps.to(images.device)[kept])
        with eval_mode(model):
            scored = scored_classes(model, x, targets[kept], score_target, batch_size=batch_size)
            curves[kept] = perturbation_curves(model, start, finish, ranks, counts, scored, score=score,
                                               batch_size=batch_size)
    values = auc(curves)
    return (values, {"curve": curves}) if return_details else values


def insertion(
    model: nn.Module,
    images: torch.Tensor,
    maps: torch.Tensor,
    targets: torch.Tensor | Sequence[int] | int,
    *,
    step: int | None = None,
    steps: int | None = None,
    substrate: str | SubstrateFn = INSERTION_SUBSTRATE,
    kernel_size: int = RISE_BLUR_KERNEL_SIZE,
    sigma: float = RISE_BLUR_SIGMA,
    blur_kernel: str = "rise",
    score: str = "prob",
    score_target: str = "explained",
    batch_size: int = DEFAULT_BATCH_SIZE,
    return_details: bool = False,
    parts: Any = None,
) -> torch.Tensor | tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Insertion AUC (RISE): start from ``substrate``, paste the most salient pixels back.

    Higher is better. See the module docstring for the protocol.

    Args:
        model: the classifier (logits or ``ModelOutput``); run in eval mode, flags restored.
        images: ``B×C×H×W`` normalized inputs; ``maps``: ``B×H×W``; ``targets``: ``B`` classes.
        step: pixels inserted per step (default ``None`` = the image width ``W``, RISE).
        steps: number of steps instead of ``step`` (exactly one of the two may be given).
        substrate: ``"blur"`` (RISE), ``"zero"``, ``"mean"``, ``"absent"`` (the same scene re-rendered
            without its evidence parts — the ideal "absent" image, on data with part interventions:
            ``parts=``) or a function ``images → images`` (see :mod:`seethrough.metrics.substrates`).
        parts: the batch's :class:`~seethrough.data.interventions.PartInterventions` (``"absent"`` only).
        kernel_size, sigma, blur_kernel: the blur substrate (RISE: 11, 5.0, ``"rise"``).
        score: ``"prob"`` (softmax probability of the target, RISE), ``"log_prob"`` or ``"logit"``.
        score_target: ``"explained"`` (score ``targets``) or ``"predicted"`` (score the argmax
            on the clean image: RISE, ReScience, FACT).
        batch_size: perturbed images per forward pass.
        return_details: also return ``{"curve": B×(n+1)}``.

    Returns:
        ``B`` AUCs (NaN for a non-finite map), and the details when asked.
    """
    return _causal_metric("insertion", model, images, maps, targets, step=step, steps=steps, substrate=substrate,
                          parts=parts,
                          kernel_size=kernel_size, sigma=sigma, blur_kernel=blur_kernel, score=score,
                          batch_size=batch_size, return_details=return_details, score_target=score_target)


def deletion(
    model: nn.Module,
    images: torch.Tensor,
    maps: torch.Tensor,
    targets: torch.Tensor | Sequence[int] | int,
    *,
    step: int | None = None,
    steps: int | None = None,
    substrate: str | SubstrateFn = DELETION_SUBSTRATE,
    kernel_size: int = RISE_BLUR_KERNEL_SIZE,
    sigma: float = RISE_BLUR_SIGMA,
    blur_kernel: str = "rise",
    score: str = "prob",
    score_target: str = "explained",
    batch_size: int = DEFAULT_BATCH_SIZE,
    return_details: bool = False,
    parts: Any = None,
) -> torch.Tensor | tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Deletion AUC (RISE): replace the most salient pixels by ``substrate`` step by step.

    Lower is better. Same arguments as :func:`insertion`, except the default substrate
    ``"zero"`` (zeros in the normalized space, RISE); ``kernel_size``, ``sigma`` and
    ``blur_kernel`` matter only with ``substrate="blur"``.
    """
    return _causal_metric("deletion", model, images, maps, targets, step=step, steps=steps, substrate=substrate,
                          parts=parts,
                          kernel_size=kernel_size, sigma=sigma, blur_kernel=blur_kernel, score=score,
                          batch_size=batch_size, return_details=return_details, score_target=score_target)


# --------------------------------------------------------------------------- AD / IC / AG
def saliency_mask(maps: torch.Tensor, map_normalization: str = "minmax") -> torch.Tensor:
    """The mask ``S`` in [0, 1] of ``B×H×W`` finite maps: per-map min-max (a constant map → 0)
    or ``"none"`` (maps used as given; they must already lie in [0, 1])."""
    if map_normalization == "minmax":
        return minmax(maps, (1, 2))
    if map_normalization == "none":
        if bool(((maps < 0) | (maps > 1)).any()):
            raise ValueError(f"map_normalization='none' needs maps in [0, 1], got values in "
                             f"[{float(maps.min()):.4g}, {float(maps.max()):.4g}]; use map_normalization='minmax'")
        return maps
    raise ValueError(f"unknown map_normalization {map_normalization!r}; valid: {', '.join(MAP_NORMALIZATIONS)}")


def masked_confidences(model: nn.Module, images: torch.Tensor, maps: torch.Tensor, targets, *,
                       mean: Sequence[float] = IMAGENET_DEFAULT_MEAN, std: Sequence[float] = IMAGENET_DEFAULT_STD,
                       map_normalization: str = "minmax", batch_size: int = DEFAULT_BATCH_SIZE,
                       metric: str = "this metric",
                       score_target: str = "explained") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(Y, O, finite)``: softmax probability of the target on the images and on the images
    masked in pixel space, ``denormalize → × S → normalize``, and the finite-map flags."""
    if model is None:
        raise ValueError(f"{metric} needs the model whose explanations are evaluated, got model=None")
    images = check_images(images)
    maps, finite = check_maps(maps, images)
    batch, channels = images.shape[:2]
    targets = check_targets(targets, batch, device=images.device)
    stats = []
    for name, value in (("mean", mean), ("std", std)):
        t = torch.as_tensor(value, dtype=images.dtype, device=images.device).reshape(-1)
        if t.numel() not in (1, channels):
            raise ValueError(f"{name} has {t.numel()} values but the images have {channels} channels; pass "
                             f"{name}= of the normalization your images went through")
        stats.append(t.expand(channels).view(1, channels, 1, 1))
    mean_t, std_t = stats
    if bool((std_t == 0).any()):
        raise ValueError(f"std must be non-zero, got {list(std)}")
    mask = saliency_mask(maps.to(images.device), map_normalization)[:, None].to(images.dtype)
    masked = ((images * std_t + mean_t) * mask - mean_t) / std_t
    with eval_mode(model):
        targets = scored_classes(model, images, targets, score_target, batch_size=batch_size)
        scores = target_scores(model, torch.cat([images, masked]), torch.cat([targets, targets]), score="prob",
                               batch_size=batch_size)
    return scores[:batch], scores[batch:], finite.to(scores.device)


def _with_details(values, full, masked, finite, percent, return_details):
    values = torch.where(finite, values * (PERCENT if percent else 1.0), torch.full_like(values, math.nan))
    if not return_details:
        return values
    return values, {"score": full, "masked_score": torch.where(finite, masked, torch.full_like(masked, math.nan))}


def average_drop(
    model: nn.Module,
    images: torch.Tensor,
    maps: torch.Tensor,
    targets: torch.Tensor | Sequence[int] | int,
    *,
    mean: Sequence[float] = IMAGENET_DEFAULT_MEAN,
    std: Sequence[float] = IMAGENET_DEFAULT_STD,
    map_normalization: str = "minmax",
    score_target: str = "explained",
    percent: bool = True,
    batch_size: int = DEFAULT_BATCH_SIZE,
    return_details: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Average Drop (Grad-CAM++, Chattopadhay et al. 2018): per sample ``max(0, Y − O) / Y``
    (× 100 with ``percent``); lower is better. 0 when ``Y = 0``.

    Args:
        mean, std: the normalization of ``images`` (default timm's ImageNet mean/std), to mask
            in pixel space; one value per channel (or one for all).
        map_normalization: ``"minmax"`` (per map, constant → 0) or ``"none"`` (maps in [0, 1]
            used as given: CA-Stream's ``engine/evaluation.py`` ``single_recognition`` uses the
            bilinear-upsampled map of a map min-maxed at the feature grid as is).
        score_target: ``"explained"`` (``targets``) or ``"predicted"`` (the clean argmax).
        percent: report in % (the papers do).
        batch_size: images per forward pass.
        return_details: also return ``{"score": Y, "masked_score": O}`` (``B`` each).
    """
    full, masked, finite = masked_confidences(model, images, maps, targets, mean=mean, std=std,
                                              map_normalization=map_normalization, batch_size=batch_size,
                                              metric="average_drop", score_target=score_target)
    drop = (full - masked).clamp(min=0)
    values = torch.where(full > 0, drop / torch.where(full > 0, full, torch.ones_like(full)), torch.zeros_like(full))
    return _with_details(values, full, masked, finite, percent, return_details)


def increase_in_confidence(
    model: nn.Module,
    images: torch.Tensor,
    maps: torch.Tensor,
    targets: torch.Tensor | Sequence[int] | int,
    *,
    mean: Sequence[float] = IMAGENET_DEFAULT_MEAN,
    std: Sequence[float] = IMAGENET_DEFAULT_STD,
    map_normalization: str = "minmax",
    score_target: str = "explained",
    percent: bool = True,
    batch_size: int = DEFAULT_BATCH_SIZE,
    return_details: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Increase in Confidence (Grad-CAM++): per sample ``1[O > Y]`` (strict; × 100 with
    ``percent``, so the mean is the % of images whose confidence rose); higher is better.
    Arguments as :func:`average_drop`."""
    full, masked, finite = masked_confidences(model, images, maps, targets, mean=mean, std=std,
                                              map_normalization=map_normalization, batch_size=batch_size,
                                              metric="increase_in_confidence", score_target=score_target)
    values = (masked > full).to(full.dtype)
    return _with_details(values, full, masked, finite, percent, return_details)


def average_gain(
    model: nn.Module,
    images: torch.Tensor,
    maps: torch.Tensor,
    targets: torch.Tensor | Sequence[int] | int,
    *,
    mean: Sequence[float] = IMAGENET_DEFAULT_MEAN,
    std: Sequence[float] = IMAGENET_DEFAULT_STD,
    map_normalization: str = "minmax",
    score_target: str = "explained",
    percent: bool = True,
    batch_size: int = DEFAULT_BATCH_SIZE,
    return_details: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Average Gain (Opti-CAM, Zhang et al. 2023): per sample ``max(0, O − Y) / (1 − Y)``
    (× 100 with ``percent``); higher is better. 0 when ``Y = 1``. Arguments as
    :func:`average_drop`."""
    full, masked, finite = masked_confidences(model, images, maps, targets, mean=mean, std=std,
                                              map_normalization=map_normalization, batch_size=batch_size,
                                              metric="average_gain", score_target=score_target)
    room = 1 - full
    gain = (masked - full).clamp(min=0)
    values = torch.where(room > 0, gain / torch.where(room > 0, room, torch.ones_like(room)), torch.zeros_like(full))
    return _with_details(values, full, masked, finite, percent, return_details)
