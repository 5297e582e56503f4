"""Overlays, denormalization and the PNG writers."""
import matplotlib
import numpy as np
import pytest
import torch
from PIL import Image

from seethrough.explanations import (
    denormalize,
    overlay,
    safe_filename,
    save_explanation_grid,
    save_overlay,
)

H, W = 12, 16
RNG = np.random.default_rng(0)
IMAGE = RNG.integers(0, 256, size=(H, W, 3), dtype=np.uint8)
HEAT = RNG.random((H, W))


def _cmap_uint8(heat, name="jet"):
    return np.rint(matplotlib.colormaps[name](heat)[..., :3] * 255).astype(np.uint8)


def test_alpha_zero_returns_the_image():
    assert np.array_equal(overlay(IMAGE, HEAT, alpha=0.0), IMAGE)


def test_alpha_one_returns_the_pure_colormap():
    assert np.array_equal(overlay(IMAGE, HEAT, alpha=1.0), _cmap_uint8(HEAT))
    assert np.array_equal(overlay(IMAGE, HEAT, alpha=1.0, cmap="viridis"), _cmap_uint8(HEAT, "viridis"))


def test_heat_one_gives_jets_top_colour():
    out = overlay(IMAGE, np.ones((H, W)), alpha=1.0)
    assert (out == [128, 0, 0]).all()  # jet ends in dark red (0.5, 0, 0)


def test_default_blend_is_scouters_alpha_04():
    expected = np.rint(0.6 * IMAGE + 0.4 * matplotlib.colormaps["jet"](HEAT)[..., :3] * 255)
    out = overlay(IMAGE, HEAT)
    assert out.dtype == np.uint8 and np.array_equal(out, expected.astype(np.uint8))


def test_overlay_broadcasts_several_heats_and_accepts_tensors():
    heats = torch.stack([torch.zeros(H, W), torch.ones(H, W)])
    out = overlay(torch.from_numpy(IMAGE), heats)
    assert out.shape == (2, H, W, 3)
    assert np.array_equal(out[1], overlay(IMAGE, np.ones((H, W))))


def test_overlay_errors():
    with pytest.raises(ValueError, match="normalize the maps first"):
        overlay(IMAGE, HEAT * 3)
    with pytest.raises(ValueError, match="size"):
        overlay(IMAGE, HEAT[:-1])
    with pytest.raises(ValueError, match="alpha"):
        overlay(IMAGE, HEAT, alpha=1.5)
    with pytest.raises(ValueError, match="colormap"):
        overlay(IMAGE, HEAT, cmap="no-such-map")


def test_denormalize_inverts_normalize_and_grays_one_channel():
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    pixels = torch.rand(2, 3, H, W)
    normalized = (pixels - torch.tensor(mean)[:, None, None]) / torch.tensor(std)[:, None, None]
    out = denormalize(normalized, mean, std)
    assert out.dtype == np.uint8 and out.shape == (2, H, W, 3)
    assert np.abs(out.astype(int) - (pixels.permute(0, 2, 3, 1) * 255).numpy()).max() <= 1

    gray = denormalize(torch.rand(1, 1, H, W), (0.1307,), (0.3081,))
    assert gray.shape == (1, H, W, 3)
    assert (gray[..., 0] == gray[..., 1]).all() and (gray[..., 1] == gray[..., 2]).all()
    with pytest.raises(ValueError, match="std has 2 entries"):
        denormalize(torch.rand(1, 3, H, W), mean, (0.2, 0.2))


def test_save_overlay_writes_image_sized_png(tmp_path):
    path = save_overlay(tmp_path / "sub" / "o.png", IMAGE, HEAT)
    with Image.open(path) as png:
        assert png.size == (W, H) and png.mode == "RGB"
        assert np.array_equal(np.asarray(png), overlay(IMAGE, HEAT))


def test_save_explanation_grid_writes_png_with_one_panel_per_class(tmp_path):
    heats = np.stack([HEAT, 1 - HEAT, np.zeros((H, W))])
    path = save_explanation_grid(tmp_path / "g.png", IMAGE, heats, ["a", "b", "c"])
    with Image.open(path) as png:
        width, height = png.size
    assert width > 3 * height  # input + 3 panels in one row
    with pytest.raises(ValueError, match="titles"):
        save_explanation_grid(tmp_path / "x.png", IMAGE, heats, ["a"])


def test_safe_filename():
    assert safe_filename("tench/fish") == "tench_fish"
    assert safe_filename("../etc passwd") == "etc_passwd"
    assert safe_filename("über café") == "über_café"
    assert safe_filename("///", fallback="class3") == "class3"
