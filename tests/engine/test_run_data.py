"""Which mean/std a run normalizes with, and how it follows the input channels."""
from seethrough.config import TrainConfig
from seethrough.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from seethrough.engine.data import normalization


class Data:
    def __init__(self, normalization):
        self.normalization = normalization


MNIST_STATS = ((0.1307,), (0.3081,))


def test_explicit_flags_win():
    cfg = TrainConfig(mean=[0.5, 0.5, 0.5], std=[0.2, 0.2, 0.2])
    assert normalization(cfg, Data(MNIST_STATS)) == ((0.5,) * 3, (0.2,) * 3)


def test_data_native_stats_beat_the_backbone_and_follow_channels():
    assert normalization(TrainConfig(in_chans=1), Data(MNIST_STATS)) == MNIST_STATS
    assert normalization(TrainConfig(in_chans=3), Data(MNIST_STATS)) == ((0.1307,) * 3, (0.3081,) * 3)


def test_imagenet_default_and_grayscale_average():
    assert normalization(TrainConfig(), Data(None)) == (IMAGENET_MEAN, IMAGENET_STD)
    (mean,), (std,) = normalization(TrainConfig(in_chans=1), Data(None))
    assert mean == sum(IMAGENET_MEAN) / 3 and std == sum(IMAGENET_STD) / 3


def test_pretrained_backbone_stats_are_used():
    mean, std = normalization(TrainConfig(pretrained=True, backbone="vit_base_patch16_224"), Data(None))
    assert mean == (0.5, 0.5, 0.5) and std == (0.5, 0.5, 0.5)
