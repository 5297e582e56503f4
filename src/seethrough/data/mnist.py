"""MNIST from the original IDX files.

::

    root/                      (or root/MNIST/raw/, torchvision's download folder)
      train-images-idx3-ubyte[.gz]   train-labels-idx1-ubyte[.gz]
      t10k-images-idx3-ubyte[.gz]    t10k-labels-idx1-ubyte[.gz]   ("val" split)

An IDX file is a big-endian header — a 4-byte magic number (2051 for the ``N×28×28``
unsigned-byte images, 2049 for the ``N`` unsigned-byte labels; its last byte is the number
of dimensions) followed by one 4-byte size per dimension — then the raw bytes. Both files
of a split are read once into memory. ``sample_id`` is ``"<split>/<index>"``; classes are
``"0"`` … ``"9"``; no boxes or masks.
"""
from __future__ import annotations

import gzip
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

from ._files import check_split, no_boxes
from .base import ImageDataset, OnBadImage, RawSample
from .io import convert_mode

IMAGES_MAGIC, LABELS_MAGIC = 2051, 2049
#: Bytes of the magic number and of each dimension size in an IDX header.
HEADER_INT_BYTES = 4
BIG_ENDIAN_UINT32 = ">u4"
#: File name prefix per split.
SPLIT_PREFIX = {"train": "train", "val": "t10k"}
IMAGES_SUFFIX, LABELS_SUFFIX = "-images-idx3-ubyte", "-labels-idx1-ubyte"
GZIP_SUFFIX = ".gz"
#: Where torchvision's ``MNIST(download=True)`` leaves the same files.
TORCHVISION_SUBFOLDER = "MNIST/raw"
NUM_DIGITS = 10
#: The usual MNIST pixel mean and standard deviation (on [0, 1] grey values).
MNIST_MEAN, MNIST_STD = 0.1307, 0.3081
CHANNELS = {"L": 1, "RGB": 3}


def read_idx(path: Path, magic: int, ndim: int) -> np.ndarray:
    """Read an unsigned-byte IDX file (plain or gzip), checking its magic number and size."""
    opener = gzip.open if path.name.endswith(GZIP_SUFFIX) else open
    try:
        with opener(path, "rb") as handle:
            data = handle.read()
    except (OSError, EOFError) as err:
        raise ValueError(f"{path}: cannot read the IDX file ({err})") from err
    header_bytes = HEADER_INT_BYTES * (1 + ndim)
    if len(data) < header_bytes:
        raise ValueError(f"{path}: only {len(data)} bytes, too short for an IDX header")
    found = int(np.frombuffer(data, BIG_ENDIAN_UINT32, count=1)[0])
    if found != magic:
        raise ValueError(
            f"{path}: IDX magic number is {found}, expected {magic} "
            f"({'images' if magic == IMAGES_MAGIC else 'labels'}); is this the right file?"
        )
    dims = tuple(int(d) for d in np.frombuffer(data, BIG_ENDIAN_UINT32, count=ndim, offset=HEADER_INT_BYTES))
    expected = int(np.prod(dims))
    if len(data) - header_bytes != expected:
        raise ValueError(
            f"{path}: header says {dims} = {expected} bytes of data but the file holds "
            f"{len(data) - header_bytes}; the file is truncated or corrupt"
        )
    return np.frombuffer(data, np.uint8, offset=header_bytes).reshape(dims)


def find_idx(root: Path, stem: str) -> Path:
    """``root/stem`` or ``root/stem.gz``, whichever exists."""
    for name in (stem, stem + GZIP_SUFFIX):
        if (root / name).is_file():
            return root / name
    raise FileNotFoundError(
        f"{root / stem}[{GZIP_SUFFIX}]: file not found. An MNIST folder holds the four IDX files "
        "train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte and "
        "t10k-labels-idx1-ubyte, each optionally gzipped (.gz)."
    )


def write_idx(path: str | Path, array: np.ndarray) -> Path:
    """Write ``array`` (uint8 images N×H×W or labels N) as an IDX file, gzip-compressed when
    ``path`` ends in ``.gz`` — the inverse of :func:`read_idx`, for exporting subsets."""
    path = Path(path)
    array = np.ascontiguousarray(array, np.uint8)
    magic = {3: IMAGES_MAGIC, 1: LABELS_MAGIC}.get(array.ndim)
    if magic is None:
        raise ValueError(f"IDX export takes N×H×W images or N labels, got shape {array.shape}")
    header = np.array([magic, *array.shape], ">u4").tobytes()
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "wb") as handle:
        handle.write(header + array.tobytes())
    return path


class MNISTDataset(ImageDataset):
    """Handwritten digits from the IDX files (see the module docstring)."""

    def __init__(
        self,
        root: str | Path,
        *,
        split: str,
        transform: Callable[[RawSample], dict] | None = None,
        mode: str = "RGB",
        on_bad_image: OnBadImage = "error",
    ) -> None:
        super().__init__(transform=transform, mode=mode, on_bad_image=on_bad_image)
        if mode not in CHANNELS:
            raise ValueError(f"mode must be one of {sorted(CHANNELS)}, got {mode!r}")
        self.root = self._locate(Path(root), SPLIT_PREFIX[check_split(split)] + IMAGES_SUFFIX)
        self.split = split
        self.test_split = "the MNIST test set (t10k)" if split == "val" else None
        prefix = SPLIT_PREFIX[split]
        images_path = find_idx(self.root, prefix + IMAGES_SUFFIX)
        labels_path = find_idx(self.root, prefix + LABELS_SUFFIX)
        self.images = read_idx(images_path, IMAGES_MAGIC, ndim=3)
        self.labels = read_idx(labels_path, LABELS_MAGIC, ndim=1).astype(np.int64)
        if len(self.images) != len(self.labels):
            raise ValueError(
                f"{images_path} holds {len(self.images)} images but {labels_path} holds "
                f"{len(self.labels)} labels; the two files must come from the same release"
            )
        if not len(self.images):
            raise ValueError(f"{images_path}: no images for split {split!r}")
        self.classes = [str(digit) for digit in range(NUM_DIGITS)]
        self.check_labels(self.labels, str(labels_path))
        channels = CHANNELS[mode]
        self.normalization = ((MNIST_MEAN,) * channels, (MNIST_STD,) * channels)

    @staticmethod
    def _locate(root: Path, stem: str) -> Path:
        for folder in (root, root / TORCHVISION_SUBFOLDER):
            if any((folder / name).is_file() for name in (stem, stem + GZIP_SUFFIX)):
                return folder
        return root

    def __len__(self) -> int:
        return len(self.labels)

    def load(self, index: int) -> RawSample:
        image = Image.fromarray(self.images[index])  # uint8 H×W → mode "L"
        return RawSample(
            image=convert_mode(image, self.mode),
            label=int(self.labels[index]),
            sample_id=f"{self.split}/{index}",
            boxes=no_boxes(),
        )
