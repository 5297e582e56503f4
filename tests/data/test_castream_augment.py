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


def test_castream_jitter_adds_the_heads_color_jitter_and_changes_pixels():
    """Audit C6: the repository's HEAD adds ColorJitter(0.4) (brightness) after the flip; 9489e8d had none."""
    import numpy as np
    import PIL.Image

    from seethrough.data.base import RawSample

    ops = build_transform(SIZE, train=True, augment="castream-jitter").geometric.transforms
    assert [type(op) for op in ops][-1] is v2.ColorJitter and ops[-1].brightness == (0.6, 1.4)
    image = PIL.Image.fromarray(np.random.default_rng(0).integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8))
    raw = RawSample(image, 0, "x")
    outs = {}
    for augment in ("castream", "castream-jitter"):
        torch.manual_seed(3)
        outs[augment] = build_transform(SIZE, train=True, augment=augment)(raw)["image"]
    assert not torch.allclose(outs["castream"], outs["castream-jitter"])


def test_castream_stream_init_follows_the_original_per_family():
    """Audit C2: the ConvNeXt stream re-inits its Linear layers trunc_normal(0.02), zero bias."""
    import pytest

    import seethrough

    convnext = seethrough.create_model("castream", num_classes=3, backbone="test_convnext", train_classifier=True)
    assert convnext.config["stream_init"] == "trunc_normal"
    assert all(b.proj.bias.abs().max() == 0 and b.proj.weight.std() < 0.03 for b in convnext.stream.blocks)
    xavier = seethrough.create_model("castream", num_classes=3, backbone="test_convnext", train_classifier=True,
                                     stream_init="xavier")
    assert any(b.proj.bias.abs().max() > 0 for b in xavier.stream.blocks)
    assert seethrough.create_model("castream", num_classes=3, backbone="test_resnet",
                                   train_classifier=True).config["stream_init"] == "xavier"
    with pytest.raises(ValueError, match="stream_init must be one of xavier, trunc_normal"):
        seethrough.create_model("castream", num_classes=3, backbone="test_resnet", stream_init="zeros")


def test_drop_path_rate_reaches_timm_and_is_stochastic_only_in_train_mode():
    """Audit C3: the original trains with model.train(), so the frozen ConvNeXt runs stochastic depth;
    bn_stats='updated' with drop_path_rate reproduces it."""
    import seethrough

    model = seethrough.create_model("castream", num_classes=3, backbone="test_convnext", train_classifier=True,
                                    bn_stats="updated", drop_path_rate=0.5)
    x = torch.randn(2, 3, 32, 32)
    model.train()
    torch.manual_seed(0)
    a = model(x).logits
    torch.manual_seed(1)
    b = model(x).logits
    assert not torch.equal(a, b)   # a fresh ConvNeXt's layer scale is 1e-6: tiny but real differences
    rates = [m.drop_prob for m in model.backbone.modules() if type(m).__name__ == "DropPath"]
    assert rates and max(rates) == 0.5 and model.backbone.training
    model.eval()
    assert torch.equal(model(x).logits, model(x).logits)
    frozen = seethrough.create_model("castream", num_classes=3, backbone="test_convnext", train_classifier=True,
                                     drop_path_rate=0.5).train()
    assert not frozen.backbone.training   # bn_stats frozen (the default): eval mode, no stochastic depth
