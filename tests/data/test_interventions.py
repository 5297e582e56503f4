"""Interventions on the synthetic data: removing, swapping, re-backgrounding, adding parts."""
import numpy as np
import pytest
import torch

from seethrough.data import build_transform
from seethrough.data.interventions import (PartInterventions, add_distractor, part_masks, remove_parts,
                                           replace_background, swap_part)
from seethrough.data.synthetic import SyntheticDataset

SIZE = 64


def _pixels(sample) -> np.ndarray:
    return np.asarray(sample.image, dtype=np.int16)


@pytest.mark.parametrize("difficulty", ["easy", "medium", "hard"])
def test_part_masks_are_disjoint_and_the_evidence_ones_are_the_sample_mask(difficulty):
    data = SyntheticDataset(split="val", difficulty=difficulty, img_size=SIZE, num_samples=6)
    for index in range(len(data)):
        scene = data.scene(index)
        masks = part_masks(scene, SIZE)
        assert masks.shape == (len(scene.parts), SIZE, SIZE)
        assert masks.sum(0).max() <= 1                                     # parts never overlap
        evidence = np.any([m for m, p in zip(masks, scene.parts) if p.role == "evidence"], axis=0)
        np.testing.assert_array_equal(evidence, data[index]["mask"])


def test_removing_a_part_draws_the_background_there_and_changes_nothing_else():
    data = SyntheticDataset(split="val", difficulty="medium", img_size=SIZE, num_samples=4)
    scene = data.scene(1)
    evidence = [i for i, p in enumerate(scene.parts) if p.role == "evidence"]
    masks = part_masks(scene, SIZE)
    original = _pixels(data.render(scene))
    removed = _pixels(data.render(remove_parts(scene, evidence[:1])))
    bare = _pixels(data.render(remove_parts(scene, range(len(scene.parts)))))
    inside = masks[evidence[0]]
    np.testing.assert_array_equal(removed[inside], bare[inside])          # the background where it was
    np.testing.assert_array_equal(removed[~inside], original[~inside])    # everything else untouched
    assert np.abs(original[inside] - bare[inside]).mean() > 20
    np.testing.assert_array_equal(removed, _pixels(data.render(remove_parts(scene, evidence[:1]))))


def test_swap_background_and_distractor_interventions_are_deterministic_and_local():
    data = SyntheticDataset(split="val", difficulty="medium", img_size=SIZE, num_samples=4)
    scene = data.scene(2)
    masks = part_masks(scene, SIZE)
    everything = masks.any(0)
    swapped = swap_part(scene, len(scene.parts) - 1, 0)
    assert swapped.parts[-1].center == scene.parts[-1].center and swapped.parts[-1].name == "red-circle"
    original = _pixels(data.render(scene))
    other = _pixels(data.render(replace_background(data, 2, scene)))
    np.testing.assert_array_equal(other[everything], original[everything])   # opaque parts kept
    assert np.abs(other[~everything] - original[~everything]).mean() > 5
    np.testing.assert_array_equal(other, _pixels(data.render(replace_background(data, 2, scene))))
    added = add_distractor(data, 2, scene, vocabulary_part=3)
    assert len(added.parts) == len(scene.parts) + 1 and added.parts[0].role == "distractor"
    new_mask = part_masks(added, SIZE)[0]
    assert new_mask.any() and not (new_mask & everything).any()
    with pytest.raises(IndexError, match="part 99 does not exist"):
        remove_parts(scene, [99])


def test_part_interventions_of_a_batch_follow_the_transform():
    data = SyntheticDataset(split="val", difficulty="medium", img_size=SIZE, num_samples=4)
    transform = build_transform(32, train=False)
    parts = PartInterventions.for_samples(data, [0, 1, 2], transform, (32, 32))
    assert parts.masks.shape[:2] == parts.valid.shape and parts.masks.shape[-2:] == (32, 32)
    assert parts.role_mask("evidence").sum(1).tolist() == [2, 2, 2]
    images = parts.images(parts.scenes)
    torch.testing.assert_close(images[1], transform(data.load(1))["image"])
    drop = parts.role_mask("evidence")
    without = parts.remove(drop)
    assert without.shape == images.shape and not torch.equal(without, images)
    with pytest.raises(ValueError, match="unknown part role"):
        parts.role_mask("wing")


def test_a_cached_background_renders_the_same_pixels_as_drawing_it_again():
    from seethrough.data.synthetic import CANVAS_CACHE

    data = SyntheticDataset(split="val", difficulty="benchmark", num_samples=CANVAS_CACHE + 8)
    first = [np.asarray(data[i]["image"]) for i in range(3)]
    again = [np.asarray(data.render(data.scene(i)).image) for i in range(3)]              # from the cache
    fresh = SyntheticDataset(split="val", difficulty="benchmark", num_samples=CANVAS_CACHE + 8)
    for i in range(CANVAS_CACHE + 8):                                                     # evicts the first ones
        fresh.render(fresh.scene(i))
    evicted = [np.asarray(fresh.render(fresh.scene(i)).image) for i in range(3)]
    for a, b, c in zip(first, again, evicted):
        assert np.array_equal(a, b) and np.array_equal(a, c)
    scene = data.scene(1)
    without = np.asarray(data.render(remove_parts(scene, [0])).image)
    assert np.array_equal(without, np.asarray(SyntheticDataset(split="val", difficulty="benchmark",
                                                               num_samples=4).render(remove_parts(scene, [0])).image))
    assert len(data.__dict__["_canvases"]) <= CANVAS_CACHE
