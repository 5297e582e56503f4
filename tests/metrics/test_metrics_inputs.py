"""Shared metric input checks: map shapes, non-finite maps, targets, boxes → union masks."""
from __future__ import annotations

import pytest
import torch

from seethrough.core.inputs import boxes_to_mask, check_maps, check_targets, ground_truth_mask
from seethrough.core.noise import per_sample, sample_generator


def test_check_maps_accepts_b1hw_and_flags_non_finite_samples():
    images = torch.zeros(3, 3, 4, 5)
    maps = torch.rand(3, 1, 4, 5)
    maps[1, 0, 2, 2] = float("nan")
    maps[2, 0, 0, 0] = float("inf")
    out, finite = check_maps(maps, images)
    assert out.shape == (3, 4, 5) and finite.tolist() == [True, False, False]
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("shape, message", [((3, 4, 4), "upsample the maps"), ((2, 4, 5), "2 maps for 3 images"),
                                            ((3, 2, 4, 5), "B×H×W")])
def test_check_maps_rejects_wrong_shapes(shape, message):
    with pytest.raises(ValueError, match=message):
        check_maps(torch.zeros(shape), torch.zeros(3, 3, 4, 5))


def test_check_targets_broadcasts_and_range_checks():
    assert check_targets(2, 3).tolist() == [2, 2, 2]
    with pytest.raises(ValueError, match="target class 5 is out of range for a model with 4 classes"):
        check_targets([0, 5], 2, num_classes=4)
    with pytest.raises(ValueError, match="got 2 targets for a batch of 3"):
        check_targets([0, 1], 3)


def test_boxes_union_by_pixel_centres():
    boxes = [torch.tensor([[0.0, 0.0, 2.0, 1.0], [1.0, 0.0, 3.0, 3.0]]), torch.zeros(0, 4)]
    masks = boxes_to_mask(boxes, (4, 4))
    expected = torch.tensor([[1, 1, 1, 0], [0, 1, 1, 0], [0, 1, 1, 0], [0, 0, 0, 0]], dtype=torch.bool)
    assert torch.equal(masks[0], expected)
    assert not masks[1].any()


def test_ground_truth_mask_prefers_masks_and_explains_what_is_missing():
    masks = torch.ones(1, 4, 4, dtype=torch.bool)
    assert ground_truth_mask(masks=masks, boxes=[torch.zeros(0, 4)], size=(4, 4), batch=1).all()
    with pytest.raises(ValueError, match="needs ground truth"):
        ground_truth_mask(size=(4, 4), batch=1)
    with pytest.raises(ValueError, match="1×4×4"):
        ground_truth_mask(masks=torch.ones(1, 3, 4), size=(4, 4), batch=1)


def test_per_sample_noise_depends_on_the_sample_id_not_the_batch():
    draw = lambda g: torch.rand(5, generator=g)  # noqa: E731
    together = per_sample(draw, [3, 7], seed=1)
    alone = per_sample(draw, [7], seed=1)
    assert torch.equal(together[1], alone[0])
    assert not torch.equal(together[0], together[1])
    assert not torch.equal(per_sample(draw, [7], seed=2)[0], alone[0])
    assert not torch.equal(torch.rand(5, generator=sample_generator(1, 7, stream=1)), alone[0])
