"""Joint transforms: the image, its boxes and its mask move together (torchvision v2
``tv_tensors``), so ground truth stays aligned through resize, crop and flip.

Two geometries (``resize``): ``"square"`` (SCOUTER: every image becomes ``img_size``²) and
``"detr"`` (DETR / INTR, facebookresearch/detr datasets/coco.py ``make_coco_transforms``:
the aspect ratio is kept and the shorter side is set, so images of a batch differ in size
and :func:`seethrough.data.base.collate` pads them and returns a ``padding_mask``).

All randomness comes from torch's global RNG (never Python's ``random``, which DETR uses), so
:class:`seethrough.engine.sampling.SeededDataset` seeds it per ``(seed, epoch, index)``.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Mapping, Sequence

import numpy as np
import PIL.Image
import torch
from torchvision import tv_tensors
from torchvision.transforms import v2

from .base import RawSample
from .scouter_augment import ScouterAugment

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

#: Valid ``augment`` values (checked by :func:`build_transform`).
AUGMENTS: tuple[str, ...] = ("none", "flip", "crop-flip", "scouter", "detr", "castream", "castream-jitter")
#: CA-Stream's ColorJitter(0.4) at its HEAD (lib/data.py:104-115: brightness 0.4; commit 9489e8d had none).
CASTREAM_JITTER_BRIGHTNESS = 0.4
#: Valid ``resize`` values.
RESIZES: tuple[str, ...] = ("square", "pil-bilinear", "detr")
#: Augments that keep DETR's aspect-preserving geometry (the others are defined on the square).
DETR_RESIZE_AUGMENTS: tuple[str, ...] = ("none", "flip", "detr")

#: DETR's training scales (make_coco_transforms): shorter side 480, 512, …, 800 and the cap
#: on the longer side.
DETR_SCALES: tuple[int, ...] = tuple(range(480, 801, 32))
DETR_MAX_SIZE = 1333
#: DETR's crop branch: RandomResize([400, 500, 600]) then RandomSizeCrop(384, 600).
DETR_CROP_SCALES: tuple[int, ...] = (400, 500, 600)
DETR_CROP_MIN_SIZE, DETR_CROP_MAX_SIZE = 384, 600
#: DETR's evaluation resize: RandomResize([800], max_size=1333).
DETR_EVAL_SIZE = 800
#: RandomSelect: probability of the plain multiscale branch (else the crop branch).
DETR_SELECT_P = 0.5

#: RandomResizedCrop scale range for "crop-flip" (as SCOUTER's --aug affine scale 0.8–1).
CROP_SCALE = (0.8, 1.0)
#: Ops that change pixel values rather than positions: an attention map must not go through
#: them (a blurred Grad-CAM target is not the base model's map), see :class:`JointTransform`.
PHOTOMETRIC_OPS: tuple[type, ...] = tuple(
    getattr(v2, name) for name in ("GaussianBlur", "GaussianNoise", "ColorJitter", "RandomPhotometricDistort",
                                   "Grayscale", "RandomGrayscale", "RandomInvert", "RandomPosterize",
                                   "RandomSolarize", "RandomAdjustSharpness", "RandomAutocontrast",
                                   "RandomEqualize", "RandomChannelPermutation")
    if hasattr(v2, name)
)


class PilBilinearResize(v2.Transform):
    """Square resize of the image by PIL's own ``BILINEAR`` filter on the 8-bit PIL image, as
    the originals' torchvision ``Resize`` on a PIL image does (SCOUTER dataset/transform_func.py
    ``Resize``, ProtoPNet / LVW ``transforms.Resize((224, 224))``, CA-Stream lib/data.py).

    torchvision's tensor resize (``resize: square``) antialiases too but rounds differently, so
    a converted checkpoint sees slightly different pixels; this rule reproduces PIL's exactly.
    Boxes and masks (and float attention maps) follow with torchvision's resize to the same size.
    """

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        if isinstance(inpt, tv_tensors.Image) and inpt.dtype == torch.uint8:
            mode = "L" if inpt.shape[0] == 1 else None
            image = v2.functional.to_pil_image(inpt.as_subclass(torch.Tensor), mode=mode)
            image = image.resize((self.size, self.size), resample=PIL.Image.Resampling.BILINEAR)
            return tv_tensors.Image(v2.functional.pil_to_tensor(image))
        return v2.functional.resize(inpt, [self.size, self.size], antialias=True)

    _transform = transform   # torchvision < 0.21 calls _transform


def square_resize(img_size: int, resize: str) -> v2.Transform:
    """The square resize of ``resize`` (``square``: torchvision's, ``pil-bilinear``: PIL's)."""
    if resize == "pil-bilinear":
        return PilBilinearResize(img_size)
    return v2.Resize((img_size, img_size), antialias=True)


class JointTransform:
    """Callable ``RawSample → dict`` applying one torchvision v2 pipeline to image, boxes, mask
    and attention map.

    Geometric ops act on all of them; photometric ops and normalization touch only the image.
    Boxes are clamped to the output canvas; boxes that vanish (zero area) are dropped.

    An attention map (``raw.attention_map``, LVW's Grad-CAM target, any resolution) is first
    resized bilinearly to the raw image's size, then goes through the same ops as a float
    one-channel ``tv_tensors.Image`` — so resizes are bilinear and every crop, flip and affine
    draw is the image's — and comes out as ``sample["attention_map"]`` (``H×W`` float32). A
    pipeline with photometric ops (:data:`PHOTOMETRIC_OPS`, e.g. SCOUTER's blur) would change
    the map's values too, so it refuses samples that carry one (``photometric`` tells).
    """

    def __init__(self, geometric: v2.Transform, mean: Sequence[float], std: Sequence[float]) -> None:
        self.geometric = geometric
        self.to_float = v2.ToDtype(torch.float32, scale=True)
        self.normalize = v2.Normalize(list(mean), list(std))
        self.photometric = _has_photometric_op(geometric)

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
        if raw.attention_map is not None:
            inputs["attention_map"] = self._attention_input(raw, height, width)
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
        if "attention_map" in out:
            sample["attention_map"] = out["attention_map"].as_subclass(torch.Tensor)[0]
        return sample

    def _attention_input(self, raw: RawSample, height: int, width: int) -> tv_tensors.Image:
        """The map as a 1×H×W float32 image at the raw image's size (bilinear)."""
        if self.photometric:
            raise ValueError(f"sample {raw.sample_id!r} carries an attention map, but the augmentation has photometric "
                             "ops (e.g. augment 'scouter' blurs) that would alter the map's values; use augment "
                             "'none', 'flip', 'crop-flip' or 'castream' with attention maps (LVW)")
        attention = torch.as_tensor(np.asarray(raw.attention_map, np.float32))
        if attention.ndim != 2:
            raise ValueError(f"sample {raw.sample_id!r}: attention_map must be a 2-d h×w map, "
                             f"got shape {tuple(attention.shape)}")
        attention = attention[None]
        if tuple(attention.shape[-2:]) != (height, width):
            attention = v2.functional.resize(attention, [height, width], antialias=True)
        return tv_tensors.Image(attention)


def _has_photometric_op(transform: Any) -> bool:
    """Whether ``transform`` or any transform nested in it (Compose, RandomApply, RandomChoice,
    RandomOrder keep theirs in ``transforms``) is one of :data:`PHOTOMETRIC_OPS`."""
    if isinstance(transform, PHOTOMETRIC_OPS) or getattr(transform, "photometric", False):
        return True
    return any(_has_photometric_op(child) for child in getattr(transform, "transforms", ()) or ())


@dataclass(frozen=True)
class DetrSizes:
    """The sizes of DETR's data recipe (``resize_options``; DETR's values by default).

    Attributes:
        scales: shorter sides drawn uniformly for training (DETR ``scales``).
        max_size: cap on the longer side (DETR ``max_size=1333``), see :func:`detr_resize_shape`.
        crop_scales: shorter sides drawn before the random crop (DETR ``[400, 500, 600]``, no cap).
        crop_min_size, crop_max_size: range of the crop's height and width (DETR ``RandomSizeCrop(384, 600)``).
        eval_size: the evaluation shorter side (DETR ``800``, with ``max_size``).
    """

    scales: tuple[int, ...] = DETR_SCALES
    max_size: int = DETR_MAX_SIZE
    crop_scales: tuple[int, ...] = DETR_CROP_SCALES
    crop_min_size: int = DETR_CROP_MIN_SIZE
    crop_max_size: int = DETR_CROP_MAX_SIZE
    eval_size: int = DETR_EVAL_SIZE

    @classmethod
    def from_options(cls, options: Mapping[str, Any] | None) -> "DetrSizes":
        """Validated sizes from ``resize_options`` (lists become tuples; missing keys keep DETR's)."""
        options = dict(options or {})
        known = [f.name for f in fields(cls)]
        unknown = sorted(set(options) - set(known))
        if unknown:
            raise ValueError(f"resize_options {unknown} are unknown; the DETR resize takes {', '.join(known)}")
        for key in ("scales", "crop_scales"):
            if key in options:
                value = options[key]
                values = list(value) if isinstance(value, (list, tuple)) else [value]
                if not values or not all(_positive_int(v) for v in values):
                    raise ValueError(f"resize_options {key} must be a non-empty list of positive pixel sizes, "
                                     f"got {value!r}")
                options[key] = tuple(int(v) for v in values)
        for key in ("max_size", "crop_min_size", "crop_max_size", "eval_size"):
            if key in options and not _positive_int(options[key]):
                raise ValueError(f"resize_options {key} must be a positive pixel size, got {options[key]!r}")
        sizes = cls(**options)
        if sizes.crop_min_size > sizes.crop_max_size:
            raise ValueError(f"resize_options crop_min_size {sizes.crop_min_size} exceeds crop_max_size "
                             f"{sizes.crop_max_size}; swap them")
        return sizes

    def to_options(self) -> dict[str, Any]:
        """Plain ``resize_options`` (lists), e.g. for a model card."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def detr_resize_shape(height: int, width: int, size: int, max_size: int | None = None) -> tuple[int, int]:
    """DETR's ``get_size_with_aspect_ratio``: the output ``(height, width)`` for shorter side ``size``.

    The shorter side becomes ``size`` and the longer one ``int(size · long / short)``, unless that
    would exceed ``max_size``: then the shorter side becomes ``round(max_size · short / long)``
    instead (so the longer side lands at or just under ``max_size``). An image whose shorter side
    is already ``size`` keeps its shape.
    """
    short, long = min(height, width), max(height, width)
    if max_size is not None and long / short * size > max_size:
        size = max(int(round(max_size * short / long)), 1)  # ≥ 1 px (DETR: 0 for extreme aspect ratios)
    if short == size:
        return height, width
    if width < height:
        return int(size * height / width), size
    return size, int(size * width / height)


def _image_size(flat_inputs: list[Any]) -> tuple[int, int]:
    """``(height, width)`` of the image among a v2 transform's inputs."""
    for inpt in flat_inputs:
        if isinstance(inpt, tv_tensors.Image):
            height, width = v2.functional.get_size(inpt)
            return height, width
    raise TypeError("the DETR transforms need a tv_tensors.Image among their inputs")


class RandomShorterSideResize(v2.Transform):
    """DETR's ``RandomResize(sizes, max_size)``: pick a shorter side uniformly from ``sizes`` and
    resize image, boxes and mask keeping the aspect ratio (:func:`detr_resize_shape`)."""

    def __init__(self, sizes: Sequence[int], max_size: int | None = None) -> None:
        super().__init__()
        self.sizes, self.max_size = tuple(sizes), max_size

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        pick = 0 if len(self.sizes) == 1 else int(torch.randint(len(self.sizes), ()))
        return {"shape": list(detr_resize_shape(*_image_size(flat_inputs), self.sizes[pick], self.max_size))}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        return v2.functional.resize(inpt, params["shape"], antialias=True)


class RandomSizeCrop(v2.Transform):
    """DETR's ``RandomSizeCrop(min_size, max_size)``: a crop whose width and height are drawn
    uniformly from ``[min_size, min(side, max_size)]`` at a uniform position.

    An image side shorter than ``min_size`` is kept whole (DETR would fail there; its crop
    branch always resizes to at least 400 px first).
    """

    def __init__(self, min_size: int, max_size: int) -> None:
        super().__init__()
        self.min_size, self.max_size = min_size, max_size

    def _extent(self, side: int) -> int:
        high = min(side, self.max_size)
        return int(torch.randint(min(self.min_size, high), high + 1, ()))

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        height, width = _image_size(flat_inputs)
        crop_width = self._extent(width)   # DETR's order: width, height, then top, left
        crop_height = self._extent(height)
        top = int(torch.randint(height - crop_height + 1, ()))
        left = int(torch.randint(width - crop_width + 1, ()))
        return {"top": top, "left": left, "height": crop_height, "width": crop_width}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        return v2.functional.crop(inpt, **params)


def detr_geometry(sizes: DetrSizes, *, train: bool, augment: str = "detr") -> v2.Transform:
    """DETR's ``make_coco_transforms`` (and INTR's ``datasets/build.py``, the same recipe).

    Training with ``augment="detr"``::

        RandomHorizontalFlip
        RandomSelect(p = 0.5:  RandomResize(scales, max_size),
                     else:     RandomResize(crop_scales) → RandomSizeCrop(crop_min, crop_max)
                               → RandomResize(scales, max_size))

    Evaluation (and training with ``"none"`` / ``"flip"``): ``RandomResize([eval_size], max_size)``,
    then a flip for ``"flip"``.
    """
    evaluation = RandomShorterSideResize((sizes.eval_size,), sizes.max_size)
    if not train or augment == "none":
        return v2.Compose([evaluation])
    if augment == "flip":
        return v2.Compose([evaluation, v2.RandomHorizontalFlip()])
    multiscale = RandomShorterSideResize(sizes.scales, sizes.max_size)
    crop_then_multiscale = v2.Compose([
        RandomShorterSideResize(sizes.crop_scales),
        RandomSizeCrop(sizes.crop_min_size, sizes.crop_max_size),
        RandomShorterSideResize(sizes.scales, sizes.max_size),
    ])
    return v2.Compose([
        v2.RandomHorizontalFlip(),
        v2.RandomChoice([multiscale, crop_then_multiscale], p=[DETR_SELECT_P, 1 - DETR_SELECT_P]),
    ])


def build_transform(
    img_size: int,
    *,
    train: bool,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    augment: str = "none",
    resize: str = "square",
    resize_options: Mapping[str, Any] | None = None,
) -> JointTransform:
    """The SCOUTER default: bilinear resize to a square ``img_size``, no crop.

    ``augment`` (training only): ``"flip"`` horizontal flips; ``"crop-flip"`` random resized
    crop (scale 0.8–1) and flips; ``"scouter"`` SCOUTER's ``--aug`` (tools/image_aug.py: h and v
    flips, an affine with separate x/y scale, translation and rotation, a Gaussian blur, each with
    p = 1/2, in random order; see :mod:`.scouter_augment`); ``"detr"``
    DETR's multiscale flip / resize / crop (needs ``resize="detr"``, see :func:`detr_geometry`);
    ``"castream"`` CA-Stream's ``imagenet_trainer`` (lib/data.py): resize to ``img_size``², then
    torchvision's default random resized crop (scale 0.08–1, ratio 3/4–4/3) back to ``img_size``²,
    then flips; ``"castream-jitter"`` the same followed by the ColorJitter(0.4) of CA-Stream's HEAD.

    ``resize="pil-bilinear"`` is the square resize done by PIL's bilinear filter on the PIL
    image (the originals' torchvision-on-PIL ``Resize``), see :class:`PilBilinearResize`.
    ``resize="detr"`` keeps the aspect ratio: shorter side ``eval_size`` (800) with the longer
    side capped at ``max_size`` (1333); ``img_size`` is then unused. ``resize_options`` set
    :class:`DetrSizes` (DETR's values by default) and apply only to ``resize="detr"``.
    """
    if augment not in AUGMENTS:
        raise ValueError(f"augment must be one of {', '.join(AUGMENTS)}, got {augment!r}")
    if resize not in RESIZES:
        raise ValueError(f"resize must be one of {', '.join(RESIZES)}, got {resize!r}")
    if resize == "detr":
        if augment not in DETR_RESIZE_AUGMENTS:
            raise ValueError(f"augment {augment!r} is defined on a square image; with resize 'detr' use one of "
                             f"{', '.join(DETR_RESIZE_AUGMENTS)}")
        sizes = DetrSizes.from_options(resize_options)
        return JointTransform(detr_geometry(sizes, train=train, augment=augment), mean, std)
    if augment == "detr":
        raise ValueError("augment 'detr' (DETR's multiscale recipe) keeps the aspect ratio; it needs resize 'detr'")
    if resize_options:
        raise ValueError(f"resize_options {sorted(resize_options)} apply only to resize 'detr', not {resize!r}")
    if img_size < 1:
        raise ValueError(f"img_size must be positive, got {img_size}")
    ops: list[v2.Transform] = []
    if train and augment in ("castream", "castream-jitter"):
        ops += [square_resize(img_size, resize),
                v2.RandomResizedCrop((img_size, img_size), antialias=True), v2.RandomHorizontalFlip()]
        if augment == "castream-jitter":
            ops.append(v2.ColorJitter(brightness=CASTREAM_JITTER_BRIGHTNESS))
    elif train and augment == "crop-flip":
        ops += [v2.RandomResizedCrop((img_size, img_size), scale=CROP_SCALE, antialias=True),
                v2.RandomHorizontalFlip()]
    else:
        ops.append(square_resize(img_size, resize))
        if train and augment == "flip":
            ops.append(v2.RandomHorizontalFlip())
        if train and augment == "scouter":
            ops.append(ScouterAugment())
    return JointTransform(v2.Compose(ops), mean, std)
