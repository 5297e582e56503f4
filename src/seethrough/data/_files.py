"""Small helpers shared by the on-disk formats: image listing, annotation tables, clear errors."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from .registry import SPLITS

#: File extensions read as images (compared lower-case).
IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm"}
)
#: Marks a comment line in the text annotation files.
COMMENT = "#"


def check_split(split: str) -> str:
    """Return ``split`` if it is "train" or "val", else raise ``ValueError``."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    return split


def first_classes(classes: list[str], num_classes: int | None) -> list[str]:
    """The first ``num_classes`` of ``classes`` (all when None), as SCOUTER selects them."""
    if num_classes is None:
        return classes
    if not 1 <= num_classes <= len(classes):
        raise ValueError(f"num_classes must be in [1, {len(classes)}], got {num_classes}")
    return classes[:num_classes]


def no_boxes() -> np.ndarray:
    """An empty ``0×4`` float32 box array."""
    return np.zeros((0, 4), np.float32)


def is_image_name(name: str) -> bool:
    """True for a visible file name with an image extension (``._x.jpg`` macOS debris is not)."""
    return not name.startswith(".") and os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def list_image_files(folder: Path, *, recursive: bool) -> list[str]:
    """Image files under ``folder`` as ``/``-separated paths relative to it, in a stable order
    (directories sorted, then names sorted, as torchvision's ``ImageFolder``); hidden files
    and folders are ignored, symbolic links are followed."""
    if not recursive:
        with os.scandir(folder) as entries:
            return [e.name for e in sorted(entries, key=lambda e: e.name)
                    if is_image_name(e.name) and e.is_file()]
    found: list[str] = []
    for dirpath, _, filenames in sorted(os.walk(folder, followlinks=True)):
        parts = Path(dirpath).relative_to(folder).parts
        if any(part.startswith(".") for part in parts):
            continue
        prefix = "".join(part + "/" for part in parts)
        found += [prefix + name for name in sorted(filenames) if is_image_name(name)]
    return found


def pack_strings(strings: list[str]) -> np.ndarray:
    """Strings (file paths) as one numpy bytes array: for large datasets this takes a fraction
    of the memory of a list, and DataLoader workers share it without copy-on-read growth.
    Read an entry back with :func:`os.fsdecode`."""
    return np.array([os.fsencode(s) for s in strings], dtype=np.bytes_)


def list_subfolders(folder: Path) -> list[str]:
    """Names of the visible sub-folders of ``folder``, sorted."""
    with os.scandir(folder) as entries:
        return sorted(e.name for e in entries if e.is_dir() and not e.name.startswith("."))


def require_file(path: Path, hint: str) -> Path:
    """Return ``path`` or raise ``FileNotFoundError`` naming it, followed by ``hint``."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: file not found. {hint}")
    return path


def require_dir(path: Path, hint: str) -> Path:
    """Return ``path`` or raise ``FileNotFoundError`` naming it, followed by ``hint``."""
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: folder not found. {hint}")
    return path


def empty_split_error(where: Path | str, split: str, hint: str) -> ValueError:
    """The error for a split without a single sample."""
    return ValueError(f"{where}: no images found for split {split!r}. {hint}")


def read_table(path: Path, types: Sequence[Callable[[str], object]]) -> list[tuple]:
    """Rows of a whitespace-separated text file, each field converted by ``types``.

    Blank lines and lines starting with ``#`` are skipped; the last field keeps any inner
    spaces. A row with the wrong field count or an unparsable value raises ``ValueError``
    naming the file and the line.
    """
    count = len(types)
    rows: list[tuple] = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            text = line.strip()
            if not text or text.startswith(COMMENT):
                continue
            fields = text.split(None, count - 1)
            try:
                if len(fields) != count:
                    raise ValueError
                rows.append(tuple(convert(field) for convert, field in zip(types, fields)))
            except ValueError:
                raise ValueError(
                    f"{path}, line {number}: expected {count} fields "
                    f"({', '.join(t.__name__ for t in types)}), got {text!r}"
                ) from None
    return rows


def find_root(root: str | Path, marker: str | Path, nested: Sequence[str]) -> Path:
    """``root`` itself when it holds ``marker``, else the first ``root/<nested>`` that does
    (so users may pass the folder they extracted the archive into); else ``root``."""
    root = Path(root)
    if (root / marker).exists():
        return root
    for name in nested:
        if (root / name / marker).exists():
            return root / name
    return root
