"""RISE: the official mask construction, the Monte-Carlo formula, per-sample seeding, a known answer."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

import seethrough
from seethrough.explanations.rise import (
    KEEP_PROB,
    draw_masks,
    rise_maps,
    smooth_masks,
    upsample_matrix,
)

SIZE = 16


class RegionModel(nn.Module):
    """Class 0's logit reads only the top-left ``REGION×REGION`` pixels; class 1's logit is 0."""

    REGION, GAIN = 6, 12.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        evidence = self.GAIN * (x[:, :, : self.REGION, : self.REGION].mean(dim=(1, 2, 3)) - 0.5)
        return torch.stack([evidence, torch.zeros_like(evidence)], dim=1)


class TinyClassifier(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.relu(self.bn(self.conv(x))).mean(dim=(2, 3)))


def _images(batch: int, seed: int = 1) -> torch.Tensor:
    return torch.randn(batch, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(seed))


def test_upsampling_matches_the_official_skimage_resize():
    from skimage import transform
    rng = np.random.default_rng(0)
    for cells, size in [(7, 224), (8, 32), (3, 17), (1, 6)]:
        grid = (rng.random((cells, cells)) < 0.5).astype("float32")
        expected = transform.resize(grid, (size, size), order=1, mode="reflect", anti_aliasing=False)
        weights = upsample_matrix(cells, size)
        got = (weights @ torch.from_numpy(grid) @ weights.T).numpy()
        np.testing.assert_allclose(got, expected, atol=1e-6)


def test_masks_are_the_official_crop_of_the_upsampled_grid():
    from skimage import transform
    s, height = 4, 10
    cell = math.ceil(height / s)
    grids, shifts = draw_masks(torch.tensor([3]), 5, s, 0.5, (cell, cell), seed=2)
    rows = cols = upsample_matrix(s, (s + 1) * cell)
    offsets = torch.arange(height)
    masks = smooth_masks(grids[0], shifts[0], rows, cols, offsets, offsets)
    for grid, (dy, dx), mask in zip(grids[0].numpy(), shifts[0].tolist(), masks.numpy()):
        up = transform.resize(grid, ((s + 1) * cell,) * 2, order=1, mode="reflect", anti_aliasing=False)
        np.testing.assert_allclose(mask, up[dy:dy + height, dx:dx + height], atol=1e-6)
    assert shifts.min() >= 0 and shifts.max() < cell


def test_saliency_is_the_monte_carlo_formula():
    model, images, targets = TinyClassifier().eval(), _images(2), torch.tensor([2, 0])
    n, s, p = 12, 4, 0.3
    got = rise_maps(model, images, targets, num_masks=n, grid_size=s, keep_prob=p, batch_size=5, seed=3)
    cell = math.ceil(SIZE / s)
    grids, shifts = draw_masks(torch.arange(2), n, s, p, (cell, cell), seed=3)
    weights, offsets = upsample_matrix(s, (s + 1) * cell), torch.arange(SIZE)
    for b in range(2):
        masks = smooth_masks(grids[b], shifts[b], weights, weights, offsets, offsets)   # N×H×W
        with torch.no_grad():
            probs = torch.softmax(model(images[b] * masks[:, None]), dim=1)[:, targets[b]]
        expected = (probs[:, None, None] * masks).sum(dim=0) / (n * p)
        torch.testing.assert_close(got[b], expected, rtol=1e-5, atol=1e-6)


def test_same_sample_id_gives_the_same_map_in_any_batch():
    model, images = TinyClassifier().eval(), _images(4)
    targets, ids = torch.tensor([0, 1, 2, 1]), torch.tensor([10, 11, 12, 13])
    options = dict(num_masks=20, grid_size=4, seed=5)
    together = rise_maps(model, images, targets, sample_ids=ids, batch_size=7, **options)
    alone = rise_maps(model, images[2:3], targets[2:3], sample_ids=ids[2:3], batch_size=3, **options)
    torch.testing.assert_close(together[2], alone[0], rtol=1e-5, atol=1e-6)
    # a different id or seed draws different masks
    other_id = rise_maps(model, images[2:3], targets[2:3], sample_ids=[99], **options)
    other_seed = rise_maps(model, images[2:3], targets[2:3], sample_ids=ids[2:3], **{**options, "seed": 6})
    assert not torch.allclose(other_id, alone) and not torch.allclose(other_seed, alone)


def test_saliency_is_highest_where_the_model_looks():
    region = RegionModel.REGION
    images = torch.ones(2, 3, SIZE, SIZE)
    maps = rise_maps(RegionModel(), images, torch.tensor([0, 0]), num_masks=400, grid_size=4, seed=0)
    inside = torch.zeros(SIZE, SIZE, dtype=torch.bool)
    inside[:region, :region] = True
    for sal in maps:
        assert sal[inside].mean() > sal[~inside].mean() + 0.1
        assert inside.flatten()[sal.argmax()]
    # the other class's probability falls when the region is kept: its saliency is lowest there
    other = rise_maps(RegionModel(), images, torch.tensor([1, 1]), num_masks=400, grid_size=4, seed=0)
    assert other[0][inside].mean() < other[0][~inside].mean() - 0.1


def test_masks_keep_about_p_of_the_pixels():
    grids, shifts = draw_masks(torch.arange(1), 500, 7, KEEP_PROB, (3, 3))
    weights, offsets = upsample_matrix(7, 24), torch.arange(20)
    masks = smooth_masks(grids[0], shifts[0], weights, weights, offsets, offsets)
    assert masks.min() >= 0 and masks.max() <= 1
    assert abs(float(masks.mean()) - KEEP_PROB) < 0.03


def test_substrate_fills_masked_pixels():
    model, images, targets = TinyClassifier().eval(), _images(2), torch.tensor([0, 1])
    options = dict(num_masks=10, grid_size=4)
    zeros = rise_maps(model, images, targets, **options)
    torch.testing.assert_close(rise_maps(model, images, targets, substrate=torch.zeros(3, 1, 1), **options), zeros)
    filled = rise_maps(model, images, targets, substrate=0.5, **options)
    per_image = rise_maps(model, images, targets, substrate=torch.full((2, 3, SIZE, SIZE), 0.5), **options)
    assert not torch.allclose(filled, zeros)
    torch.testing.assert_close(per_image, filled)


def test_rise_through_explain_and_option_errors():
    model, images = TinyClassifier(), _images(2)
    model.train()
    maps = seethrough.explain(model, images, "pred", method="rise", num_masks=8, grid_size=4)
    assert maps.shape == (2, SIZE, SIZE) and maps.min() >= 0 and maps.max() <= 1
    assert model.training and model.bn.training
    for bad in [dict(num_masks=0), dict(grid_size=0), dict(keep_prob=0.0), dict(keep_prob=1.5),
                dict(batch_size=0), dict(score="softmax"), dict(substrate=torch.zeros(5, 1, 1)),
                dict(substrate=float("nan")), dict(sample_ids=[1, 2, 3])]:
        with pytest.raises(ValueError):
            rise_maps(model, images, torch.tensor([0, 1]), **{"num_masks": 4, **bad})
