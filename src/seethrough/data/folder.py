"""ImageFolder layout: one sub-folder per class, one folder per split.

::

    root/
      train/<class>/<any/depth>/<image>.jpg
      val/<class>/...          (or test/<class>/... when there is no val/)

Classes are the sorted names of the ``train/`` sub-folders (label = position), for both
splits; a ``val/`` class folder that ``train/`` lacks is an error. Images are files with
the extensions in :data:`~seethrough.data._files.IMAGE_EXTENSIONS` (any case), found
recursively, in torchvision ``ImageFolder`` order; hidden files and folders are ignored.
``sample_id`` is the path relative to ``root`` (``/``-separated). No boxes or masks. A class
folder without images is an error (as torchvision's ``ImageFolder``) unless ``allow_empty``
(a fixed class list on purpose).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import numpy as np

from ._files import (
    check_split,
    empty_split_error,
    list_image_files,
    list_subfolders,
    no_boxes,
    pack_strings,
    require_dir,
)
from .base import ImageDataset, OnBadImage, RawSample
from .io import open_image

TRAIN_FOLDER = "train"
#: Folders tried, in order, for the "val" split.
VAL_FOLDERS = ("val", "test")
LAYOUT_HINT = "Expected root/train/<class>/*.jpg and root/val/<class>/*.jpg (or root/test/...)."


class FolderDataset(ImageDataset):
    """Images sorted into class folders (see the module docstring for the layout)."""

    def __init__(
        self,
        root: str | Path,
        *,
        split: str,
        transform: Callable[[RawSample], dict] | None = None,
        mode: str = "RGB",
        on_bad_image: OnBadImage = "error",
        allow_empty: bool = False,
    ) -> None:
        super().__init__(transform=transform, mode=mode, on_bad_image=on_bad_image)
        self.root = Path(root)
        train_dir = require_dir(self.root / TRAIN_FOLDER, LAYOUT_HINT)
        self.classes = list_subfolders(train_dir)
        if not self.classes:
            raise ValueError(f"{train_dir}: no class folders. {LAYOUT_HINT}")
        split_dir = train_dir if check_split(split) == "train" else self._val_dir()
        self.test_split = f"the test/ folder of {self.root}" if split_dir.name == "test" else None
        folders = list_subfolders(split_dir)
        unknown = sorted(set(folders) - set(self.classes))
        if unknown:
            raise ValueError(
                f"{split_dir}: class folders {unknown} do not exist in {train_dir}; the class "
                "list comes from the train split, so rename or remove them"
            )
        files: list[str] = []
        labels: list[int] = []
        empty: list[str] = []
        for name in folders:
            found = list_image_files(split_dir / name, recursive=True)
            if not found:
                empty.append(str(split_dir / name))
            files += [f"{split_dir.name}/{name}/{rel}" for rel in found]
            labels += [self.classes.index(name)] * len(found)
        if not files:
            raise empty_split_error(split_dir, split, LAYOUT_HINT)
        if empty and not allow_empty:
            raise ValueError(
                f"class folders without images: {', '.join(empty)} (as torchvision's ImageFolder, an empty "
                "class is an error: it would be a class the model never sees). Add its images, remove the "
                "folder, or keep the class on purpose with --data-opt allow_empty=true"
            )
        #: Paths relative to ``root`` (also the sample ids), packed (see ``pack_strings``).
        self.files = pack_strings(files)
        self.labels = np.asarray(labels, dtype=np.int64)
        self.check_labels(self.labels, str(split_dir))

    def _val_dir(self) -> Path:
        for name in VAL_FOLDERS:
            if (self.root / name).is_dir():
                return self.root / name
        raise FileNotFoundError(
            f"{self.root}: neither {' nor '.join(f'{n}/' for n in VAL_FOLDERS)} exists. {LAYOUT_HINT}"
        )

    def __len__(self) -> int:
        return len(self.files)

    def load(self, index: int) -> RawSample:
        relative = os.fsdecode(self.files[index])
        return RawSample(
            image=open_image(self.root / relative, self.mode),
            label=int(self.labels[index]),
            sample_id=relative,
            boxes=no_boxes(),
        )
