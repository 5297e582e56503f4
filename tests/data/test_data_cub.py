import dataset_writers as w
import numpy as np
import pytest
import torch

from seethrough.data import build_dataset, build_transform, collate
from seethrough.data.cub import CUBDataset


def _expected(order, split, num_classes=3):
    flag = 1 if split == "train" else 0
    return [r for r in order if r.is_training == flag and r.class_id <= num_classes]


@pytest.mark.parametrize("split", ["train", "val"])
def test_samples_follow_images_txt(cub_root, split):
    root, order = cub_root
    ds = CUBDataset(root, split=split)
    expected = _expected(order, split)
    assert ds.classes == w.CUB_CLASSES
    assert len(ds) == len(expected) == 6
    for i, record in enumerate(expected):
        raw = ds.load(i)
        assert raw.sample_id == str(record.image_id)
        assert raw.label == record.class_id - 1
        np.testing.assert_array_equal(raw.boxes, np.array([record.box], np.float32))
        assert raw.mask is None
        # the red object lies exactly under the box, in original coordinates
        x0, y0, x1, y1 = record.box
        pixels = np.asarray(raw.image).astype(int)
        assert (abs(pixels[y0 + 1 : y1 - 1, x0 + 1 : x1 - 1] - w.OBJECT).max()) < 40
        assert (abs(pixels[:, x1 + 1 :] - w.BACKGROUND).max()) < 40


def test_first_n_classes(cub_root):
    root, order = cub_root
    ds = build_dataset(f"cub:{root}", "val", num_classes=2)
    assert ds.classes == w.CUB_CLASSES[:2]
    assert [int(i) for i in ds.image_ids] == [r.image_id for r in _expected(order, "val", 2)]
    assert set(ds.labels.tolist()) == {0, 1}
    with pytest.raises(ValueError, match=r"num_classes must be in \[1, 3\]"):
        CUBDataset(root, split="train", num_classes=4)


def test_parent_folder_is_accepted(cub_root):
    root, _ = cub_root
    assert len(CUBDataset(root.parent, split="train")) == 6


def test_parts(cub_root):
    root, order = cub_root
    ds = CUBDataset(root, split="train", num_classes=2)
    assert ds.part_names == w.CUB_PARTS
    expected = _expected(order, "train", 2)
    for i, record in enumerate(expected):
        parts = ds.parts(i)
        assert parts.shape == (15, 3) and parts.dtype == np.float32
        np.testing.assert_array_equal(parts, record.parts)
    assert ds.parts(0)[:, 2].sum() == 8  # every other part of 15 is visible
    assert "parts" not in vars(ds.load(0))


def test_missing_parts_file_only_matters_for_parts(cub_root):
    root, _ = cub_root
    (root / "parts" / "part_locs.txt").unlink()
    ds = CUBDataset(root, split="train")
    ds.load(0)
    with pytest.raises(FileNotFoundError, match="part_locs.txt"):
        ds.parts(0)


@pytest.mark.parametrize("name", ["bounding_boxes.txt", "images.txt", "train_test_split.txt",
                                  "classes.txt", "image_class_labels.txt"])
def test_missing_annotation_file(cub_root, name):
    root, _ = cub_root
    (root / name).unlink()
    with pytest.raises(FileNotFoundError, match=f"{name}: file not found.*CUB-200-2011 folder"):
        CUBDataset(root, split="train")


def test_label_out_of_range_names_the_file(cub_root):
    root, order = cub_root
    path = root / "image_class_labels.txt"
    path.write_text(path.read_text().replace(f"{order[0].image_id} 3\n", f"{order[0].image_id} 7\n"))
    with pytest.raises(ValueError, match=r"image_class_labels.txt: labels \[6\] are outside \[0, 3\)"):
        CUBDataset(root, split="train", num_classes=1)  # checked before the first-N selection


def test_malformed_line_names_file_and_line(cub_root):
    root, _ = cub_root
    path = root / "bounding_boxes.txt"
    lines = path.read_text().splitlines()
    lines[2] = "3 1.0 2.0 x 4.0"
    path.write_text("\n".join(lines))
    with pytest.raises(ValueError, match="bounding_boxes.txt, line 3"):
        CUBDataset(root, split="train")


def test_missing_image_entry(cub_root):
    root, _ = cub_root
    path = root / "train_test_split.txt"
    path.write_text("\n".join(path.read_text().splitlines()[1:]))
    with pytest.raises(ValueError, match=r"train_test_split.txt: no entry for image ids \[1\]"):
        CUBDataset(root, split="train")


def test_boxes_follow_resize_and_flip(cub_root):
    root, order = cub_root
    size = 32
    ds = CUBDataset(root, split="train", transform=build_transform(
        size, train=True, augment="flip", mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0)))
    record = _expected(order, "train")[0]
    x0, y0, x1, y1 = record.box
    sx, sy = size / w.WIDTH, size / w.HEIGHT
    flips = set()
    for seed in range(8):
        torch.manual_seed(seed)
        sample = ds[0]
        box = sample["boxes"][0].numpy()
        flipped = box[0] > size / 2
        flips.add(bool(flipped))
        expected = np.array([x0 * sx, y0 * sy, x1 * sx, y1 * sy])
        if flipped:
            expected[[0, 2]] = size - expected[[2, 0]]
        np.testing.assert_allclose(box, expected, atol=1e-4)
        bx0, by0, bx1, by1 = np.round(box).astype(int)
        image = sample["image"].numpy()
        inside = image[:, by0 + 1 : by1 - 1, bx0 + 1 : bx1 - 1]
        assert np.abs(inside - np.array(w.OBJECT)[:, None, None] / 255).max() < 0.2
        outside = np.delete(image, np.s_[bx0 - 1 : bx1 + 1], axis=2)
        assert np.abs(outside - np.array(w.BACKGROUND)[:, None, None] / 255).max() < 0.2
    assert flips == {True, False}
    batch = collate([ds[i] for i in range(3)])
    assert batch["image"].shape == (3, 3, size, size) and len(batch["boxes"]) == 3
