"""``KIND:PATH`` dataset specs → dataset objects. One module per on-disk format."""
from __future__ import annotations

import importlib
from typing import Any

from .base import ImageDataset

#: kind → "module:Class" (imported lazily so a format's dependencies load only when used).
DATASETS: dict[str, str] = {
    "folder": "seethrough.data.folder:FolderDataset",
    "mnist": "seethrough.data.mnist:MNISTDataset",
    "cub": "seethrough.data.cub:CUBDataset",
    "imagenet": "seethrough.data.imagenet:ImageNetDataset",
    "context": "seethrough.data.context:ConTextDataset",
    "pets": "seethrough.data.pets:PetsDataset",
    "synthetic": "seethrough.data.synthetic:SyntheticDataset",
}
#: Kinds that need no PATH.
PATHLESS = {"synthetic"}
SPLITS = ("train", "val")


def parse_spec(spec: str) -> tuple[str, str | None]:
    """``"cub:/data/CUB_200_2011"`` → ``("cub", "/data/CUB_200_2011")``; ``"synthetic"`` → ``("synthetic", None)``."""
    kind, sep, path = spec.partition(":")
    kind = kind.strip().lower()
    if kind not in DATASETS:
        raise ValueError(
            f"--data {spec!r}: unknown dataset kind {kind!r}; use KIND:PATH with KIND one of "
            f"{', '.join(sorted(DATASETS))} (e.g. --data cub:/data/CUB_200_2011, --data synthetic)"
        )
    if not path and kind not in PATHLESS:
        raise ValueError(f"--data {spec!r}: {kind} needs a path, e.g. --data {kind}:/path/to/{kind}")
    return kind, (path or None)


def build_dataset(spec: str, split: str, **options: Any) -> ImageDataset:
    """Build the ``split`` ("train" or "val") of the dataset named by ``spec``.

    ``options`` go to the dataset class (``transform``, ``mode``, ``on_bad_image`` and
    format-specific ones such as ``num_classes`` for the first N classes of CUB/ImageNet).
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    kind, path = parse_spec(spec)
    module_name, cls_name = DATASETS[kind].split(":")
    cls = getattr(importlib.import_module(module_name), cls_name)
    if path is None:
        return cls(split=split, **options)
    return cls(path, split=split, **options)
