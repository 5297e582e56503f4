"""Unreadable files and unusual PIL modes, through the loaders."""
import os

import dataset_writers as w
import numpy as np
import pytest
import torch
from PIL import Image

from seethrough.data import BadImageError, build_transform, collate
from seethrough.data.folder import FolderDataset

MEAN = STD = (0.5, 0.5, 0.5)  # normalized value = 2·x − 1: black −1, white +1
BLACK, WHITE = -1.0, 1.0
TOLERANCE = 0.1


def halves(left, right, mode, dtype=np.uint8):
    """A WIDTH×HEIGHT image: ``left`` in the left half, ``right`` in the right half."""
    channels = np.asarray(left).size
    shape = (w.HEIGHT, w.WIDTH) if channels == 1 else (w.HEIGHT, w.WIDTH, channels)
    array = np.empty(shape, dtype)
    array[:, : w.WIDTH // 2] = left
    array[:, w.WIDTH // 2 :] = right
    return Image.fromarray(array).convert(mode) if mode else Image.fromarray(array)


def palette_image(transparent: bool) -> Image.Image:
    image = Image.new("P", (w.WIDTH, w.HEIGHT))
    image.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    image.paste(1, (w.WIDTH // 2, 0, w.WIDTH, w.HEIGHT))
    if transparent:
        image.info["transparency"] = 1
    return image


RED, BLUE = (WHITE, BLACK, BLACK), (BLACK, BLACK, WHITE)
#: file name → (image, expected RGB of the left half, of the right half) after normalization.
ODD_MODES = {
    "grey.png": (halves(0, 255, "L"), (BLACK,) * 3, (WHITE,) * 3),
    "grey_alpha.png": (halves((0, 255), (0, 0), "LA"), (BLACK,) * 3, (WHITE,) * 3),
    "rgba.png": (halves((255, 0, 0, 255), (0, 0, 0, 0), "RGBA"), RED, (WHITE,) * 3),
    "palette.png": (palette_image(False), RED, BLUE),
    "palette_transparent.gif": (palette_image(True), RED, (WHITE,) * 3),
    "cmyk.jpg": (halves((255, 0, 0), (0, 0, 255), "RGB").convert("CMYK"), RED, BLUE),
    "deep.png": (halves(1000, 60000, None, np.uint16), (BLACK,) * 3, (WHITE,) * 3),
    "bilevel.bmp": (halves(0, 255, "L").convert("1"), (BLACK,) * 3, (WHITE,) * 3),
}


@pytest.fixture
def odd_root(tmp_path):
    root = tmp_path / "odd"
    for name, (image, _, _) in ODD_MODES.items():
        w.save(image, root / "train" / "odd" / name)
    return root


def test_odd_modes_load_as_rgb(odd_root):
    assert Image.open(odd_root / "train/odd/deep.png").mode.startswith("I")
    assert Image.open(odd_root / "train/odd/cmyk.jpg").mode == "CMYK"
    transform = build_transform(16, train=False, mean=MEAN, std=STD)
    ds = FolderDataset(odd_root, split="train", transform=transform)
    assert len(ds) == len(ODD_MODES)
    for i in range(len(ds)):
        sample = ds[i]
        name = sample["id"].rsplit("/", 1)[1]
        _, left, right = ODD_MODES[name]
        image = sample["image"]
        assert image.shape == (3, 16, 16) and image.dtype == torch.float32, name
        np.testing.assert_allclose(image[:, :, :6].mean((1, 2)), left, atol=TOLERANCE, err_msg=name)
        np.testing.assert_allclose(image[:, :, -6:].mean((1, 2)), right, atol=TOLERANCE, err_msg=name)


def test_grey_mode_dataset(odd_root):
    ds = FolderDataset(odd_root, split="train", mode="L",
                       transform=build_transform(16, train=False, mean=(0.5,), std=(0.5,)))
    for i in range(len(ds)):
        assert ds[i]["image"].shape == (1, 16, 16)


@pytest.fixture
def broken_root(tmp_path):
    root = tmp_path / "broken"
    for i in range(3):
        w.save(w.scene(w.left_box(i)), root / "train" / "a" / f"good_{i}.jpg")
    data = w.save(w.scene(w.left_box(0)), root / "train" / "b" / "truncated.jpg").read_bytes()
    (root / "train" / "b" / "truncated.jpg").write_bytes(data[: len(data) // 2])
    (root / "train" / "b" / "text.png").write_text("this is not an image")
    return root


def test_bad_files_raise_naming_the_file(broken_root):
    ds = FolderDataset(broken_root, split="train")
    names = [os.fsdecode(f).rsplit("/", 1)[1] for f in ds.files]
    with pytest.raises(BadImageError, match="truncated.jpg: cannot be decoded"):
        ds.load(names.index("truncated.jpg"))
    with pytest.raises(BadImageError, match="text.png: not a readable image"):
        ds[names.index("text.png")]


def test_skip_returns_none_and_collate_counts(broken_root, caplog):
    ds = FolderDataset(broken_root, split="train", on_bad_image="skip",
                       transform=build_transform(16, train=False))
    with caplog.at_level("WARNING"):
        samples = [ds[i] for i in range(len(ds))]
    assert sum(s is None for s in samples) == 2
    assert "truncated.jpg" in caplog.text and "text.png" in caplog.text
    batch = collate(samples)
    assert batch["skipped"] == 2 and batch["image"].shape == (3, 3, 16, 16)
    assert batch["id"] == ["train/a/good_0.jpg", "train/a/good_1.jpg", "train/a/good_2.jpg"]
    assert collate([None, None]) == {"skipped": 2}


def test_decompression_bomb_guard(broken_root, monkeypatch):
    ds = FolderDataset(broken_root, split="train")
    assert ds.load(0).image.size == (w.WIDTH, w.HEIGHT)
    # PIL refuses images over 2 × MAX_IMAGE_PIXELS; 24×20 = 480 > 2 × 100
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    with pytest.raises(BadImageError, match="good_0.jpg: refused as a decompression bomb"):
        ds.load(0)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 300)  # 480 > 300 is only a warning in PIL
    with pytest.raises(BadImageError, match="decompression bomb"):
        ds.load(0)
