"""CA-Stream's model: eqs. (1)-(2), the classifier it reuses, its maps, taps and errors."""
import pytest
import timm
import torch

import seethrough
from seethrough.models.heads.castream import ATTENTION_KEY

CLASSES, BATCH, SIZE = 5, 2, 64
#: Stream parameter counts of the paper (reference part B): q₀ plus one Linear per tap.
PAPER_STREAM_PARAMS = {"resnet50": 6_969_152, "convnext_base": 1_739_648}


def _model(backbone="test_resnet", **options):
    torch.manual_seed(0)
    return seethrough.create_model("castream", num_classes=CLASSES, backbone=backbone, **options).eval()


def _images():
    return torch.randn(BATCH, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("backbone", sorted(PAPER_STREAM_PARAMS))
def test_stream_parameter_counts_match_the_paper(backbone):
    model = seethrough.create_model("castream", num_classes=1000, backbone=backbone)
    assert sum(p.numel() for p in model.stream.parameters()) == PAPER_STREAM_PARAMS[backbone]


def test_paper_taps_are_recorded_and_the_final_map_is_last():
    assert _model("test_resnet").tap_names == ["maxpool", "layer1", "layer2", "layer3", "features"]
    convnext = _model("test_convnext")
    assert convnext.config["taps"] == ["stem", "stages.1.downsample", "stages.2.downsample"]
    assert _model("test_efficientnet").config["taps"] == ["blocks.0", "blocks.1", "blocks.2", "blocks.3"]


@pytest.mark.parametrize("heads", [1, 2])
def test_attention_sums_to_one_at_every_tap(heads):
    model = _model(heads=heads)
    out = model(_images())
    for name in model.tap_names:
        attention = out.extras[f"{ATTENTION_KEY}.{name}"]
        assert attention.shape[:2] == (BATCH, heads)
        torch.testing.assert_close(attention.flatten(2).sum(-1), torch.ones(BATCH, heads))
    assert out.extras[ATTENTION_KEY] is out.extras[f"{ATTENTION_KEY}.features"]


def test_uniform_attention_reduces_the_stream_to_gap_and_the_linear_maps():
    model = _model()
    for block in model.stream.blocks:
        block.scale = 0.0                              # every logit 0 → a = 1/t everywhere
    images = _images()
    out = model(images)
    features = model.backbone(images)
    pooled = model.stream.blocks[-1].proj(features.mean(dim=(-2, -1)))
    torch.testing.assert_close(out.logits, model.classifier.fc(pooled), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("backbone", ["test_resnet", "test_convnext", "test_efficientnet"])
def test_gap_pooling_is_the_backbones_own_network(backbone):
    model = _model(backbone, pooling="gap")
    reference = timm.create_model(backbone, num_classes=CLASSES).eval()
    missing = reference.load_state_dict(model.backbone.body.state_dict(), strict=False).missing_keys
    reference.get_classifier().load_state_dict(model.classifier.fc.state_dict())
    assert all(".fc." in f".{k}" or "classifier" in k for k in missing), missing
    images = _images()
    torch.testing.assert_close(model(images).logits, reference(images), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("pooling", ["ca", "gap"])
def test_class_maps_decompose_the_logits_of_a_linear_classifier(pooling):
    model = _model(pooling=pooling)
    out = model(_images())
    offset = model.classifier.fc.bias
    if pooling == "ca":
        offset = offset + model.classifier.fc.weight @ model.stream.blocks[-1].proj.bias
    torch.testing.assert_close(out.maps.mean(dim=(-2, -1)) + offset, out.logits, atol=1e-4, rtol=1e-4)


def test_class_maps_decompose_the_logits_through_a_layernorm_head():
    model = _model("test_convnext")
    images = _images()
    out = model(images)
    norm, fc = model.head_norm, model.classifier.fc
    with torch.no_grad():
        token, _, _ = model.stream([*_tap_maps(model, images)])
    sigma = torch.sqrt(token.var(dim=1, unbiased=False) + norm.eps)
    scaled = fc.weight * norm.weight
    centred = scaled - scaled.mean(dim=1, keepdim=True)
    constant = fc.weight @ norm.bias + fc.bias + (centred @ model.stream.blocks[-1].proj.bias)[None] / sigma[:, None]
    torch.testing.assert_close(out.maps.mean(dim=(-2, -1)) + constant, out.logits, atol=1e-4, rtol=1e-4)


def _tap_maps(model, images):
    from seethrough.models.taps import TapRecorder

    with TapRecorder(model.backbone.body, model.taps) as recorder:
        final = model.backbone(images)
    return [*recorder.outputs(), final]


def test_attention_maps_option_gives_the_class_agnostic_attention():
    model = _model(maps="attention")
    out = model(_images())
    expected = out.extras[ATTENTION_KEY].mean(dim=1)
    for c in range(CLASSES):
        torch.testing.assert_close(out.maps[:, c], expected)


def test_pooling_switch_keeps_the_weights():
    model = _model()
    images = _images()
    ca = model(images).logits
    model.set_runtime_option("pooling", "gap")
    gap = model(images).logits
    assert not torch.allclose(ca, gap)
    model.set_runtime_option("pooling", "ca")
    torch.testing.assert_close(model(images).logits, ca)
    with pytest.raises(ValueError, match="pooling must be one of ca, gap"):
        model.set_runtime_option("pooling", "max")
    with pytest.raises(ValueError, match="no runtime option 'taps'"):
        model.set_runtime_option("taps", "paper")


def test_only_the_stream_trains_and_the_backbone_stays_in_eval_mode():
    model = _model().train()
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(name.startswith("stream.") for name in trainable)
    assert not any(m.training for m in model.backbone.modules())
    updated = _model(bn_stats="updated").train()
    assert updated.backbone.training
    with_classifier = _model(train_classifier=True)
    assert with_classifier.classifier.fc.weight.requires_grad


def test_gradients_reach_the_stream_only_and_gradcam_flows_through_the_pooling():
    model = _model()
    images = _images()
    loss = model.compute_loss(model.train()(images), torch.tensor([0, 1]))["loss"]
    loss.backward()
    assert all(p.grad is not None for p in model.stream.parameters())
    model.eval()
    ca = seethrough.explain(model, images, [0, 1], method="gradcam")
    model.set_runtime_option("pooling", "gap")
    gap = seethrough.explain(model, images, [0, 1], method="gradcam")
    assert ca.shape == gap.shape == (BATCH, SIZE, SIZE)
    assert torch.isfinite(ca).all() and not torch.allclose(ca, gap)


def test_gap_pooling_with_a_frozen_classifier_refuses_to_train():
    model = _model(pooling="gap").train()
    with pytest.raises(ValueError, match="nothing to train"):
        model.compute_loss(model(_images()), torch.tensor([0, 1]))


def test_unknown_tap_lists_the_valid_ones():
    with pytest.raises(ValueError, match=r"taps \['layer9'\] are not modules.*maxpool, layer1, layer2, layer3"):
        _model(taps=["maxpool", "layer9"])
    with pytest.raises(ValueError, match="taps 'paper' are defined for ResNet and ConvNeXt"):
        _model("test_efficientnet", taps="paper")


def test_custom_taps_as_a_comma_list():
    model = _model(taps="layer2,layer3")
    assert model.tap_names == ["layer2", "layer3", "features"]
    assert model(_images()).logits.shape == (BATCH, CLASSES)


def test_backbone_without_a_reusable_classifier_is_refused():
    with pytest.raises(ValueError, match="not global average pooling"):
        _model("mobilenetv3_small_050")   # pooling → conv_head → classifier
    with pytest.raises(ValueError, match="no linear classifier|does not take a pooled"):
        _model("test_vit")


def test_heads_must_divide_every_tap_width():
    with pytest.raises(ValueError, match="heads=5 does not divide the width of taps"):
        _model(heads=5)


def test_save_and_load_round_trip(tmp_path):
    model = _model("test_convnext", heads=2)
    model.save_pretrained(tmp_path / "m")
    loaded = seethrough.from_pretrained(tmp_path / "m").eval()
    assert loaded.config["taps"] == model.config["taps"]
    images = _images()
    torch.testing.assert_close(loaded(images).logits, model(images).logits)


def test_init_from_a_model_of_another_tap_set_names_the_difference(tmp_path):
    from seethrough.models.loading import init_model_from

    _model(taps="layer2,layer3").save_pretrained(tmp_path / "other")
    with pytest.raises(ValueError, match=r"taps: \['layer2', 'layer3'\] there vs \['maxpool', 'layer1', 'layer2', "
                                         r"'layer3'\] here"):
        init_model_from(_model(), tmp_path / "other")
