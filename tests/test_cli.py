"""Smoke tests of every command, in-process through typer's runner (DDP in a subprocess)."""
import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from seethrough.cli import app

runner = CliRunner()
TINY = ["--data", "synthetic", "--data-opt", "num_samples=32", "--data-opt", "img_size=32",
        "--data-opt", "num_classes=3", "--backbone", "test_efficientnet", "--img-size", "32",
        "--batch-size", "8", "--workers", "0", "--no-progress", "--accelerator", "cpu"]


def invoke(*args: str):
    result = runner.invoke(app, [str(a) for a in args])
    return result


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "run"
    result = invoke("train", *TINY, "--epochs", "1", "--out", out)
    assert result.exit_code == 0, result.output
    return out


def test_train_writes_a_run(trained_run):
    summary = json.loads((trained_run / "summary.json").read_text())
    assert summary["epochs"] == 1 and summary["config"]["backbone"] == "test_efficientnet"


def test_eval_reports_accuracy(trained_run, tmp_path):
    out = tmp_path / "eval.json"
    result = invoke("eval", trained_run, "--data", "synthetic", "--data-opt", "num_samples=32",
                    "--data-opt", "img_size=32", "--data-opt", "num_classes=3", "--workers", "0",
                    "--accelerator", "cpu", "--out", out)
    assert result.exit_code == 0, result.output
    scored = json.loads(out.read_text())
    summary = json.loads((trained_run / "summary.json").read_text())
    assert scored["samples"] == 32 and scored["acc1"] == pytest.approx(summary["val_acc1"])


def test_eval_with_another_class_count_is_refused(trained_run):
    result = invoke("eval", trained_run, "--data", "synthetic", "--data-opt", "num_classes=5",
                    "--accelerator", "cpu")
    assert result.exit_code == 2 and "trained on 3 classes" in result.output


def test_explain_writes_overlays_for_image_files(trained_run, tmp_path):
    paths = []
    for i, mode in enumerate(["RGB", "L", "RGBA"]):
        path = tmp_path / f"img{i}.png"
        Image.fromarray(np.random.default_rng(i).integers(0, 255, (40, 50, 3), dtype=np.uint8)).convert(mode).save(path)
        paths.append(path)
    out = tmp_path / "explained"
    result = invoke("explain", trained_run / "last.ckpt", *paths, "--out", out, "--k", "2")
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "explanations.json").read_text())
    assert len(summary["images"]) == 3
    assert (out / "img0_explanation.png").is_file()


def test_explain_with_a_post_hoc_method_equals_seethrough_explain(trained_run, tmp_path):
    import torch

    import seethrough
    from seethrough.explanations import explain_batch

    path = tmp_path / "img.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(path)
    out = tmp_path / "gradcam"
    result = invoke("explain", trained_run, path, "--out", out, "--k", "2", "--method", "gradcam")
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "explanations.json").read_text())
    assert summary["method"] == "gradcam" and summary["normalize"] == "minmax"
    model = seethrough.from_pretrained(trained_run / "best").eval()
    images = torch.randn(2, 3, 32, 32)
    batch = explain_batch(model, images, policy="pred", k=2, method="gradcam")
    for k in range(2):
        expected = seethrough.explain(model, images, batch["classes"][:, k], method="gradcam")
        torch.testing.assert_close(batch["maps"][:, k], expected)
    bad = invoke("explain", trained_run, path, "--out", tmp_path / "y", "--method", "gradcom")
    assert bad.exit_code == 2 and "gradcom" in bad.output


def test_explain_missing_image_names_the_file(trained_run, tmp_path):
    result = invoke("explain", trained_run, tmp_path / "nope.png", "--out", tmp_path / "x")
    assert result.exit_code == 2 and "nope.png" in result.output


def test_train_bad_flag_value_is_a_clear_error(tmp_path):
    result = invoke("train", *TINY, "--optimizer", "adam", "--out", tmp_path / "r")
    assert result.exit_code == 2 and "--optimizer must be one of adamw, sgd" in result.output


def test_too_few_samples_for_one_batch(tmp_path):
    result = invoke("train", *TINY, "--batch-size", "64", "--out", tmp_path / "r")
    assert result.exit_code == 2 and "make no full batch of 64" in result.output


def test_train_unknown_dataset_kind(tmp_path):
    result = invoke("train", "--data", "coco:/x", "--out", tmp_path / "r")
    assert result.exit_code == 2 and "unknown dataset kind 'coco'" in result.output


def test_presets_and_models_list():
    assert "fc-mnist" in invoke("presets").output
    assert "fc" in invoke("models").output.split()


@pytest.mark.slow
def test_demo_writes_pictures_and_summary(tmp_path):
    out = tmp_path / "demo"
    # 2 epochs: ProtoPNet's push comes after its second (joint) epoch
    invoked = invoke("demo", "--out", out, "--epochs", "2", "--samples", "64", "--backbone", "test_efficientnet",
                     "--accelerator", "cpu")
    assert invoked.exit_code == 0, invoked.output
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["models"]) == {"fc", "scouter+", "scouter-", "intr", "castream", "protopnet"}
    for name, result in summary["models"].items():
        assert 0.0 <= result["evidence_mass"] <= 1.0 and 0.0 < result["evidence_mass_uniform"] < 1.0
        assert list((out / name / "pictures").glob("*_explanation.png")), name
    assert summary["models"]["scouter-"]["explained_class"] == "least"
    gap = summary["models"]["castream"]["pooling-gap"]       # CA vs GAP, same weights
    assert gap["val_acc1"] == summary["models"]["fc"]["best_val_acc1"] and 0.0 <= gap["evidence_mass"] <= 1.0
    assert list((out / "castream" / "pooling-gap" / "pictures").glob("*_explanation.png"))
    assert "castream [pooling-gap], same weights" in " ".join(invoked.output.split())
    proto = summary["models"]["protopnet"]                    # pushed, gallery and "this looks like that"
    assert (out / "protopnet" / "best" / "prototypes" / "gallery.json").is_file() and proto["gallery"]
    assert all(Path(p).is_file() for p in proto["this_looks_like_that"])
    # the demo ends with the viewer of every model's evidence for the same images
    assert (out / "view" / "index.html").is_file() and "viewer:" in invoked.output
    manifest = (out / "view" / "data" / "manifest.js").read_text()
    assert all(f'"name":"{name}"' in manifest for name in summary["models"])


def test_data_imagenet_val_regroups_without_touching_originals(tmp_path):
    val = tmp_path / "imagenet" / "val"
    val.mkdir(parents=True)
    rows = [("ILSVRC2012_val_00000001", "n01440764 1 2 3 4"), ("ILSVRC2012_val_00000002", "n01443537 5 6 7 8")]
    for image_id, _ in rows:
        Image.new("RGB", (8, 8)).save(val / f"{image_id}.JPEG")
    with open(tmp_path / "imagenet" / "LOC_val_solution.csv", "w", newline="") as handle:
        csv.writer(handle).writerows([("ImageId", "PredictionString"), *rows])
    before = sorted(p.name for p in val.iterdir())
    result = invoke("data", "imagenet-val", tmp_path / "imagenet")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "imagenet" / "val_by_synset" / "n01440764" / "ILSVRC2012_val_00000001.JPEG").exists()
    assert sorted(p.name for p in val.iterdir()) == before


@pytest.mark.slow
def test_two_process_cpu_ddp_run_trains(tmp_path):
    """torchrun-free DDP: Fabric launches 2 gloo processes on the CPU."""
    out = tmp_path / "ddp"
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run(
        [sys.executable, "-m", "seethrough", "train", *TINY, "--epochs", "2", "--devices", "2",
         "--strategy", "ddp", "--out", str(out)],
        capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["world_size"] == 2
    assert summary["steps"] == 2 * (32 // (8 * 2))
    history = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    epochs = [h for h in history if h["event"] == "epoch"]
    assert epochs[0]["train_samples"] == 32  # both ranks' samples counted once each


@pytest.mark.slow
def test_two_process_cpu_ddp_prototype_run_pushes(tmp_path):
    """Multi-stage training under DDP: each stage trains a subset of the parameters and the push
    merges both ranks' nearest patches."""
    out = tmp_path / "ddp-ppnet"
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    stages = ["--stage-opt", "warm_epochs=1", "--stage-opt", "push_start=1", "--stage-opt", "push_every=1",
              "--stage-opt", "last_layer_epochs=1"]
    proc = subprocess.run(
        [sys.executable, "-m", "seethrough", "train", *TINY, "--model", "protopnet", "--model-opt",
         "prototype_dim=8", *stages, "--epochs", "2", "--devices", "2", "--strategy", "ddp", "--out", str(out)],
        capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    history = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [h["stage"] for h in history if h["event"] == "epoch"] == ["warm", "joint", "last"]
    assert (out / "best" / "prototypes" / "gallery.json").is_file()


def test_convert_an_official_scouter_checkpoint(tmp_path):
    import torch

    import seethrough

    ours = seethrough.create_model("scouter", num_classes=3, backbone="test_efficientnet", slots_per_class=2)
    official = {k.replace("backbone.body.", "backbone."): v for k, v in ours.state_dict().items()}
    torch.save({"model": official}, tmp_path / "ckpt.pth")
    result = invoke("convert", "scouter", tmp_path / "ckpt.pth", "--out", tmp_path / "m",
                    "--opt", "backbone=test_efficientnet", "--opt", "num_classes=3")
    assert result.exit_code == 0, result.output
    loaded = seethrough.from_pretrained(tmp_path / "m").eval()
    x = torch.randn(1, 3, 64, 64)
    torch.testing.assert_close(loaded(x).logits, ours.eval()(x).logits)
    bad = invoke("convert", "scouter", tmp_path / "ckpt.pth", "--out", tmp_path / "m2")
    assert bad.exit_code == 2 and "backbone" in bad.output
