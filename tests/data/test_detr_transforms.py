"""DETR's multiscale recipe (resize "detr", augment "detr"): sizes, alignment, per-sample seeding."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import tv_tensors
from torchvision.transforms import v2

from seethrough import config
from seethrough.config import TrainConfig
from seethrough.data.base import ImageDataset, RawSample
from seethrough.data.transforms import (
    CROP_SCALE,
    DETR_CROP_MAX_SIZE,
    DETR_CROP_MIN_SIZE,
    DETR_CROP_SCALES,
    DETR_EVAL_SIZE,
    DETR_MAX_SIZE,
    DETR_SCALES,
    RESIZES,
    DetrSizes,
    JointTransform,
    RandomShorterSideResize,
    RandomSizeCrop,
    build_transform,
    detr_resize_shape,
)
from seethrough.engine.sampling import SeededDataset

#: Tiny stand-ins for DETR's sizes (the rules are the same, the images 30–60 px).
TINY = dict(scales=[32, 40, 48], max_size=80, crop_scales=[36, 44], crop_min_size=20, crop_max_size=40,
            eval_size=48)
SEEDS = range(40)
#: Object of the test image: a white rectangle, xyxy, on a black 40×60 canvas.
HEIGHT, WIDTH, OBJECT = 40, 60, (30, 10, 50, 20)


def raw_sample() -> RawSample:
    x0, y0, x1, y1 = OBJECT
    pixels = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
    pixels[y0:y1, x0:x1] = 255
    mask = np.zeros((HEIGHT, WIDTH), bool)
    mask[y0:y1, x0:x1] = True
    return RawSample(Image.fromarray(pixels), 1, "object", np.array([OBJECT], np.float32), mask)


def grow(mask: torch.Tensor) -> torch.Tensor:
    """``mask`` dilated by one pixel (3×3)."""
    return torch.nn.functional.max_pool2d(mask[None, None].float(), 3, stride=1, padding=1)[0, 0].bool()


def detr_train(**options) -> JointTransform:
    return build_transform(0, train=True, augment="detr", resize="detr", resize_options={**TINY, **options})


# -- the sizes --------------------------------------------------------------------------------

def test_defaults_are_detrs():
    assert DETR_SCALES == (480, 512, 544, 576, 608, 640, 672, 704, 736, 768, 800)
    assert (DETR_MAX_SIZE, DETR_CROP_SCALES, DETR_CROP_MIN_SIZE, DETR_CROP_MAX_SIZE, DETR_EVAL_SIZE) == (
        1333, (400, 500, 600), 384, 600, 800)
    assert DetrSizes.from_options(None) == DetrSizes()
    assert DetrSizes.from_options({"scales": [64]}).scales == (64,)


@pytest.mark.parametrize("height, width, size, max_size, expected", [
    (480, 640, 800, 1333, (800, 1066)),    # landscape: shorter side 800, longer int(800·4/3)
    (640, 480, 800, 1333, (1066, 800)),    # portrait
    (500, 500, 608, 1333, (608, 608)),     # square
    (300, 1000, 800, 1333, (400, 1333)),   # 800·10/3 > 1333 → shorter side round(1333·0.3) = 400
    (200, 1000, 480, 1333, (267, 1335)),   # the cap as DETR computes it: round, then int of the longer side
    (800, 1200, 800, 1333, (800, 1200)),   # shorter side already 800: unchanged
    (300, 1000, 800, None, (800, 2666)),   # no cap
])
def test_shorter_side_with_the_max_size_rule(height, width, size, max_size, expected):
    assert detr_resize_shape(height, width, size, max_size) == expected


def test_every_scale_sets_the_shorter_side_unless_the_longer_would_exceed_max_size():
    for height, width in [(375, 500), (500, 333), (240, 900), (600, 600)]:
        for scale in DETR_SCALES:
            out_h, out_w = detr_resize_shape(height, width, scale, DETR_MAX_SIZE)
            if max(height, width) / min(height, width) * scale <= DETR_MAX_SIZE:
                assert min(out_h, out_w) == scale
            else:
                assert min(out_h, out_w) < scale and abs(max(out_h, out_w) - DETR_MAX_SIZE) <= 2
            assert (out_h >= out_w) == (height >= width)  # orientation kept


def test_random_resize_draws_every_scale_and_resizes_all_three():
    resize = RandomShorterSideResize(TINY["scales"], TINY["max_size"])
    seen = set()
    for seed in SEEDS:
        torch.manual_seed(seed)
        out = resize({"image": tv_tensors.Image(torch.zeros(3, HEIGHT, WIDTH)),
                      "mask": tv_tensors.Mask(torch.zeros(HEIGHT, WIDTH, dtype=torch.uint8))})
        shape = tuple(out["image"].shape[-2:])
        assert shape in {detr_resize_shape(HEIGHT, WIDTH, s, TINY["max_size"]) for s in TINY["scales"]}
        assert tuple(out["mask"].shape[-2:]) == shape
        seen.add(min(shape))
    assert seen == set(TINY["scales"])


def test_random_size_crop_stays_in_range_and_inside_the_image():
    crop = RandomSizeCrop(TINY["crop_min_size"], TINY["crop_max_size"])
    image = tv_tensors.Image(torch.arange(HEIGHT * WIDTH, dtype=torch.float32).reshape(1, HEIGHT, WIDTH))
    for seed in SEEDS:
        torch.manual_seed(seed)
        params = crop.make_params([image])
        assert TINY["crop_min_size"] <= params["height"] <= min(HEIGHT, TINY["crop_max_size"])
        assert TINY["crop_min_size"] <= params["width"] <= min(WIDTH, TINY["crop_max_size"])
        assert params["top"] + params["height"] <= HEIGHT and params["left"] + params["width"] <= WIDTH
    small = tv_tensors.Image(torch.zeros(1, 10, 12))  # smaller than min_size: kept whole
    assert crop.make_params([small]) == {"top": 0, "left": 0, "height": 10, "width": 12}


def test_train_pipeline_uses_both_branches_and_flips():
    transform = detr_train()
    plain = {detr_resize_shape(HEIGHT, WIDTH, s, TINY["max_size"]) for s in TINY["scales"]}
    shapes, flipped = set(), []
    for seed in SEEDS:
        torch.manual_seed(seed)
        sample = transform(raw_sample())
        shape = tuple(sample["image"].shape[-2:])
        shapes.add(shape)
        # the last step is always RandomResize(scales, max_size): the shorter side is a scale unless capped
        assert min(shape) in TINY["scales"] or max(shape) >= TINY["max_size"] - 2
        if shape in plain:  # uncropped: the object (right half) is in the left half only if flipped
            flipped.append(bool(sample["boxes"][0, 0] < shape[1] / 2 - 1))
    assert shapes & plain and shapes - plain  # multiscale branch and crop branch
    assert any(flipped) and not all(flipped)


def test_evaluation_resize_is_detrs_and_deterministic():
    sample = build_transform(0, train=False, resize="detr")(raw_sample())
    assert tuple(sample["image"].shape[-2:]) == (800, 1200)  # shorter side 800, 1200 < 1333
    tiny = build_transform(0, train=False, resize="detr", resize_options=TINY)
    first, second = tiny(raw_sample()), tiny(raw_sample())
    assert tuple(first["image"].shape[-2:]) == (48, 72)
    assert torch.equal(first["image"], second["image"])
    torch.testing.assert_close(first["boxes"], torch.tensor([[36.0, 12.0, 60.0, 24.0]]))


# -- ground truth stays aligned ---------------------------------------------------------------------

def test_boxes_and_masks_stay_on_the_object_through_the_pipeline():
    transform = detr_train()
    for seed in SEEDS:
        torch.manual_seed(seed)
        sample = transform(raw_sample())
        bright = sample["image"][0] > 0            # white object after ImageNet normalization
        mask = sample["mask"]
        if not mask.any():                          # the crop missed the object: the box goes too
            assert len(sample["boxes"]) == 0
            continue
        # within a pixel of each other (nearest-neighbour masks vs bilinear images, as in DETR)
        assert not (bright & ~grow(mask)).any() and not (mask & ~grow(bright)).any(), seed
        assert (bright & mask).any(), seed
        ys, xs = torch.nonzero(mask, as_tuple=True)
        mask_box = torch.tensor([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], dtype=torch.float32)
        assert sample["boxes"].shape == (1, 4)
        torch.testing.assert_close(sample["boxes"][0], mask_box, atol=1.5, rtol=0)


# -- per-sample seeding -------------------------------------------------------------------------

class OneImageDataset(ImageDataset):
    def __init__(self, transform, size: int = 4) -> None:
        super().__init__(transform=transform)
        self.classes, self.size = ["a", "b"], size

    def __len__(self) -> int:
        return self.size

    def load(self, index: int) -> RawSample:
        return raw_sample()


def test_same_seed_epoch_and_index_give_the_same_sample_whatever_came_before():
    seeded = SeededDataset(OneImageDataset(detr_train()), seed=3)
    first = seeded[(2, 1)]
    for key in [(0, 0), (2, 3), (5, 1)]:
        seeded[key]
    again = seeded[(2, 1)]
    assert torch.equal(first["image"], again["image"]) and torch.equal(first["mask"], again["mask"])
    assert torch.equal(first["boxes"], again["boxes"])
    others = [seeded[(epoch, 1)]["image"] for epoch in range(8)]
    assert len({tuple(image.shape) for image in others}) > 1  # other epochs draw other scales


# -- validation and the unchanged square default ------------------------------------------------

@pytest.mark.parametrize("kwargs, message", [
    (dict(augment="detr"), "needs resize 'detr'"),
    (dict(augment="crop-flip", resize="detr"), "defined on a square image"),
    (dict(resize="oval"), "resize must be one of square, pil-bilinear, detr"),
    (dict(resize="detr", resize_options={"scale": [3]}), r"resize_options \['scale'\] are unknown"),
    (dict(resize="detr", resize_options={"scales": []}), "non-empty list of positive"),
    (dict(resize="detr", resize_options={"crop_min_size": 50, "crop_max_size": 40}), "exceeds crop_max_size"),
    (dict(resize_options={"max_size": 100}), "apply only to resize 'detr'"),
])
def test_build_transform_refuses_mismatched_settings(kwargs, message):
    with pytest.raises(ValueError, match=message):
        build_transform(32, train=True, **kwargs)


@pytest.mark.parametrize("values, message", [
    (dict(augment="detr"), "needs resize: detr"),
    (dict(resize="detr", augment="scouter"), "defined on a square image"),
    (dict(resize="round"), "--resize must be one of square, pil-bilinear, detr"),
    (dict(resize_options={"eval_size": 64}), "apply only to resize: detr"),
])
def test_config_refuses_mismatched_settings(values, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**values).validate()
    TrainConfig(augment="detr", resize="detr", resize_options={"eval_size": 64}).validate()
    assert config.RESIZES == RESIZES


@pytest.mark.parametrize("augment", ["none", "crop-flip"])
def test_square_default_is_unchanged(augment):
    size = 32
    ops = ([v2.RandomResizedCrop((size, size), scale=CROP_SCALE, antialias=True), v2.RandomHorizontalFlip()]
           if augment == "crop-flip" else [v2.Resize((size, size), antialias=True)])
    reference = JointTransform(v2.Compose(ops), (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    for seed in range(5):
        torch.manual_seed(seed)
        ours = build_transform(size, train=True, augment=augment)(raw_sample())
        torch.manual_seed(seed)
        theirs = reference(raw_sample())
        assert torch.equal(ours["image"], theirs["image"]) and torch.equal(ours["boxes"], theirs["boxes"])
        assert torch.equal(ours["mask"], theirs["mask"])
