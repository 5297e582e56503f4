"""Con-Text (fine-grained shop-front classification), split as the SCOUTER original splits it.

::

    root/                      (the folder holding the images, e.g. con-text/JPEGImages/,
      <category>_<id>.jpg       or its parent holding JPEGImages/)

The category is the file-name prefix before the first ``_``; classes are the categories in
sorted order (Python string order, so ``"10"`` sorts before ``"2"``); label = position.

The split reproduces the original (SCOUTER's ``dataset/ConText.py``) exactly. The original
lists the top level of its ``--dataset_dir`` (``con-text/JPEGImages/``) with ``os.walk``,
takes the file names in ``sorted()`` order (code-point order of the bare names, so
upper-case before lower-case and ``"b_10"`` before ``"b_2"``), and passes that list to
``sklearn.model_selection.train_test_split(train_size=0.8, random_state=1)``. That is
ShuffleSplit: ``n_train = floor(0.8 n)``, ``n_val = n − n_train``, ``p =
RandomState(1).permutation(n)``, val = ``p[:n_val]``, train = ``p[n_val:]``, each split in
that permutation order. :func:`original_split` computes the same indices with numpy alone.

Deviation, only for folders with stray files: the original lists every file, so it would
also "split" non-images; here only image files (see ``IMAGE_EXTENSIONS``) are listed, and a
warning says that the split of such a folder differs from the original's. An image name
without ``_`` is an error (the original silently takes all but its last character).
``sample_id`` is the file name; no boxes or masks.
"""
from __future__ import annotations

import logging
import math
import os
from pathlib import Path
from typing import Callable

import numpy as np

from ._files import check_split, empty_split_error, is_image_name, no_boxes, require_dir
from .base import ImageDataset, OnBadImage, RawSample
from .io import open_image

log = logging.getLogger(__name__)

#: The original's train fraction and ``random_state``.
TRAIN_FRACTION = 0.8
SPLIT_SEED = 1
CATEGORY_SEPARATOR = "_"
#: The images folder of the Con-Text archive, accepted one level below ``root``.
IMAGES_FOLDER = "JPEGImages"
LAYOUT_HINT = "Con-Text is one flat folder of <category>_<id>.jpg files (con-text/JPEGImages/)."


def original_split(
    n: int, train_fraction: float = TRAIN_FRACTION, seed: int = SPLIT_SEED
) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``(train, val)`` that ``sklearn.model_selection.train_test_split(range(n),
    train_size=train_fraction, random_state=seed)`` returns, without sklearn."""
    if not 0 < train_fraction < 1:
        raise ValueError(f"train_fraction must be in (0, 1), got {train_fraction}")
    n_train = math.floor(train_fraction * n)
    if n_train == 0:
        raise ValueError(f"{n} images with train fraction {train_fraction} leave the train split empty")
    n_val = n - n_train
    permutation = np.random.RandomState(seed).permutation(n)
    return permutation[n_val:], permutation[:n_val]


class ConTextDataset(ImageDataset):
    """Con-Text (see the module docstring for the file order and the split)."""

    def __init__(
        self,
        root: str | Path,
        *,
        split: str,
        transform: Callable[[RawSample], dict] | None = None,
        mode: str = "RGB",
        on_bad_image: OnBadImage = "error",
        train_fraction: float = TRAIN_FRACTION,
        seed: int = SPLIT_SEED,
    ) -> None:
        super().__init__(transform=transform, mode=mode, on_bad_image=on_bad_image)
        check_split(split)
        self.test_split = "Con-Text's held-out 20 %, the SCOUTER original's test set" if split == "val" else None
        folder = Path(root)
        if (folder / IMAGES_FOLDER).is_dir():
            folder = folder / IMAGES_FOLDER
        self.root = require_dir(folder, LAYOUT_HINT)
        names = self._list_names()
        if not names:
            raise empty_split_error(self.root, split, LAYOUT_HINT)
        unnamed = [name for name in names if CATEGORY_SEPARATOR not in name]
        if unnamed:
            raise ValueError(
                f"{self.root}: file names {unnamed[:5]} lack the '<category>_' prefix. {LAYOUT_HINT}"
            )
        categories = [name.split(CATEGORY_SEPARATOR, 1)[0] for name in names]
        self.classes = sorted(set(categories))
        index = {category: label for label, category in enumerate(self.classes)}
        train, val = original_split(len(names), train_fraction, seed)
        chosen = train if split == "train" else val
        self.names = [names[i] for i in chosen]
        self.labels = np.array([index[categories[i]] for i in chosen], np.int64)
        self.check_labels(self.labels, str(self.root))

    def _list_names(self) -> list[str]:
        """Top-level file names in the original's ``sorted()`` order, images only."""
        with os.scandir(self.root) as entries:
            files = sorted(e.name for e in entries if not e.is_dir())
        images = [name for name in files if is_image_name(name)]
        if len(images) != len(files):
            others = sorted(set(files) - set(images))
            log.warning(
                "%s: ignoring %d non-image files (e.g. %s); the original split counts every file, "
                "so this folder's split differs from SCOUTER's", self.root, len(others), others[:3],
            )
        return images

    def __len__(self) -> int:
        return len(self.names)

    def load(self, index: int) -> RawSample:
        name = self.names[index]
        return RawSample(
            image=open_image(self.root / name, self.mode),
            label=int(self.labels[index]),
            sample_id=name,
            boxes=no_boxes(),
        )
