"""Localization metrics: does the explanation point at the evidence?

Every function follows the metric contract of :mod:`seethrough.metrics`: ``(model, images,
maps, targets, *, <ground truth>, <protocol>) -> B`` float values. None of them runs the model
(``model`` may be ``None``); ``images`` only fixes the expected map size (``None`` skips that
check). Ground truth is ``masks`` (``B×H×W`` bool) or ``boxes`` (one ``N×4`` ``xyxy`` pixel
tensor per image, union rule — see :mod:`seethrough.core.inputs`).

Shared conventions (each metric's docstring gives its own degenerate values):

- a map with NaN or Inf scores NaN;
- an image whose ground-truth region is empty scores NaN (nothing to localize; counted in
  ``nan_count`` by the stateful form, never averaged in);
- an all-zero map (what min-max normalization makes of a constant map) is scored like a
  constant map wherever the metric can tell them apart, so normalizing before or after
  never changes a value.

=================== ==================================================================
metric              definition
=================== ==================================================================
area_size           mean of the [0, 1] map (SCOUTER)
precision           Σ map in region / Σ map (SCOUTER precision, Score-CAM energy game)
pointing_game       1 if the map's maximum is within ``tolerance`` px of the region
iou_at_percentile   IoU of the maps' percentile regions (LVW), with its chance level
relevance_mass      Σ positive relevance in region / Σ positive relevance (CLEVR-XAI)
relevance_rank      share of the top-|region| pixels inside the region (CLEVR-XAI)
=================== ==================================================================
"""
from __future__ import annotations

import math
import numbers
from typing import Sequence

import torch
import torch.nn.functional as F

from ..core.inputs import check_maps, check_targets, ground_truth_mask
from ..core.minmax import minmax

#: Pointing-game tolerance in pixels (Zhang et al. 2018; TorchRay's default).
POINTING_TOLERANCE = 15

#: How :func:`pointing_game` resolves several pixels sharing the maximum: ``"first"`` — the
#: first in row-major order (``torch.argmax``: one point, as the original and TorchRay take
#: one maximum location); ``"any"`` — a hit if any maximum is a hit (Quantus).
POINTING_TIES: tuple[str, ...] = ("first", "any")

#: Percentile at which :func:`iou_at_percentile` binarizes both maps (LVW ``-thr 50``).
IOU_PERCENTILE = 50.0

#: Region kept by :func:`iou_at_percentile`: ``"top"`` — values above the percentile (the
#: salient part); ``"bottom"`` — values at or below it (the released LVW evaluation code).
IOU_REGIONS: tuple[str, ...] = ("top", "bottom")

#: Which relevance :func:`relevance_mass` counts: ``"positive"`` — negatives set to zero
#: (Arras et al. 2022: R_within / R_total); ``"absolute"`` — |relevance| (the
#: ``calc_overlap`` of the CLEVR-XAI evaluation code); ``"raw"`` — signed values (Quantus).
RELEVANCE_MODES: tuple[str, ...] = ("positive", "absolute", "raw")

#: How :func:`relevance_rank` breaks ties in the ranking: ``"stable"`` — a stable descending
#: sort (equal values keep row-major order, as insertion/deletion rank pixels); ``"expected"``
#: — the expected value over uniformly random tie-breaking (independent of pixel order).
RANK_TIES: tuple[str, ...] = ("stable", "expected")


# ---------------------------------------------------------------------------------------------
# area size
# ---------------------------------------------------------------------------------------------

#: Where area_size is computed: on the maps at the image size, or at the model's map grid.
AREA_RESOLUTIONS: tuple[str, ...] = ("image", "map")
#: How area_size quantizes the [0, 1] map first: not at all, or SCOUTER's 8-bit PNG.
AREA_QUANTIZATIONS: tuple[str, ...] = ("none", "uint8")
#: Levels of an 8-bit grey image (SCOUTER saves the map as ``uint8(map · 255)``).
UINT8_LEVELS = 255.0


def area_size(model, images: torch.Tensor | None, maps: torch.Tensor, targets=None, *,
              normalize: bool = True, resolution: str = "image", quantize: str = "none",
              low_res_maps: torch.Tensor | None = None) -> torch.Tensor:
    """SCOUTER's area size: the mean of the map stretched to ``[0, 1]`` (Li et al., ICCV 2021:
    Σ map / (H·W) of the normalized attention). Lower is a more compact explanation.

    The official ``test.py:41-43`` (``cal_area_size``) and ReScience's ``area_size.py`` read the
    slot map that ``slot_attention.py`` saved as a PNG: the ``h×w`` attention grid (9×9 for a
    ResNet at 260²), min-max normalized over *all* classes of the image, times 255, cast to
    ``uint8`` (truncation), and divide its sum by ``h·w·255``. That is ``resolution="map"``,
    ``quantize="uint8"`` with jointly normalized maps (``normalize: joint`` in the protocol,
    ``normalize=False`` here); the default measures the upsampled float map instead (the two
    differ by about 1e-3).

    Args:
        normalize: min-max normalize each map to ``[0, 1]`` first (default). A constant map
            becomes zeros, so its area size is 0 — the convention of
            :func:`seethrough.explanations.maps.normalize` (a map that singles out nothing
            covers no area). With ``False`` the maps must already lie in ``[0, 1]`` (e.g. raw
            sigmoid maps, as FACT scores them).
        resolution: ``"image"`` (``maps``, at the image size) or ``"map"`` (``low_res_maps``,
            the same maps before upsampling; ``seethrough evaluate`` passes them).
        quantize: ``"none"`` or ``"uint8"`` (``floor(255 · m) / 255``, SCOUTER's PNG).
        low_res_maps: ``B×h×w`` maps at the model's grid, needed by ``resolution="map"``.

    Returns:
        ``B`` values in ``[0, 1]``; NaN for a non-finite map.

    Raises:
        ValueError: ``normalize=False`` and a map leaves ``[0, 1]``; an unknown ``resolution`` or
            ``quantize``; ``resolution="map"`` without ``low_res_maps``.
    """
    if resolution not in AREA_RESOLUTIONS:
        raise ValueError(f"area_size: unknown resolution {resolution!r}; valid: {', '.join(AREA_RESOLUTIONS)}")
    if quantize not in AREA_QUANTIZATIONS:
        raise ValueError(f"area_size: unknown quantize {quantize!r}; valid: {', '.join(AREA_QUANTIZATIONS)}")
    if resolution == "map":
        if low_res_maps is None:
            raise ValueError("area_size with resolution='map' needs the maps at the model's grid (low_res_maps=, "
                             "what explain(..., upsample='none') returns; seethrough evaluate passes them)")
        maps, finite = check_maps(low_res_maps, None)
    else:
        maps, finite = check_maps(maps, images)
    flat = maps.flatten(1)
    if normalize:
        flat = minmax(flat, -1)
    elif finite.any():
        low, high = float(flat[finite].min()), float(flat[finite].max())
        if low < 0 or high > 1:
            raise ValueError(f"area_size with normalize=False needs maps in [0, 1], got values in "
                             f"[{low:.4g}, {high:.4g}]; pass normalize=True or normalize the maps first")
    if quantize == "uint8":
        flat = torch.floor(flat * UINT8_LEVELS) / UINT8_LEVELS
    return _nan_where(flat.mean(dim=1), ~finite)


# ---------------------------------------------------------------------------------------------
# precision / energy pointing game and relevance mass
# ---------------------------------------------------------------------------------------------

def precision(model, images: torch.Tensor | None, maps: torch.Tensor, targets=None, *,
              masks: torch.Tensor | None = None, boxes: Sequence[torch.Tensor] | None = None,
              clip_negative: bool = True) -> torch.Tensor:
    """Share of the map's energy inside the ground truth: ``Σ_{region} m / Σ m``.

    SCOUTER's precision (Li et al., ICCV 2021) and Score-CAM's energy-based pointing
    game (Wang et al., CVPR-W 2020) are this ratio; both use min-max normalized maps
    (``seethrough.explain(..., normalize="minmax")``, the default). The ratio is invariant to
    scaling the map but not to shifting it, so the normalization is part of the protocol.

    Args:
        masks, boxes: the ground-truth region (union of boxes).
        clip_negative: set negative values to zero first (default). With ``False`` a negative
            value is an error — energy must be non-negative.

    Degenerate maps: an all-zero map (also a constant map after min-max) spreads no energy
    anywhere and is scored as the uniform map: ``|region| / (H·W)``, the chance level.
    NaN for an empty region or a non-finite map.

    Raises:
        ValueError: negative values with ``clip_negative=False``; missing or mis-shaped
            ground truth.
    """
    maps, finite, region = _maps_and_region(images, maps, masks, boxes, "precision")
    if not clip_negative and bool((maps < 0).any()):
        raise ValueError(f"precision needs non-negative maps, got a minimum of {float(maps.min()):.4g}; "
                         "pass clip_negative=True to set negative values to zero")
    values = _mass_inside(maps.clamp(min=0).flatten(1), region.flatten(1))
    return _nan_where(values, ~finite | ~region.flatten(1).any(dim=1))


def relevance_mass(model, images: torch.Tensor | None, maps: torch.Tensor, targets=None, *,
                   masks: torch.Tensor | None = None, boxes: Sequence[torch.Tensor] | None = None,
                   relevance: str = "positive") -> torch.Tensor:
    """Relevance mass accuracy (Arras, Osman & Samek, CLEVR-XAI, Information Fusion 2022):
    ``R_within / R_total``, the positive relevance inside the ground truth over all
    positive relevance.

    Args:
        masks, boxes: the ground-truth region (union of boxes).
        relevance: ``"positive"`` (default, the paper: negative relevance is set to zero),
            ``"absolute"`` (|relevance|, as the CLEVR-XAI evaluation code's ``calc_overlap``)
            or ``"raw"`` (signed values as given, what Quantus's ``RelevanceMassAccuracy``
            computes although its docstring says positive; can leave ``[0, 1]``).

    For non-negative maps every mode equals :func:`precision` with the default clipping.
    Degenerate maps: no relevance at all (all zero after the mode's transform) scores as a
    uniform map, ``|region| / (H·W)``; signed relevance summing to exactly zero (``"raw"``)
    is NaN. NaN for an empty region or a non-finite map.
    """
    if relevance not in RELEVANCE_MODES:
        raise ValueError(f"unknown relevance mode {relevance!r}; valid: {', '.join(RELEVANCE_MODES)}")
    maps, finite, region = _maps_and_region(images, maps, masks, boxes, "relevance_mass")
    flat = maps.flatten(1)
    if relevance == "positive":
        flat = flat.clamp(min=0)
    elif relevance == "absolute":
        flat = flat.abs()
    values = _mass_inside(flat, region.flatten(1))
    return _nan_where(values, ~finite | ~region.flatten(1).any(dim=1))


def _mass_inside(flat: torch.Tensor, region: torch.Tensor) -> torch.Tensor:
    """``Σ_{region} flat / Σ flat`` per row; an all-zero row gives the region's area share,
    a row summing to zero otherwise gives NaN."""
    inside = (flat * region).sum(dim=1)
    total = flat.sum(dim=1)
    share = region.float().mean(dim=1)
    ratio = inside / torch.where(total != 0, total, torch.ones_like(total))
    all_zero = (flat == 0).all(dim=1)
    ratio = torch.where(total != 0, ratio, torch.full_like(ratio, math.nan))
    return torch.where(all_zero, share, ratio)


# ---------------------------------------------------------------------------------------------
# pointing game
# ---------------------------------------------------------------------------------------------

def pointing_game(model, images: torch.Tensor | None, maps: torch.Tensor, targets=None, *,
                  masks: torch.Tensor | None = None, boxes: Sequence[torch.Tensor] | None = None,
                  tolerance: float = POINTING_TOLERANCE, ties: str = "first",
                  return_details: bool = False):
    """Pointing game (Zhang et al., "Top-down neural attention by excitation backprop",
    IJCV 2018): a hit (1.0) when the map's maximum lies within ``tolerance`` pixels of
    the ground-truth region, else a miss (0.0).

    The paper reports accuracy = hits / (hits + misses) averaged **per category**: keep the
    targets (``return_details=True`` gives them) and use :func:`per_class_mean`.

    Args:
        masks, boxes: the ground-truth region (union of boxes; the paper uses all instances
            of the cued category).
        tolerance: a hit when some region pixel is at Euclidean distance ``<= tolerance`` from
            the maximum, in pixels of the maps (15 in the paper, at the original image size —
            scale it when the images were resized). ``0`` is the plain game (Quantus).
            TorchRay counts distance ``< tolerance``, so a region pixel at exactly 15 px
            (e.g. offset (9, 12)) is a hit here and a miss there.
        ties: several pixels sharing the maximum — ``"first"`` (default: one point, the
            first maximum in row-major order, like ``torch.argmax``; the original takes one
            maximum location) or ``"any"`` (a hit if any maximum is, as Quantus).
        return_details: also return ``{"point": B×2 (row, col) of the first maximum,
            "target": B}`` (targets, for :func:`per_class_mean` from the stateful form).

    Degenerate maps: a constant (or all-zero) map points nowhere and is a miss (0.0) under
    both tie rules — Quantus counts a constant map as a hit whenever the region is non-empty.
    NaN for an empty region (Quantus writes NaN into a bool array, which reads back as a hit)
    or a non-finite map.
    """
    if ties not in POINTING_TIES:
        raise ValueError(f"unknown ties rule {ties!r}; valid: {', '.join(POINTING_TIES)}")
    if not (isinstance(tolerance, numbers.Real) and math.isfinite(tolerance) and tolerance >= 0):
        raise ValueError(f"tolerance must be a finite number of pixels >= 0, got {tolerance!r}")
    maps, finite, region = _maps_and_region(images, maps, masks, boxes, "pointing_game")
    batch, height, width = maps.shape
    flat = maps.flatten(1)
    first = flat.argmax(dim=1)
    point = torch.stack([first // width, first % width], dim=1)
    if ties == "first":
        rows = torch.arange(height, device=maps.device)
        cols = torch.arange(width, device=maps.device)
        dist2 = ((rows[None, :, None] - point[:, 0, None, None]) ** 2
                 + (cols[None, None, :] - point[:, 1, None, None]) ** 2)
        hit = (region & (dist2 <= tolerance ** 2)).flatten(1).any(dim=1)
    else:
        maxima = flat == flat.amax(dim=1, keepdim=True)
        hit = (maxima & _dilate(region, tolerance).flatten(1)).any(dim=1)
    constant = flat.amin(dim=1) == flat.amax(dim=1)
    values = (hit & ~constant).float()
    values = _nan_where(values, ~finite | ~region.flatten(1).any(dim=1))
    if not return_details:
        return values
    details = {"point": point}
    if targets is not None:
        details["target"] = check_targets(targets, batch, device=maps.device)
    return values, details


def _dilate(region: torch.Tensor, radius: float) -> torch.Tensor:
    """``B×H×W`` region grown by a Euclidean disk of ``radius`` pixels (distance <= radius).

    The disk is a union of horizontal segments, one per row offset ``dy`` with half-width
    ``floor(sqrt(radius² − dy²))``: a 1-D max-pool per distinct half-width and a shift per
    offset (2·radius + 1 cheap passes instead of a (2·radius + 1)² convolution).
    """
    height, width = region.shape[-2:]
    reach = int(math.floor(min(radius, height + width)))
    if reach == 0:
        return region
    source = region[:, None].float()
    pooled: dict[int, torch.Tensor] = {}
    grown = torch.zeros_like(region)
    rows_reach = min(reach, height - 1)
    for dy in range(-rows_reach, rows_reach + 1):
        half = int(math.floor(math.sqrt(max(radius ** 2 - dy ** 2, 0.0))))
        half = min(half, width)
        if half not in pooled:
            pooled[half] = F.max_pool2d(source, kernel_size=(1, 2 * half + 1), stride=1,
                                        padding=(0, half))[:, 0] > 0.5 if half else region
        rows = pooled[half]
        # grown[y] |= rows[y + dy]: pixel y is within reach of a region pixel in row y + dy
        if dy >= 0:
            grown[:, :height - dy] |= rows[:, dy:]
        else:
            grown[:, -dy:] |= rows[:, :height + dy]
    return grown


def per_class_mean(values: torch.Tensor, targets: torch.Tensor | Sequence[int],
                   num_classes: int | None = None) -> tuple[float, torch.Tensor]:
    """Mean of per-class means — how the pointing game (Zhang et al. 2018) and TorchRay report
    accuracy, so frequent classes do not dominate.

    NaN values (empty ground truth, non-finite maps) are left out. Classes without a finite
    value get NaN in the per-class tensor and are left out of the mean (TorchRay counts them
    as 0 % instead).

    Returns:
        ``(mean over classes with values, per-class means [num_classes])``; the mean is NaN
        when no value is finite.
    """
    values = torch.as_tensor(values).detach().double().reshape(-1).cpu()
    targets = check_targets(targets, values.numel(), num_classes=num_classes).cpu()
    keep = torch.isfinite(values)
    size = num_classes if num_classes is not None else (int(targets.max()) + 1 if targets.numel() else 0)
    counts = torch.bincount(targets[keep], minlength=size).double()
    sums = torch.bincount(targets[keep], weights=values[keep], minlength=size).double()  # int64 when empty
    per_class = torch.where(counts > 0, sums / counts.clamp(min=1), torch.full_like(sums, math.nan))
    present = counts > 0
    mean = float(per_class[present].mean()) if bool(present.any()) else math.nan
    return mean, per_class


# ---------------------------------------------------------------------------------------------
# IoU at a percentile threshold
# ---------------------------------------------------------------------------------------------

def iou_at_percentile(model, images: torch.Tensor | None, maps: torch.Tensor, targets=None, *,
                      reference: torch.Tensor | None = None, masks: torch.Tensor | None = None,
                      boxes: Sequence[torch.Tensor] | None = None, percentile: float = IOU_PERCENTILE,
                      region: str = "top", return_details: bool = False):
    """IoU of the explanation's percentile region with a reference region (LVW: Xiao, Ding
    & Liu 2022, evaluation ``-thr 50``: model maps against the base model's Grad-CAM maps).

    Each map is binarized at **its own** ``percentile``-th percentile ``q`` (numpy's default
    linear interpolation, as the LVW code): ``region="top"`` keeps ``map > q`` (the salient
    part, default); ``"bottom"`` keeps ``map <= q`` — the released LVW code's convention,
    which at percentile 50 agrees in chance level (1/3) but inflates scores elsewhere (at 90
    two random maps score ≈ 0.82 bottom vs ≈ 0.05 top, see :func:`iou_chance_level`).
    Thresholds depend only on the ranking, so any monotone normalization of the maps gives
    the same value. Ties at ``q`` (e.g. many exact zeros) make a region smaller or larger
    than ``100 − percentile`` %; the ``chance`` detail accounts for the actual sizes.

    Args:
        reference: ``B×H×W`` reference maps, binarized like the explanation — or give
            ``masks``/``boxes`` instead, used as the reference region as they are.
        percentile: in ``(0, 100)``.
        region: ``"top"`` or ``"bottom"``.
        return_details: also return ``{"chance": B, "explanation_fraction": B,
            "reference_fraction": B}``: the expected IoU of two independent uniformly random
            regions of this sample's two region sizes (exact, hypergeometric), and the sizes
            as fractions of the image.

    The IoU is ``|A ∩ R| / |A ∪ R|`` without LVW's ``1e-6`` smoothing. Degenerate maps: a
    constant explanation has an empty top region (IoU 0 against a non-empty reference); an
    empty reference region (constant reference with ``"top"``, empty mask) is NaN, as is a
    non-finite map or reference.

    Raises:
        ValueError: both or neither of ``reference`` and ground truth; bad percentile/region.
    """
    if region not in IOU_REGIONS:
        raise ValueError(f"unknown region {region!r}; valid: {', '.join(IOU_REGIONS)}")
    _check_percentile(percentile)
    maps, finite = check_maps(maps, images)
    batch = maps.shape[0]
    flat = maps.flatten(1)
    if reference is not None:
        if masks is not None or boxes is not None:
            raise ValueError("iou_at_percentile takes one reference: pass reference= (maps, binarized at the "
                             "percentile) or masks=/boxes= (used as the region), not both")
        ref_maps, ref_finite = check_maps(reference, images if images is not None else maps[:, None])
        if ref_maps.shape != maps.shape:
            raise ValueError(f"reference maps are {tuple(ref_maps.shape)} but maps are {tuple(maps.shape)}")
        finite = finite & ref_finite
        ref_region = _percentile_region(ref_maps.flatten(1), percentile, region)
    else:
        ref_region = ground_truth_mask(masks=masks, boxes=boxes, size=(maps.shape[-2], maps.shape[-1]), batch=batch,
                                       device=maps.device, metric="iou_at_percentile (or pass reference=)")
        ref_region = ref_region.flatten(1)
    own = _percentile_region(flat, percentile, region)
    inter = (own & ref_region).sum(dim=1).double()
    union = (own | ref_region).sum(dim=1).double()
    values = (inter / union.clamp(min=1)).float()
    values = _nan_where(values, ~finite | ~ref_region.any(dim=1))
    if not return_details:
        return values
    pixels = flat.shape[1]
    own_size, ref_size = own.sum(dim=1), ref_region.sum(dim=1)
    chance = _expected_random_iou(own_size, ref_size, pixels).float()
    details = {"chance": _nan_where(chance, ~finite | (ref_size == 0)),
               "explanation_fraction": own_size.float() / pixels,
               "reference_fraction": ref_size.float() / pixels}
    return values, details


def iou_chance_level(percentile: float = IOU_PERCENTILE, region: str = "top",
                     num_pixels: int | None = None) -> float:
    """Expected IoU of two independent random maps, each binarized at its own percentile.

    With continuous random maps each region holds a fraction ``f`` of the pixels (``1 − p/100``
    for ``"top"``, ``p/100`` for ``"bottom"``), chosen uniformly at random. For
    ``num_pixels=None`` the large-image limit ``f / (2 − f)`` is returned (1/3 at the
    median); for ``num_pixels = N`` the exact expectation over the hypergeometric overlap of
    two regions of the size :func:`iou_at_percentile` keeps on N distinct values.
    """
    if region not in IOU_REGIONS:
        raise ValueError(f"unknown region {region!r}; valid: {', '.join(IOU_REGIONS)}")
    _check_percentile(percentile)
    if num_pixels is None:
        fraction = 1 - percentile / 100 if region == "top" else percentile / 100
        return fraction / (2 - fraction)
    if num_pixels < 2:
        raise ValueError(f"num_pixels must be >= 2, got {num_pixels}")
    top = num_pixels - 1 - math.floor((num_pixels - 1) * percentile / 100)
    size = top if region == "top" else num_pixels - top
    size_t = torch.tensor([size])
    return float(_expected_random_iou(size_t, size_t, num_pixels)[0])


def _check_percentile(percentile: float) -> None:
    if not (isinstance(percentile, numbers.Real) and 0 < percentile < 100):
        raise ValueError(f"percentile must be a number in (0, 100), got {percentile!r}")


def _percentile_region(flat: torch.Tensor, percentile: float, region: str) -> torch.Tensor:
    """``B×N`` bool: ``flat > q`` (top) or ``flat <= q`` (bottom), ``q`` the row's percentile
    with linear interpolation between order statistics (numpy's default method)."""
    count = flat.shape[1]
    position = (count - 1) * percentile / 100
    low = int(math.floor(position))
    high = min(low + 1, count - 1)
    weight = position - low
    below = flat.kthvalue(low + 1, dim=1).values                  # order statistics, no full sort
    above = flat.kthvalue(high + 1, dim=1).values if high != low else below
    q = below + (above - below) * weight
    q = q[:, None]
    return flat > q if region == "top" else flat <= q


def _expected_random_iou(size_a: torch.Tensor, size_b: torch.Tensor, pixels: int) -> torch.Tensor:
    """``E[X / (a + b − X)]`` with ``X`` ~ Hypergeometric(``pixels``, ``b``, ``a``): the expected
    IoU of a uniformly random ``a``-pixel region and an independent ``b``-pixel one; NaN where
    both are empty. Exact sum over the support in float64, once per distinct ``(a, b)`` pair
    (percentile regions of distinct-valued maps all have the same size)."""
    device = torch.as_tensor(size_a).device
    sizes = torch.stack([torch.as_tensor(size_a).reshape(-1), torch.as_tensor(size_b).reshape(-1)], dim=1)
    pairs, inverse = torch.unique(sizes.cpu().long(), dim=0, return_inverse=True)
    a, b = pairs[:, 0:1].double(), pairs[:, 1:2].double()
    n = float(pixels)
    low = (a + b - n).clamp(min=0)
    high = torch.minimum(a, b)
    span = int((high - low).max()) + 1 if pairs.numel() else 1
    x = low + torch.arange(span, dtype=torch.float64)[None, :]
    valid = x <= high
    x = torch.where(valid, x, low)

    def log_choose(total, part):
        return torch.lgamma(total + 1) - torch.lgamma(part + 1) - torch.lgamma(total - part + 1)

    log_pmf = log_choose(b, x) + log_choose(n - b, a - x) - log_choose(torch.full_like(a, n), a)
    pmf = torch.where(valid, torch.exp(log_pmf), torch.zeros_like(log_pmf))
    union = a + b - x
    iou = torch.where(union > 0, x / union.clamp(min=1), torch.zeros_like(x))
    expected = (pmf * iou).sum(dim=1)
    expected = torch.where((a + b)[:, 0] > 0, expected, torch.full_like(expected, math.nan))
    return expected[inverse].to(device)


# ---------------------------------------------------------------------------------------------
# relevance rank
# ---------------------------------------------------------------------------------------------

def relevance_rank(model, images: torch.Tensor | None, maps: torch.Tensor, targets=None, *,
                   masks: torch.Tensor | None = None, boxes: Sequence[torch.Tensor] | None = None,
                   ties: str = "stable") -> torch.Tensor:
    """Relevance rank accuracy (Arras, Osman & Samek, CLEVR-XAI, Information Fusion 2022):
    with ``K = |region|``, the fraction of the ``K`` most relevant pixels that lie in
    the region.

    Pixels are ranked by the map's signed values (positive relevance first; clipping
    negatives would only create ties at zero).

    Args:
        masks, boxes: the ground-truth region (union of boxes).
        ties: ``"stable"`` (default) — a stable descending sort, equal values in row-major
            order (the order insertion/deletion use; Quantus's ``np.argsort`` agrees for
            distinct values); ``"expected"`` — pixels tied at the K-th value count with the
            probability that a uniformly random tie-break puts them in the top K, so the
            value does not depend on where the region lies in the image.

    Degenerate maps: a constant (or all-zero) map ranks nothing and scores the chance level
    ``K / (H·W)`` under both tie rules (a stable sort would reward regions at the top of the
    image). NaN for an empty region or a non-finite map.
    """
    if ties not in RANK_TIES:
        raise ValueError(f"unknown ties rule {ties!r}; valid: {', '.join(RANK_TIES)}")
    maps, finite, region = _maps_and_region(images, maps, masks, boxes, "relevance_rank")
    flat, inside = maps.flatten(1), region.flatten(1)
    count = flat.shape[1]
    k = inside.sum(dim=1)
    ordered, order = torch.sort(flat, dim=1, descending=True, stable=True)
    if ties == "stable":
        ranked_inside = inside.gather(1, order)
        in_top = torch.arange(count, device=flat.device)[None, :] < k[:, None]
        hits = (ranked_inside & in_top).sum(dim=1).double()
    else:
        kth = ordered.gather(1, (k - 1).clamp(min=0)[:, None])
        above, equal = flat > kth, flat == kth
        n_above, n_equal = above.sum(dim=1).double(), equal.sum(dim=1).double()
        share = (k.double() - n_above) / n_equal.clamp(min=1)
        hits = (inside & above).sum(dim=1).double() + (inside & equal).sum(dim=1).double() * share
    values = (hits / k.clamp(min=1).double()).float()
    constant = flat.amin(dim=1) == flat.amax(dim=1)
    values = torch.where(constant, k.float() / count, values)
    return _nan_where(values, ~finite | (k == 0))


# ---------------------------------------------------------------------------------------------
# shared helpers
# ---------------------------------------------------------------------------------------------

def _maps_and_region(images, maps, masks, boxes, metric: str):
    """Checked ``B×H×W`` maps, their finite flags and the ``B×H×W`` bool ground truth."""
    maps, finite = check_maps(maps, images)
    region = ground_truth_mask(masks=masks, boxes=boxes, size=tuple(maps.shape[-2:]), batch=maps.shape[0],
                               device=maps.device, metric=metric)
    return maps, finite, region


def _nan_where(values: torch.Tensor, bad: torch.Tensor) -> torch.Tensor:
    return torch.where(bad.to(values.device), torch.full_like(values, math.nan), values)


__all__ = ["area_size", "precision", "pointing_game", "per_class_mean", "iou_at_percentile", "iou_chance_level",
           "relevance_mass", "relevance_rank"]
