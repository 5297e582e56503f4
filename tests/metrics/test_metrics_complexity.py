"""Complexity metrics: Gini sparseness and entropy — hand-computed cases, an independent
formula, Quantus cross-checks, degenerate maps and NaN handling."""
from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch

import seethrough.metrics as metrics
from seethrough.metrics import Metric
from seethrough.metrics.complexity import entropy, sparseness


def _maps(batch=5, height=7, width=9, seed=0):
    generator = torch.Generator().manual_seed(seed)
    maps = torch.randn(batch, height, width, generator=generator)
    maps[1] = maps[1].abs() ** 4                                   # a peaked map
    maps[2, 2:4, 3:5] += 10.0                                      # a concentrated blob
    return maps


def test_registry_and_stateful_form():
    assert metrics.get_metric("sparseness") is sparseness and metrics.get_metric("entropy") is entropy
    maps = _maps()
    metric = Metric("sparseness")
    metric.update(None, torch.zeros(5, 3, 7, 9), maps, None, sample_ids=torch.arange(5))
    summary = metric.compute()
    torch.testing.assert_close(summary.values, sparseness(None, None, maps))
    assert summary.protocol == {"absolute": True} and summary.count == 5


# ---------------------------------------------------------------------------------------------
# sparseness (Gini)
# ---------------------------------------------------------------------------------------------

def _gini_mean_difference(values: np.ndarray) -> float:
    """Independent definition: G = Σ_i Σ_j |a_i − a_j| / (2 N² mean(a))."""
    a = np.abs(values.astype(np.float64).ravel())
    return float(np.abs(a[:, None] - a[None, :]).sum() / (2 * a.size ** 2 * a.mean()))


def test_sparseness_hand_computed():
    one_hot = torch.zeros(1, 2, 5)
    one_hot[0, 1, 3] = -4.0                                        # sign ignored (absolute=True)
    assert sparseness(None, None, one_hot).item() == pytest.approx(9 / 10)   # (N − 1) / N
    # [0, 0, 1, 3]: Σ (2i − 5) a_(i) = (1)(1) + (3)(3) = 10; / (4 · 4) = 0.625
    assert sparseness(None, None, torch.tensor([[[3.0, 0.0], [0.0, 1.0]]])).item() == pytest.approx(0.625)
    assert sparseness(None, None, torch.full((1, 3, 3), 2.0)).item() == pytest.approx(0.0, abs=1e-7)


def test_sparseness_equals_the_mean_difference_form():
    maps = _maps()
    expected = torch.tensor([_gini_mean_difference(m) for m in maps.numpy()], dtype=torch.float32)
    torch.testing.assert_close(sparseness(None, None, maps), expected)
    values = sparseness(None, None, maps)
    assert values[1] > values[0] and values[2] > values[0]         # peaked and blob maps are sparser


def test_sparseness_degenerate_and_errors():
    maps = torch.stack([torch.zeros(4, 4), torch.full((4, 4), -2.0), torch.rand(4, 4)])
    maps[2, 0, 0] = math.nan
    values = sparseness(None, torch.zeros(3, 1, 4, 4), maps)
    assert values[:2].tolist() == [0.0, 0.0]
    assert math.isnan(values[2])
    with pytest.raises(ValueError, match="absolute=True"):
        sparseness(None, None, torch.randn(2, 4, 4), absolute=False)
    nonneg = torch.rand(2, 4, 4)
    torch.testing.assert_close(sparseness(None, None, nonneg, absolute=False), sparseness(None, None, nonneg))
    with pytest.raises(ValueError, match="upsample the maps"):
        sparseness(None, torch.zeros(2, 3, 8, 8), nonneg)
    with pytest.raises(ValueError, match="B×H×W"):
        sparseness(None, None, torch.rand(2, 3, 4, 4))


# ---------------------------------------------------------------------------------------------
# entropy
# ---------------------------------------------------------------------------------------------

def test_entropy_hand_computed():
    n = 12
    assert entropy(None, None, torch.full((1, 3, 4), 0.7)).item() == pytest.approx(math.log(n))
    one_hot = torch.zeros(1, 3, 4)
    one_hot[0, 2, 1] = 5.0
    assert entropy(None, None, one_hot).item() == pytest.approx(0.0)
    # |[1, -1, 2, 0]| -> p = 1/4, 1/4, 1/2, 0 -> H = 2 · (1/4) ln 4 + (1/2) ln 2 = 1.5 ln 2
    assert entropy(None, None, torch.tensor([[[1.0, -1.0], [2.0, 0.0]]])).item() == pytest.approx(1.5 * math.log(2))


def test_entropy_degenerate_and_errors():
    maps = torch.stack([torch.zeros(4, 5), torch.full((4, 5), 3.0), torch.rand(4, 5)])
    maps[2, 1, 1] = math.inf
    values = entropy(None, None, maps)
    assert values[:2].tolist() == pytest.approx([math.log(20)] * 2)  # zero map = constant map = uniform
    assert math.isnan(values[2])
    with pytest.raises(ValueError, match="absolute=True"):
        entropy(None, None, -torch.rand(1, 3, 3), absolute=False)


def test_entropy_is_scale_invariant_and_lower_for_concentrated_maps():
    maps = _maps()
    torch.testing.assert_close(entropy(None, None, maps), entropy(None, None, 37.0 * maps))
    values = entropy(None, None, maps)
    assert values[1] < values[0] and values[2] < values[0]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_complexity_runs_on_the_maps_device():
    maps = _maps()
    for fn in (sparseness, entropy):
        got = fn(None, None, maps.cuda())
        assert got.device.type == "cuda"
        torch.testing.assert_close(got.cpu(), fn(None, None, maps))


# ---------------------------------------------------------------------------------------------
# cross-checks against Quantus (test-only dependency)
# ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def quantus():
    import quantus

    return quantus


def _quantus(metric_cls, maps):
    """Quantus complexity metric on (B,1,H,W) numpy batches with |a| (its default) and its
    normalisation off: it divides the whole batch by one maximum, which changes nothing in
    these scale-invariant values except the weight of its 1e-7 epsilon on small maps."""
    batch, height, width = maps.shape
    x = np.zeros((batch, 1, height, width), dtype=np.float32)
    metric = metric_cls(disable_warnings=True, abs=True, normalise=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scores = metric(model=None, x_batch=x, y_batch=np.zeros(batch, dtype=np.int64),
                        a_batch=maps[:, None].numpy().copy())
    return torch.tensor(np.asarray(scores, dtype=np.float64), dtype=torch.float32)


def test_sparseness_vs_quantus(quantus):
    maps = _maps(batch=6, seed=3)
    maps[4] = 0.0
    maps[4, 0, 0] = 1.0                                            # one-hot
    # Quantus adds 1e-7 to every |a| (normalised to max 1) before the Gini formula
    torch.testing.assert_close(sparseness(None, None, maps), _quantus(quantus.Sparseness, maps), atol=1e-5, rtol=0)
    # on purpose: an all-zero map is defined (0, the least sparse value); Quantus refuses it
    zero = torch.zeros(1, 7, 9)
    assert sparseness(None, None, zero).item() == 0.0
    with pytest.raises(AssertionError, match="all equal to zero"):
        _quantus(quantus.Sparseness, zero)


def test_entropy_vs_quantus(quantus):
    maps = _maps(batch=6, seed=4)
    maps[4, :, :4] = 0.0                                           # exact zeros: 0 ln 0 = 0 in both
    torch.testing.assert_close(entropy(None, None, maps), _quantus(quantus.Complexity, maps), atol=1e-5, rtol=0)
    # on purpose: an all-zero map is the uniform distribution here (ln N); Quantus refuses it
    zero = torch.zeros(1, 7, 9)
    assert entropy(None, None, zero).item() == pytest.approx(math.log(63))
    with pytest.raises(AssertionError, match="all equal to zero"):
        _quantus(quantus.Complexity, zero)
