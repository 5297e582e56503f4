"""What ``seethrough view PATH...`` was given, and what each kind of folder contributes.

- a **run** (``RUN/best/``), a **model directory** (``config.json`` + ``model.safetensors``) or
  a ``last.ckpt``: one model, run on its own validation data;
- the **demo folder** (``seethrough demo``'s output: one run per demo model): every model;
- an **evaluate output** (``results.json``, ``samples.csv``, ``sample_curves.json``): its models
  (the sources it recorded) on exactly the images it scored, its explainers, every per-sample
  metric value and curve;
- a **benchmark output** (an evaluate output with a ``"benchmark"`` entry): the same, plus the
  leaderboard, the "can this metric tell?" verdicts, the radar plots and the prototype check.
"""
from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..benchmark.validity import LOWER_IS_BETTER
from ..models.loading import RUN_BEST_DIR
from ..report.files import RESULTS_NAME, SAMPLE_CURVES_NAME, SAMPLES_NAME

KINDS: tuple[str, ...] = ("run", "demo", "evaluate", "benchmark")


@dataclass
class Source:
    """One PATH: its kind, the models it names (label → run or model directory) and, for
    evaluate/benchmark outputs, the evaluation it holds."""

    path: Path
    kind: str
    models: dict[str, str] = field(default_factory=dict)
    results: dict[str, Any] | None = None


def is_model_dir(path: Path) -> bool:
    return (path / RUN_BEST_DIR).is_dir() or (path / "config.json").is_file() or path.suffix == ".ckpt"


def inspect(path: str | Path) -> Source:
    """Recognize ``path`` (see the module docstring); a clear error when it is none of them."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: give a run, a model dir, the demo folder, or the --out "
                                "folder of seethrough evaluate / benchmark")
    if (path / RESULTS_NAME).is_file():
        results = json.loads((path / RESULTS_NAME).read_text())
        models = {label: str(entry["source"]) for label, entry in results.get("models", {}).items()
                  if not entry.get("variant")}
        kind = "benchmark" if "benchmark" in results else "evaluate"
        return Source(path, kind, models, results)
    if is_model_dir(path):
        label = path.parent.name if path.name in (RUN_BEST_DIR, "last.ckpt") else path.name
        return Source(path, "run", {label: str(path)})
    runs = {child.name: str(child) for child in sorted(path.iterdir()) if child.is_dir() and is_model_dir(child)}
    if runs:
        return Source(path, "demo", runs)
    raise ValueError(f"{path} is not a run, a model dir, the demo folder, or an evaluate/benchmark output "
                     f"(no {RESULTS_NAME}, no {RUN_BEST_DIR}/, no config.json, no run inside)")


def evaluated_ids(source: Source) -> list[int]:
    """The sample ids an evaluate/benchmark output scored (numeric ids, sorted)."""
    rows = _samples(source.path)
    return sorted({int(row["sample_id"]) for row in rows if row["sample_id"].isdigit()})


def metric_values(source: Source) -> dict[str, dict[str, dict[str, dict[str, float | None]]]]:
    """sample id → model → explainer → metric → value."""
    values: dict[str, dict[str, dict[str, dict[str, float | None]]]] = {}
    for row in _samples(source.path):
        value = float(row["value"]) if row["value"] not in ("", "nan", "NaN") else None
        values.setdefault(row["sample_id"], {}).setdefault(row["model"], {}).setdefault(
            row["explainer"], {})[row["metric"]] = value
    return values


def metric_names(source: Source) -> list[str]:
    return list(dict.fromkeys(row["metric"] for row in _samples(source.path)))


def sample_curves(source: Source) -> dict[str, Any]:
    """model → explainer → ``metric/detail`` → sample id → curve (empty for older outputs)."""
    path = source.path / SAMPLE_CURVES_NAME
    return json.loads(path.read_text()) if path.is_file() else {}


def evaluated_data(source: Source) -> tuple[str, dict[str, Any], str]:
    """(spec, options, split) of the first model of an evaluate/benchmark output."""
    assert source.results is not None
    first = next(iter(source.results["models"].values()))["data"]
    return str(first["spec"]), dict(first.get("options") or {}), str(first.get("split", "val"))


def protocol_explainers(source: Source) -> list[str]:
    assert source.results is not None
    return list(source.results.get("protocol", {}).get("explainers", {}) or ["native"])


def lower_is_better(metrics: list[str]) -> list[str]:
    return [m for m in metrics if m in LOWER_IS_BETTER]


def _samples(path: Path) -> list[dict[str, str]]:
    file = path / SAMPLES_NAME
    if not file.is_file():
        return []
    with file.open() as handle:
        return list(csv.DictReader(handle))


__all__ = ["KINDS", "Source", "evaluated_data", "evaluated_ids", "inspect", "metric_names", "metric_values",
           "sample_curves"]
