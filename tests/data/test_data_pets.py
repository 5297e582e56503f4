import dataset_writers as w
import numpy as np
import pytest
import torch
from PIL import Image

from seethrough.data import BadImageError, build_dataset, build_transform, collate
from seethrough.data.pets import PetsDataset


def test_splits_classes_and_labels(pets_root):
    root, _ = pets_root
    train = PetsDataset(root, split="train")
    val = PetsDataset(root, split="val")
    assert train.classes == val.classes == ["Abyssinian", "american_bulldog", "Bengal"]
    assert train.names == ["Abyssinian_1", "Abyssinian_2", "american_bulldog_1",
                           "american_bulldog_2", "Bengal_1", "Bengal_2"]
    assert train.labels.tolist() == [0, 0, 1, 1, 2, 2] and val.labels.tolist() == [0, 0, 1, 1, 2, 2]
    assert train.species.tolist() == [1, 1, 2, 2, 1, 1]
    assert val.load(0).sample_id == "Abyssinian_3"


def test_mask_is_pet_and_border_and_box_is_tight(pets_root):
    root, index = pets_root
    ds = PetsDataset(root, split="train")
    for i, name in enumerate(ds.names):
        raw = ds.load(i)
        trimap = w.pet_trimap(index[name])
        assert raw.mask.shape == (w.HEIGHT, w.WIDTH) and raw.mask.dtype == bool
        np.testing.assert_array_equal(raw.mask, trimap != w.TRIMAP_BACKGROUND)
        x0, y0, x1, y1 = w.left_box(index[name])
        np.testing.assert_array_equal(raw.boxes, [[x0, y0, x1, y1]])
        pixels = np.asarray(raw.image).astype(int)
        assert np.abs(pixels[w.erode(raw.mask)] - w.OBJECT).max() < 40


def test_missing_trimap_gives_no_mask(pets_root):
    root, _ = pets_root
    ds = PetsDataset(root, split="val", transform=build_transform(16, train=False))
    i = ds.names.index(w.PET_WITHOUT_TRIMAP)
    raw = ds.load(i)
    assert raw.mask is None and raw.boxes.shape == (0, 4)
    sample = ds[i]
    assert "mask" not in sample and sample["boxes"].shape == (0, 4)
    batch = collate([ds[0], ds[i]])
    assert "mask" not in batch and batch["image"].shape == (2, 3, 16, 16)


def test_mask_and_box_follow_resize_and_flip(pets_root):
    root, _ = pets_root
    size = 40
    ds = PetsDataset(root, split="train", transform=build_transform(
        size, train=True, augment="flip", mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0)))
    flips = set()
    for seed in range(8):
        torch.manual_seed(seed)
        sample = ds[seed % len(ds)]
        mask = sample["mask"].numpy()
        assert mask.shape == (size, size)
        box = sample["boxes"][0].numpy()
        np.testing.assert_allclose(w.bbox_of(mask), box, atol=1.0)
        flips.add(bool(box[0] > size / 2))
        image = sample["image"].numpy()
        red = np.array(w.OBJECT)[:, None] / 255
        blue = np.array(w.BACKGROUND)[:, None] / 255
        assert np.abs(image[:, w.erode(mask)] - red).max() < 0.2
        assert np.abs(image[:, w.erode(~mask)] - blue).max() < 0.2
    assert flips == {True, False}
    batch = collate([ds[i] for i in range(4)])
    assert batch["mask"].shape == (4, size, size) and batch["mask"].dtype == torch.bool


def test_missing_annotation_files(pets_root):
    root, _ = pets_root
    (root / "annotations" / "test.txt").unlink()
    PetsDataset(root, split="train")
    with pytest.raises(FileNotFoundError, match="test.txt: file not found.*Oxford-IIIT Pet"):
        PetsDataset(root, split="val")
    (root / "annotations" / "list.txt").unlink()
    with pytest.raises(FileNotFoundError, match="list.txt"):
        PetsDataset(root, split="train")


def test_label_out_of_range_names_the_file(pets_root):
    root, _ = pets_root
    path = root / "annotations" / "trainval.txt"
    path.write_text(path.read_text().replace("Bengal_2 3 1 2", "Bengal_2 38 1 2"))
    with pytest.raises(ValueError, match=r"trainval.txt: labels \[37\] are outside \[0, 3\)"):
        PetsDataset(root, split="train")


def test_inconsistent_class_ids(pets_root):
    root, _ = pets_root
    path = root / "annotations" / "list.txt"
    path.write_text(path.read_text().replace("Bengal_1 3", "Bengal_1 2"))
    with pytest.raises(ValueError, match="CLASS-ID 2 is used for both american_bulldog and Bengal"):
        PetsDataset(root, split="train")


def test_bad_trimaps(pets_root):
    root, _ = pets_root
    trimaps = root / "annotations" / "trimaps"
    Image.fromarray(np.full((5, 5), 2, np.uint8)).save(trimaps / "Abyssinian_1.png")
    (trimaps / "Abyssinian_2.png").write_bytes(b"not a png")
    ds = PetsDataset(root, split="train")
    with pytest.raises(BadImageError, match="Abyssinian_1.png: trimap is 5×5 but its image is 24×20"):
        ds.load(0)
    with pytest.raises(BadImageError, match="Abyssinian_2.png"):
        ds.load(1)
    skipping = build_dataset(f"pets:{root}", "train", on_bad_image="skip",
                             transform=build_transform(16, train=False))
    batch = collate([skipping[i] for i in range(len(skipping))])
    assert batch["skipped"] == 2 and batch["image"].shape[0] == 4
