"""SCOUTER's use_pre: the backbone starts from the FC baseline trained on the same data."""
from pathlib import Path

import pytest
import torch

import seethrough
from seethrough.engine import train
from seethrough.models.loading import init_backbone_from


@pytest.fixture(scope="module")
def fc_run(tmp_path_factory, tiny_config_factory):
    cfg = tiny_config_factory(tmp_path_factory.mktemp("fc") / "run", epochs=1)
    train(cfg)
    return Path(cfg.out)


def test_backbone_is_copied_from_the_fc_run(fc_run):
    model = seethrough.create_model("scouter", num_classes=3, backbone="test_efficientnet")
    init_backbone_from(model, fc_run, classes=["red-circle", "blue-bar", "yellow-triangle"])
    fc = seethrough.from_pretrained(fc_run / "best")
    for (name, a), (_, b) in zip(model.backbone.state_dict().items(), fc.backbone.state_dict().items()):
        assert torch.equal(a, b), name


def test_use_pre_of_another_backbone_or_class_count_is_refused(fc_run):
    other = seethrough.create_model("scouter", num_classes=3, backbone="test_convnext")
    with pytest.raises(ValueError, match="backbone: 'test_efficientnet' there vs 'test_convnext' here"):
        init_backbone_from(other, fc_run, classes=["a", "b", "c"])
    same = seethrough.create_model("scouter", num_classes=4, backbone="test_efficientnet")
    with pytest.raises(ValueError, match="classes: 3 there vs 4 here"):
        init_backbone_from(same, fc_run, classes=["a", "b", "c", "d"])


def test_missing_use_pre_names_the_fix(tmp_path):
    model = seethrough.create_model("scouter", num_classes=3, backbone="test_efficientnet")
    with pytest.raises(FileNotFoundError, match="use_pre .*nope not found.*--model fc"):
        init_backbone_from(model, tmp_path / "nope", classes=["a"])


def test_training_with_use_pre(fc_run, tiny_config):
    summary = train(tiny_config(model="scouter", use_pre=str(fc_run), epochs=1))
    assert summary["epochs"] == 1
