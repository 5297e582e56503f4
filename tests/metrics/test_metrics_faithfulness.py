"""Faithfulness metrics: insertion/deletion (RISE) and AD / IC / AG (Grad-CAM++, Opti-CAM).

Hand-computed cases use a "pixel-linear" model whose class-0 logit is ``Σ w·x`` and class-1
logit is 0, so every curve point is a sum of pixels (``score="logit"``) or its sigmoid
(``score="prob"``, the default).
"""
import math

import numpy as np
import pytest
import torch
from torch import nn

import seethrough
from seethrough.metrics import Metric, average_drop, average_gain, deletion, increase_in_confidence, insertion
from seethrough.metrics.faithfulness import auc, pixel_counts, pixel_ranks
from seethrough.metrics.substrates import blur_kernel2d, gaussian_blur, make_substrate


class PixelLinear(nn.Module):
    """logits = [Σ w·x, 0] for a fixed C×H×W weight ``w``."""

    def __init__(self, weight):
        super().__init__()
        self.register_buffer("weight", torch.as_tensor(weight, dtype=torch.float32))

    def forward(self, x):
        z = (x * self.weight).flatten(1).sum(1)
        return torch.stack([z, torch.zeros_like(z)], dim=1)


def tiny_conv(seed=0, dropout=0.0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Dropout(dropout),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))


def sigmoid(z):
    return 1 / (1 + math.exp(-z))


def trapezoid(points):
    return (sum(points) - points[0] / 2 - points[-1] / 2) / (len(points) - 1)


# 2×2 image [[1, 2], [3, 4]]; map order (descending): (0,1)=2, (1,0)=3, (1,1)=4, (0,0)=1
IMAGE = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])
MAP = torch.tensor([[[0.1, 0.9], [0.5, 0.3]]])
ONES = PixelLinear(torch.ones(1, 2, 2))


# --------------------------------------------------------------------------- hand-computed curves
def test_deletion_hand_computed_logit_and_prob():
    values, details = deletion(ONES, IMAGE, MAP, 0, step=1, score="logit", return_details=True)
    expected = [10.0, 8.0, 5.0, 1.0, 0.0]
    assert details["curve"].tolist() == [expected]
    assert values.item() == pytest.approx((24 - 5 - 0) / 4)
    prob, details = deletion(ONES, IMAGE, MAP, 0, step=1, return_details=True)  # default score: prob
    assert details["curve"][0].tolist() == pytest.approx([sigmoid(z) for z in expected], abs=1e-6)
    assert prob.item() == pytest.approx(trapezoid([sigmoid(z) for z in expected]), abs=1e-6)


def test_insertion_hand_computed_zero_substrate():
    values, details = insertion(ONES, IMAGE, MAP, 0, step=1, substrate="zero", score="logit", return_details=True)
    assert details["curve"].tolist() == [[0.0, 2.0, 5.0, 9.0, 10.0]]
    assert values.item() == pytest.approx((26 - 0 - 5) / 4)


def test_default_step_is_the_image_width():
    values, details = deletion(ONES, IMAGE, MAP, 0, score="logit", return_details=True)
    assert details["curve"].tolist() == [[10.0, 5.0, 0.0]]  # 2 px per step
    assert values.item() == pytest.approx((15 - 5 - 0) / 2)


def test_mean_substrate_and_all_channels_removed_together():
    values, details = deletion(ONES, IMAGE, MAP, 0, step=1, substrate="mean", score="logit", return_details=True)
    assert details["curve"].tolist() == [[10.0, 10.5, 10.0, 8.5, 10.0]]  # mean 2.5 replaces 2, 3, 4, 1
    two_channels = torch.cat([IMAGE, 10 * IMAGE], dim=1)
    _, details = deletion(PixelLinear(torch.ones(2, 2, 2)), two_channels, MAP, 0, step=1, score="logit",
                          return_details=True)
    assert details["curve"].tolist() == [[110.0, 88.0, 55.0, 11.0, 0.0]]


def test_insertion_from_default_blur_hand_computed():
    kernel = blur_kernel2d(11, 5.0, kind="rise")
    x = IMAGE[0, 0].double()
    # zero padding: output (i, j) = Σ_{p,q} x[p,q] k[5 + p - i, 5 + q - j] over the 4 pixels only
    blurred = torch.tensor([[sum(float(x[p, q] * kernel[5 + p - i, 5 + q - j]) for p in range(2) for q in range(2))
                             for j in range(2)] for i in range(2)])
    order = [(0, 1), (1, 0), (1, 1), (0, 0)]
    current, expected = blurred.clone(), [float(blurred.sum())]
    for p in order:
        current[p] = x[p]
        expected.append(float(current.sum()))
    values, details = insertion(ONES, IMAGE, MAP, 0, step=1, score="logit", return_details=True)
    assert details["curve"][0].tolist() == pytest.approx(expected, abs=1e-5)
    assert values.item() == pytest.approx(trapezoid(expected), abs=1e-5)


# --------------------------------------------------------------------------- ordering and schedule
def test_constant_map_is_ranked_in_raster_order():
    model = PixelLinear(torch.tensor([[[1.0, 2.0], [4.0, 8.0]]]))
    ones = torch.ones(1, 1, 2, 2)
    _, details = deletion(model, ones, torch.full((1, 2, 2), 0.3), 0, step=1, score="logit", return_details=True)
    assert details["curve"].tolist() == [[15.0, 14.0, 12.0, 8.0, 0.0]]
    # ties inside a non-constant map: both 1s first (raster order), then both 0.5s
    tied = torch.tensor([[[1.0, 0.5], [1.0, 0.5]]])
    _, details = deletion(model, ones, tied, 0, step=1, score="logit", return_details=True)
    assert details["curve"].tolist() == [[15.0, 14.0, 10.0, 8.0, 0.0]]


def test_pixel_ranks_match_a_stable_numpy_argsort():
    g = torch.Generator().manual_seed(0)
    maps = torch.randint(0, 4, (3, 5, 7), generator=g).float()  # many ties
    ranks = pixel_ranks(maps)
    for m, r in zip(maps, ranks):
        order = np.argsort(-m.flatten().numpy(), kind="stable")
        expected = np.empty_like(order)
        expected[order] = np.arange(order.size)
        assert r.tolist() == expected.tolist()


def test_pixel_counts_schedules():
    assert pixel_counts(16, width=4).tolist() == [0, 4, 8, 12, 16]
    assert pixel_counts(16, width=4, step=5).tolist() == [0, 5, 10, 15, 16]  # last step partial, as RISE
    assert pixel_counts(16, width=4, steps=3).tolist() == [0, 5, 10, 16]
    assert pixel_counts(224 * 224, width=224).numel() == 225  # RISE: 224 px per step
    assert pixel_counts(224 * 224, width=224, steps=28).tolist()[1] == 1792  # CA-Stream


def test_steps_gives_that_many_points():
    images = torch.rand(2, 1, 4, 4)
    _, details = deletion(PixelLinear(torch.ones(1, 4, 4)), images, torch.rand(2, 4, 4), 0, steps=3,
                          score="logit", return_details=True)
    assert details["curve"].shape == (2, 4)
    assert torch.allclose(details["curve"][:, -1], torch.zeros(2))


@pytest.mark.parametrize("kwargs, match", [
    (dict(step=2, steps=2), "not both"),
    (dict(step=0), "step must be"),
    (dict(steps=0), "steps must be"),
    (dict(step=1.5), "step must be"),
    (dict(substrate="noise"), "unknown substrate"),
    (dict(score="probability"), "unknown score"),
    (dict(batch_size=0), "batch_size"),
])
def test_bad_protocol_values_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        insertion(ONES, IMAGE, MAP, 0, **kwargs)
    with pytest.raises(ValueError, match=match):  # also when no map is finite (no forward pass runs)
        insertion(ONES, IMAGE, torch.full_like(MAP, math.nan), 0, **kwargs)


def test_model_none_and_wrong_map_size_are_errors():
    with pytest.raises(ValueError, match="needs the model"):
        deletion(None, IMAGE, MAP, 0)
    with pytest.raises(ValueError, match="upsample"):
        deletion(ONES, IMAGE, torch.rand(1, 3, 3), 0)


# --------------------------------------------------------------------------- batching
def naive_curves(model, images, maps, targets, substrate, counts, mode):
    """Independent reference: one image and one step at a time, numpy stable argsort."""
    model.eval()
    out = []
    for x, m, s, t in zip(images, maps, substrate, targets):
        order = np.argsort(-m.flatten().numpy(), kind="stable")
        start, finish = (x, s) if mode == "deletion" else (s, x)
        row = []
        for c in counts:
            img = start.clone().flatten(1)
            img[:, order[:c]] = finish.flatten(1)[:, order[:c]]
            with torch.no_grad():
                row.append(torch.softmax(model(img.view_as(x)[None]), 1)[0, t].item())
        out.append(row)
    return torch.tensor(out)


@pytest.mark.parametrize("metric", [insertion, deletion])
def test_batch_size_invariance_and_naive_reference(metric):
    model = tiny_conv()
    g = torch.Generator().manual_seed(1)
    images, maps = torch.randn(3, 3, 12, 12, generator=g), torch.rand(3, 12, 12, generator=g)
    targets = torch.tensor([0, 2, 1])
    results = {bs: metric(model, images, maps, targets, batch_size=bs, return_details=True) for bs in (1, 5, 64)}
    for bs in (5, 64):
        assert torch.allclose(results[bs][0], results[1][0], atol=1e-6)
        assert torch.allclose(results[bs][1]["curve"], results[1][1]["curve"], atol=1e-6)
    substrate = "blur" if metric is insertion else "zero"
    reference = naive_curves(model, images, maps, targets, make_substrate(images, substrate),
                             pixel_counts(144, width=12).tolist(), metric.__name__)
    assert results[64][1]["curve"].shape == (3, 13)
    assert torch.allclose(results[64][1]["curve"], reference, atol=1e-5)
    assert torch.allclose(results[64][0], auc(reference), atol=1e-5)


def test_eval_mode_is_used_and_training_flags_restored():
    model = tiny_conv(dropout=0.5).train()
    images, maps = torch.randn(2, 3, 8, 8), torch.rand(2, 8, 8)
    first = insertion(model, images, maps, 1, steps=4)
    assert model.training and all(m.training for m in model.modules())
    assert torch.equal(first, insertion(model, images, maps, 1, steps=4))  # no dropout noise


# --------------------------------------------------------------------------- degenerate maps
@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_non_finite_map_gives_nan_and_leaves_others_unchanged(bad):
    model = tiny_conv()
    images, maps = torch.randn(3, 3, 8, 8), torch.rand(3, 8, 8)
    clean = deletion(model, images[[0, 2]], maps[[0, 2]], torch.tensor([0, 2]), steps=4)
    maps[1, 3, 3] = bad
    values, details = deletion(model, images, maps, torch.tensor([0, 1, 2]), steps=4, return_details=True)
    assert math.isnan(values[1]) and bool(details["curve"][1].isnan().all())
    assert torch.allclose(values[[0, 2]], clean, atol=1e-6)


def test_constant_and_zero_maps_have_a_value():
    model = tiny_conv()
    images = torch.randn(2, 3, 8, 8)
    values = insertion(model, images, torch.zeros(2, 8, 8), 0, steps=4)
    assert bool(torch.isfinite(values).all())


# --------------------------------------------------------------------------- substrates
def test_rise_blur_kernel_matches_scipy_gkern():
    from scipy import ndimage
    delta = np.zeros((11, 11))
    delta[5, 5] = 1
    expected = ndimage.gaussian_filter(delta, 5)  # RISE's gkern(11, 5)
    kernel = blur_kernel2d(11, 5.0, kind="rise")
    assert np.allclose(kernel.numpy(), expected, atol=1e-12)
    delta7 = np.zeros((7, 7))
    delta7[3, 3] = 1
    assert np.allclose(blur_kernel2d(7, 1.5).numpy(), ndimage.gaussian_filter(delta7, 1.5), atol=1e-12)


def test_gaussian_blur_kernel_is_truncated_gaussian():
    d = np.arange(-5, 6)
    line = np.exp(-d ** 2 / (2 * 5.0 ** 2))
    line /= line.sum()
    assert np.allclose(blur_kernel2d(11, 5.0, kind="gaussian").numpy(), np.outer(line, line), atol=1e-12)
    assert not np.allclose(blur_kernel2d(11, 5.0, kind="gaussian").numpy(), blur_kernel2d(11, 5.0).numpy(),
                           atol=1e-3)  # the two constructions differ visibly


@pytest.mark.parametrize("kind", ["rise", "gaussian"])
def test_blur_equals_direct_zero_padded_convolution(kind):
    g = torch.Generator().manual_seed(2)
    images = torch.randn(2, 3, 7, 9, generator=g)  # smaller than the 11×11 window: padding matters
    kernel = blur_kernel2d(11, 5.0, kind=kind).numpy()
    x = images.double().numpy()
    expected = np.zeros_like(x)
    for i in range(7):
        for j in range(9):
            for di in range(-5, 6):
                for dj in range(-5, 6):
                    if 0 <= i + di < 7 and 0 <= j + dj < 9:  # outside: zero padding
                        expected[:, :, i, j] += kernel[5 + di, 5 + dj] * x[:, :, i + di, j + dj]
    assert np.allclose(gaussian_blur(images, 11, 5.0, kind=kind).numpy(), expected, atol=1e-5)
    assert torch.equal(make_substrate(images, "blur", blur_kernel=kind), gaussian_blur(images, kind=kind))


def test_substrate_errors_and_callables():
    images = torch.randn(1, 3, 4, 4)
    with pytest.raises(ValueError, match="odd"):
        blur_kernel2d(10, 5.0)
    with pytest.raises(ValueError, match="sigma"):
        blur_kernel2d(11, 0.0)
    with pytest.raises(ValueError, match="blur_kernel"):
        make_substrate(images, "blur", blur_kernel="box")
    assert torch.equal(make_substrate(images, lambda x: x + 1), images + 1)
    with pytest.raises(ValueError, match="shape"):
        make_substrate(images, lambda x: x[:, :1])
    assert torch.allclose(make_substrate(images, "mean"), images.mean(dim=(2, 3), keepdim=True).expand_as(images))


# --------------------------------------------------------------------------- AD / IC / AG
# 1 channel, 1×2 images normalized with mean 0.5, std 0.5 (pixel p → 2p − 1); logit z = x0 − x1
PIXELS = torch.tensor([[1.0, 0.0], [0.5, 1.0], [0.25, 0.75]])
AD_IMAGES = ((PIXELS - 0.5) / 0.5).view(3, 1, 1, 2)
AD_MAPS = torch.tensor([[0.0, 1.0], [3.0, 1.0], [2.0, 2.0]]).view(3, 1, 2)  # 2nd: min-max → [1, 0]; 3rd constant → 0
AD_MODEL = PixelLinear(torch.tensor([[[1.0, -1.0]]]))
STATS = dict(mean=(0.5,), std=(0.5,))
# Y: z = 2, -1, -1;  masked pixels: [0, 0] (z 0), [0.5, 0] (z 1), [0, 0] (z 0)
Y = [sigmoid(2), sigmoid(-1), sigmoid(-1)]
O = [0.5, sigmoid(1), 0.5]


def test_average_drop_increase_gain_hand_computed():
    ad, details = average_drop(AD_MODEL, AD_IMAGES, AD_MAPS, 0, **STATS, return_details=True)
    assert details["score"].tolist() == pytest.approx(Y, abs=1e-6)
    assert details["masked_score"].tolist() == pytest.approx(O, abs=1e-6)
    assert ad.tolist() == pytest.approx([100 * (Y[0] - O[0]) / Y[0], 0.0, 0.0], abs=1e-4)
    ic = increase_in_confidence(AD_MODEL, AD_IMAGES, AD_MAPS, 0, **STATS)
    assert ic.tolist() == [0.0, 100.0, 100.0]
    ag = average_gain(AD_MODEL, AD_IMAGES, AD_MAPS, 0, **STATS)
    assert ag.tolist() == pytest.approx([0.0, 100 * (O[1] - Y[1]) / (1 - Y[1]), 100 * (O[2] - Y[2]) / (1 - Y[2])],
                                        abs=1e-4)
    assert torch.allclose(average_gain(AD_MODEL, AD_IMAGES, AD_MAPS, 0, **STATS, percent=False), ag / 100)


def test_masking_is_in_pixel_space_not_normalized_space():
    # the same map on the same normalized image under another normalization gives another O
    one = AD_IMAGES[:1]
    _, pixel = average_drop(AD_MODEL, one, AD_MAPS[:1], 0, **STATS, return_details=True)
    _, normalized = average_drop(AD_MODEL, one, AD_MAPS[:1], 0, mean=(0.0,), std=(1.0,), return_details=True)
    assert pixel["masked_score"].item() == pytest.approx(0.5, abs=1e-6)  # black pixels [0, 0]
    assert normalized["masked_score"].item() == pytest.approx(sigmoid(1.0), abs=1e-6)  # [1, -1] * [0, 1]


def test_ad_ic_against_grad_cam_package_with_identity_normalization():
    """pytorch-grad-cam's DropInConfidence is max(0, Y − O) *without* dividing by Y and masks
    the normalized tensor; with mean 0, std 1 and maps in [0, 1] the two agree up to that
    factor, which is the documented difference."""
    from pytorch_grad_cam.metrics import cam_mult_image as metrics
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputSoftmaxTarget

    model = tiny_conv().eval()
    g = torch.Generator().manual_seed(3)
    images, maps = torch.randn(4, 3, 8, 8, generator=g), torch.rand(4, 8, 8, generator=g)
    targets = [0, 1, 2, 1]
    gc_targets = [ClassifierOutputSoftmaxTarget(t) for t in targets]
    common = dict(mean=(0.0,), std=(1.0,), map_normalization="none")
    ad, details = average_drop(model, images, maps, targets, **common, return_details=True)
    theirs = metrics.DropInConfidence()(images, maps.numpy(), gc_targets, model)
    assert np.allclose(ad.numpy() / 100 * details["score"].numpy(), theirs, atol=1e-6)
    ic = increase_in_confidence(model, images, maps, targets, **common)
    assert np.allclose(ic.numpy() / 100, metrics.IncreaseInConfidence()(images, maps.numpy(), gc_targets, model))


def test_saturated_confidence_edges_are_zero_not_nan():
    model = PixelLinear(torch.tensor([[[100.0, -100.0]]]))
    images = ((torch.tensor([[1.0, 0.0], [0.0, 1.0]]) - 0.5) / 0.5).view(2, 1, 1, 2)  # z = 200, -200
    maps = torch.tensor([[1.0, 0.0], [1.0, 0.0]]).view(2, 1, 2)
    _, details = average_gain(model, images, maps, 0, **STATS, return_details=True)
    assert details["score"].tolist() == [1.0, 0.0]  # float32 softmax saturates
    assert average_gain(model, images, maps, 0, **STATS).tolist() == [0.0, 50.0]  # Y = 1 → 0; O = 0.5 → 50
    assert average_drop(model, images, maps, 0, **STATS).tolist() == [0.0, 0.0]  # Y = 0 → 0


def test_ad_family_errors_and_nan_maps():
    maps = AD_MAPS.clone()
    maps[1, 0, 0] = math.nan
    for fn in (average_drop, increase_in_confidence, average_gain):
        values = fn(AD_MODEL, AD_IMAGES, maps, 0, **STATS)
        assert math.isnan(values[1]) and not values[[0, 2]].isnan().any()
    with pytest.raises(ValueError, match="channels"):
        average_drop(AD_MODEL, AD_IMAGES, AD_MAPS, 0)  # ImageNet mean/std on 1-channel images
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        average_drop(AD_MODEL, AD_IMAGES, AD_MAPS, 0, **STATS, map_normalization="none")
    with pytest.raises(ValueError, match="map_normalization"):
        average_drop(AD_MODEL, AD_IMAGES, AD_MAPS, 0, **STATS, map_normalization="max")


# --------------------------------------------------------------------------- integration
def test_stateful_metric_keeps_curves_and_records_protocol():
    metric = Metric("deletion", steps=4)
    model = tiny_conv()
    for start in (0, 2):
        metric.update(model, torch.randn(2, 3, 8, 8), torch.rand(2, 8, 8), torch.tensor([0, 1]),
                      sample_ids=torch.arange(start, start + 2))
    summary = metric.compute()
    assert summary.count == 4 and summary.details["curve"].shape == (4, 5)
    assert summary.protocol["substrate"] == "zero" and summary.protocol["blur_kernel"] == "rise"
    assert Metric("average_gain").full_protocol["mean"] == pytest.approx([0.485, 0.456, 0.406])


def test_seethrough_model_output():
    model = seethrough.create_model("fc", num_classes=3, backbone="test_efficientnet", pretrained=False)
    images = torch.randn(2, 3, 32, 32)
    maps = torch.rand(2, 32, 32)  # the forward returns ModelOutput; logits_of picks .logits
    values = insertion(model, images, maps, 0, steps=4)
    ad = average_drop(model, images, maps, 0)
    assert values.shape == ad.shape == (2,) and bool(torch.isfinite(values).all() and torch.isfinite(ad).all())
