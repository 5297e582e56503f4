"""SyntheticDataset: determinism, exact ground truth, label balance, label-free distractors,
every difficulty/size/class count, clear errors, and alignment through the transforms."""
from __future__ import annotations

import dataclasses
import hashlib
import math
import os
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from seethrough.data import build_dataset, build_transform, collate
from seethrough.data.synthetic import (
    COLOURS,
    DIFFICULTIES,
    PARTS,
    PARTS_PER_CLASS,
    SyntheticDataset,
    class_parts,
    min_img_size,
)
from seethrough.data.transforms import IMAGENET_MEAN, IMAGENET_STD

DIFFS = ("easy", "medium", "hard")


def _digest(ds: SyntheticDataset, indices) -> str:
    h = hashlib.sha256()
    for i in indices:
        raw = ds.load(i)
        h.update(raw.image.tobytes())
        h.update(raw.mask.tobytes())
        h.update(raw.boxes.tobytes())
        h.update(str(raw.label).encode())
    return h.hexdigest()


def _bbox(mask: np.ndarray) -> list[float]:
    rows, cols = np.nonzero(mask)
    return [cols.min(), rows.min(), cols.max() + 1, rows.max() + 1]


def _evidence_colours(ds: SyntheticDataset, label: int) -> list[tuple[int, int, int]]:
    return [COLOURS[PARTS[p][0]] for p in ds.class_parts[label]]


# ---------------------------------------------------------------- determinism
@pytest.mark.parametrize("difficulty", DIFFS)
def test_same_seed_same_bytes_and_other_seed_or_split_differs(difficulty):
    kwargs = dict(difficulty=difficulty, num_samples=8)
    a = SyntheticDataset(split="train", seed=3, **kwargs)
    b = SyntheticDataset(split="train", seed=3, **kwargs)
    assert _digest(a, range(8)) == _digest(b, range(8))
    # order of access does not matter (no state carried from one sample to the next)
    assert [_digest(a, [i]) for i in reversed(range(8))] == [_digest(b, [i]) for i in range(8)][::-1]
    other_seed = SyntheticDataset(split="train", seed=4, **kwargs)
    other_split = SyntheticDataset(split="val", seed=3, **kwargs)
    for i in range(8):
        img = np.asarray(a.load(i).image)
        assert not np.array_equal(img, np.asarray(other_seed.load(i).image))
        assert not np.array_equal(img, np.asarray(other_split.load(i).image))
    # no two samples of a split (or across splits) coincide
    images = {a.load(i).image.tobytes() for i in range(8)} | {other_split.load(i).image.tobytes() for i in range(8)}
    assert len(images) == 16


def test_identical_in_a_fresh_process():
    ds = SyntheticDataset(split="val", difficulty="hard", seed=7, num_samples=4)
    code = (
        "import hashlib\n"
        "from seethrough.data.synthetic import SyntheticDataset\n"
        "ds = SyntheticDataset(split='val', difficulty='hard', seed=7, num_samples=4)\n"
        "h = hashlib.sha256()\n"
        "for i in range(4):\n"
        "    r = ds.load(i); h.update(r.image.tobytes()); h.update(r.mask.tobytes());"
        " h.update(r.boxes.tobytes()); h.update(str(r.label).encode())\n"
        "print(h.hexdigest())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONHASHSEED": "123"})
    assert out.stdout.strip() == _digest(ds, range(4))


# ---------------------------------------------------------------- labels
@pytest.mark.parametrize("num_classes,num_samples", [(4, 512), (7, 100), (20, 60)])
def test_labels_balanced(num_classes, num_samples):
    ds = SyntheticDataset(split="train", difficulty="medium", num_classes=num_classes, num_samples=num_samples)
    labels = np.array([ds.label_of(i) for i in range(len(ds))])
    counts = np.bincount(labels, minlength=num_classes)
    assert counts.max() - counts.min() <= 1 and counts.sum() == num_samples
    assert all(ds.load(i).label == labels[i] for i in range(0, num_samples, 7))


def test_class_names_and_combinations_share_parts():
    easy = SyntheticDataset(split="train", num_classes=4)
    assert easy.classes == ["red-circle", "blue-bar", "yellow-triangle", "green-square"]
    medium = SyntheticDataset(split="train", difficulty="medium", num_classes=4)
    assert medium.classes[0] == "red-circle+blue-bar"
    for n in (3, 4, 10, 20, 28):
        pairs = class_parts("medium", n)
        assert len(set(pairs)) == n and all(len(p) == 2 and p[0] != p[1] for p in pairs)
        uses = np.bincount([q for p in pairs for q in p])
        assert uses.min() >= 2, "every part must belong to several classes: no single part decides"


# ---------------------------------------------------------------- ground truth
@pytest.mark.parametrize("difficulty", DIFFS)
def test_boxes_are_tight_boxes_of_each_evidence_part(difficulty):
    ds = SyntheticDataset(split="val", difficulty=difficulty, num_samples=24)
    for i in range(len(ds)):
        scene = ds.scene(i)
        raw = ds.render(scene)
        evidence = [p for p in scene.parts if p.role == "evidence"]
        assert raw.boxes.dtype == np.float32 and raw.boxes.shape == (PARTS_PER_CLASS[difficulty], 4)
        assert raw.mask.dtype == bool and raw.mask.shape == (ds.img_size, ds.img_size)
        union = np.zeros_like(raw.mask)
        for part, box in zip(evidence, raw.boxes):
            alone = ds.render(dataclasses.replace(scene, parts=(part,))).mask
            assert alone.any()
            assert _bbox(alone) == box.tolist()
            union |= alone
        np.testing.assert_array_equal(union, raw.mask)


@pytest.mark.parametrize("difficulty", ["easy", "medium"])
def test_mask_is_exactly_the_evidence_colour(difficulty):
    """Opaque modes: every mask pixel has its part's exact colour, and inside each box the
    pixels of that colour are exactly the mask (shape holes such as the ring's are not)."""
    ds = SyntheticDataset(split="train", difficulty=difficulty, num_classes=8, num_samples=48)
    for i in range(len(ds)):
        scene = ds.scene(i)
        raw = ds.render(scene)
        image = np.asarray(raw.image)
        evidence = [p for p in scene.parts if p.role == "evidence"]
        colours = _evidence_colours(ds, raw.label)
        for part, colour, (x0, y0, x1, y1) in zip(evidence, colours, raw.boxes.astype(int)):
            assert part.rgb == colour
            own = ds.render(dataclasses.replace(scene, parts=(part,))).mask
            is_colour = (image[y0:y1, x0:x1] == colour).all(-1)
            np.testing.assert_array_equal(is_colour, own[y0:y1, x0:x1])
        assert sum((image[raw.mask] == c).all(-1).sum() for c in colours) == raw.mask.sum()


@pytest.mark.parametrize("difficulty", DIFFS)
def test_nothing_overlaps_the_evidence(difficulty):
    """Removing the evidence changes only the mask pixels: no distractor is under or over it."""
    ds = SyntheticDataset(split="train", difficulty=difficulty, num_samples=16)
    for i in range(len(ds)):
        scene = ds.scene(i)
        full = ds.render(scene)
        rest = ds.render(dataclasses.replace(scene, parts=tuple(p for p in scene.parts if p.role != "evidence")))
        assert rest.boxes.shape == (0, 4) and not rest.mask.any()
        a, b = np.asarray(full.image), np.asarray(rest.image)
        np.testing.assert_array_equal(a[~full.mask], b[~full.mask])
        assert (a[full.mask] != b[full.mask]).any(-1).mean() > 0.9


@pytest.mark.parametrize("difficulty", ["medium", "hard"])
def test_only_the_evidence_pair_is_adjacent(difficulty):
    ds = SyntheticDataset(split="train", difficulty=difficulty, num_samples=40)
    cfg = DIFFICULTIES[difficulty]
    for i in range(len(ds)):
        parts = ds.scene(i).parts
        for j, p in enumerate(parts):
            for q in parts[j + 1:]:
                gap = math.dist(p.center, q.center) - p.radius - q.radius
                if p.role == q.role == "evidence":
                    assert gap <= cfg.pair_gap[1] * max(p.radius, q.radius) + 1.0
                else:
                    assert gap >= cfg.clearance * max(p.radius, q.radius) - 1e-6


def test_easy_distractors_are_never_class_coloured():
    ds = SyntheticDataset(split="train", num_classes=8, num_samples=64)
    roles = [p for i in range(len(ds)) for p in ds.scene(i).parts if p.role != "evidence"]
    assert roles and all(len(set(p.rgb)) == 1 for p in roles)


# ---------------------------------------------------------------- distractors carry no label
_BINS = 4


def _colour_histograms(ds: SyntheticDataset, exclude_evidence: bool) -> tuple[np.ndarray, np.ndarray]:
    features, labels = [], []
    for i in range(len(ds)):
        raw = ds.load(i)
        codes = (np.asarray(raw.image).reshape(-1, 3) // (256 // _BINS)).astype(np.int64)
        keep = ~raw.mask.reshape(-1) if exclude_evidence else np.ones(len(codes), bool)
        code = (codes[keep, 0] * _BINS + codes[keep, 1]) * _BINS + codes[keep, 2]
        features.append(np.bincount(code, minlength=_BINS**3) / keep.sum())
        labels.append(raw.label)
    return np.array(features), np.array(labels)


def _nearest_centroid_accuracy(cls, difficulty: str, exclude_evidence: bool, n: int = 300) -> float:
    train = cls(split="train", difficulty=difficulty, num_samples=n)
    test = cls(split="val", difficulty=difficulty, num_samples=n)
    x_train, y_train = _colour_histograms(train, exclude_evidence)
    x_test, y_test = _colour_histograms(test, exclude_evidence)
    mean, std = x_train.mean(0), x_train.std(0) + 1e-6
    x_train, x_test = (x_train - mean) / std, (x_test - mean) / std
    centroids = np.stack([x_train[y_train == c].mean(0) for c in range(train.num_classes)])
    predicted = ((x_test[:, None] - centroids[None]) ** 2).sum(-1).argmin(1)
    return float((predicted == y_test).mean())


class _LeakySynthetic(SyntheticDataset):
    """A broken generator: one distractor takes the colour of the label's first part."""

    def scene(self, index):
        scene = super().scene(index)
        colour = COLOURS[PARTS[self.class_parts[scene.label][0]][0]]
        parts = list(scene.parts)
        first = next(k for k, p in enumerate(parts) if p.role != "evidence")
        parts[first] = dataclasses.replace(parts[first], rgb=colour)
        return dataclasses.replace(scene, parts=tuple(parts))


#: Chance is 1/4; with 300 test samples its standard error is 0.025, so 0.35 is 4 SE above.
_CHANCE_BOUND = 0.35


@pytest.mark.parametrize("difficulty", ["easy", "medium"])
def test_colour_statistics_outside_the_evidence_do_not_predict_the_label(difficulty):
    assert _nearest_centroid_accuracy(SyntheticDataset, difficulty, exclude_evidence=True) < _CHANCE_BOUND
    # the same statistic does see the label when the evidence is included (the test has power) ...
    assert _nearest_centroid_accuracy(SyntheticDataset, difficulty, exclude_evidence=False) > 0.45
    # ... and it catches a generator whose distractors depend on the label
    assert _nearest_centroid_accuracy(_LeakySynthetic, difficulty, exclude_evidence=True) > 0.45


# ---------------------------------------------------------------- options
@pytest.mark.parametrize("difficulty,size,num_classes", [
    ("easy", 14, 2), ("easy", 32, 8), ("easy", 64, 4), ("easy", 224, 3),
    ("medium", 24, 3), ("medium", 32, 28), ("hard", 31, 4), ("medium", 100, 20), ("medium", 224, 4),
    ("hard", 32, 20), ("hard", 48, 5), ("hard", 224, 28),
])
def test_every_difficulty_size_and_class_count(difficulty, size, num_classes):
    ds = SyntheticDataset(split="val", difficulty=difficulty, img_size=size, num_classes=num_classes,
                          num_samples=2 * num_classes)
    assert len(ds.classes) == ds.num_classes == num_classes == len(set(ds.classes))
    for i in range(0, len(ds), max(1, len(ds) // 6)):
        raw = ds.load(i)
        assert raw.image.size == (size, size) and raw.image.mode == "RGB"
        assert raw.sample_id == f"synthetic/val/{i}"
        assert raw.mask.shape == (size, size) and raw.mask.any()
        assert len(raw.boxes) == PARTS_PER_CLASS[difficulty]
        assert (raw.boxes[:, :2] >= 0).all() and (raw.boxes[:, 2:] <= size).all()
        assert (raw.boxes[:, 2:] > raw.boxes[:, :2]).all()


def test_minimum_sizes():
    assert [min_img_size(d) for d in DIFFS] == [14, 24, 31]
    for difficulty in DIFFS:
        with pytest.raises(ValueError, match=f"img_size >= {min_img_size(difficulty)}"):
            SyntheticDataset(split="train", difficulty=difficulty, img_size=min_img_size(difficulty) - 1)


def test_defaults_grayscale_and_registry():
    assert len(SyntheticDataset(split="train")) == 512 and len(SyntheticDataset(split="val")) == 128
    grey = SyntheticDataset(split="train", mode="L", num_samples=2)
    assert grey.load(0).image.mode == "L"
    ds = build_dataset("synthetic", "val", num_classes=3, num_samples=6, difficulty="medium")
    assert isinstance(ds, SyntheticDataset) and ds.num_classes == 3 and ds.split == "val"
    assert ds[-1]["id"] == "synthetic/val/5"
    with pytest.raises(IndexError):
        ds.load(6)
    assert len(list(iter(ds))) == 6  # the sequence protocol stops at IndexError


@pytest.mark.parametrize("kwargs,error,match", [
    (dict(difficulty="extreme"), ValueError, "difficulty must be one of easy, medium, hard"),
    (dict(num_classes=9), ValueError, "at most 8 classes"),
    (dict(difficulty="medium", num_classes=29), ValueError, "at most 28 classes"),
    (dict(num_classes=1), ValueError, "at least 2"),
    (dict(difficulty="hard", img_size=30), ValueError, "img_size >= 31"),
    (dict(difficulty="medium", img_size=23), ValueError, "img_size >= 24"),
    (dict(img_size=8), ValueError, "too small"),
    (dict(split="test"), ValueError, "split must be one of train, val"),
    (dict(mode="CMYK"), ValueError, "mode must be 'RGB' or 'L'"),
    (dict(on_bad_image="ignore"), ValueError, "on_bad_image"),
    (dict(seed=-1), ValueError, "non-negative"),
    (dict(num_samples=0), ValueError, "at least 1"),
    (dict(img_size=64.0), TypeError, "img_size must be an integer"),
])
def test_bad_options_raise_clear_errors(kwargs, error, match):
    kwargs = {"split": "train", **kwargs}
    with pytest.raises(error, match=match):
        SyntheticDataset(**kwargs)


# ---------------------------------------------------------------- transforms
def test_ground_truth_stays_aligned_through_flip_and_resize():
    ds = SyntheticDataset(split="val", num_samples=8)
    mean = torch.tensor(IMAGENET_MEAN)[:, None, None]
    std = torch.tensor(IMAGENET_STD)[:, None, None]
    torch.manual_seed(0)
    seen_flip = seen_plain = False
    for i in range(len(ds)):
        raw = ds.load(i)
        colour = torch.tensor(_evidence_colours(ds, raw.label)[0], dtype=torch.float32)
        for _ in range(3):
            sample = build_transform(64, train=True, augment="flip")(raw)
            mask = sample["mask"].numpy()
            flipped = not np.array_equal(mask, raw.mask)
            np.testing.assert_array_equal(mask, raw.mask[:, ::-1] if flipped else raw.mask)
            seen_flip |= flipped
            seen_plain |= not flipped
            assert sample["boxes"].tolist() == [_bbox(mask)]
            pixels = ((sample["image"] * std + mean) * 255)[:, sample["mask"]]
            assert torch.allclose(pixels, colour[:, None], atol=0.5)
    assert seen_flip and seen_plain
    # resized: the mask follows the image and the box stays the mask's box (within a pixel)
    batch = collate([build_transform(96, train=False)(ds.load(i)) | {"index": i} for i in range(4)])
    assert batch["image"].shape == (4, 3, 96, 96) and batch["mask"].shape == (4, 96, 96)
    for box, mask in zip(batch["boxes"], batch["mask"]):
        np.testing.assert_allclose(box[0].numpy(), _bbox(mask.numpy()), atol=1.0)


def test_fast_enough():
    ds = SyntheticDataset(split="train", num_samples=64)
    ds.load(0)
    times = []
    for i in range(64):
        start = time.perf_counter()
        ds.load(i)
        times.append(time.perf_counter() - start)
    assert np.median(times) < 5e-3, f"median {np.median(times) * 1e3:.1f} ms per 64 px sample"
