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


@pytest.mark.slow
def test_backbone_is_copied_from_the_fc_run(fc_run):
    model = seethrough.create_model("scouter", num_classes=3, backbone="test_efficientnet")
    init_backbone_from(model, fc_run, classes=["red-circle", "blue-bar", "yellow-triangle"])
    fc = seethrough.from_pretrained(fc_run / "best")
    for (name, a), (_, b) in zip(model.backbone.state_dict().items(), fc.backbone.state_dict().items()):
        assert torch.equal(a, b), name


@pytest.mark.slow
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


@pytest.mark.slow
def test_training_with_use_pre(fc_run, tiny_config):
    summary = train(tiny_config(model="scouter", use_pre=str(fc_run), epochs=1))
    assert summary["epochs"] == 1


@pytest.mark.slow
def test_init_from_copies_every_weight_and_training_starts_there(tmp_path, tiny_config):
    from seethrough.models.loading import init_model_from

    source = seethrough.create_model("fc", num_classes=3, backbone="test_efficientnet")
    source.save_pretrained(tmp_path / "init")
    model = seethrough.create_model("fc", num_classes=3, backbone="test_efficientnet")
    init_model_from(model, tmp_path / "init")
    for (name, a), (_, b) in zip(model.state_dict().items(), source.state_dict().items()):
        assert torch.equal(a, b), name
    cfg = tiny_config(init_from=str(tmp_path / "init"), epochs=1, lr=1e-12)   # lr ~ 0: weights barely move
    train(cfg)
    trained = seethrough.from_pretrained(Path(cfg.out) / "best")
    torch.testing.assert_close(trained.fc.weight, source.fc.weight, atol=1e-6, rtol=0)


@pytest.mark.slow
def test_init_from_of_another_model_is_refused(tmp_path):
    from seethrough.models.loading import init_model_from

    seethrough.create_model("fc", num_classes=3, backbone="test_efficientnet").save_pretrained(tmp_path / "init")
    other = seethrough.create_model("scouter", num_classes=4, backbone="test_efficientnet")
    with pytest.raises(ValueError, match="name: 'fc' there vs 'scouter' here; num_classes: 3 there vs 4 here"):
        init_model_from(other, tmp_path / "init")
    with pytest.raises(FileNotFoundError, match="init_from .*nope not found"):
        init_model_from(other, tmp_path / "nope")
