"""``seethrough evaluate`` end to end: models × explainers × metrics → results.json, CSV, HTML."""
from __future__ import annotations

import csv
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

import seethrough
from seethrough.cli import app
from seethrough.engine.trainer import train
from seethrough.protocol import load_protocol

SYNTHETIC_OPTS = {"num_samples": 48, "img_size": 32, "num_classes": 3}
METRICS = ["pointing_game", "deletion", "average_drop", "sparseness"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_config_factory):
    """A trained FC run (with config.yaml) and an untrained negative SCOUTER in a model dir."""
    root = tmp_path_factory.mktemp("suite")
    train(tiny_config_factory(root / "fc", epochs=1))
    negative = seethrough.create_model("scouter", num_classes=3, backbone="test_efficientnet", sign=-1)
    negative.save_pretrained(root / "neg", img_size=32)
    return root


def protocol(**kwargs):
    return load_protocol("quick", explainers=["native", "gradcam"], metrics=METRICS,
                         overrides=["deletion.steps=4"], **kwargs)


def test_evaluate_writes_every_result_file(runs, tmp_path):
    out = tmp_path / "eval"
    summary = seethrough.evaluate([runs / "fc", runs / "neg"], data="synthetic", data_options=SYNTHETIC_OPTS,
                                  protocol=protocol(), out=out, limit=6, batch_size=4, progress=False)
    assert list(summary["models"]) == ["fc", "neg"]
    fc, neg = summary["models"]["fc"], summary["models"]["neg"]
    assert fc["data"]["explained_class"] == "gt" and neg["data"]["explained_class"] == "least"
    assert fc["data"]["ground_truth"] == ["masks"] and fc["data"]["evaluated"] == 6
    for model in (fc, neg):
        assert list(model["explainers"]) == ["native", "gradcam"]
        for metrics in model["explainers"].values():
            assert list(metrics) == METRICS
            assert all(entry["total"] == 6 for entry in metrics.values())
        assert set(model["seconds_per_image"]) >= {"forward", "native", "gradcam", "gradcam/deletion"}
    # the model's own normalization is filled into the pixel-space metrics and recorded
    assert fc["explainers"]["native"]["average_drop"]["protocol"]["mean"] == pytest.approx([0.485, 0.456, 0.406])
    assert summary["protocol"]["metrics"]["deletion"]["steps"] == 4
    pointing = fc["explainers"]["gradcam"]["pointing_game"]
    assert len(pointing["per_class"]) == 3 and 0.0 <= pointing["per_class_mean"] <= 1.0
    assert json.loads((out / "results.json").read_text()) == summary
    with (out / "samples.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 2 * 2 * len(METRICS) * 6
    assert {row["sample_id"] for row in rows} == {str(i) for i in range(6)}
    curves = json.loads((out / "curves.json").read_text())
    assert len(curves["fc"]["native"]["deletion/curve"]) == 5
    per_sample = json.loads((out / "sample_curves.json").read_text())["fc"]["native"]["deletion/curve"]
    assert sorted(per_sample) == [str(i) for i in range(6)] and all(len(c) == 5 for c in per_sample.values())
    finite = [c for c in per_sample.values() if None not in c]
    assert [round(sum(v) / len(finite), 3) for v in zip(*finite)] == pytest.approx(
        [round(v, 3) for v in curves["fc"]["native"]["deletion/curve"]], abs=2e-3)
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") >= 3 and "neg" in html and "pointing_game" in html
    assert (out / "figures" / "curve_deletion_curve.png").exists()
    assert (out / "figures" / "examples_fc.png").exists()


def test_deletion_values_in_the_report_equal_the_function_form(runs, tmp_path):
    """The suite adds bookkeeping only: its per-sample values are the metric function's."""
    from seethrough.data import build_dataset, build_transform
    from seethrough.data.base import collate
    from seethrough.models.loading import load_for_inference

    out = tmp_path / "eval"
    seethrough.evaluate([runs / "fc"], protocol=protocol(), out=out, limit=5, batch_size=2, progress=False)
    loaded = load_for_inference(runs / "fc")
    dataset = build_dataset("synthetic", "val", **SYNTHETIC_OPTS)
    dataset.transform = build_transform(32, train=False, mean=loaded.mean, std=loaded.std)
    batch = collate([dataset[i] for i in range(5)])
    maps = seethrough.explain(loaded.model, batch["image"], "gt", labels=batch["label"], method="gradcam")
    expected = seethrough.metrics.deletion(loaded.model, batch["image"], maps, batch["label"], steps=4)
    with (out / "samples.csv").open() as handle:
        got = [float(r["value"]) for r in csv.DictReader(handle)
               if r["explainer"] == "gradcam" and r["metric"] == "deletion"]
    np.testing.assert_allclose(got, expected.tolist(), rtol=1e-4, atol=1e-6)


def test_metrics_needing_ground_truth_are_skipped_with_a_reason(tmp_path):
    root = tmp_path / "folder"
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for name in ("a", "b"):
            (root / split / name).mkdir(parents=True)
            for i in range(2):
                Image.fromarray(rng.integers(0, 255, (20, 20, 3), dtype=np.uint8)).save(root / split / name / f"{i}.png")
    seethrough.create_model("fc", num_classes=2, backbone="test_efficientnet").save_pretrained(tmp_path / "m", img_size=32)
    summary = seethrough.evaluate([tmp_path / "m"], data=f"folder:{root}", protocol=protocol(), progress=False)
    model = summary["models"]["m"]
    assert model["data"]["ground_truth"] == []
    assert "pointing_game" not in model["explainers"]["native"] and "sparseness" in model["explainers"]["native"]
    assert {"explainer": "native", "metric": "pointing_game",
            "reason": "the dataset has no ground-truth masks or boxes"} in model["skipped"]


def test_a_model_without_a_run_config_needs_data(runs):
    with pytest.raises(ValueError, match="pass --data KIND:PATH"):
        seethrough.evaluate([runs / "neg"], protocol=protocol(), progress=False)


def test_cli_evaluate_and_listing_commands(runs, tmp_path):
    runner = CliRunner()
    result = runner.invoke(app, ["evaluate", str(runs / "fc"), "--protocol", "quick", "--explainers", "native",
                                 "--metrics", "deletion,sparseness", "--set", "deletion.steps=2", "--limit", "3",
                                 "--out", str(tmp_path / "cli"), "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "deletion" in result.output and (tmp_path / "cli" / "report.html").exists()
    bad = runner.invoke(app, ["evaluate", str(runs / "fc"), "--metrics", "delition", "--out", str(tmp_path / "x")])
    assert bad.exit_code == 2 and "delition" in bad.output and "deletion" in bad.output
    assert "castream" in runner.invoke(app, ["protocols"]).output
    assert "scorecam" in runner.invoke(app, ["explainers"]).output


@pytest.mark.slow
def test_torchrun_two_processes_match_one(runs, tmp_path):
    """Sharded under torchrun (CPU, gloo): every sample once, values as in one process."""
    args = [str(runs / "fc"), "--protocol", "quick", "--explainers", "native", "--metrics", "deletion,pointing_game",
            "--set", "deletion.steps=3", "--limit", "7", "--batch-size", "2", "--accelerator", "cpu", "--no-progress"]
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "-m", "seethrough",
                           "evaluate", *args, "--out", str(tmp_path / "ddp")],
                          capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    single = CliRunner().invoke(app, ["evaluate", *args, "--out", str(tmp_path / "one")])
    assert single.exit_code == 0, single.output
    ddp = json.loads((tmp_path / "ddp" / "results.json").read_text())
    one = json.loads((tmp_path / "one" / "results.json").read_text())
    assert ddp["environment"]["world_size"] == 2
    for name in ("deletion", "pointing_game"):
        a, b = ddp["models"]["fc"]["explainers"]["native"][name], one["models"]["fc"]["explainers"]["native"][name]
        assert a["total"] == b["total"] == 7
        assert a["mean"] == pytest.approx(b["mean"], rel=1e-5)


def test_part_metrics_run_on_the_synthetic_data(runs, tmp_path):
    parts = ["single_deletion", "deletion_check", "background_independence", "target_sensitivity"]
    chosen = load_protocol("quick", explainers=["native"], metrics=parts)
    summary = seethrough.evaluate([runs / "neg"], data="synthetic",
                                  data_options={**SYNTHETIC_OPTS, "difficulty": "medium"}, protocol=chosen,
                                  out=tmp_path / "synthetic", limit=4, batch_size=4, progress=False)
    metrics = summary["models"]["neg"]["explainers"]["native"]
    assert list(metrics) == parts
    assert all(metrics[name]["total"] == 4 for name in parts)
    assert 0.0 <= metrics["background_independence"]["mean"] <= 1.0
    assert "parts" in summary["models"]["neg"]["data"]["ground_truth"]
