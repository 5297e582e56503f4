"""resize: pil-bilinear reproduces the originals' torchvision-on-PIL Resize pixel for pixel (audit S5)."""
import numpy as np
import PIL.Image
import pytest
import torch
from torchvision.transforms import functional as F

from seethrough.data.base import RawSample
from seethrough.data.transforms import build_transform

MEAN, STD = (0.1307,), (0.3081,)


def _digit(seed=0, size=28):
    rng = np.random.default_rng(seed)
    return PIL.Image.fromarray(rng.integers(0, 256, (size, size), dtype=np.uint8), mode="L")


def _reference(image, size):
    """SCOUTER's transform_func.py as written: PIL BILINEAR resize, /255, Normalize."""
    pixels = np.asarray(image.resize((size, size), PIL.Image.BILINEAR), np.float64) / 255.0
    return (torch.from_numpy(pixels)[None].float() - MEAN[0]) / STD[0]


@pytest.mark.parametrize("size, source, torchvision_equal", [(260, 28, True), (64, 200, False)])
def test_pil_bilinear_equals_pils_own_resize(size, source, torchvision_equal):
    """Upsampling (MNIST 28 → 260) gives the same pixels with torchvision's uint8 resize;
    downsampling does not, which is what the rule is for."""
    raw = RawSample(_digit(size=source), 0, "x", boxes=np.array([[2, 2, 10, 12]], np.float32))
    pil = build_transform(size, train=False, mean=MEAN, std=STD, resize="pil-bilinear")(raw)
    square = build_transform(size, train=False, mean=MEAN, std=STD, resize="square")(raw)
    reference = _reference(raw.image, size)
    assert torch.allclose(pil["image"], reference, atol=1e-6)
    assert torch.allclose(square["image"], reference, atol=1e-6) == torchvision_equal
    assert torch.equal(pil["boxes"], square["boxes"])   # the geometry is the same, only the filter differs


def test_pil_bilinear_on_rgb_matches_torchvision_functional_on_pil():
    rng = np.random.default_rng(1)
    image = PIL.Image.fromarray(rng.integers(0, 256, (40, 30, 3), dtype=np.uint8))
    raw = RawSample(image, 0, "y")
    out = build_transform(32, train=False, mean=(0, 0, 0), std=(1, 1, 1), resize="pil-bilinear")(raw)
    expected = F.to_tensor(F.resize(image, (32, 32), interpolation=F.InterpolationMode.BILINEAR))
    assert torch.allclose(out["image"], expected, atol=1e-6)
