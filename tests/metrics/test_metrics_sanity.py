"""Model-parameter randomization and the map similarities (Spearman vs scipy, SSIM vs skimage)."""
from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import scipy.stats as scipy_stats
import skimage.metrics as skimage_metrics
import torch
from torch import nn

import seethrough
from seethrough.metrics import Metric
from seethrough.metrics.sanity import randomization_check, randomization_layers, randomize_layer
from seethrough.metrics.similarity import average_ranks, spearman, ssim
from seethrough.models.output import ModelOutput

SIZE, CLASSES = 16, 3


class Gain(nn.Module):
    """A learnable per-channel gain: own parameter, no ``reset_parameters`` (normal fallback)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.gain = nn.Parameter(torch.linspace(0.5, 1.5, channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gain[:, None, None]


class TinyCAM(nn.Module):
    """conv → BN → ReLU → conv → gain → ReLU → 1×1 class head; logits = mean of the class maps."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 6, 3, padding=1)
        self.bn = nn.BatchNorm2d(6)   # fresh: re-initializing it changes nothing (a no-op step)
        self.conv2 = nn.Conv2d(6, 6, 3, padding=1)
        self.gain = Gain(6)
        self.head = nn.Conv2d(6, CLASSES, 1)

    def forward(self, x: torch.Tensor) -> ModelOutput:
        features = torch.relu(self.gain(self.conv2(torch.relu(self.bn(self.conv1(x))))))
        maps = self.head(features)
        return ModelOutput(logits=maps.mean(dim=(2, 3)), maps=maps)


@pytest.fixture
def setup():
    torch.manual_seed(0)
    model = TinyCAM().eval()
    images = torch.randn(4, 3, SIZE, SIZE)
    images[:, :, 4:9, 6:12] += 2.0   # a bright object the maps can follow
    targets = torch.tensor([0, 1, 2, 0])
    return model, images, seethrough.explain(model, images, targets), targets


# --------------------------------------------------------------------------- similarities
def test_spearman_matches_scipy_with_ties_and_signs():
    torch.manual_seed(1)
    a = torch.randn(4, 9, 7)
    b = a + torch.randn(4, 9, 7)
    a[0] = (a[0] * 2).round()            # many ties
    b[1] = (b[1] * 3).round().clamp(min=0)
    for absolute in (False, True):
        ours = spearman(a, b, absolute=absolute)
        prep = (lambda t: t.abs()) if absolute else (lambda t: t)
        expected = [scipy_stats.spearmanr(prep(a[i]).flatten().numpy(), prep(b[i]).flatten().numpy())[0]
                    for i in range(4)]
        torch.testing.assert_close(ours, torch.tensor(expected, dtype=torch.float32), rtol=1e-5, atol=1e-6)
    assert not torch.allclose(spearman(a, b), spearman(a, b, absolute=True))
    ranks = average_ranks(a.flatten(1).double())
    expected_ranks = np.stack([scipy_stats.rankdata(row) for row in a.flatten(1).numpy()])
    np.testing.assert_allclose(ranks.numpy(), expected_ranks)


def test_spearman_constant_maps_convention():
    varying = torch.arange(12.0).view(1, 3, 4)
    constant = torch.full((1, 3, 4), 0.25)
    assert spearman(constant, constant).item() == 1.0
    assert spearman(varying, constant).item() == 0.0 and spearman(constant, varying).item() == 0.0
    assert spearman(varying, -varying).item() == pytest.approx(-1.0)


def test_ssim_matches_skimage():
    torch.manual_seed(2)
    a = torch.rand(3, 14, 21)
    b = (a + 0.3 * torch.rand(3, 14, 21)).clamp(0, 1)
    b[2] = torch.rand(14, 21)
    ours = ssim(a, b)
    expected = [skimage_metrics.structural_similarity(a[i].double().numpy(), b[i].double().numpy(),
                                                      gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                                      data_range=1.0) for i in range(3)]
    torch.testing.assert_close(ours, torch.tensor(expected, dtype=torch.float32), rtol=1e-5, atol=1e-6)
    assert ours[0] > 0.5 > ours[2]
    torch.testing.assert_close(ssim(a, a), torch.ones(3))
    with pytest.raises(ValueError, match="11×11 window"):
        ssim(torch.rand(1, 8, 8), torch.rand(1, 8, 8))


# --------------------------------------------------------------------------- randomization
def test_layers_default_order_is_top_down(setup):
    model = setup[0]
    assert randomization_layers(model) == ["head", "gain", "conv2", "bn", "conv1"]


def test_original_model_untouched(setup):
    model, images, maps, targets = setup
    model.train()
    model.bn.eval()
    before = {key: value.clone() for key, value in model.state_dict().items()}
    flags = [m.training for m in model.modules()]
    for mode in ("cascading", "independent"):
        randomization_check(model, images, maps, targets, mode=mode, return_details=True)
    after = model.state_dict()
    assert all(torch.equal(before[key], after[key]) for key in before)
    assert flags == [m.training for m in model.modules()]


@pytest.mark.parametrize("mode", ["cascading", "independent"])
@pytest.mark.parametrize("similarity", ["spearman", "ssim"])
def test_noop_randomization_gives_one_full_randomization_gives_low(setup, mode, similarity):
    model, images, maps, targets = setup
    noop = randomization_check(model, images, maps, targets, mode=mode, similarity=similarity, layers=["bn"])
    torch.testing.assert_close(noop, torch.ones(4), rtol=0, atol=1e-5)
    full = randomization_check(model, images, maps, targets, mode="cascading", similarity=similarity)
    assert full.abs().mean() < 0.3, full
    assert bool((full < 0.9).all())


def test_details_follow_the_layers(setup):
    model, images, maps, targets = setup
    names = randomization_layers(model)
    values, details = randomization_check(model, images, maps, targets, return_details=True)
    steps = details["similarities"]
    assert steps.shape == (4, len(names))
    torch.testing.assert_close(values, steps[:, -1])
    torch.testing.assert_close(values, randomization_check(model, images, maps, targets))
    bn = names.index("bn")
    torch.testing.assert_close(steps[:, bn], steps[:, bn - 1])  # the fresh BN step changes nothing
    # a block name covers every parameterized module inside it, seeded by the modules' names
    torch.testing.assert_close(values, randomization_check(model, images, maps, targets, layers=[""]))

    _, independent = randomization_check(model, images, maps, targets, mode="independent", return_details=True)
    for k, name in enumerate(names):
        alone = randomization_check(model, images, maps, targets, mode="independent", layers=[name])
        torch.testing.assert_close(independent["similarities"][:, k], alone)
    torch.testing.assert_close(independent["similarities"][:, 0], steps[:, 0])  # first step is the same in both


def test_batch_invariance_and_seed(setup):
    model, images, maps, targets = setup
    together = randomization_check(model, images, maps, targets, similarity="ssim")
    alone = torch.cat([randomization_check(model, images[i:i + 1], maps[i:i + 1], targets[i:i + 1], similarity="ssim")
                       for i in range(4)])
    torch.testing.assert_close(together, alone, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(together, randomization_check(model, images, maps, targets, similarity="ssim", seed=1))
    metric = Metric("randomization_check", similarity="ssim")
    metric.update(model, images, maps, targets, sample_ids=torch.arange(4))
    torch.testing.assert_close(metric.compute().values, together)


def test_sample_ids_reach_explainers_that_take_them(setup):
    model, images, maps, targets = setup
    seen = []

    def recording(model, x, t, sample_ids=None):
        seen.append(sample_ids.tolist())
        return model(x).maps.gather(1, t[:, None, None, None].expand(-1, 1, *x.shape[-2:]))[:, 0]

    randomization_check(model, images, maps, targets, explainer=recording, sample_ids=[3, 1, 4, 1])
    assert seen == [[3, 1, 4, 1]]


def test_reinitialization_rules(setup):
    model = setup[0]
    first, second, other = (copy.deepcopy(model) for _ in range(3))
    randomize_layer(first, "gain", seed=3)
    randomize_layer(second, "gain", seed=3)
    randomize_layer(other, "gain", seed=4)
    assert torch.equal(first.gain.gain, second.gain.gain)
    assert not torch.equal(first.gain.gain, other.gain.gain)
    assert not torch.equal(first.gain.gain, model.gain.gain)
    # fallback: N(0, s²) with the trained spread s — and reset_parameters for conv layers
    model.gain.gain.data = torch.full((6,), 2.0)                # no spread → std 1
    flat = copy.deepcopy(model)
    randomize_layer(flat, "gain")
    assert flat.gain.gain.std() > 0.2
    conv = copy.deepcopy(model)
    randomize_layer(conv, "conv1", init="normal")
    assert abs(float(conv.conv1.weight.detach().std()) - float(model.conv1.weight.detach().std())) < 0.1
    assert not torch.equal(conv.conv1.weight, model.conv1.weight)


def test_nan_maps_and_errors(setup):
    model, images, maps, targets = setup
    broken = maps.clone()
    broken[2, 3, 3] = math.inf
    values = randomization_check(model, images, broken, targets)
    assert math.isnan(values[2]) and bool(torch.isfinite(values[[0, 1, 3]]).all())
    with pytest.raises(ValueError, match="no module named 'nope'"):
        randomization_check(model, images, maps, targets, layers=["nope"])
    with pytest.raises(ValueError, match="unknown mode"):
        randomization_check(model, images, maps, targets, mode="bottom_up")
    with pytest.raises(ValueError, match="11×11 window"):
        randomization_check(model, images[:, :, :8, :8], maps[:, :8, :8], targets, similarity="ssim")


def test_seethrough_fc_model_with_native_maps():
    torch.manual_seed(0)
    model = seethrough.create_model("fc", num_classes=3, backbone="test_efficientnet", pretrained=False,
                                    output_stride=8)
    images, targets = torch.randn(2, 3, 32, 32), torch.tensor([0, 1])
    before = {key: value.clone() for key, value in model.state_dict().items()}
    maps = seethrough.explain(model, images, targets)
    values = randomization_check(model, images, maps, targets)
    assert bool(torch.isfinite(values).all()) and bool((values < 0.9).all())
    assert all(torch.equal(before[key], value) for key, value in model.state_dict().items())
