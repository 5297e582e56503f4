import gzip

import dataset_writers as w
import numpy as np
import pytest

from seethrough.data import build_dataset, build_transform, collate
from seethrough.data.mnist import MNISTDataset

N_TRAIN, N_VAL = w.MNIST_TRAIN, w.MNIST_VAL


def test_pixels_and_labels_round_trip(mnist_root, mnist_digits):
    images, labels = mnist_digits
    train = MNISTDataset(mnist_root, split="train", mode="L")
    val = MNISTDataset(mnist_root, split="val", mode="L")
    assert (len(train), len(val)) == (N_TRAIN, N_VAL)
    assert train.classes == [str(d) for d in range(10)]
    assert train.labels.tolist() == labels[:N_TRAIN].tolist()
    assert val.labels.tolist() == labels[N_TRAIN:].tolist()
    raw = val.load(3)
    assert raw.image.mode == "L" and raw.image.size == (28, 28)
    np.testing.assert_array_equal(np.asarray(raw.image), images[N_TRAIN + 3])
    assert raw.label == labels[N_TRAIN + 3] and raw.sample_id == "val/3"
    assert images[N_TRAIN + 3].max() > 200  # a real digit, not a blank fixture


def test_modes_and_normalization(mnist_root):
    grey = MNISTDataset(mnist_root, split="train", mode="L")
    rgb = MNISTDataset(mnist_root, split="train")
    assert grey.normalization == ((0.1307,), (0.3081,))
    assert rgb.normalization == ((0.1307,) * 3, (0.3081,) * 3)
    mean, std = grey.normalization
    grey.transform = build_transform(28, train=False, mean=mean, std=std)
    sample = grey[0]
    assert sample["image"].shape == (1, 28, 28)
    # background pixels are 0 → (0 - mean) / std
    assert sample["image"].min().item() == pytest.approx(-0.1307 / 0.3081, abs=1e-5)
    rgb_raw = rgb.load(0)
    assert rgb_raw.image.mode == "RGB"
    np.testing.assert_array_equal(np.asarray(rgb_raw.image)[..., 1], np.asarray(grey.load(0).image))
    batch = collate([grey[i] for i in range(4)])
    assert batch["image"].shape == (4, 1, 28, 28) and batch["skipped"] == 0
    with pytest.raises(ValueError, match="mode"):
        MNISTDataset(mnist_root, split="train", mode="CMYK")


def test_torchvision_raw_folder_and_registry(tmp_path, mnist_digits):
    images, labels = mnist_digits
    w.make_mnist(tmp_path / "MNIST" / "raw", images, labels, n_train=N_TRAIN, gz=True)
    assert len(build_dataset(f"mnist:{tmp_path}", "val")) == N_VAL


def test_missing_file_is_named(mnist_root):
    for f in mnist_root.glob("t10k-labels*"):
        f.unlink()
    MNISTDataset(mnist_root, split="train")  # train is complete
    with pytest.raises(FileNotFoundError, match="t10k-labels-idx1-ubyte"):
        MNISTDataset(mnist_root, split="val")


def _replace(root, stem, array):
    for f in root.glob(stem + "*"):
        f.unlink()
    w.write_idx(root / stem, array)


def test_wrong_magic_is_named(mnist_root, mnist_digits):
    _, labels = mnist_digits
    _replace(mnist_root, "train-images-idx3-ubyte", labels[:N_TRAIN])  # a labels file
    with pytest.raises(ValueError, match=r"train-images-idx3-ubyte: IDX magic number is 2049, expected 2051"):
        MNISTDataset(mnist_root, split="train")


def test_truncated_file_is_named(tmp_path, mnist_digits):
    images, labels = mnist_digits
    root = w.make_mnist(tmp_path / "m", images, labels, n_train=N_TRAIN, gz=False)
    data = (root / "train-images-idx3-ubyte").read_bytes()
    (root / "train-images-idx3-ubyte").write_bytes(data[:-100])
    with pytest.raises(ValueError, match="truncated"):
        MNISTDataset(root, split="train")
    (root / "t10k-images-idx3-ubyte").write_bytes(data[:10])
    with pytest.raises(ValueError, match="too short"):
        MNISTDataset(root, split="val")


def test_corrupt_gzip_is_named(tmp_path, mnist_digits):
    images, labels = mnist_digits
    root = w.make_mnist(tmp_path / "m", images, labels, n_train=N_TRAIN, gz=True)
    path = root / "train-labels-idx1-ubyte.gz"
    path.write_bytes(gzip.compress(b"")[:5])
    with pytest.raises(ValueError, match="train-labels-idx1-ubyte.gz"):
        MNISTDataset(root, split="train")


def test_count_mismatch(mnist_root, mnist_digits):
    _, labels = mnist_digits
    _replace(mnist_root, "train-labels-idx1-ubyte", labels[: N_TRAIN - 1])
    with pytest.raises(ValueError, match=f"{N_TRAIN} images but .* holds {N_TRAIN - 1} labels"):
        MNISTDataset(mnist_root, split="train")


def test_label_out_of_range(mnist_root, mnist_digits):
    _, labels = mnist_digits
    bad = labels[:N_TRAIN].copy()
    bad[5] = 12
    _replace(mnist_root, "train-labels-idx1-ubyte", bad)
    with pytest.raises(ValueError, match=r"train-labels-idx1-ubyte: labels \[12\] are outside \[0, 10\)"):
        MNISTDataset(mnist_root, split="train")
