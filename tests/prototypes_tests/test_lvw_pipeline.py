"""LVW from the command line: base Grad-CAM maps → LVW training with a push → IoU evaluation."""
import json
from pathlib import Path

import torch
from typer.testing import CliRunner

import seethrough
from seethrough.cli import app
from seethrough.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from seethrough.engine import train

SIZE, CLASSES = 64, 3
DATA = ["--data", "synthetic", "--data-opt", "num_samples=16", "--data-opt", f"img_size={SIZE}",
        "--data-opt", f"num_classes={CLASSES}"]


def _run(*args):
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result


def test_lvw_pipeline_from_the_command_line(tmp_path, tiny_config):
    torch.manual_seed(0)
    base = seethrough.create_model("fc", num_classes=CLASSES, backbone="test_resnet", output_stride=8)
    base.save_pretrained(tmp_path / "fc", img_size=SIZE, classes=[str(c) for c in range(CLASSES)],
                         mean=list(IMAGENET_MEAN), std=list(IMAGENET_STD))
    _run("prototypes", "attention-maps", tmp_path / "fc", "--out", tmp_path / "train.safetensors", *DATA)
    _run("prototypes", "attention-maps", tmp_path / "fc", "--split", "val", "--out", tmp_path / "val.safetensors",
         *DATA)
    cfg = tiny_config(model="lvw", backbone="test_resnet", img_size=SIZE, epochs=1, output_stride=8,
                      attention_maps=str(tmp_path / "train.safetensors"), model_options={"prototype_dim": 16},
                      stage_options={"warm_epochs": 0, "push_start": 0, "push_every": 1, "last_layer_epochs": 1},
                      data_options={"num_samples": 16, "img_size": SIZE, "num_classes": CLASSES})
    train(cfg)
    events = [json.loads(line) for line in (Path(cfg.out) / "metrics.jsonl").read_text().splitlines()]
    assert [e["stage"] for e in events if e["event"] == "epoch"] == ["joint", "last"]
    assert all(e["alignment"] > 0 for e in events if e["event"] == "train_step")
    assert (Path(cfg.out) / "best" / "prototypes" / "gallery.json").is_file()
    result = _run("prototypes", "iou", cfg.out, "--maps", tmp_path / "val.safetensors", "--out",
                  tmp_path / "iou.json", *DATA)
    iou = json.loads((tmp_path / "iou.json").read_text())
    assert iou["percentile"] == 50 and iou["top"]["count"] + iou["top"]["nan_count"] == 16
    for convention in ("top", "bottom"):
        assert 0.0 <= iou[convention]["mean"] <= 1.0 and 0.0 < iou[convention]["chance"] < 1.0
    assert "chance" in result.output


def test_lvw_trains_in_one_command_from_a_base_model_directory(tmp_path, tiny_config):
    torch.manual_seed(0)
    base = seethrough.create_model("fc", num_classes=CLASSES, backbone="test_resnet", output_stride=8)
    base.save_pretrained(tmp_path / "fc", img_size=SIZE, classes=[str(c) for c in range(CLASSES)],
                         mean=list(IMAGENET_MEAN), std=list(IMAGENET_STD))
    cfg = tiny_config(model="lvw", backbone="test_resnet", img_size=SIZE, epochs=1, output_stride=8,
                      attention_maps=str(tmp_path / "fc"), model_options={"prototype_dim": 16},
                      stage_options={"warm_epochs": 0, "push_start": 5},
                      data_options={"num_samples": 16, "img_size": SIZE, "num_classes": CLASSES})
    train(cfg)
    assert (Path(cfg.out) / "gradcam-targets.safetensors").is_file()      # computed once from the base model
    events = [json.loads(line) for line in (Path(cfg.out) / "metrics.jsonl").read_text().splitlines()]
    assert all(e["alignment"] > 0 for e in events if e["event"] == "train_step")
