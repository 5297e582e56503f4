"""``seethrough train --select`` and a tagged ``--backbone`` through the command line."""
import json

import pytest
from typer.testing import CliRunner

from seethrough.cli import app

#: trains models: deselect with -m "not slow" for the quick loop
pytestmark = pytest.mark.slow

runner = CliRunner()
TINY = ["--data", "synthetic", "--data-opt", "num_samples=16", "--data-opt", "img_size=32",
        "--data-opt", "num_classes=3", "--img-size", "32", "--batch-size", "8", "--workers", "0",
        "--no-progress", "--accelerator", "cpu", "--epochs", "2", "--max-batches", "1"]


def test_select_last_and_a_tagged_backbone(tmp_path):
    out = tmp_path / "run"
    result = runner.invoke(app, ["train", *TINY, "--backbone", "test_efficientnet.r160_in1k", "--no-pretrained",
                                 "--select", "last", "--out", str(out)])
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["selection"]["select"] == "last" and summary["selection"]["epoch"] == 2
    assert summary["config"]["backbone"] == "test_efficientnet.r160_in1k"
    assert summary["pretrained_weights"] is None   # --no-pretrained: no timm weights were loaded


def test_bad_select_and_a_tag_as_pretrained_are_clear_errors(tmp_path):
    result = runner.invoke(app, ["train", *TINY, "--select", "top5", "--out", str(tmp_path / "a")])
    assert result.exit_code == 2 and "--select must be one of best, last, best-loss" in " ".join(result.output.split())
    result = runner.invoke(app, ["train", *TINY, "--backbone", "resnet50", "--set", "pretrained=tv_in1k",
                                 "--out", str(tmp_path / "b")])
    assert result.exit_code == 2 and "--backbone resnet50.tv_in1k --pretrained" in " ".join(result.output.split())
