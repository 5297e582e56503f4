"""measure_receptive_field on conv stacks whose receptive field is known by hand.

Layer arithmetic (ProtoPNet's receptive_field.py, Araujo et al. 2019): per layer with kernel
k, stride s, padding q, the field grows r ← r + (k − 1)·j, the jump j ← j·s and the centre of
unit 0 moves by ((k − 1)/2 − q)·j. With "same" padding (q = (k − 1)/2) unit y is centred on
pixel y·j and covers [y·j − (r − 1)/2, y·j + (r − 1)/2 + 1).
"""
from __future__ import annotations

import pytest
import torch
from torch import nn

from seethrough.prototypes import measure_receptive_field


class ConvStack(nn.Module):
    """``latent(x)`` = sigmoid of a conv stack (ReLUs between), like backbone + add-on."""

    def __init__(self, layers: list[tuple[int, int]], channels: int = 4) -> None:
        super().__init__()
        modules: list[nn.Module] = []
        for i, (k, s) in enumerate(layers):
            modules += [nn.Conv2d(3 if i == 0 else channels, channels, k, s, (k - 1) // 2), nn.ReLU()]
        self.body = nn.Sequential(*modules[:-1])

    def latent(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.body(x))


def by_hand(layers: list[tuple[int, int]]) -> tuple[int, int]:
    """(receptive field size r, jump j) of a same-padded stack."""
    r, j = 1, 1
    for k, s in layers:
        r, j = r + (k - 1) * j, j * s
    return r, j


CASES = {
    "3x3 s1, 3x3 s2, 3x3 s1 at 32 px (r 9, jump 2)": ([(3, 1), (3, 2), (3, 1)], 32),
    "5x5 s2, 3x3 s2 at 32 px (r 9, jump 4)": ([(5, 2), (3, 2)], 32),
    "six 3x3 s1 at 8 px (r 13 > image)": ([(3, 1)] * 6, 8),
}


@pytest.mark.parametrize("case", CASES)
def test_boxes_match_the_layer_arithmetic(case):
    layers, size = CASES[case]
    torch.manual_seed(0)
    model = ConvStack(layers)
    field = measure_receptive_field(model, size)
    r, j = by_hand(layers)
    half = (r - 1) // 2
    h = size // j
    assert field.latent_size == (h, h) and field.stride == (j, j)
    for y in range(h):
        for x in range(h):
            expected = (max(x * j - half, 0), max(y * j - half, 0), min(x * j + half + 1, size),
                        min(y * j + half + 1, size))
            assert field.box(y, x) == expected, (y, x)


def test_field_larger_than_the_image_is_not_cut_at_the_border():
    """At 8 px the central unit's support reaches the border; measured there alone, the corner
    unit's box would be too small: [0, 4) instead of [0, 7)."""
    model = ConvStack([(3, 1)] * 6)
    assert measure_receptive_field(model, 8).box(0, 0) == (0, 0, 7, 7)


def test_measuring_leaves_the_model_as_it_was():
    model = ConvStack([(3, 1), (3, 2)]).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    measure_receptive_field(model, 16)
    assert model.training
    assert all(p.grad is None for p in model.parameters())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_position_outside_the_map_is_refused():
    field = measure_receptive_field(ConvStack([(3, 2)]), 16)
    with pytest.raises(ValueError, match="outside the 8×8 latent map"):
        field.box(8, 0)


def test_rectangular_images_have_one_stride_per_axis():
    field = measure_receptive_field(ConvStack([(3, 2), (3, 2)]), (16, 32))
    assert field.latent_size == (4, 8) and field.stride == (4.0, 4.0)
    assert field.box(3, 7) == (28 - 3, 12 - 3, 32, 16)
