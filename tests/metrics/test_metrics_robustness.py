"""Infidelity and max-/avg-sensitivity: cross-checked against Captum on identical noise."""
from __future__ import annotations

import math

import captum.metrics as captum_metrics
import pytest
import torch
from torch import nn

import seethrough
from seethrough.core.noise import sample_generator
from seethrough.metrics import Metric
from seethrough.metrics.robustness import (
    INFIDELITY_PRESETS,
    INFIDELITY_STREAM,
    SENSITIVITY_PRESETS,
    SENSITIVITY_STREAM,
    avg_sensitivity,
    infidelity,
    max_sensitivity,
)
from seethrough.models.output import ModelOutput

SIZE, CLASSES = 12, 3


class TinyCAM(nn.Module):
    """Two convolutions and a 1×1 class head: logits = spatial mean of the class maps."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 6, 3, padding=1)
        self.bn = nn.BatchNorm2d(6)
        self.conv2 = nn.Conv2d(6, 6, 3, padding=1)
        self.head = nn.Conv2d(6, CLASSES, 1)

    def forward(self, x: torch.Tensor) -> ModelOutput:
        features = torch.relu(self.conv2(torch.relu(self.bn(self.conv1(x)))))
        maps = self.head(features)
        return ModelOutput(logits=maps.mean(dim=(2, 3)), maps=maps)


@pytest.fixture
def setup():
    torch.manual_seed(0)
    model = TinyCAM().eval()
    images = torch.randn(3, 3, SIZE, SIZE)
    targets = torch.tensor([0, 2, 1])
    maps = seethrough.explain(model, images, targets)
    return model, images, maps, targets


def logits_fn(model):
    return lambda x: model(x).logits


# --------------------------------------------------------------------------- infidelity vs Captum
def captum_gaussian(n: int, std: float, ids, seed: int = 0):
    """Captum perturb_func drawing the documented noise: sample i's generator, one C×H×W
    ``std·randn`` per perturbation, rows in Captum's repeat_interleave order."""
    def perturb(inputs):
        gens = [sample_generator(seed, int(i), INFIDELITY_STREAM) for i in ids]
        noise = torch.stack([torch.randn(inputs.shape[1:], generator=gens[r // n])
                             for r in range(inputs.shape[0])]) * std
        return noise, inputs - noise
    return perturb


def captum_square(n: int, sizes, baseline: float, ids, seed: int = 0):
    """The documented square draw, written as a plain loop: u = rand(3); side by inverse CDF of
    P(s) ∝ (H−s+1)(W−s+1); corner floor(u·positions)."""
    def perturb(inputs):
        _, _, height, width = inputs.shape
        gens = [sample_generator(seed, int(i), INFIDELITY_STREAM) for i in ids]
        sides = list(range(sizes[0], sizes[1] + 1))
        weights = [(height - s + 1) * (width - s + 1) for s in sides]
        masks = torch.zeros(inputs.shape, dtype=torch.bool)
        for r in range(inputs.shape[0]):
            u = torch.rand(3, generator=gens[r // n], dtype=torch.float64).tolist()
            cumulative, side = 0.0, sides[-1]
            for s, w in zip(sides, weights):
                cumulative += w / sum(weights)
                if u[0] < cumulative:
                    side = s
                    break
            top, left = math.floor(u[1] * (height - side + 1)), math.floor(u[2] * (width - side + 1))
            masks[r, :, top:top + side, left:left + side] = True
        perturbation = (inputs - baseline) * masks
        return perturbation, inputs - perturbation
    return perturb


@pytest.mark.parametrize("normalize", [False, True])
def test_infidelity_gaussian_matches_captum(setup, normalize):
    model, images, maps, targets = setup
    n, std, ids = 6, 0.3, [5, 9, 2]
    ours = infidelity(model, images, maps, targets, sample_ids=ids, num_perturbations=n, std=std,
                      normalize=normalize, batch_size=4)
    theirs = captum_metrics.infidelity(logits_fn(model), captum_gaussian(n, std, ids), images,
                                       maps[:, None].expand_as(images), target=targets, n_perturb_samples=n,
                                       normalize=normalize)
    torch.testing.assert_close(ours, theirs.float(), rtol=1e-4, atol=1e-10)
    assert bool((ours > 0).all())


@pytest.mark.parametrize("normalize", [False, True])
def test_infidelity_square_matches_captum(setup, normalize):
    model, images, maps, targets = setup
    n, sizes, baseline, ids = 8, (2, 5), -0.5, [0, 1, 2]
    ours = infidelity(model, images, maps, targets, perturbation="square", num_perturbations=n, square_sizes=sizes,
                      baseline=baseline, normalize=normalize, batch_size=5)
    theirs = captum_metrics.infidelity(logits_fn(model), captum_square(n, sizes, baseline, ids), images,
                                       maps[:, None].expand_as(images), target=targets, n_perturb_samples=n,
                                       normalize=normalize)
    torch.testing.assert_close(ours, theirs.float(), rtol=1e-4, atol=1e-10)


def test_infidelity_log_prob_score_and_beta(setup):
    """The score is what the function differences: log-softmax of the target, by hand."""
    model, images, maps, targets = setup
    n = 4
    values, details = infidelity(model, images, maps, targets, num_perturbations=n, score="log_prob",
                                 return_details=True)
    noise = captum_gaussian(n, 0.2, [0, 1, 2])(images.repeat_interleave(n, 0))[0]
    with torch.no_grad():
        score = lambda x, t: torch.log_softmax(model(x).logits, 1).gather(1, t[:, None])[:, 0].double()
        diffs = (score(images, targets).repeat_interleave(n) - score(images.repeat_interleave(n, 0) - noise,
                                                                       targets.repeat_interleave(n))).view(3, n)
    dots = (noise.double() * maps.double().repeat_interleave(n, 0)[:, None]).flatten(1).sum(1).view(3, n)
    beta = (dots * diffs).sum(1) / (dots * dots).sum(1)
    torch.testing.assert_close(details["beta"], beta.float(), rtol=1e-4, atol=1e-7)
    torch.testing.assert_close(values, ((beta[:, None] * dots - diffs) ** 2).mean(1).float(), rtol=1e-4, atol=1e-12)


def test_infidelity_zero_map_scores_mean_squared_difference(setup):
    model, images, maps, targets = setup
    zero = torch.zeros_like(maps)
    plain = infidelity(model, images, zero, targets, num_perturbations=5, normalize=False)
    scaled, details = infidelity(model, images, zero, targets, num_perturbations=5, return_details=True)
    torch.testing.assert_close(plain, scaled)
    assert bool((details["beta"] == 0).all())
    # normalization makes the value invariant to the map's scale
    torch.testing.assert_close(infidelity(model, images, maps * 7.0, targets, num_perturbations=5),
                               infidelity(model, images, maps, targets, num_perturbations=5), rtol=1e-4, atol=1e-7)


# --------------------------------------------------------------------------- sensitivity vs Captum
def captum_uniform(n: int, ids, seed: int = 0):
    def perturb(inputs, radius):
        gens = [sample_generator(seed, int(i), SENSITIVITY_STREAM) for i in ids]
        delta = torch.stack([torch.empty(inputs.shape[1:]).uniform_(-radius, radius, generator=gens[r // n])
                             for r in range(inputs.shape[0])])
        return inputs + delta
    return perturb


def captum_explanation(model):
    def explanation(inputs, target):
        inputs = inputs[0] if isinstance(inputs, tuple) else inputs
        return (seethrough.explain(model, inputs, target),)
    return explanation


@pytest.mark.parametrize("norm", ["fro", "inf"])
def test_max_sensitivity_matches_captum(setup, norm):
    model, images, maps, targets = setup
    n, radius, ids = 5, 0.1, [3, 4, 8]
    ours = max_sensitivity(model, images, maps, targets, sample_ids=ids, num_samples=n, radius=radius, norm=norm,
                           batch_size=4)
    theirs = captum_metrics.sensitivity_max(captum_explanation(model), images, perturb_func=captum_uniform(n, ids),
                                            perturb_radius=radius, n_perturb_samples=n,
                                            norm_ord="fro" if norm == "fro" else math.inf, target=targets)
    torch.testing.assert_close(ours, theirs.float(), rtol=1e-4, atol=1e-6)
    assert bool((ours > 0).all())


def test_avg_sensitivity_is_mean_of_the_same_draws(setup):
    model, images, maps, targets = setup
    kwargs = dict(num_samples=4, radius=0.1)
    top, details = max_sensitivity(model, images, maps, targets, return_details=True, **kwargs)
    mean = avg_sensitivity(model, images, maps, targets, **kwargs)
    draws = details["sensitivities"]
    assert draws.shape == (3, 4)
    torch.testing.assert_close(mean, draws.mean(1))
    torch.testing.assert_close(top, draws.amax(1))
    assert bool((mean <= top).all()) and bool((mean < top).any())
    # the same draw by hand: ‖Φ(x+δ₀) − Φ(x)‖₁ / ‖Φ(x)‖₁ for sample 1 with the absolute variant too
    delta = captum_uniform(4, [0, 1, 2])(images.repeat_interleave(4, 0), 0.1)[4]
    moved = seethrough.explain(model, delta[None], targets[1:2])[0]
    expected = (moved - maps[1]).abs().sum()
    absolute = avg_sensitivity(model, images, maps, targets, norm="l1", relative=False, return_details=True,
                               **kwargs)[1]["sensitivities"]
    relative = avg_sensitivity(model, images, maps, targets, norm="l1", return_details=True,
                               **kwargs)[1]["sensitivities"]
    torch.testing.assert_close(absolute[1, 0], expected, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(relative[1, 0], expected / maps[1].abs().sum(), rtol=1e-4, atol=1e-6)


def test_sensitivity_zero_map_divides_by_one_and_callable_explainer(setup):
    model, images, _, targets = setup

    def constant(model, x, t, *, value=0.0):  # an explainer blind to the input
        return torch.full((x.shape[0], *x.shape[-2:]), value)

    zero = torch.zeros(3, SIZE, SIZE)
    assert bool((max_sensitivity(model, images, zero, targets, explainer=constant, num_samples=3) == 0).all())
    shifted = max_sensitivity(model, images, zero, targets, explainer=constant, explain_options={"value": 0.5},
                              num_samples=3)
    torch.testing.assert_close(shifted, torch.full((3,), 0.5 * SIZE))  # ‖0.5‖_F over 12×12, denominator 1


# --------------------------------------------------------------------------- shared behaviour
def test_batch_size_invariance(setup):
    model, images, maps, targets = setup
    ids = torch.tensor([10, 11, 12])
    for metric, kwargs in ((infidelity, {"num_perturbations": 5}), (max_sensitivity, {"num_samples": 3}),
                           (infidelity, {"num_perturbations": 5, "perturbation": "square"})):
        together = metric(model, images, maps, targets, sample_ids=ids, batch_size=7, **kwargs)
        alone = torch.cat([metric(model, images[i:i + 1], maps[i:i + 1], targets[i:i + 1], sample_ids=ids[i:i + 1],
                                  batch_size=2, **kwargs) for i in range(3)])
        torch.testing.assert_close(together, alone, rtol=1e-5, atol=1e-7)
        other = metric(model, images, maps, targets, sample_ids=ids + 1, **kwargs)
        assert not torch.allclose(together, other)


def test_nan_map_gives_nan_and_leaves_others(setup):
    model, images, maps, targets = setup
    broken = maps.clone()
    broken[1, 0, 0] = math.nan
    for metric in (infidelity, max_sensitivity, avg_sensitivity):
        clean = metric(model, images, maps, targets, **({"num_samples": 2} if metric is not infidelity
                                                         else {"num_perturbations": 3}))
        values = metric(model, images, broken, targets, **({"num_samples": 2} if metric is not infidelity
                                                            else {"num_perturbations": 3}))
        assert math.isnan(values[1]) and torch.equal(values[[0, 2]], clean[[0, 2]])


def test_training_flags_restored_and_stateful_form(setup):
    model, images, maps, targets = setup
    model.train()
    metric = Metric("infidelity", num_perturbations=3)
    metric.update(model, images, maps, targets, sample_ids=torch.tensor([0, 1, 2]))
    sensitivity = Metric("max_sensitivity", num_samples=2)
    sensitivity.update(model, images, maps, targets, sample_ids=torch.tensor([0, 1, 2]))
    assert model.training and model.bn.training
    summary = metric.compute()
    assert summary.count == 3 and set(summary.details) == {"beta"}
    assert sensitivity.compute().details["sensitivities"].shape == (3, 2)


def test_presets_are_valid_protocols(setup):
    model, images, maps, targets = setup
    for preset in INFIDELITY_PRESETS.values():
        infidelity(model, images[:1], maps[:1], targets[:1], **{**preset, "num_perturbations": 2,
                                                                "square_sizes": (1, 4)})
    for preset in SENSITIVITY_PRESETS.values():
        max_sensitivity(model, images[:1], maps[:1], targets[:1], **{**preset, "num_samples": 2})


def test_clear_errors(setup):
    model, images, maps, targets = setup
    with pytest.raises(ValueError, match="perturbation 'uniform'"):
        infidelity(model, images, maps, targets, perturbation="uniform")
    with pytest.raises(ValueError, match="square_sizes"):
        infidelity(model, images, maps, targets, perturbation="square", square_sizes=(1, SIZE + 1))
    with pytest.raises(ValueError, match="norm 'l3'"):
        max_sensitivity(model, images, maps, targets, norm="l3")
    with pytest.raises(ValueError, match="runs the model"):
        infidelity(None, images, maps, targets)
    with pytest.raises(ValueError, match="explainer returned maps of shape"):
        max_sensitivity(model, images, maps, targets, num_samples=1,
                        explainer=lambda m, x, t: torch.zeros(x.shape[0], 3, 3))


def test_explainers_with_sample_ids_get_the_source_sample(setup):
    """RISE-like explainers re-explain with the masks of the sample the perturbed row comes from."""
    model, images, maps, targets = setup
    seen = []

    def recording(model, x, t, sample_ids=None):
        seen.append(sample_ids.tolist())
        return torch.zeros(x.shape[0], *x.shape[-2:])

    max_sensitivity(model, images, maps, targets, sample_ids=[7, 8, 9], num_samples=2, batch_size=4,
                    explainer=recording)
    assert seen == [[7, 7, 8, 8], [9, 9]]
    ids = torch.tensor([4, 5, 6])
    options = {"num_masks": 40, "batch_size": 40}
    rise = seethrough.explain(model, images, targets, method="rise", sample_ids=ids, **options)
    tiny = max_sensitivity(model, images, rise, targets, sample_ids=ids, radius=1e-6, num_samples=2,
                           explainer="rise", explain_options=options)
    other_masks = max_sensitivity(model, images, rise, targets, sample_ids=ids, radius=1e-6, num_samples=2,
                                  explainer="rise", explain_options={**options, "seed": 1})
    assert bool((tiny < 1e-3).all()) and bool((other_masks > 10 * tiny.max()).all())
