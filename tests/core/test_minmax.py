"""The one min-max of the package and its NaN/Inf policies."""
import math

import pytest
import torch

from seethrough.core.minmax import minmax


def test_rows_are_stretched_and_constant_rows_become_zeros():
    maps = torch.tensor([[1.0, 3.0, 2.0], [5.0, 5.0, 5.0]])
    torch.testing.assert_close(minmax(maps), torch.tensor([[0.0, 1.0, 0.5], [0.0, 0.0, 0.0]]))
    joint = minmax(torch.tensor([[[0.0, 10.0]], [[0.0, 1.0]]]), (0, 1, 2))     # one min and max over everything
    torch.testing.assert_close(joint[1], torch.tensor([[0.0, 0.1]]))


def test_non_finite_policies():
    maps = torch.tensor([[0.0, 2.0, math.nan, 4.0], [1.0, 2.0, 3.0, 5.0]])
    nan = minmax(maps)
    assert torch.isnan(nan[0]).all() and torch.equal(nan[1], torch.tensor([0.0, 0.25, 0.5, 1.0]))
    ignore = minmax(maps, nonfinite="ignore")
    torch.testing.assert_close(ignore[0], torch.tensor([0.0, 0.5, 0.0, 1.0]))   # NaN → the row's minimum
    with pytest.raises(ValueError, match="NaN or Inf"):
        minmax(maps, nonfinite="raise")
    with pytest.raises(ValueError, match="unknown nonfinite='skip'"):
        minmax(maps, nonfinite="skip")
