"""Oxford-IIIT Pet (37 cat and dog breeds) with its pixel trimaps as ground truth.

::

    root/                         (or the folder holding oxford-iiit-pet/)
      images/<Image>.jpg
      annotations/list.txt        <Image> <CLASS-ID> <SPECIES> <BREED-ID>, '#' header lines
      annotations/trainval.txt    the "train" split, same columns
      annotations/test.txt        the "val" split
      annotations/trimaps/<Image>.png   1 = pet, 2 = background, 3 = border

label = CLASS-ID − 1; ``classes`` are the breed names taken from list.txt's image names
(the name without its trailing ``_<number>``: ``Abyssinian``, ``american_bulldog``, …; cat
breeds are capitalised). ``sample_id`` is ``<Image>``; ``species`` holds SPECIES (1 = cat,
2 = dog) per sample.

Ground truth: ``mask`` is the pet *including its border* (trimap 1 or 3), since the border
band is where the pet's outline lies; ``boxes`` is the one tight box of that mask,
``(x0, y0, x1, y1)`` with x1, y1 one past the last mask column/row (pixel edges), in
original pixels. An image without a trimap file gets ``mask=None`` and no box (the sample
is still used for classification); a trimap that cannot be read or whose size differs from
its image is a bad image (raised, or skipped with ``on_bad_image="skip"``).
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

from ._files import check_split, empty_split_error, find_root, no_boxes, read_table, require_file
from .base import ImageDataset, OnBadImage, RawSample
from .io import BadImageError, open_image

LIST_FILE = Path("annotations", "list.txt")
SPLIT_FILES = {"train": Path("annotations", "trainval.txt"), "val": Path("annotations", "test.txt")}
IMAGES_FOLDER = "images"
TRIMAPS_FOLDER = Path("annotations", "trimaps")
IMAGE_SUFFIX, TRIMAP_SUFFIX = ".jpg", ".png"
#: Trimap values.
PET, BACKGROUND, BORDER = 1, 2, 3
#: Trimap values counted as the pet in ``mask``.
MASK_VALUES = (PET, BORDER)
#: Trimap modes whose raw values are the labels (others are converted to "L").
RAW_TRIMAP_MODES = ("L", "P", "I", "I;16")
#: Folder name of the official archive / torchvision download, accepted below ``root``.
ARCHIVE_FOLDER = "oxford-iiit-pet"
BREED_SEPARATOR = "_"
FIRST_CLASS_ID = 1
ROW_TYPES = (str, int, int, int)
LAYOUT_HINT = (
    "An Oxford-IIIT Pet folder holds images/*.jpg and annotations/ with list.txt, trainval.txt, "
    "test.txt and trimaps/ (from images.tar.gz and annotations.tar.gz)."
)


def mask_to_box(mask: np.ndarray) -> np.ndarray:
    """The tight ``1×4`` xyxy box of a bool mask (x1, y1 one past the last pixel), or ``0×4``."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if not rows.size:
        return no_boxes()
    return np.array([[cols[0], rows[0], cols[-1] + 1, rows[-1] + 1]], np.float32)


class PetsDataset(ImageDataset):
    """Oxford-IIIT Pet (see the module docstring for the mask and box conventions)."""

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
        self.root = find_root(root, LIST_FILE, (ARCHIVE_FOLDER,))
        self.classes = self._read_classes()
        split_path = require_file(self.root / SPLIT_FILES[check_split(split)], LAYOUT_HINT)
        self.test_split = "the Oxford-IIIT Pet test split (annotations/test.txt)" if split == "val" else None
        rows = read_table(split_path, ROW_TYPES)
        if not rows:
            raise empty_split_error(split_path, split, LAYOUT_HINT)
        self.names = [row[0] for row in rows]
        self.labels = np.array([row[1] for row in rows], np.int64) - FIRST_CLASS_ID
        self.species = np.array([row[2] for row in rows], np.int64)
        self.check_labels(self.labels, str(split_path))

    def _read_classes(self) -> list[str]:
        path = require_file(self.root / LIST_FILE, LAYOUT_HINT)
        breeds: dict[int, str] = {}
        for name, class_id, _, _ in read_table(path, ROW_TYPES):
            breed = name.rsplit(BREED_SEPARATOR, 1)[0]
            if breeds.setdefault(class_id, breed) != breed:
                raise ValueError(
                    f"{path}: CLASS-ID {class_id} is used for both {breeds[class_id]} and {breed}"
                )
        if sorted(breeds) != list(range(FIRST_CLASS_ID, len(breeds) + FIRST_CLASS_ID)):
            raise ValueError(f"{path}: CLASS-IDs must run 1, 2, … without gaps, got {sorted(breeds)}")
        return [breeds[class_id] for class_id in sorted(breeds)]

    def __len__(self) -> int:
        return len(self.names)

    def _trimap(self, name: str, size: tuple[int, int]) -> np.ndarray | None:
        """The trimap of ``name`` as an H×W array, or None when it has no trimap file."""
        path = self.root / TRIMAPS_FOLDER / f"{name}{TRIMAP_SUFFIX}"
        if not path.is_file():
            return None
        try:
            with Image.open(path) as img:
                trimap = np.asarray(img if img.mode in RAW_TRIMAP_MODES else img.convert("L"))
        except (OSError, SyntaxError, ValueError) as err:
            raise BadImageError(path, f"trimap cannot be read ({err})") from err
        if trimap.shape[::-1] != size:
            raise BadImageError(path, f"trimap is {trimap.shape[1]}×{trimap.shape[0]} but its image is "
                                      f"{size[0]}×{size[1]}")
        return trimap

    def load(self, index: int) -> RawSample:
        name = self.names[index]
        image = open_image(self.root / IMAGES_FOLDER / f"{name}{IMAGE_SUFFIX}", self.mode)
        trimap = self._trimap(name, image.size)
        mask = None if trimap is None else np.isin(trimap, MASK_VALUES)
        return RawSample(
            image=image,
            label=int(self.labels[index]),
            sample_id=name,
            boxes=no_boxes() if mask is None else mask_to_box(mask),
            mask=mask,
        )
