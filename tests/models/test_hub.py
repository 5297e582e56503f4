import json

import pytest
import torch

import seethrough
from seethrough.models.hub import load_state_dict_checked


def test_save_and_load_round_trip(tmp_path):
    model = seethrough.create_model("fc", num_classes=4, backbone="test_efficientnet").eval()
    model.save_pretrained(tmp_path / "m", dataset="synthetic")
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["README.md", "config.json", "model.safetensors"]
    loaded = seethrough.from_pretrained(tmp_path / "m").eval()
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(loaded(x).logits, model(x).logits, rtol=0, atol=0)
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    assert config["model"]["name"] == "fc" and config["card"]["dataset"] == "synthetic"
    assert "seethrough" in (tmp_path / "m" / "README.md").read_text()


def test_missing_directory_or_config_is_a_clear_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="config.json not found"):
        seethrough.from_pretrained(tmp_path / "empty")


def test_checkpoint_of_another_class_count_is_refused(tmp_path):
    seethrough.create_model("fc", num_classes=4, backbone="test_efficientnet").save_pretrained(tmp_path / "m")
    other = seethrough.create_model("fc", num_classes=7, backbone="test_efficientnet")
    state = seethrough.from_pretrained(tmp_path / "m").state_dict()
    with pytest.raises(ValueError, match=r"shape mismatches.*fc.weight: file \(4, .*\) vs model \(7, "):
        load_state_dict_checked(other, state, source="m/model.safetensors")


def test_checkpoint_of_another_backbone_is_refused(tmp_path):
    state = seethrough.create_model("fc", num_classes=4, backbone="test_efficientnet").state_dict()
    other = seethrough.create_model("fc", num_classes=4, backbone="resnet18")
    with pytest.raises(ValueError, match="does not fit model 'fc' \\(backbone 'resnet18'.*--backbone"):
        load_state_dict_checked(other, state, source="x.safetensors")


@pytest.mark.parametrize("damage", ["truncate", "garble"])
def test_a_corrupt_safetensors_file_is_a_clear_error_naming_it(tmp_path, damage):
    from typer.testing import CliRunner

    from seethrough.cli import app

    model = seethrough.create_model("fc", num_classes=3, backbone="test_efficientnet")
    model.save_pretrained(tmp_path / "m")
    weights = tmp_path / "m" / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2] if damage == "truncate" else b"\x07" * 64 + data[64:])
    with pytest.raises(ValueError, match=r"model.safetensors is truncated or corrupt .*Write it again"):
        seethrough.from_pretrained(tmp_path / "m")
    result = CliRunner().invoke(app, ["eval", str(tmp_path / "m"), "--data", "synthetic"])
    assert result.exit_code == 2 and "truncated or corrupt" in result.output
