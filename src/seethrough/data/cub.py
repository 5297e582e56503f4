"""CUB-200-2011 birds, with the official train/test split, bounding boxes and part locations.

::

    root/                       (the CUB_200_2011 folder, or the folder holding it)
      images/<class folder>/<image>.jpg
      images.txt                <image_id> <relative path under images/>
      image_class_labels.txt    <image_id> <class_id>
      train_test_split.txt      <image_id> <is_training: 1 = "train", 0 = "val">
      classes.txt               <class_id> <name>          (ids 1…K in order)
      bounding_boxes.txt        <image_id> <x> <y> <width> <height>   (pixels, top-left)
      parts/parts.txt           <part_id> <name>           (optional, for :meth:`parts`)
      parts/part_locs.txt       <image_id> <part_id> <x> <y> <visible>

Ids are 1-based; label = class_id − 1 and ``classes`` are the names of classes.txt. With
``num_classes=N`` only classes with id ≤ N are kept (as SCOUTER selects its first N birds).
Samples follow images.txt order; ``sample_id`` is the CUB image id. Each sample carries its
one box, converted to ``xyxy`` = (x, y, x + width, y + height); no mask.
"""
from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Callable

import numpy as np

from ._files import check_split, empty_split_error, find_root, first_classes, no_boxes, read_table, require_file
from .base import ImageDataset, OnBadImage, RawSample
from .io import open_image

IMAGES_FILE = "images.txt"
LABELS_FILE = "image_class_labels.txt"
SPLIT_FILE = "train_test_split.txt"
CLASSES_FILE = "classes.txt"
BOXES_FILE = "bounding_boxes.txt"
PART_NAMES_FILE = "parts/parts.txt"
PART_LOCS_FILE = "parts/part_locs.txt"
IMAGES_FOLDER = "images"
#: Folder name inside the official archive, accepted one level below ``root``.
ARCHIVE_FOLDER = "CUB_200_2011"
#: train_test_split.txt value of each split.
IS_TRAINING = {"train": 1, "val": 0}
FIRST_ID = 1
LAYOUT_HINT = (
    "A CUB-200-2011 folder (from CUB_200_2011.tgz) holds images/, images.txt, "
    "image_class_labels.txt, train_test_split.txt, classes.txt, bounding_boxes.txt and parts/."
)


class CUBDataset(ImageDataset):
    """CUB-200-2011 (see the module docstring); ``num_classes=N`` keeps the first N classes."""

    def __init__(
        self,
        root: str | Path,
        *,
        split: str,
        transform: Callable[[RawSample], dict] | None = None,
        mode: str = "RGB",
        on_bad_image: OnBadImage = "error",
        num_classes: int | None = None,
    ) -> None:
        super().__init__(transform=transform, mode=mode, on_bad_image=on_bad_image)
        check_split(split)
        self.test_split = ("CUB-200-2011's official test split (train_test_split.txt is_training 0)"
                           if split == "val" else None)
        self.root = find_root(root, IMAGES_FILE, (ARCHIVE_FOLDER,))
        self.classes = self._read_classes()
        paths = dict(self._table(IMAGES_FILE, (int, str)))
        ids = np.fromiter(paths, dtype=np.int64, count=len(paths))
        labels = self._per_image(LABELS_FILE, ids, int) - FIRST_ID
        self.check_labels(labels, str(self.root / LABELS_FILE))
        is_training = self._per_image(SPLIT_FILE, ids, int)
        if not np.isin(is_training, list(IS_TRAINING.values())).all():
            raise ValueError(f"{self.root / SPLIT_FILE}: is_training must be 0 or 1")
        self.classes = first_classes(self.classes, num_classes)
        keep = (is_training == IS_TRAINING[split]) & (labels < len(self.classes))
        if not keep.any():
            raise empty_split_error(self.root / SPLIT_FILE, split, LAYOUT_HINT)
        self.image_ids = ids[keep]
        self.labels = labels[keep]
        self.paths = [paths[int(i)] for i in self.image_ids]
        self.boxes = self._read_boxes(self.image_ids)

    def _table(self, name: str, types: tuple) -> list[tuple]:
        return read_table(require_file(self.root / name, LAYOUT_HINT), types)

    def _read_classes(self) -> list[str]:
        rows = self._table(CLASSES_FILE, (int, str))
        if [cid for cid, _ in rows] != list(range(FIRST_ID, len(rows) + FIRST_ID)):
            raise ValueError(f"{self.root / CLASSES_FILE}: class ids must run 1, 2, … in order")
        return [name for _, name in rows]

    def _per_image(self, name: str, ids: np.ndarray, kind: type) -> np.ndarray:
        """The value column of ``<image_id> <value>`` file ``name`` for each of ``ids``."""
        values = dict(self._table(name, (int, kind)))
        missing = [int(i) for i in ids if int(i) not in values]
        if missing:
            raise ValueError(f"{self.root / name}: no entry for image ids {missing[:5]} of {IMAGES_FILE}")
        return np.array([values[int(i)] for i in ids])

    def _read_boxes(self, ids: np.ndarray) -> np.ndarray:
        """``len(ids)×4`` xyxy boxes; NaN rows for images bounding_boxes.txt does not list."""
        table = {row[0]: row[1:] for row in self._table(BOXES_FILE, (int, float, float, float, float))}
        xywh = np.array([table.get(int(i), (np.nan,) * 4) for i in ids], dtype=np.float32).reshape(-1, 4)
        return np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1)

    @cached_property
    def part_names(self) -> list[str]:
        """Names of parts/parts.txt, index = part_id − 1."""
        rows = self._table(PART_NAMES_FILE, (int, str))
        if [pid for pid, _ in rows] != list(range(FIRST_ID, len(rows) + FIRST_ID)):
            raise ValueError(f"{self.root / PART_NAMES_FILE}: part ids must run 1, 2, … in order")
        return [name for _, name in rows]

    @cached_property
    def _part_locations(self) -> np.ndarray:
        """``len(self)×P×3`` (x, y, visible), read once on first use; unlisted parts are 0."""
        table = np.array(self._table(PART_LOCS_FILE, (int, int, float, float, float)), np.float64)
        table = table.reshape(-1, 5)
        num_parts = len(self.part_names)
        part = table[:, 1].astype(np.int64) - FIRST_ID
        if part.size and (part.min() < 0 or part.max() >= num_parts):
            raise ValueError(
                f"{self.root / PART_LOCS_FILE}: part ids outside 1…{num_parts} of {PART_NAMES_FILE}"
            )
        image = table[:, 0].astype(np.int64)
        position = np.full(max(int(image.max(initial=0)), int(self.image_ids.max())) + 1, -1)
        position[self.image_ids] = np.arange(len(self.image_ids))
        row = np.where(image >= 0, position[np.maximum(image, 0)], -1)
        mine = row >= 0
        out = np.zeros((len(self.image_ids), num_parts, 3), np.float32)
        out[row[mine], part[mine]] = table[mine, 2:]
        return out

    def parts(self, index: int) -> np.ndarray:
        """Part locations of sample ``index``: ``P×3`` float32 rows (x, y, visible) in original
        image pixels, row p = part_id p + 1 (see :attr:`part_names`); parts not annotated
        for the image have visible = 0."""
        return self._part_locations[index]

    def __len__(self) -> int:
        return len(self.paths)

    def load(self, index: int) -> RawSample:
        box = self.boxes[index : index + 1]
        return RawSample(
            image=open_image(self.root / IMAGES_FOLDER / self.paths[index], self.mode),
            label=int(self.labels[index]),
            sample_id=str(self.image_ids[index]),
            boxes=no_boxes() if np.isnan(box).any() else box.copy(),
        )
