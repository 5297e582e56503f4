"""CA-Stream's training augmentation (its lib/data.py imagenet_trainer): square resize, then
torchvision's default random resized crop back to that size, then a horizontal flip."""
import torch
from torchvision.transforms import v2

from seethrough.data import build_transform

SIZE = 32


def test_castream_augment_is_resize_then_default_random_resized_crop_then_flip():
    ops = build_transform(SIZE, train=True, augment="castream").geometric.transforms
    assert [type(op) for op in ops] == [v2.Resize, v2.RandomResizedCrop, v2.RandomHorizontalFlip]
    assert list(ops[0].size) == [SIZE, SIZE] and list(ops[1].size) == [SIZE, SIZE]
    default = v2.RandomResizedCrop(SIZE)
    assert ops[1].scale == default.scale and ops[1].ratio == default.ratio   # (0.08, 1), (3/4, 4/3)


def test_castream_augment_evaluates_with_the_plain_square_resize():
    ops = build_transform(SIZE, train=False, augment="castream").geometric.transforms
    assert [type(op) for op in ops] == [v2.Resize]
