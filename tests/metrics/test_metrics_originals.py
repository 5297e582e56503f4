"""Options that reproduce the originals' metric definitions (issue #12, item 7): Yeh et al.'s
infidelity perturbation and pixel space, the scored class of faithfulness metrics, area size
at the map's resolution with SCOUTER's uint8 PNG."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from seethrough.core.noise import INFIDELITY_STREAM, sample_generator
from seethrough.metrics import Metric
from seethrough.metrics.faithfulness import average_drop, deletion, insertion
from seethrough.metrics.localization import area_size
from seethrough.metrics.robustness import infidelity, max_sensitivity
from seethrough.models.output import ModelOutput

SIZE, CLASSES = 8, 3
MEAN, STD = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)


class TinyCAM(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.head = nn.Conv2d(4, CLASSES, 1)

    def forward(self, x: torch.Tensor) -> ModelOutput:
        maps = self.head(torch.relu(self.conv(x)))
        return ModelOutput(logits=maps.mean(dim=(2, 3)), maps=maps)


class TinyGrey(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3)).repeat(1, CLASSES) * torch.arange(1.0, CLASSES + 1)


@pytest.fixture
def setup():
    torch.manual_seed(0)
    model = TinyCAM().eval()
    pixels = torch.rand(2, 3, SIZE, SIZE)
    images = (pixels - torch.tensor(MEAN)[:, None, None]) / torch.tensor(STD)[:, None, None]
    maps = torch.rand(2, SIZE, SIZE)
    targets = torch.tensor([0, 2])
    return model, images, maps, targets


def yeh_infidelity_by_hand(model, images, maps, targets, ids, n, sigma=0.2, seed=0):
    """Yeh et al. (NeurIPS 2019) Gaussian infidelity as their paper/code define it, one sample
    and one draw at a time in numpy: pixels x in [0, 1], I = min(x, max(x − 1, x + σz)),
    Δf = f(x) − f(x − I), IᵀΦ summed over channels, optimal β, mean squared error."""
    mean, std = np.array(MEAN)[:, None, None], np.array(STD)[:, None, None]
    out = []
    for b in range(images.shape[0]):
        generator = sample_generator(seed, ids[b], INFIDELITY_STREAM)
        x = images[b].double().numpy() * std + mean
        phi = maps[b].double().numpy()
        with torch.no_grad():
            clean = float(model(images[b:b + 1]).logits[0, targets[b]])
        dots, diffs = [], []
        for _ in range(n):
            z = torch.randn(images.shape[1:], generator=generator).double().numpy()
            drawn = sigma * z + x
            big_i = np.minimum(x, np.maximum(x - 1, drawn))
            perturbed = x - big_i
            assert np.allclose(perturbed, np.clip(-sigma * z, 0, 1))      # the noisy black baseline
            model_input = torch.from_numpy((perturbed - mean) / std).float()[None]
            with torch.no_grad():
                diffs.append(clean - float(model(model_input).logits[0, targets[b]]))
            dots.append(float((big_i * phi[None]).sum()))
        dots, diffs = np.array(dots), np.array(diffs)
        beta = (dots * diffs).mean() / (dots * dots).mean()
        out.append(((beta * dots - diffs) ** 2).mean())
    return torch.tensor(out, dtype=torch.float32)


def test_yeh_infidelity_matches_an_independent_implementation(setup):
    model, images, maps, targets = setup
    ids, n = [3, 11], 7
    ours = infidelity(model, images, maps, targets, sample_ids=ids, perturbation="yeh", space="pixel",
                      num_perturbations=n, norm_mean=MEAN, norm_std=STD, batch_size=5)
    torch.testing.assert_close(ours, yeh_infidelity_by_hand(model, images, maps, targets, ids, n),
                               rtol=2e-3, atol=1e-7)


def test_yeh_and_captum_gaussian_perturbations_differ_and_yeh_needs_pixel_space(setup):
    model, images, maps, targets = setup
    common = dict(sample_ids=[3, 11], num_perturbations=7, norm_mean=MEAN, norm_std=STD)
    yeh = infidelity(model, images, maps, targets, perturbation="yeh", space="pixel", **common)
    gaussian = infidelity(model, images, maps, targets, perturbation="gaussian", space="pixel", **common)
    normalized = infidelity(model, images, maps, targets, perturbation="gaussian", **common)
    assert not torch.allclose(yeh, gaussian) and not torch.allclose(gaussian, normalized)
    with pytest.raises(ValueError, match='perturbation "yeh" .* needs space="pixel"'):
        infidelity(model, images, maps, targets, perturbation="yeh", **common)
    with pytest.raises(ValueError, match="unknown space 'pixels'"):
        infidelity(model, images, maps, targets, space="pixels", **common)
    with pytest.raises(ValueError, match="norm_std has 2 values but the images have 3 channels; pass norm_std="):
        infidelity(model, images, maps, targets, perturbation="yeh", space="pixel",
                   **{**common, "norm_std": (0.2, 0.3)})
    grey = images[:, :1]                                   # the normalized space needs no statistics
    assert infidelity(TinyGrey(), grey, maps, targets, num_perturbations=2).shape == (2,)


def test_pixel_space_sensitivity_is_the_normalized_radius_divided_by_std(setup):
    """δ ~ U[−r, r] in pixels is δ/std in the normalized space (one std for every channel)."""
    model, images, maps, targets = setup
    std = 0.25
    common = dict(sample_ids=[1, 4], num_samples=4, explainer="native")
    pixel = max_sensitivity(model, images, maps, targets, space="pixel", radius=0.2, norm_mean=MEAN,
                            norm_std=(std,) * 3, **common)
    scaled = max_sensitivity(model, images, maps, targets, radius=0.2 / std, **common)
    plain = max_sensitivity(model, images, maps, targets, radius=0.2, **common)
    torch.testing.assert_close(pixel, scaled, rtol=1e-4, atol=1e-6)
    assert not torch.allclose(pixel, plain)


class Fixed(nn.Module):
    """Logits that do not depend much on the input: class 1 always wins."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.tensor([0.5, 0.0, -0.5]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(dim=(1, 2, 3))[:, None]
        return torch.tensor([0.0, 3.0, 0.0]) + mean * self.weight


@pytest.mark.parametrize("metric", [insertion, deletion, average_drop])
def test_score_target_predicted_scores_the_clean_argmax(setup, metric):
    _, images, maps, _ = setup
    model = Fixed().eval()
    explained = torch.tensor([0, 2])                 # not the prediction (class 1)
    options = {"steps": 4} if metric is not average_drop else {"mean": MEAN, "std": STD}
    as_explained = metric(model, images, maps, explained, **options)
    predicted = metric(model, images, maps, explained, score_target="predicted", **options)
    by_hand = metric(model, images, maps, torch.tensor([1, 1]), **options)
    torch.testing.assert_close(predicted, by_hand)
    assert not torch.allclose(predicted, as_explained)
    with pytest.raises(ValueError, match="unknown score_target 'argmax'; valid: explained, predicted"):
        metric(model, images, maps, explained, score_target="argmax", **options)


def test_area_size_at_map_resolution_with_scouters_uint8_png():
    low = torch.tensor([[[0.0, 0.5], [0.999, 1.0]]])                # a 2×2 map in [0, 1]
    image_size = torch.nn.functional.interpolate(low[:, None], size=(6, 6), mode="bilinear",
                                                 align_corners=False)[:, 0]
    png = (0 + 127 + 254 + 255) / (4 * 255)                          # uint8(255·m) truncates
    original = area_size(None, None, image_size, normalize=False, resolution="map", quantize="uint8",
                         low_res_maps=low)
    assert float(original) == pytest.approx(png, abs=1e-7)
    at_map = area_size(None, None, image_size, normalize=False, resolution="map", low_res_maps=low)
    assert float(at_map) == pytest.approx((0.5 + 0.999 + 1.0) / 4, abs=1e-7)
    upsampled = area_size(None, None, image_size, normalize=False)
    assert float(upsampled) == pytest.approx(float(image_size.mean()), abs=1e-7)
    assert float(original) != pytest.approx(float(at_map), abs=1e-4)
    corner = torch.zeros(1, 3, 3)
    corner[0, 0, 0] = 1.0                                             # upsampling changes this map's mean
    big = torch.nn.functional.interpolate(corner[:, None], size=(8, 8), mode="bilinear", align_corners=False)[:, 0]
    assert float(area_size(None, None, big, normalize=False, resolution="map", low_res_maps=corner)) == \
        pytest.approx(1 / 9)
    assert float(area_size(None, None, big, normalize=False)) != pytest.approx(1 / 9, abs=1e-3)
    with pytest.raises(ValueError, match="resolution='map' needs the maps at the model's grid"):
        area_size(None, None, image_size, resolution="map")


def test_stateful_area_size_passes_low_res_maps_and_does_not_record_them():
    metric = Metric("area_size", resolution="map", quantize="uint8", normalize=False)
    low = torch.full((1, 2, 2), 0.5)
    values = metric.update(None, torch.zeros(1, 3, 4, 4), torch.zeros(1, 4, 4), torch.zeros(1, dtype=torch.long),
                           sample_ids=torch.tensor([0]), low_res_maps=low)
    assert float(values[0]) == pytest.approx(127 / 255)
    assert "low_res_maps" not in metric.full_protocol and metric.full_protocol["resolution"] == "map"


def test_castream_gkern_5_5_is_a_uniform_box_unlike_a_truncated_gaussian():
    """CA-Stream's insertion blur gkern(5, 5): scipy's reflect-folded Gaussian of a 5×5 delta
    (blur_kernel "rise"), 1/25 everywhere to within 3e-6; the truncated Gaussian is not."""
    from seethrough.metrics.substrates import blur_kernel2d

    box = blur_kernel2d(5, 5.0, kind="rise")
    torch.testing.assert_close(box, torch.full((5, 5), 0.04, dtype=torch.float64), rtol=0, atol=3e-6)
    assert not torch.allclose(blur_kernel2d(5, 5.0, kind="gaussian"), box, atol=1e-4)


def test_upsampled_map_as_is_differs_from_a_second_minmax(setup):
    """CA-Stream's AD/IC/AG mask with the bilinear upsampling of a map min-maxed at the grid
    (map_normalization "none"); the default min-maxes again after upsampling."""
    model, images, _, targets = setup
    grid = torch.tensor([[[0.5, 0.2, 0.6], [0.0, 1.0, 0.3], [0.7, 0.4, 0.5]]]).repeat(2, 1, 1)   # extremes inside
    up = torch.nn.functional.interpolate(grid[:, None], size=(SIZE, SIZE), mode="bilinear", align_corners=False)[:, 0]
    assert float(up.min()) > 0 or float(up.max()) < 1                 # the upsampled map is not min-maxed
    as_is = average_drop(model, images, up, targets, mean=MEAN, std=STD, map_normalization="none",
                         return_details=True)[1]["masked_score"]
    again = average_drop(model, images, up, targets, mean=MEAN, std=STD, return_details=True)[1]["masked_score"]
    assert not torch.allclose(as_is, again)
