"""Map arithmetic: upsample, joint vs per-map (minmax) normalization, gather."""
import pytest
import torch
import torch.nn.functional as F

from seethrough.explanations import gather, normalize, upsample


def _two_class_maps():
    """One image, a strong class 0 (range 0..10) and a weak class 1 (range 0..1)."""
    strong = torch.tensor([[0.0, 10.0], [5.0, 0.0]])
    weak = torch.tensor([[0.0, 1.0], [0.5, 0.0]])
    return torch.stack([strong, weak])[None]


def test_upsample_shape_and_matches_interpolate():
    maps = torch.rand(2, 5, 4, 4)
    out = upsample(maps, (32, 24))
    assert out.shape == (2, 5, 32, 24)
    assert torch.equal(out, F.interpolate(maps, size=(32, 24), mode="bilinear", align_corners=False))


def test_joint_keeps_weak_class_dim_per_class_stretches_it():
    maps = _two_class_maps()
    joint = normalize(maps, "joint")
    per_class = normalize(maps, "minmax")
    assert joint[0, 0].max() == 1 and joint[0, 0].min() == 0
    assert torch.allclose(joint[0, 1].max(), torch.tensor(0.1))  # weak class stays dim
    assert per_class[0, 1].max() == 1 and per_class[0, 1].min() == 0  # full range
    assert torch.allclose(per_class[0, 0], per_class[0, 1])


def test_joint_is_per_image_not_per_batch():
    maps = torch.cat([_two_class_maps(), 100 * _two_class_maps()])
    assert torch.allclose(normalize(maps, "joint")[0], normalize(maps, "joint")[1])


def test_none_leaves_maps_unchanged():
    maps = _two_class_maps()
    assert torch.equal(normalize(maps, "none"), maps)


@pytest.mark.parametrize("mode", ["joint", "minmax"])
def test_constant_maps_become_zeros_not_nan(mode):
    out = normalize(torch.full((2, 3, 4, 4), 7.0), mode)
    assert torch.equal(out, torch.zeros_like(out))


def test_one_constant_class_under_per_class():
    maps = _two_class_maps()
    maps[0, 1] = 3.0
    out = normalize(maps, "minmax")
    assert torch.equal(out[0, 1], torch.zeros(2, 2)) and out[0, 0].max() == 1


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_maps_are_an_error(bad):
    maps = _two_class_maps()
    maps[0, 0, 0, 0] = bad
    with pytest.raises(ValueError, match="NaN or Inf"):
        normalize(maps, "joint")


def test_unknown_mode_and_bad_shape():
    with pytest.raises(ValueError, match="minmax, joint, none"):
        normalize(_two_class_maps(), "global")
    with pytest.raises(ValueError, match="B×C×h×w"):
        normalize(torch.rand(3, 4, 4), "joint")


def test_gather_picks_per_image_classes():
    maps = torch.arange(2 * 4, dtype=torch.float32).reshape(2, 4, 1, 1).expand(-1, -1, 3, 3)
    classes = torch.tensor([[3, 1], [0, 2]])
    out = gather(maps, classes)
    assert out.shape == (2, 2, 3, 3)
    assert out[:, :, 0, 0].tolist() == [[3.0, 1.0], [4.0, 6.0]]
