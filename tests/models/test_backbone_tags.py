"""Pretrained tags: ``--backbone ARCH.TAG`` picks timm's weights (e.g. ``resnet50.tv_in1k``,
torchvision's, as the originals loaded); the weights actually loaded are recorded; checks that
compare backbones compare architectures. No download: timm is asked for ``pretrained=False``
(its ``pretrained_cfg`` still names the tag it resolved)."""
import json
from pathlib import Path

import pytest
import timm
import torch

import seethrough
from seethrough.config import TrainConfig, list_presets, load_preset
from seethrough.engine import train
from seethrough.models.backbone import Backbone, backbone_architecture
from seethrough.models.loading import init_backbone_from, init_model_from

TAGGED = "test_efficientnet.r160_in1k"


@pytest.fixture
def no_download(monkeypatch):
    """timm.create_model as called, but never downloading; records the names asked for."""
    real, calls = timm.create_model, []

    def create(name, pretrained=False, **kwargs):
        calls.append((name, pretrained))
        return real(name, pretrained=False, **kwargs)

    monkeypatch.setattr(timm, "create_model", create)
    return calls


def test_architecture_of_a_tagged_name():
    assert backbone_architecture("resnet50.tv_in1k") == "resnet50" == backbone_architecture("resnet50")


def test_tagged_name_reaches_timm_and_the_loaded_weights_are_named(no_download):
    backbone = Backbone("resnet18.tv_in1k", pretrained=True)
    assert no_download == [("resnet18.tv_in1k", True)]
    assert backbone.pretrained_weights == "resnet18.tv_in1k"
    assert backbone.body.pretrained_cfg["tag"] == "tv_in1k"


def test_untagged_name_records_timms_default_tag(no_download):
    default = timm.models.get_pretrained_cfg("resnet18").tag
    assert Backbone("resnet18", pretrained=True).pretrained_weights == f"resnet18.{default}"
    assert Backbone("resnet18", pretrained=False).pretrained_weights is None


def test_unknown_tag_is_refused_listing_the_tags():
    with pytest.raises(ValueError, match=r"no pretrained tag 'tv1k' for 'resnet50'.*tv_in1k"):
        Backbone("resnet50.tv1k")


def test_pretrained_given_as_a_tag_points_to_the_backbone_name():
    with pytest.raises(ValueError, match=r"--backbone resnet50\.tv_in1k --pretrained"):
        TrainConfig(backbone="resnet50", pretrained="tv_in1k").validate()


def test_tagged_backbone_end_to_end(no_download, tiny_config):
    cfg = tiny_config(backbone=TAGGED, pretrained=True, epochs=1, max_batches=1)
    summary = train(cfg)
    best = Path(cfg.out) / "best"
    assert summary["pretrained_weights"] == TAGGED
    card = json.loads((best / "config.json").read_text())
    assert card["card"]["pretrained_weights"] == TAGGED and card["model"]["backbone"] == TAGGED
    reloaded = seethrough.from_pretrained(best).eval()
    images = torch.randn(2, 3, 32, 32)
    assert reloaded(images).logits.shape == (2, 3)
    # use_pre and init_from: the tag names starting weights, the architecture must match
    plain = seethrough.create_model("scouter", num_classes=3, backbone="test_efficientnet")
    init_backbone_from(plain, Path(cfg.out), classes=["red-circle", "blue-bar", "yellow-triangle"])
    for (name, a), (_, b) in zip(plain.backbone.state_dict().items(), reloaded.backbone.state_dict().items()):
        assert torch.equal(a, b), name
    fc = seethrough.create_model("fc", num_classes=3, backbone="test_efficientnet")
    init_model_from(fc, best)
    torch.testing.assert_close(fc.fc.weight, reloaded.fc.weight, rtol=0, atol=0)
    other = seethrough.create_model("scouter", num_classes=3, backbone="test_convnext.r160_in1k")
    with pytest.raises(ValueError, match=f"backbone: '{TAGGED}' there vs 'test_convnext.r160_in1k' here"):
        init_backbone_from(other, Path(cfg.out), classes=["red-circle", "blue-bar", "yellow-triangle"])


#: The weights each paper's original loads, as timm names them (see the presets' comments).
PAPER_WEIGHTS = {"fc-mnist": "resnet18.tv_in1k", "scouter-mnist-pos": "resnet18.tv_in1k",
                 "scouter-mnist-neg": "resnet18.tv_in1k", "fc-context": "resnest26d.gluon_in1k",
                 "fc-cub": "resnest50d.in1k", "scouter-imagenet-pos": "resnest26d.gluon_in1k",
                 "protopnet": "resnet34.tv_in1k", "protopnet-cub": "resnet34.tv_in1k", "lvw": "resnet34.tv_in1k",
                 "lvw-pet37": "resnet34.tv_in1k", "intr": "resnet50.tv_in1k", "intr-cub": "resnet50.tv_in1k",
                 "castream": "resnet50.tv_in1k", "castream-resnet50-imagenet": "resnet50.tv_in1k",
                 "castream-convnext-base-imagenet": "convnext_base.fb_in1k"}


@pytest.mark.parametrize("preset", sorted(PAPER_WEIGHTS))
def test_paper_presets_name_the_originals_weights(preset):
    assert load_preset(preset)["backbone"] == PAPER_WEIGHTS[preset]


def test_every_pretrained_preset_names_an_existing_tag():
    for name in list_presets():
        values = load_preset(name)
        if values.get("pretrained"):
            arch, _, tag = values["backbone"].partition(".")
            assert tag, f"preset {name}: pretrained backbone {values['backbone']!r} names no tag"
            assert values["backbone"] in timm.list_pretrained(f"{arch}.*"), name


@pytest.mark.parametrize("prefix, select", [("fc-", "last"), ("scouter-", "last"), ("castream", "best-loss"),
                                            ("intr", "last"), ("lvw", "last"), ("protopnet", "best")])
def test_paper_presets_select_as_the_original(prefix, select):
    names = [name for name in list_presets() if name.startswith(prefix)]
    assert names and all(load_preset(name)["select"] == select for name in names), names
