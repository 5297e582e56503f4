"""ImageNet (ILSVRC CLS-LOC) with its localization boxes.

::

    root/
      train/<synset>/<ImageId>.JPEG
      val/<ImageId>.JPEG                 flat, as distributed, labelled by the CSV below —
      val/<synset>/<ImageId>.JPEG        — or in synset folders (``val_dir`` may point to the
                                         output of imagenet_val.regroup_val instead)
      LOC_val_solution.csv               ImageId,PredictionString
                                         ("synset xmin ymin xmax ymax" repeated per object)
      Annotations/CLS-LOC/val/<ImageId>.xml              PASCAL VOC boxes (optional)
      Annotations/CLS-LOC/train/<synset>/<ImageId>.xml   (optional, about 40% of train)

Classes are the first ``num_classes`` synsets of the sorted ``train/`` folder names
(all when None), as SCOUTER does; label = position. A flat val image's label is the first
synset of its PredictionString (a val folder holding image files is read as flat, one
holding only folders as synset folders). Boxes come from the image's VOC XML when there is one
(val: ``annotations`` folder, default ``Annotations/CLS-LOC/val``), else — for val — from the
CSV; only boxes of the image's own synset are kept, in original pixels. ``sample_id`` is the
ImageId (the file name without extension), the same whichever val layout is used.
"""
from __future__ import annotations

import csv
import os
import re
import xml.etree.ElementTree as ElementTree
from pathlib import Path
from typing import Callable

import numpy as np

from ._files import (
    check_split,
    empty_split_error,
    first_classes,
    list_image_files,
    list_subfolders,
    no_boxes,
    pack_strings,
    require_dir,
)
from .base import ImageDataset, OnBadImage, RawSample
from .io import open_image

TRAIN_FOLDER, VAL_FOLDER = "train", "val"
SOLUTION_CSV = "LOC_val_solution.csv"
ANNOTATIONS_FOLDER = Path("Annotations", "CLS-LOC")
CSV_HEADER = ["ImageId", "PredictionString"]
#: Tokens per object in a PredictionString: synset xmin ymin xmax ymax.
TOKENS_PER_BOX = 5
#: ImageIds and synsets are plain names (no path separators, no dots): safe as file names.
SAFE_NAME = re.compile(r"[A-Za-z0-9_-]+")
VOC_COORDS = ("xmin", "ymin", "xmax", "ymax")
LAYOUT_HINT = (
    "An ImageNet CLS-LOC folder holds train/<synset>/*.JPEG, val/ (flat *.JPEG with "
    "LOC_val_solution.csv, or val/<synset>/*.JPEG) and optionally Annotations/CLS-LOC/."
)

#: ImageId → (synset of each object, their ``N×4`` xyxy boxes).
Solution = dict[str, tuple[list[str], np.ndarray]]


def read_solution_csv(path: str | Path) -> Solution:
    """Parse ``LOC_val_solution.csv`` (``ImageId,PredictionString``, where PredictionString
    repeats ``synset xmin ymin xmax ymax``); errors name the file and the line."""
    path = Path(path)
    solution: Solution = {}
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header != CSV_HEADER:
            raise ValueError(f"{path}: expected the header {','.join(CSV_HEADER)}, got {header}")
        for row in reader:
            if not row:
                continue
            line = reader.line_num
            tokens = row[1].split() if len(row) == len(CSV_HEADER) else []
            if not tokens or len(tokens) % TOKENS_PER_BOX:
                raise ValueError(
                    f"{path}, line {line}: expected ImageId,'synset xmin ymin xmax ymax ...', got {row}"
                )
            synsets = tokens[::TOKENS_PER_BOX]
            if not all(SAFE_NAME.fullmatch(name) for name in [row[0], *synsets]):
                raise ValueError(f"{path}, line {line}: ImageId and synsets must be plain names, got {row}")
            try:
                boxes = np.array([tokens[i + 1 : i + TOKENS_PER_BOX]
                                  for i in range(0, len(tokens), TOKENS_PER_BOX)], np.float32)
            except ValueError:
                raise ValueError(f"{path}, line {line}: box coordinates must be numbers, got {row}") from None
            solution[row[0]] = (synsets, boxes)
    return solution


def image_id(path: str) -> str:
    """The ImageId of an image path: its file name without extension."""
    return os.path.splitext(os.path.basename(path))[0]


def read_voc_boxes(path: Path, synset: str) -> np.ndarray | None:
    """The ``xyxy`` boxes of the objects named ``synset`` in a PASCAL VOC XML file, or
    None when the file does not exist."""
    try:
        tree = ElementTree.parse(path)
    except FileNotFoundError:
        return None
    except ElementTree.ParseError as err:
        raise ValueError(f"{path}: not a readable PASCAL VOC XML file ({err})") from err
    boxes = []
    for obj in tree.getroot().iter("object"):
        box = obj.find("bndbox")
        if obj.findtext("name", "").strip() != synset or box is None:
            continue
        try:
            boxes.append([float(box.findtext(coord, "")) for coord in VOC_COORDS])
        except ValueError:
            raise ValueError(f"{path}: a <bndbox> lacks one of {', '.join(VOC_COORDS)}") from None
    return np.array(boxes, np.float32).reshape(-1, 4)


class ImageNetDataset(ImageDataset):
    """ILSVRC CLS-LOC (see the module docstring).

    Args:
        num_classes: keep the first N sorted synsets (None: all).
        annotations: folder of the val VOC XML files (default ``root/Annotations/CLS-LOC/val``).
        val_dir: folder of the val images, flat or regrouped (default ``root/val``).
    """

    def __init__(
        self,
        root: str | Path,
        *,
        split: str,
        transform: Callable[[RawSample], dict] | None = None,
        mode: str = "RGB",
        on_bad_image: OnBadImage = "error",
        num_classes: int | None = None,
        annotations: str | Path | None = None,
        val_dir: str | Path | None = None,
    ) -> None:
        super().__init__(transform=transform, mode=mode, on_bad_image=on_bad_image)
        self.root = Path(root)
        self.split = check_split(split)
        self.test_split = "the ILSVRC-2012 validation set, ImageNet's reported test set" if split == "val" else None
        train_dir = require_dir(self.root / TRAIN_FOLDER, LAYOUT_HINT)
        synsets = list_subfolders(train_dir)
        if not synsets:
            raise ValueError(f"{train_dir}: no synset folders. {LAYOUT_HINT}")
        self.classes = first_classes(synsets, num_classes)
        csv_path = self.root / SOLUTION_CSV
        self.solution: Solution = {}
        if split == "train":
            self.box_dir = self.root / ANNOTATIONS_FOLDER / TRAIN_FOLDER
            self.split_dir = train_dir
            files, labels = self._scan_synset_folders(train_dir, set(synsets))
        else:
            self.box_dir = Path(annotations) if annotations else self.root / ANNOTATIONS_FOLDER / VAL_FOLDER
            self.split_dir = require_dir(Path(val_dir) if val_dir else self.root / VAL_FOLDER, LAYOUT_HINT)
            if csv_path.is_file():
                self.solution = read_solution_csv(csv_path)
            flat = list_image_files(self.split_dir, recursive=False)
            if flat:
                files, labels = self._label_flat(flat, csv_path, set(synsets))
            else:
                files, labels = self._scan_synset_folders(self.split_dir, set(synsets))
        if not files:
            raise empty_split_error(self.split_dir, split, LAYOUT_HINT)
        #: Image paths relative to ``split_dir``, packed (see ``pack_strings``).
        self.files = pack_strings(files)
        self.labels = np.asarray(labels, np.int64)
        self.check_labels(self.labels, str(self.split_dir))

    def _scan_synset_folders(self, folder: Path, known: set[str]) -> tuple[list[str], list[int]]:
        """Images of the kept synsets in ``folder/<synset>/``; an unknown synset is an error."""
        unknown = sorted(set(list_subfolders(folder)) - known)
        if unknown:
            raise ValueError(f"{folder}: synset folders {unknown[:5]} are not among the train/ synsets")
        files: list[str] = []
        labels: list[int] = []
        for label, synset in enumerate(self.classes):
            if (folder / synset).is_dir():
                found = list_image_files(folder / synset, recursive=False)
                files += [f"{synset}/{name}" for name in found]
                labels += [label] * len(found)
        return files, labels

    def _label_flat(self, flat: list[str], csv_path: Path, known: set[str]) -> tuple[list[str], list[int]]:
        """Flat val images labelled by the first synset of their CSV row; kept if in classes."""
        if not self.solution:
            raise FileNotFoundError(
                f"{csv_path}: file not found (or empty); it labels the flat val images in "
                f"{self.split_dir}. {LAYOUT_HINT}"
            )
        unlabelled = [name for name in flat if image_id(name) not in self.solution]
        if unlabelled:
            raise ValueError(f"{csv_path}: no row for {len(unlabelled)} val images, e.g. {unlabelled[:3]}")
        first = [self.solution[image_id(name)][0][0] for name in flat]
        unknown = sorted(set(first) - known)
        if unknown:
            raise ValueError(f"{csv_path}: synsets {unknown[:5]} are not among the train/ synsets")
        index = {synset: label for label, synset in enumerate(self.classes)}
        labels = np.array([index.get(synset, -1) for synset in first])
        kept = np.flatnonzero(labels >= 0)
        return [flat[i] for i in kept], labels[kept].tolist()

    def __len__(self) -> int:
        return len(self.files)

    def _boxes(self, index: int, name: str) -> np.ndarray:
        """Ground-truth boxes of sample ``index`` (ImageId ``name``; own synset only), original pixels."""
        synset = self.classes[self.labels[index]]
        xml_dir = self.box_dir / synset if self.split == "train" else self.box_dir
        boxes = read_voc_boxes(xml_dir / f"{name}.xml", synset)
        if boxes is None and name in self.solution:
            synsets, all_boxes = self.solution[name]
            boxes = all_boxes[np.asarray(synsets) == synset]
        return no_boxes() if boxes is None else boxes

    def load(self, index: int) -> RawSample:
        relative = os.fsdecode(self.files[index])
        name = image_id(relative)
        return RawSample(
            image=open_image(self.split_dir / relative, self.mode),
            label=int(self.labels[index]),
            sample_id=name,
            boxes=self._boxes(index, name),
        )
