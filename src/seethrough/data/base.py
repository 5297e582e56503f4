"""The dataset contract every format follows: image, label and ground truth that stays
aligned with the image through the transforms."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Callable, Literal

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from .io import BadImageError

log = logging.getLogger(__name__)

OnBadImage = Literal["error", "skip"]


@dataclass
class RawSample:
    """One sample as stored, before transforms.

    Attributes:
        image: decoded PIL image in the dataset's mode.
        label: class index in ``[0, num_classes)``.
        sample_id: stable identifier (relative path, CUB image id, ...), never sort order.
        boxes: ``N×4`` float32 ground-truth boxes, pixel ``xyxy`` in ``image`` coordinates.
        mask: ``H×W`` bool ground-truth evidence mask (same size as ``image``), or None.
    """

    image: Image.Image
    label: int
    sample_id: str
    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.float32))
    mask: np.ndarray | None = None


class ImageDataset(Dataset):
    """Base class: subclasses fill ``self.classes`` and implement ``__len__`` and :meth:`load`.

    ``__getitem__`` returns a dict ``{"image", "label", "index", "id", "boxes"[, "mask"]}``
    after ``transform`` (see :mod:`seethrough.data.transforms`). With ``on_bad_image="skip"``
    an unreadable image is logged and ``None`` is returned; :func:`collate` drops it and
    counts it in the batch's ``"skipped"`` entry.
    """

    #: (mean, std) native to the data (e.g. MNIST); None → the backbone's pretrained stats.
    normalization: tuple[tuple[float, ...], tuple[float, ...]] | None = None

    def __init__(
        self,
        *,
        transform: Callable[[RawSample], dict] | None = None,
        mode: str = "RGB",
        on_bad_image: OnBadImage = "error",
    ) -> None:
        if mode not in ("RGB", "L"):
            raise ValueError(f"image mode must be 'RGB' or 'L', got {mode!r}")
        if on_bad_image not in ("error", "skip"):
            raise ValueError(f"on_bad_image must be 'error' or 'skip', got {on_bad_image!r}")
        self.transform = transform
        self.mode = mode
        self.on_bad_image = on_bad_image
        self.classes: list[str] = []

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def load(self, index: int) -> RawSample:  # pragma: no cover - abstract
        raise NotImplementedError

    def __getitem__(self, index: int) -> dict | None:
        try:
            raw = self.load(index)
        except BadImageError as err:
            if self.on_bad_image == "error":
                raise
            log.warning("skipping bad image (%s)", err.path)
            return None
        if self.transform is None:
            return {"image": raw.image, "label": raw.label, "index": index, "id": raw.sample_id,
                    "boxes": raw.boxes, "mask": raw.mask}
        sample = self.transform(raw)
        sample["index"] = index
        return sample

    def check_labels(self, labels: list[int] | np.ndarray, source: str) -> None:
        """Raise if any label is outside ``[0, num_classes)``, naming ``source``."""
        labels = np.asarray(labels)
        if labels.size and (labels.min() < 0 or labels.max() >= self.num_classes):
            bad = labels[(labels < 0) | (labels >= self.num_classes)]
            raise ValueError(
                f"{source}: labels {sorted(set(bad.tolist()))[:5]} are outside [0, {self.num_classes}) "
                f"for {self.num_classes} classes; check the annotation file or the class count"
            )


def collate(samples: list[dict | None]) -> dict:
    """Stack a batch; ``boxes`` stay a list (their count varies), skipped samples are counted."""
    kept = [s for s in samples if s is not None]
    batch: dict = {"skipped": len(samples) - len(kept)}
    if not kept:
        return batch
    batch["image"] = torch.stack([s["image"] for s in kept])
    batch["label"] = torch.tensor([s["label"] for s in kept], dtype=torch.long)
    batch["index"] = torch.tensor([s["index"] for s in kept], dtype=torch.long)
    batch["id"] = [s["id"] for s in kept]
    batch["boxes"] = [s["boxes"] for s in kept]
    if all(s.get("mask") is not None for s in kept):
        batch["mask"] = torch.stack([s["mask"] for s in kept])
    return batch
