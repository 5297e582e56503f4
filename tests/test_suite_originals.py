"""``seethrough evaluate`` with the originals' options: --metrics all, the next / class-map
target policies, area size at the map's resolution, scorecam-original with the model's
normalization."""
from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

import seethrough
from seethrough.cli import app
from seethrough.metrics import METRIC_NAMES
from seethrough.protocol import load_protocol

SYNTHETIC = {"num_samples": 8, "img_size": 32, "num_classes": 3}
DATA_OPTS = [f"--data-opt={key}={value}" for key, value in SYNTHETIC.items()]


@pytest.fixture(scope="module")
def negative(tmp_path_factory):
    root = tmp_path_factory.mktemp("originals")
    model = seethrough.create_model("scouter", num_classes=3, backbone="test_efficientnet", sign=-1)
    model.save_pretrained(root / "neg", img_size=32)
    return root / "neg"


def test_cli_metrics_all_runs_every_registered_metric(negative, tmp_path):
    cheap = ["infidelity.num_perturbations=2", "max_sensitivity.num_samples=2", "avg_sensitivity.num_samples=2",
             "insertion.steps=2", "deletion.steps=2"]
    args = ["evaluate", str(negative), "--data", "synthetic", *DATA_OPTS, "--protocol", "quick",
            "--explainers", "native", "--metrics", "all", "--limit", "2", "--no-progress",
            "--out", str(tmp_path / "eval")]
    for item in cheap:
        args += ["--set", item]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "eval" / "results.json").read_text())
    assert list(summary["protocol"]["metrics"]) == list(METRIC_NAMES)
    native = summary["models"]["neg"]["explainers"]["native"]
    assert {"infidelity", "randomization_check", "entropy"} <= set(native)


def test_negative_targets_next_and_class_map_file(negative, tmp_path, monkeypatch):
    import seethrough.suite as suite

    mapping = tmp_path / "lsc_label_id.json"
    mapping.write_text('{"0": 2, "1": 0, "2": 0}')
    explained, labels = [], []
    real_explain, real_collate = suite.explain, suite.collate
    monkeypatch.setattr(suite, "explain", lambda model, images, targets, **kw: (
        explained.extend(targets.tolist()), real_explain(model, images, targets, **kw))[1])
    monkeypatch.setattr(suite, "collate", lambda items: (
        lambda batch: (labels.extend(batch["label"].tolist()), batch)[1])(real_collate(items)))
    expected = {"next": lambda label: (label + 1) % 3, str(mapping): lambda label: {0: 2, 1: 0, 2: 0}[label]}
    for policy, rule in expected.items():
        explained.clear(), labels.clear()
        protocol = load_protocol("quick", explainers=["native"], metrics=["sparseness"], negative_targets=policy)
        summary = seethrough.evaluate([negative], data="synthetic", data_options=SYNTHETIC, protocol=protocol,
                                      limit=4, batch_size=2, progress=False)
        assert summary["models"]["neg"]["data"]["explained_class"] == policy
        assert summary["protocol"]["negative_targets"] == policy
        assert len(labels) == 4 and explained == [rule(label) for label in labels]
    result = CliRunner().invoke(app, ["evaluate", str(negative), "--data", "synthetic", *DATA_OPTS,
                                      "--negative-targets", str(tmp_path / "none.json"), "--no-progress"])
    assert result.exit_code != 0 and "class-map file" in result.output


def test_scouter_reproduction_area_size_at_map_resolution_and_scorecam_original(negative, tmp_path):
    protocol = load_protocol("scouter-reproduction", metrics=["area_size", "deletion", "infidelity"],
                             overrides=["deletion.steps=2", "infidelity.num_perturbations=2"])
    summary = seethrough.evaluate([negative], data="synthetic", data_options=SYNTHETIC, protocol=protocol, limit=2,
                                  batch_size=2, progress=False)
    area = summary["models"]["neg"]["explainers"]["native"]["area_size"]
    assert area["count"] == 2 and area["protocol"]["resolution"] == "map"
    infid = summary["models"]["neg"]["explainers"]["native"]["infidelity"]["protocol"]
    assert infid["perturbation"] == "yeh" and infid["norm_mean"] == pytest.approx([0.485, 0.456, 0.406])
    import torch

    from seethrough.models.loading import load_for_inference

    grid = load_for_inference(negative).model.eval()(torch.zeros(1, 3, 32, 32)).maps.shape[-2:]
    levels = area["mean"] * 255 * grid.numel() * 2          # the sum of two uint8 maps: an integer
    assert levels == pytest.approx(round(levels), abs=1e-3)
    castream = load_protocol("quick", explainers=["scorecam-original"], metrics=["average_drop"])
    summary = seethrough.evaluate([negative], data="synthetic", data_options=SYNTHETIC, protocol=castream, limit=2,
                                  batch_size=2, progress=False)
    assert summary["models"]["neg"]["explainers"]["scorecam-original"]["average_drop"]["count"] == 2
    assert summary["protocol"]["explainers"]["scorecam-original"] == {}    # mean/std come from the model
