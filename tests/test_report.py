"""The report files: NaN values are counted and shown, never averaged; JSON stays strict."""
from __future__ import annotations

import json
import math

import pytest
import torch

from seethrough.metrics.stateful import MetricSummary
from seethrough.protocol import load_protocol
from seethrough.report import build_results, write_report
from seethrough.suite import ModelResult


def fake_result() -> ModelResult:
    values = torch.tensor([0.5, float("nan"), 0.7])
    summary = MetricSummary("deletion", 0.6, math.sqrt(0.02), 2, 1, {"steps": 2}, torch.tensor([0, 1, 2]), values,
                            {"curve": torch.tensor([[1.0, 0.5, 0.0], [0.0, 0.0, 0.0], [1.0, 0.9, 0.2]])})
    return ModelResult(label="toy", source="runs/toy", data={"spec": "synthetic", "split": "val", "evaluated": 3,
                                                           "bad_images": 1, "ground_truth": []},
                       accuracy={"top1": 1.0, "count": 3}, summaries={"native": {"deletion": summary}},
                       timing={"forward": 0.01, "native": 0.01},
                       skipped=[{"explainer": "native", "metric": "precision", "reason": "no ground truth"}])


def test_nan_samples_are_counted_in_every_file(tmp_path):
    result = fake_result()
    summary = build_results([result], load_protocol("quick"), device="cpu", world_size=1, version="0")
    paths = write_report(summary, [result], tmp_path)
    entry = json.loads(paths["results"].read_text())["models"]["toy"]["explainers"]["native"]["deletion"]
    assert entry["count"] == 2 and entry["nan_count"] == 1 and entry["total"] == 3
    assert "nan" in paths["samples"].read_text().splitlines()[2]
    curve = json.loads(paths["curves"].read_text())["toy"]["native"]["deletion/curve"]
    assert curve == pytest.approx([1.0, 0.7, 0.1])  # the NaN sample's curve is left out of the mean
    html = paths["report"].read_text()
    assert "NaN 1" in html and "1 unreadable skipped" in html and "precision for native: no ground truth" in html
