"""Joint transforms: the image, its boxes and its mask move together (torchvision v2
``tv_tensors``), so ground truth stays aligned through resize, crop and flip."""
from __future__ import annotations

from typing import Literal, Sequence

import numpy as np
import torch
from torchvision import tv_tensors
from torchvision.transforms import v2

from .base import RawSample

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

Augment = Literal["none", "flip", "crop-flip", "scouter"]
AUGMENTS: tuple[str, ...] = ("none", "flip", "crop-flip", "scouter")

#: RandomResizedCrop scale range for "crop-flip" (as SCOUTER's --aug affine scale 0.8–1).
CROP_SCALE = (0.8, 1.0)
#: SCOUTER --aug: probability of each augmentation, rotation (degrees), translation fraction.
SCOUTER_AUG_P, SCOUTER_ROTATE, SCOUTER_TRANSLATE = 0.5, 10.0, (0.1, 0.1)
#: SCOUTER --aug Gaussian blur kernel.
SCOUTER_BLUR_KERNEL = 3


class JointTransform:
    """Callable ``RawSample → dict`` applying one torchvision v2 pipeline to image, boxes and mask.

    Geometric ops act on all three; photometric ops and normalization touch only the image.
    Boxes are clamped to the output canvas; boxes that vanish (zero area) are dropped.
    """

    def __init__(self, geometric: v2.Transform, mean: Sequence[float], std: Sequence[float]) -> None:
        self.geometric = geometric
        self.to_float = v2.ToDtype(torch.float32, scale=True)
        self.normalize = v2.Normalize(list(mean), list(std))

    def __call__(self, raw: RawSample) -> dict:
        image = tv_tensors.Image(v2.functional.pil_to_tensor(raw.image))
        height, width = image.shape[-2:]
        boxes = tv_tensors.BoundingBoxes(
            torch.as_tensor(np.asarray(raw.boxes, np.float32).reshape(-1, 4)),
            format="XYXY", canvas_size=(height, width),
        )
        inputs = {"image": image, "boxes": boxes}
        if raw.mask is not None:
            inputs["mask"] = tv_tensors.Mask(torch.as_tensor(np.asarray(raw.mask, bool)).to(torch.uint8))
        out = self.geometric(inputs)
        boxes = v2.functional.clamp_bounding_boxes(out["boxes"])
        keep = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
        sample = {
            "image": self.normalize(self.to_float(out["image"])).as_subclass(torch.Tensor),
            "label": raw.label,
            "id": raw.sample_id,
            "boxes": boxes[keep].as_subclass(torch.Tensor).float(),
        }
        if "mask" in out:
            sample["mask"] = out["mask"].as_subclass(torch.Tensor).bool()
        return sample


def build_transform(
    img_size: int,
    *,
    train: bool,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    augment: Augment = "none",
) -> JointTransform:
    """The SCOUTER default: bilinear resize to a square ``img_size``, no crop.

    ``augment`` (training only): ``"flip"`` horizontal flips; ``"crop-flip"`` random resized
    crop (scale 0.8–1) and flips; ``"scouter"`` the original ``--aug`` (flip, affine with
    scale 0.8–1 / translate / rotate ±10°, Gaussian blur, each with p = 0.5).
    """
    if augment not in AUGMENTS:
        raise ValueError(f"augment must be one of {', '.join(AUGMENTS)}, got {augment!r}")
    if img_size < 1:
        raise ValueError(f"img_size must be positive, got {img_size}")
    ops: list[v2.Transform] = []
    if train and augment == "crop-flip":
        ops += [v2.RandomResizedCrop((img_size, img_size), scale=CROP_SCALE, antialias=True),
                v2.RandomHorizontalFlip()]
    else:
        ops.append(v2.Resize((img_size, img_size), antialias=True))
        if train and augment in ("flip", "scouter"):
            ops.append(v2.RandomHorizontalFlip())
        if train and augment == "scouter":
            ops += [
                v2.RandomApply([v2.RandomAffine(SCOUTER_ROTATE, translate=SCOUTER_TRANSLATE,
                                                scale=CROP_SCALE)], p=SCOUTER_AUG_P),
                v2.RandomApply([v2.GaussianBlur(SCOUTER_BLUR_KERNEL)], p=SCOUTER_AUG_P),
            ]
    return JointTransform(v2.Compose(ops), mean, std)
