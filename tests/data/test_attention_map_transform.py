"""LVW's attention maps go through the joint transform with the image: resized to the raw image,
then the same crop / flip / resize draw; photometric ops are refused; collate stacks the maps."""
import numpy as np
import pytest
import torch
from PIL import Image

from seethrough.data.base import RawSample, collate
from seethrough.data.transforms import build_transform

#: Raw image (non-square, so a crop that ignored the map's geometry could not line up by chance).
RAW_H, RAW_W, OUT_SIZE = 40, 56, 32
#: Mean and std that make the normalized image equal to its [0, 1] pixel values.
IDENTITY_NORM = dict(mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
#: Largest |image − map| of aligned pixels: uint8 rounding of the image's resampling (2 levels).
ALIGNED_TOL = 2.5 / 255
#: Seeds drawn per augment; at least one flips and every one crops.
SEEDS = range(8)


def _pattern() -> np.ndarray:
    """RAW_H×RAW_W values in [0, 1], asymmetric in both axes (a ramp plus an off-centre blob)."""
    yy, xx = np.mgrid[0:RAW_H, 0:RAW_W].astype(np.float32)
    blob = np.exp(-((yy - 0.3 * RAW_H) ** 2 + (xx - 0.7 * RAW_W) ** 2) / (2 * 6.0**2))
    ramp = xx / RAW_W * 0.4 + yy / RAW_H * 0.2
    return np.clip(ramp + 0.4 * blob, 0.0, 1.0)


def _raw(attention: np.ndarray | None = None) -> RawSample:
    """The image's red channel is the pattern, so the map equal to the pattern is its exact twin;
    the green channel is a horizontal ramp (rising to the right unless flipped)."""
    pattern = _pattern()
    ramp = np.broadcast_to(np.linspace(0, 255, RAW_W, dtype=np.float32), pattern.shape)
    rgb = np.stack([np.rint(pattern * 255), np.rint(ramp), np.rint((1 - pattern) * 255)], -1)
    image = Image.fromarray(rgb.astype(np.uint8), "RGB")
    return RawSample(image=image, label=1, sample_id="raw/0",
                     attention_map=np.rint(pattern * 255) / 255 if attention is None else attention)


def _transformed(augment: str, seed: int, raw: RawSample | None = None) -> dict:
    transform = build_transform(OUT_SIZE, train=True, augment=augment, **IDENTITY_NORM)
    torch.manual_seed(seed)
    return transform(raw or _raw())


@pytest.mark.parametrize("augment", ["crop-flip", "castream"])
def test_crop_and_flip_move_the_map_exactly_like_the_image(augment):
    plain = build_transform(OUT_SIZE, train=False, **IDENTITY_NORM)(_raw())["image"][0]
    flipped_seen = 0
    for seed in SEEDS:
        sample = _transformed(augment, seed)
        image, attention = sample["image"][0], sample["attention_map"]
        assert attention.shape == image.shape == (OUT_SIZE, OUT_SIZE) and attention.dtype == torch.float32
        assert not torch.allclose(image, plain, atol=0.05)                 # the augmentation did something
        assert (image - attention).abs().max() <= ALIGNED_TOL              # ... to both alike
        green = sample["image"][1]
        flipped_seen += int(green[:, 0].mean() > green[:, -1].mean())   # the ramp rises to the right unflipped
        # the original's bug, flipping the map on its own, is what this test catches:
        assert (image - attention.flip(-1)).abs().max() > 10 * ALIGNED_TOL
    assert 0 < flipped_seen < len(SEEDS)


def test_a_low_resolution_map_is_resized_to_the_raw_image_first():
    pattern = torch.as_tensor(_pattern())
    coarse = torch.nn.functional.interpolate(pattern[None, None], size=(10, 14), mode="bilinear",
                                             antialias=True, align_corners=False)[0, 0]
    sample = build_transform(OUT_SIZE, train=False, **IDENTITY_NORM)(_raw(coarse.numpy()))
    assert sample["attention_map"].shape == (OUT_SIZE, OUT_SIZE)
    # a coarse copy of the red channel, so close to it but only up to the lost detail
    assert (sample["attention_map"] - sample["image"][0]).abs().mean() < 0.02


def test_the_detr_geometry_keeps_the_map_with_the_image():
    transform = build_transform(OUT_SIZE, train=True, augment="detr", resize="detr", **IDENTITY_NORM,
                                resize_options={"scales": [24, 36], "max_size": 80, "crop_scales": [30],
                                                "crop_min_size": 20, "crop_max_size": 28, "eval_size": 32})
    for seed in SEEDS:
        torch.manual_seed(seed)
        sample = transform(_raw())
        assert sample["attention_map"].shape == sample["image"].shape[-2:]
        assert (sample["image"][0] - sample["attention_map"]).abs().max() <= ALIGNED_TOL


def test_photometric_augments_refuse_attention_maps_but_keep_working_without():
    with pytest.raises(ValueError, match="photometric.*'crop-flip'"):
        _transformed("scouter", 0)
    raw = _raw()
    raw.attention_map = None
    assert "attention_map" not in _transformed("scouter", 0, raw)


def test_a_map_that_is_not_two_dimensional_is_refused_naming_the_sample():
    with pytest.raises(ValueError, match="raw/0.*2-d"):
        _transformed("flip", 0, _raw(np.zeros((1, RAW_H, RAW_W), np.float32)))


def test_collate_stacks_the_maps_and_leaves_batches_without_them_unchanged():
    samples = [dict(_transformed("crop-flip", seed), index=seed) for seed in range(3)]
    batch = collate(samples)
    assert batch["attention_map"].shape == (3, OUT_SIZE, OUT_SIZE)
    assert torch.equal(batch["attention_map"][1], samples[1]["attention_map"])
    for sample in samples:
        del sample["attention_map"]
    assert "attention_map" not in collate(samples)
