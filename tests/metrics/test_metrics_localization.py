"""Localization metrics: hand-computed cases, independent re-computations, Quantus cross-checks,
degenerate maps and NaN handling."""
from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch

import seethrough.metrics as metrics
from seethrough.metrics import Metric
from seethrough.metrics.localization import (
    area_size,
    iou_at_percentile,
    iou_chance_level,
    per_class_mean,
    pointing_game,
    precision,
    relevance_mass,
    relevance_rank,
)

NAN = float("nan")


def _images(batch, height, width=None):
    return torch.zeros(batch, 3, height, width or height)


def _random_case(batch=4, size=12, seed=0):
    """Random maps with distinct values and random rectangular masks (non-empty); every other
    map gets extra relevance inside its mask, so hits and misses both occur."""
    generator = torch.Generator().manual_seed(seed)
    maps = torch.rand(batch, size, size, generator=generator)
    masks = torch.zeros(batch, size, size, dtype=torch.bool)
    for i in range(batch):
        y0, x0 = torch.randint(0, size - 4, (2,), generator=generator).tolist()
        h, w = torch.randint(2, 5, (2,), generator=generator).tolist()
        masks[i, y0:y0 + h, x0:x0 + w] = True
    maps[::2] += 0.5 * masks[::2] * torch.rand(maps[::2].shape, generator=generator)
    return maps, masks


# ---------------------------------------------------------------------------------------------
# registry and stateful form
# ---------------------------------------------------------------------------------------------

def test_registry_resolves_every_localization_metric():
    for name in metrics.METRIC_FAMILIES["localization"]:
        assert metrics.get_metric(name) is getattr(metrics.localization, name)


def test_stateful_pointing_game_keeps_targets_for_per_class_mean():
    maps, masks = _random_case(batch=6, size=10, seed=3)
    targets = torch.tensor([0, 1, 1, 2, 2, 2])
    metric = Metric("pointing_game", tolerance=0)
    metric.update(None, _images(3, 10), maps[:3], targets[:3], sample_ids=torch.arange(3), masks=masks[:3])
    metric.update(None, _images(3, 10), maps[3:], targets[3:], sample_ids=torch.arange(3, 6), masks=masks[3:])
    summary = metric.compute()
    expected = pointing_game(None, None, maps, targets, masks=masks, tolerance=0)
    torch.testing.assert_close(summary.values, expected)
    assert summary.protocol == {"tolerance": 0, "ties": "first"}
    assert summary.details["target"].tolist() == targets.tolist()
    mean, per_class = per_class_mean(summary.values, summary.details["target"])
    assert mean == pytest.approx(float(per_class.mean()))


def test_values_do_not_depend_on_the_batch():
    maps, masks = _random_case(batch=5, size=12, seed=1)
    for fn in (precision, pointing_game, relevance_mass, relevance_rank, iou_at_percentile):
        whole = fn(None, None, maps, None, masks=masks)
        single = torch.cat([fn(None, None, maps[i:i + 1], None, masks=masks[i:i + 1]) for i in range(5)])
        torch.testing.assert_close(whole, single, msg=fn.__name__)


# ---------------------------------------------------------------------------------------------
# area size
# ---------------------------------------------------------------------------------------------

def test_area_size_hand_computed():
    maps = torch.tensor([[[0.0, 1.0], [2.0, 3.0]],      # normalized 0, 1/3, 2/3, 1 -> 0.5
                         [[5.0, 5.0], [5.0, 9.0]]])     # normalized 0, 0, 0, 1 -> 0.25
    torch.testing.assert_close(area_size(None, _images(2, 2), maps), torch.tensor([0.5, 0.25]))
    raw = torch.tensor([[[0.2, 0.4], [0.6, 1.0]]])
    assert area_size(None, None, raw, normalize=False).item() == pytest.approx(0.55)
    assert area_size(None, None, raw).item() == pytest.approx((0 + 0.25 + 0.5 + 1) / 4)


def test_area_size_degenerate_and_errors():
    maps = torch.stack([torch.full((3, 3), 4.0), torch.zeros(3, 3), torch.rand(3, 3)])
    maps[2, 1, 1] = math.inf
    values = area_size(None, None, maps)
    assert values[:2].tolist() == [0.0, 0.0]                      # constant -> zeros -> 0
    assert math.isnan(values[2])
    with pytest.raises(ValueError, match=r"normalize=False needs maps in \[0, 1\]"):
        area_size(None, None, torch.tensor([[[0.0, 2.0]]]), normalize=False)
    with pytest.raises(ValueError, match="upsample the maps"):
        area_size(None, _images(1, 4), torch.rand(1, 2, 2))
    with pytest.raises(ValueError, match="B×H×W"):
        area_size(None, None, torch.rand(4, 4))


# ---------------------------------------------------------------------------------------------
# precision and relevance mass
# ---------------------------------------------------------------------------------------------

def test_precision_hand_computed_and_boxes_equal_masks():
    maps = torch.tensor([[[1.0, 2.0, 0.0],
                          [3.0, 4.0, 0.0],
                          [0.0, 0.0, 10.0]]])
    masks = torch.zeros(1, 3, 3, dtype=torch.bool)
    masks[0, :2, :2] = True
    assert precision(None, None, maps, None, masks=masks).item() == pytest.approx(10 / 20)
    boxes = [torch.tensor([[0.0, 0.0, 2.0, 2.0]])]                 # xyxy pixel box = the same 2×2 block
    assert precision(None, None, maps, None, boxes=boxes).item() == pytest.approx(0.5)
    # two overlapping boxes: union rule (the overlap counts once)
    two = [torch.tensor([[0.0, 0.0, 2.0, 1.0], [0.0, 0.0, 1.0, 2.0]])]
    union = torch.zeros(1, 3, 3, dtype=torch.bool)
    union[0, 0, :2] = union[0, :2, 0] = True
    assert precision(None, None, maps, None, boxes=two).item() == pytest.approx((1 + 2 + 3) / 20)
    assert precision(None, None, maps, None, masks=union).item() == pytest.approx(6 / 20)


def test_precision_random_equals_an_independent_computation():
    maps, masks = _random_case(batch=6, size=16, seed=4)
    maps = maps - 0.3                                             # some negative values, clipped
    expected = [float(m.clamp(min=0)[g].sum() / m.clamp(min=0).sum()) for m, g in zip(maps, masks)]
    torch.testing.assert_close(precision(None, None, maps, None, masks=masks), torch.tensor(expected))
    with pytest.raises(ValueError, match="clip_negative=True"):
        precision(None, None, maps, None, masks=masks, clip_negative=False)


def test_precision_degenerate_maps_and_ground_truth():
    masks = torch.zeros(4, 4, 4, dtype=torch.bool)
    masks[:, :2, :] = True                                        # half the image
    masks[3] = False                                              # empty ground truth
    maps = torch.stack([torch.zeros(4, 4), torch.full((4, 4), 3.0), torch.rand(4, 4), torch.rand(4, 4)])
    maps[2, 0, 0] = math.nan
    values = precision(None, None, maps, None, masks=masks)
    assert values[:2].tolist() == [0.5, 0.5]                      # zero and constant = uniform = |GT|/N
    assert math.isnan(values[2]) and math.isnan(values[3])
    with pytest.raises(ValueError, match="needs ground truth"):
        precision(None, None, maps, None)
    with pytest.raises(ValueError, match="ground-truth masks of shape"):
        precision(None, None, maps, None, masks=masks[:, :3])


def test_relevance_mass_modes_hand_computed():
    maps = torch.tensor([[[2.0, -1.0], [-3.0, 4.0]]])
    masks = torch.tensor([[[True, True], [False, False]]])
    values = {mode: relevance_mass(None, None, maps, None, masks=masks, relevance=mode).item()
              for mode in ("positive", "absolute", "raw")}
    assert values["positive"] == pytest.approx(2 / 6)
    assert values["absolute"] == pytest.approx(3 / 10)
    assert values["raw"] == pytest.approx(1 / 2)
    # no positive relevance at all -> uniform; signed relevance summing to zero -> NaN
    negative = -torch.rand(1, 2, 2) - 0.1
    assert relevance_mass(None, None, negative, None, masks=masks).item() == pytest.approx(0.5)
    cancel = torch.tensor([[[1.0, -1.0], [0.0, 0.0]]])
    assert math.isnan(relevance_mass(None, None, cancel, None, masks=masks, relevance="raw").item())
    with pytest.raises(ValueError, match="unknown relevance mode"):
        relevance_mass(None, None, maps, None, masks=masks, relevance="pos")


# ---------------------------------------------------------------------------------------------
# pointing game
# ---------------------------------------------------------------------------------------------

def _pointing_reference(maps, masks, tolerance):
    """Per-sample numpy loop: distance from the first maximum to the nearest mask pixel."""
    out = []
    for m, g in zip(maps.numpy(), masks.numpy()):
        y, x = np.unravel_index(np.argmax(m), m.shape)
        ys, xs = np.nonzero(g)
        out.append(float(np.min((ys - y) ** 2 + (xs - x) ** 2) <= tolerance ** 2) if ys.size else NAN)
    return torch.tensor(out)


def _pointing_any_reference(maps, masks, tolerance):
    """Per-sample numpy loop: a hit when any maximum is within tolerance of a mask pixel."""
    out = []
    for m, g in zip(maps.numpy(), masks.numpy()):
        my, mx = np.nonzero(m == m.max())
        ys, xs = np.nonzero(g)
        d2 = (my[:, None] - ys[None, :]) ** 2 + (mx[:, None] - xs[None, :]) ** 2
        out.append(float(d2.min() <= tolerance ** 2))
    return torch.tensor(out)


def test_pointing_game_any_with_plateaus_matches_a_per_sample_loop():
    maps, masks = _random_case(batch=10, size=20, seed=6)
    plateaus = torch.round(maps ** 6 * 4)                         # several pixels share the maximum
    for tolerance in (0, 1, 2.5, 4):
        got = pointing_game(None, None, plateaus, None, masks=masks, tolerance=tolerance, ties="any")
        torch.testing.assert_close(got, _pointing_any_reference(plateaus, masks, tolerance))
    anyhit = pointing_game(None, None, plateaus, None, masks=masks, tolerance=1, ties="any")
    first = pointing_game(None, None, plateaus, None, masks=masks, tolerance=1)
    assert 0 < float(anyhit.mean()) < 1
    assert bool((anyhit >= first).all()) and bool((anyhit > first).any())   # "any" is the lenient rule


def test_pointing_game_tolerance_hand_computed():
    maps = torch.zeros(1, 20, 20)
    maps[0, 0, 0] = 1.0
    masks = torch.zeros(1, 20, 20, dtype=torch.bool)
    masks[0, 9, 12] = True                                        # exactly 15 px away (9² + 12² = 15²)
    assert pointing_game(None, None, maps, None, masks=masks).item() == 1.0
    assert pointing_game(None, None, maps, None, masks=masks, tolerance=14.9).item() == 0.0
    assert pointing_game(None, None, maps, None, masks=masks, tolerance=0).item() == 0.0
    masks[0, 0, 0] = True
    assert pointing_game(None, None, maps, None, masks=masks, tolerance=0).item() == 1.0


def test_pointing_game_matches_a_per_sample_loop():
    maps, masks = _random_case(batch=8, size=24, seed=5)
    for tolerance in (0, 3, 7.5):
        for ties in ("first", "any"):                               # distinct values: the rules agree
            got = pointing_game(None, None, maps, None, masks=masks, tolerance=tolerance, ties=ties)
            torch.testing.assert_close(got, _pointing_reference(maps, masks, tolerance))
    for tolerance in (0, 3):
        assert 0 < float(pointing_game(None, None, maps, None, masks=masks, tolerance=tolerance).mean()) < 1


def test_pointing_game_ties_and_degenerate_maps():
    maps = torch.zeros(4, 5, 5)
    maps[:, 0, 0] = maps[:, 4, 4] = 1.0                           # two maxima: first (0,0), second (4,4)
    masks = torch.zeros(4, 5, 5, dtype=torch.bool)
    masks[:, 4, 4] = True
    maps[1] = 7.0                                                 # constant
    maps[2, 2, 2] = math.nan
    masks[3] = False                                              # empty ground truth
    first = pointing_game(None, None, maps, None, masks=masks, tolerance=0)
    anyhit = pointing_game(None, None, maps, None, masks=masks, tolerance=0, ties="any")
    assert first[:2].tolist() == [0.0, 0.0] and anyhit[:2].tolist() == [1.0, 0.0]
    assert all(math.isnan(v) for v in first[2:].tolist() + anyhit[2:].tolist())
    with pytest.raises(ValueError, match="unknown ties rule"):
        pointing_game(None, None, maps, None, masks=masks, ties="last")
    with pytest.raises(ValueError, match="tolerance must be"):
        pointing_game(None, None, maps, None, masks=masks, tolerance=-1)


def test_pointing_game_details_and_per_class_mean():
    maps = torch.zeros(2, 6, 7)
    maps[0, 2, 5] = maps[1, 4, 1] = 1.0
    masks = torch.ones(2, 6, 7, dtype=torch.bool)
    _, details = pointing_game(None, None, maps, [3, 1], masks=masks, return_details=True)
    assert details["point"].tolist() == [[2, 5], [4, 1]]
    assert details["target"].tolist() == [3, 1]
    # class 0: hits 1, 1, 0 -> 2/3; class 2: 0 -> 0; NaN (class 1) left out; class 3 absent
    values = torch.tensor([1.0, 1.0, 0.0, 0.0, NAN])
    mean, per_class = per_class_mean(values, torch.tensor([0, 0, 0, 2, 1]), num_classes=4)
    assert mean == pytest.approx((2 / 3 + 0) / 2)
    assert per_class[0] == pytest.approx(2 / 3) and per_class[2] == 0
    assert math.isnan(per_class[1]) and math.isnan(per_class[3])
    assert math.isnan(per_class_mean(torch.tensor([NAN]), [0])[0])


# ---------------------------------------------------------------------------------------------
# relevance rank
# ---------------------------------------------------------------------------------------------

def test_relevance_rank_hand_computed_and_ties():
    maps = torch.tensor([[[9.0, 1.0, 8.0],
                          [2.0, 7.0, 3.0]]])
    masks = torch.tensor([[[True, True, False],
                           [False, True, False]]])             # K = 3; top-3 = 9, 8, 7 -> 2 inside
    assert relevance_rank(None, None, maps, None, masks=masks).item() == pytest.approx(2 / 3)
    tied = torch.tensor([[[5.0, 1.0, 1.0, 1.0]]])               # K = 2: 5 then one of three 1s
    mask = torch.tensor([[[True, False, False, True]]])
    # stable: the first 1 (column 1, outside) is taken -> 1/2; expected: 1 + 1/3 of a hit -> 2/3
    assert relevance_rank(None, None, tied, None, masks=mask).item() == pytest.approx(1 / 2)
    assert relevance_rank(None, None, tied, None, masks=mask, ties="expected").item() == pytest.approx(2 / 3)


def test_relevance_rank_degenerate():
    masks = torch.zeros(4, 4, 4, dtype=torch.bool)
    masks[:, 0, :] = True                                          # top row: stable sort would give 1.0
    maps = torch.stack([torch.full((4, 4), 2.0), torch.zeros(4, 4), torch.rand(4, 4), torch.rand(4, 4)])
    maps[2, 3, 3] = -math.inf
    masks[3] = False
    for ties in ("stable", "expected"):
        values = relevance_rank(None, None, maps, None, masks=masks, ties=ties)
        assert values[:2].tolist() == [0.25, 0.25]
        assert math.isnan(values[2]) and math.isnan(values[3])


def test_relevance_rank_expected_ties_equal_stable_without_ties():
    maps, masks = _random_case(batch=5, size=10, seed=8)
    torch.testing.assert_close(relevance_rank(None, None, maps, None, masks=masks),
                               relevance_rank(None, None, maps, None, masks=masks, ties="expected"))


# ---------------------------------------------------------------------------------------------
# IoU at a percentile
# ---------------------------------------------------------------------------------------------

def _lvw_iou(explanation, reference, percentile, region):
    """Independent numpy re-computation: np.percentile per map, > q (top) or <= q (bottom)."""
    out = []
    for a, b in zip(explanation.numpy().astype(np.float64), reference.numpy().astype(np.float64)):
        ra = a > np.percentile(a, percentile) if region == "top" else a <= np.percentile(a, percentile)
        rb = b > np.percentile(b, percentile) if region == "top" else b <= np.percentile(b, percentile)
        out.append((ra & rb).sum() / (ra | rb).sum())
    return torch.tensor(out, dtype=torch.float32)


def test_iou_hand_computed():
    maps = torch.arange(16.0).reshape(1, 4, 4)                    # median 7.5: top = rows 2-3
    reference = torch.arange(16.0).flip(0).reshape(1, 4, 4)       # top = rows 0-1
    assert iou_at_percentile(None, None, maps, None, reference=reference).item() == 0.0
    assert iou_at_percentile(None, None, maps, None, reference=maps.clone()).item() == 1.0
    masks = torch.zeros(1, 4, 4, dtype=torch.bool)
    masks[0, 3] = True                                            # 4 px inside the 8 px top region
    assert iou_at_percentile(None, None, maps, None, masks=masks).item() == pytest.approx(4 / 8)
    # 75th percentile of 0..15 = 11.25: top = 12..15 = row 3, bottom = 0..11 = rows 0-2
    assert iou_at_percentile(None, None, maps, None, masks=masks, percentile=75).item() == 1.0
    assert iou_at_percentile(None, None, maps, None, masks=masks, percentile=75, region="bottom").item() == 0.0


def test_iou_matches_an_independent_lvw_style_computation():
    generator = torch.Generator().manual_seed(11)
    maps, reference = torch.rand(6, 9, 11, generator=generator), torch.rand(6, 9, 11, generator=generator)
    reference[:3] = maps[:3] + 0.3 * reference[:3]                # correlated pairs too
    for percentile in (30, 50, 70, 90):
        for region in ("top", "bottom"):
            got = iou_at_percentile(None, None, maps, None, reference=reference, percentile=percentile, region=region)
            torch.testing.assert_close(got, _lvw_iou(maps, reference, percentile, region), atol=1e-6, rtol=0)


def test_iou_chance_level_closed_form_exact_and_simulated():
    assert iou_chance_level() == pytest.approx(1 / 3)
    assert iou_chance_level(50, "bottom") == pytest.approx(1 / 3)
    assert iou_chance_level(70, "bottom") == pytest.approx(0.7 / 1.3)   # what LVW's convention gives
    assert iou_chance_level(90, "bottom") == pytest.approx(0.9 / 1.1)
    assert iou_chance_level(90, "top") == pytest.approx(0.1 / 1.9)
    assert iou_chance_level(50, num_pixels=224 * 224) == pytest.approx(1 / 3, abs=1e-4)
    # exact value for a small image vs a Monte-Carlo run of the metric on random maps
    rng = np.random.default_rng(0)
    maps, reference = (torch.from_numpy(rng.random((4000, 6, 6), dtype=np.float32)) for _ in range(2))
    for percentile, region in ((50, "top"), (80, "top"), (80, "bottom")):
        values, details = iou_at_percentile(None, None, maps, None, reference=reference, percentile=percentile,
                                            region=region, return_details=True)
        exact = iou_chance_level(percentile, region, num_pixels=36)
        torch.testing.assert_close(details["chance"], torch.full((4000,), exact), atol=1e-6, rtol=0)
        assert float(values.mean()) == pytest.approx(exact, abs=4 * float(values.std()) / math.sqrt(4000))


def test_iou_details_follow_actual_region_sizes():
    maps = torch.zeros(1, 4, 4)
    maps[0, 0, :3] = 1.0                                          # ties at 0: the top region has 3 px, not 8
    masks = torch.zeros(1, 4, 4, dtype=torch.bool)
    masks[0, 0, :2] = True
    value, details = iou_at_percentile(None, None, maps, None, masks=masks, return_details=True)
    assert value.item() == pytest.approx(2 / 3)
    assert details["explanation_fraction"].item() == pytest.approx(3 / 16)
    assert details["reference_fraction"].item() == pytest.approx(2 / 16)
    # E[X / (5 - X)], X ~ Hypergeom(16, 2, 3): P(1) = 2·C(14,2)/C(16,3), P(2) = 14/C(16,3)
    p1, p2 = 2 * 91 / 560, 14 / 560
    assert details["chance"].item() == pytest.approx(p1 * 1 / 4 + p2 * 2 / 3)


def test_iou_degenerate_and_errors():
    masks = torch.zeros(4, 4, 4, dtype=torch.bool)
    masks[:, 0] = True
    maps = torch.stack([torch.full((4, 4), 3.0), torch.zeros(4, 4), torch.rand(4, 4), torch.rand(4, 4)])
    maps[2, 1, 1] = math.nan
    masks[3] = False
    values = iou_at_percentile(None, None, maps, None, masks=masks)
    assert values[:2].tolist() == [0.0, 0.0]                      # constant: empty top region
    assert math.isnan(values[2]) and math.isnan(values[3])
    bottom = iou_at_percentile(None, None, maps[:1], None, masks=masks[:1], region="bottom")
    assert bottom.item() == pytest.approx(4 / 16)                 # constant: every pixel <= q
    # a constant reference has no top region -> NaN
    assert math.isnan(iou_at_percentile(None, None, torch.rand(1, 4, 4), None, reference=torch.ones(1, 4, 4)).item())
    with pytest.raises(ValueError, match="not both"):
        iou_at_percentile(None, None, maps, None, reference=maps, masks=masks)
    with pytest.raises(ValueError, match="percentile must be"):
        iou_at_percentile(None, None, maps, None, masks=masks, percentile=100)
    with pytest.raises(ValueError, match="unknown region"):
        iou_at_percentile(None, None, maps, None, masks=masks, region="below")
    with pytest.raises(ValueError, match="needs ground truth"):
        iou_at_percentile(None, None, maps, None)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_metrics_run_on_the_maps_device():
    maps, masks = _random_case(batch=6, size=16, seed=30)
    reference = torch.rand(6, 16, 16)
    cases = [(area_size, {}), (precision, {"masks": masks}), (relevance_mass, {"masks": masks}),
             (relevance_rank, {"masks": masks}), (relevance_rank, {"masks": masks, "ties": "expected"}),
             (pointing_game, {"masks": masks}), (pointing_game, {"masks": masks, "ties": "any", "tolerance": 3}),
             (iou_at_percentile, {"reference": reference}), (iou_at_percentile, {"masks": masks})]
    for fn, options in cases:
        on_gpu = {k: v.cuda() if isinstance(v, torch.Tensor) else v for k, v in options.items()}
        got = fn(None, None, maps.cuda(), None, **on_gpu)
        assert got.device.type == "cuda"
        torch.testing.assert_close(got.cpu(), fn(None, None, maps, None, **options), msg=fn.__name__)
    _, details = iou_at_percentile(None, None, maps.cuda(), None, masks=masks.cuda(), return_details=True)
    assert details["chance"].device.type == "cuda"


# ---------------------------------------------------------------------------------------------
# cross-checks against Quantus (test-only dependency)
# ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def quantus():
    import quantus

    return quantus


def _quantus(metric_cls, maps, masks, **options):
    """Run a Quantus localisation metric on (B,1,H,W) numpy batches, its preprocessing off."""
    batch, height, width = maps.shape
    x = np.zeros((batch, 1, height, width), dtype=np.float32)
    y = np.zeros(batch, dtype=np.int64)
    metric = metric_cls(normalise=False, abs=False, disable_warnings=True, **options)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scores = metric(model=None, x_batch=x, y_batch=y, a_batch=maps[:, None].numpy().copy(),
                        s_batch=masks[:, None].numpy().astype(np.float32))
    return torch.tensor(np.asarray(scores, dtype=np.float64), dtype=torch.float32)


def test_pointing_game_vs_quantus(quantus):
    maps, masks = _random_case(batch=8, size=12, seed=21)
    ours = pointing_game(None, None, maps, None, masks=masks, tolerance=0, ties="any")
    torch.testing.assert_close(ours, _quantus(quantus.PointingGame, maps, masks))
    assert 0 < float(ours.mean()) < 1
    # on purpose: a constant map is a miss here and a hit in Quantus; an empty mask is NaN here,
    # while Quantus writes NaN into a bool array, which reads back as a hit (True)
    degenerate = torch.stack([torch.full((12, 12), 0.5), maps[0]])
    gt = masks[:2].clone()
    gt[1] = False
    assert _quantus(quantus.PointingGame, degenerate, gt).tolist() == [1.0, 1.0]
    ours = pointing_game(None, None, degenerate, None, masks=gt, tolerance=0, ties="any")
    assert ours[0].item() == 0.0 and math.isnan(ours[1])


def test_relevance_mass_vs_quantus(quantus):
    maps, masks = _random_case(batch=6, size=12, seed=22)
    # non-negative maps: every mode equals Quantus (and equals precision)
    for mode in ("positive", "absolute", "raw"):
        torch.testing.assert_close(relevance_mass(None, None, maps, None, masks=masks, relevance=mode),
                                   _quantus(quantus.RelevanceMassAccuracy, maps, masks))
    torch.testing.assert_close(precision(None, None, maps, None, masks=masks),
                               _quantus(quantus.RelevanceMassAccuracy, maps, masks))
    # signed maps: Quantus uses the raw values; the paper's positive relevance differs on purpose
    signed = maps - 0.5
    q = _quantus(quantus.RelevanceMassAccuracy, signed, masks)
    torch.testing.assert_close(relevance_mass(None, None, signed, None, masks=masks, relevance="raw"), q,
                               rtol=1e-4, atol=1e-5)
    positive = relevance_mass(None, None, signed, None, masks=masks)
    assert ((positive >= 0) & (positive <= 1)).all()
    assert not torch.allclose(positive, q, atol=1e-3)


def test_relevance_rank_vs_quantus(quantus):
    maps, masks = _random_case(batch=8, size=12, seed=23)         # distinct values: sort order agrees
    ours = relevance_rank(None, None, maps, None, masks=masks)
    torch.testing.assert_close(ours, _quantus(quantus.RelevanceRankAccuracy, maps, masks))
    signed = maps - 0.5
    torch.testing.assert_close(relevance_rank(None, None, signed, None, masks=masks),
                               _quantus(quantus.RelevanceRankAccuracy, signed, masks))
    # planted evidence: a map equal to the mask (plus noise below it) ranks perfectly
    planted = masks.float() + 0.01 * maps
    torch.testing.assert_close(relevance_rank(None, None, planted, None, masks=masks), torch.ones(8))
