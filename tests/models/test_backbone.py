import pytest
import torch

from seethrough.models import Backbone


def trainable_prefixes(backbone: Backbone) -> set[str]:
    return {name.split(".")[0] for name, p in backbone.body.named_parameters() if p.requires_grad}


def test_efficientnet_stages_are_the_four_layers():
    assert Backbone("resnet18").stage_names == ["layer1", "layer2", "layer3", "layer4"]


@pytest.mark.parametrize("k, trainable", [
    (0, {"conv1", "bn1", "layer1", "layer2", "layer3", "layer4"}),
    (2, {"layer3", "layer4"}),       # SCOUTER's default: stem, layer1, layer2 frozen
    (3, {"layer4"}),
    (4, set()),
])
def test_freeze_layers_has_scouters_meaning(k, trainable):
    assert trainable_prefixes(Backbone("resnet18", freeze_layers=k)) == trainable


def test_freeze_layers_out_of_range_names_the_stages():
    with pytest.raises(ValueError, match="between 0 and 4.*layer1, layer2, layer3, layer4"):
        Backbone("resnet18", freeze_layers=5)


def test_unknown_backbone_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown timm backbone 'resnet_nonexistent'"):
        Backbone("resnet_nonexistent")


def test_output_stride_keeps_small_images_spatial():
    x = torch.randn(2, 3, 64, 64)
    assert Backbone("resnet18").eval()(x).shape[-2:] == (2, 2)
    assert Backbone("resnet18", output_stride=8).eval()(x).shape[-2:] == (8, 8)


def test_grayscale_input():
    out = Backbone("resnet18", in_chans=1).eval()(torch.randn(2, 1, 32, 32))
    assert out.shape == (2, 512, 1, 1)


def test_token_backbone_is_reshaped_to_its_patch_grid():
    backbone = Backbone("test_vit").eval()
    x = torch.randn(2, 3, 160, 160)
    feats = backbone(x)
    tokens = backbone.body.forward_features(x)[:, backbone.num_prefix_tokens:]
    side = feats.shape[-1]
    assert feats.shape == (2, backbone.num_features, side, side)
    assert torch.equal(feats.flatten(2).transpose(1, 2), tokens)


def test_stage_taps_for_multi_stage_heads():
    backbone = Backbone("resnet18").eval()
    x = torch.randn(1, 3, 64, 64)
    stages = backbone.forward_stages(x)
    assert [s.shape[1] for s in stages][-4:] == [64, 128, 256, 512]
    torch.testing.assert_close(stages[-1], backbone(x))


def test_mnist_stem_is_scouters_conv_and_is_frozen_with_the_stem():
    backbone = Backbone("resnet18", in_chans=1, stem="mnist", freeze_layers=2)
    conv1 = backbone.body.conv1
    assert (conv1.in_channels, conv1.out_channels, conv1.kernel_size, conv1.stride, conv1.padding, conv1.bias) == \
        (1, 64, (3, 3), (2, 2), (1, 1), None)
    assert not conv1.weight.requires_grad  # replaced before freezing, as in the original
    assert backbone.eval()(torch.randn(2, 1, 64, 64)).shape == (2, 512, 2, 2)


@pytest.mark.parametrize("kwargs, message", [
    (dict(name="resnet18", in_chans=3, stem="mnist"), "add --in-chans 1"),
    (dict(name="test_efficientnet", in_chans=1, stem="mnist"), "replaces a ResNet's 64-channel conv1"),
    (dict(name="resnet18", in_chans=1, stem="cifar"), "unknown stem 'cifar'"),
])
def test_bad_stems(kwargs, message):
    name = kwargs.pop("name")
    with pytest.raises(ValueError, match=message):
        Backbone(name, **kwargs)
