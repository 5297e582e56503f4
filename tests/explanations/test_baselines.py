"""Sanity baselines: random (seeded per sample), center (a Gaussian), edges (Sobel magnitude)."""
import pytest
import torch

import seethrough
from seethrough.explanations.baselines import center_maps, edge_maps, random_maps


def test_random_maps_follow_the_sample_not_the_batch_position():
    images = torch.zeros(3, 3, 8, 8)
    first = random_maps(None, images, torch.zeros(3), sample_ids=torch.tensor([5, 6, 7]))
    again = random_maps(None, images[:1], torch.zeros(1), sample_ids=torch.tensor([6]))
    assert first.shape == (3, 8, 8) and 0 <= first.min() and first.max() < 1
    torch.testing.assert_close(first[1], again[0])
    assert not torch.equal(first[0], first[1])
    other_seed = random_maps(None, images[:1], torch.zeros(1), sample_ids=torch.tensor([6]), seed=1)
    assert not torch.equal(other_seed[0], again[0])


def test_center_map_is_a_centred_gaussian():
    maps = center_maps(None, torch.zeros(2, 3, 9, 9), torch.zeros(2), sigma=0.25)
    assert maps.shape == (2, 9, 9) and torch.equal(maps[0], maps[1])
    assert maps[0].argmax() == 4 * 9 + 4 and maps[0, 4, 4] == 1.0
    # one pixel off the centre: exp(-(1/9)² / (2·0.25²))
    assert maps[0, 4, 5].item() == pytest.approx(torch.exp(torch.tensor(-(1 / 9) ** 2 / 0.125)).item())
    torch.testing.assert_close(maps[0], maps[0].flip(0).flip(1))
    with pytest.raises(ValueError, match="sigma must be positive"):
        center_maps(None, torch.zeros(1, 3, 9, 9), torch.zeros(1), sigma=0)


def test_edges_are_zero_on_flat_images_and_peak_on_a_step():
    flat = torch.full((1, 3, 8, 8), 0.3)
    assert torch.equal(edge_maps(None, flat, torch.zeros(1)), torch.zeros(1, 8, 8))
    step = torch.zeros(1, 3, 8, 8)
    step[..., 4:] = 1.0
    edges = edge_maps(None, step, torch.zeros(1))[0]
    assert (edges[:, 3:5] == 4.0).all() and (edges[:, :2] == 0).all() and (edges[:, 6:] == 0).all()


def test_baselines_run_through_explain_for_any_model():
    model = seethrough.create_model("fc", num_classes=3, backbone="test_efficientnet").eval()
    images = torch.randn(2, 3, 32, 32)
    for method in ("random", "center", "edges"):
        maps = seethrough.explain(model, images, "pred", method=method)
        assert maps.shape == (2, 32, 32) and 0 <= maps.min() and maps.max() <= 1
