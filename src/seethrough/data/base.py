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
        attention_map: ``h×w`` float map at any resolution (LVW's Grad-CAM target of the base
            model, see :mod:`seethrough.prototypes.gradcam_targets`), or None; the transform
            resizes it to ``image``'s size and moves it with the image.
    """

    image: Image.Image
    label: int
    sample_id: str
    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.float32))
    mask: np.ndarray | None = None
    attention_map: np.ndarray | torch.Tensor | None = None


class ImageDataset(Dataset):
    """Base class: subclasses fill ``self.classes`` and implement ``__len__`` and :meth:`load`.

    ``__getitem__`` returns a dict ``{"image", "label", "index", "id", "boxes"[, "mask"][, "attention_map"]}``
    after ``transform`` (see :mod:`seethrough.data.transforms`). With ``on_bad_image="skip"``
    an unreadable image is logged and ``None`` is returned; :func:`collate` drops it and
    counts it in the batch's ``"skipped"`` entry.
    """

    #: (mean, std) native to the data (e.g. MNIST); None → the backbone's pretrained stats.
    normalization: tuple[tuple[float, ...], tuple[float, ...]] | None = None
    #: Set on a "val" split that is the dataset's test split (what papers report on), saying
    #: which (e.g. "CUB-200-2011's official test split"); None for a true validation split.
    #: Training warns when it selects ``best/`` on such a split (engine/selection.py).
    test_split: str | None = None

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

    def __len__(self) -> int:  # pragma: no cover - abstract
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
                    "boxes": raw.boxes, "mask": raw.mask, "attention_map": raw.attention_map}
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


#: Batch key of the B×H×W bool mask of padded pixels (True = padding, DETR's convention).
PADDING_MASK = "padding_mask"


def collate(samples: list[dict | None]) -> dict:
    """Stack a batch; ``boxes`` stay a list (their count varies), skipped samples are counted.

    Images of one size are stacked as they are, and the batch has no ``"padding_mask"``
    (the square resize: batches exactly as before). Images of different sizes (DETR's
    aspect-preserving resize) are zero-padded at the bottom and right to the largest height
    and width of the batch, as DETR's ``nested_tensor_from_tensor_list``; then
    ``batch["padding_mask"]`` is a B×H×W bool tensor, True on padded pixels. Ground-truth
    masks are padded with False; boxes need no change, the origin stays at the top left.
    Zero is the padding value after normalization (the mean colour), as in DETR. Attention
    maps (LVW's targets), when every sample has one, are stacked to ``B×H×W`` float (zero-padded).
    """
    kept = [s for s in samples if s is not None]
    batch: dict = {"skipped": len(samples) - len(kept)}
    if not kept:
        return batch
    images = [s["image"] for s in kept]
    shapes = {tuple(image.shape[-2:]) for image in images}
    padded = len(shapes) > 1
    height, width = max(h for h, _ in shapes), max(w for _, w in shapes)
    batch["image"] = torch.stack([_pad_bottom_right(image, height, width) for image in images])
    if padded:
        batch[PADDING_MASK] = torch.stack([
            ~_pad_bottom_right(torch.ones(image.shape[-2:], dtype=torch.bool), height, width) for image in images
        ])
    batch["label"] = torch.tensor([s["label"] for s in kept], dtype=torch.long)
    batch["index"] = torch.tensor([s["index"] for s in kept], dtype=torch.long)
    batch["id"] = [s["id"] for s in kept]
    batch["boxes"] = [s["boxes"] for s in kept]
    if all(s.get("mask") is not None for s in kept):
        batch["mask"] = torch.stack([_pad_bottom_right(s["mask"], height, width) for s in kept])
    if all(s.get("attention_map") is not None for s in kept):
        batch["attention_map"] = torch.stack([_pad_bottom_right(s["attention_map"], height, width) for s in kept])
    return batch


def _pad_bottom_right(tensor: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """``tensor`` (…×h×w) placed at the top left of a zero (False) …×``height``×``width`` canvas."""
    h, w = tensor.shape[-2:]
    if (h, w) == (height, width):
        return tensor
    canvas = tensor.new_zeros((*tensor.shape[:-2], height, width))
    canvas[..., :h, :w] = tensor
    return canvas
