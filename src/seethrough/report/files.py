"""Write an evaluation's machine-readable and human-readable files.

- ``results.json``: environment, data, the full protocol (every parameter of every metric,
  defaults included) and, per model and explainer, each metric's mean, std, count and NaN
  count, plus timing and accuracy — what a paper's table is built from.
- ``samples.csv``: one row per (model, explainer, metric, sample) — for significance tests.
- ``curves.json`` and ``figures/*.png``: mean insertion/deletion (and other) curves;
  ``sample_curves.json``: every sample's curve (model → explainer → ``metric/detail`` → sample
  id → values), what ``seethrough view`` draws per image.
- ``table.md``: the protocol's comparison table, if it asks for one (:mod:`seethrough.report.table`).
- ``report.html``: self-contained (images embedded), see :mod:`seethrough.report.html`.
"""
from __future__ import annotations

import csv
import datetime
import json
import math
import platform
import sys
from pathlib import Path
from typing import Any, Sequence

import torch

from .figures import curves_figure, examples_figure
from .html import DIRECTIONS, render_html
from .table import comparison_table, table_markdown

RESULTS_NAME = "results.json"
SAMPLES_NAME = "samples.csv"
CURVES_NAME = "curves.json"
SAMPLE_CURVES_NAME = "sample_curves.json"
#: Decimal places kept for per-sample curve points.
CURVE_DIGITS = 4
REPORT_NAME = "report.html"
TABLE_NAME = "table.md"
FIGURES_DIR = "figures"
#: Decimal places kept for per-sample values in the CSV.
CSV_DIGITS = 6


def build_results(model_results: Sequence[Any], protocol: Any, *, device: str, world_size: int,
                  version: str) -> dict[str, Any]:
    """The ``results.json`` dictionary (also returned by :func:`seethrough.evaluate`)."""
    summary = {
        "seethrough_version": version,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "environment": {"python": sys.version.split()[0], "torch": torch.__version__, "platform": platform.platform(),
                        "device": device, "world_size": world_size},
        "protocol": protocol.as_dict(),
        "models": {
            result.label: {
                "source": result.source,
                "data": result.data,
                "accuracy": result.accuracy,
                "seconds_per_image": result.timing,
                "explainers": {
                    explainer: {name: summary.as_dict() for name, summary in summaries.items()}
                    for explainer, summaries in result.summaries.items()
                },
                "skipped": result.skipped,
                "base": getattr(result, "base", "") or result.label,
                "variant": dict(getattr(result, "variant", {}) or {}),
            }
            for result in model_results
        },
    }
    table = comparison_table(summary)
    if table is not None:
        summary["table"] = table
    return summary


def write_report(summary: dict[str, Any], model_results: Sequence[Any], out: Path) -> dict[str, Path]:
    """Write every file into ``out`` and return their paths by kind."""
    out.mkdir(parents=True, exist_ok=True)
    (out / FIGURES_DIR).mkdir(exist_ok=True)
    paths = {"results": out / RESULTS_NAME, "samples": out / SAMPLES_NAME, "curves": out / CURVES_NAME,
             "report": out / REPORT_NAME}
    paths["results"].write_text(json.dumps(summary, indent=2, allow_nan=False, default=_json_default))
    _write_samples(paths["samples"], model_results)
    curves = mean_curves(model_results)
    paths["curves"].write_text(json.dumps(curves, indent=2, allow_nan=False, default=_json_default))
    paths["sample_curves"] = out / SAMPLE_CURVES_NAME
    paths["sample_curves"].write_text(json.dumps(sample_curves(model_results), allow_nan=False))
    figures: dict[str, bytes] = {}
    for metric, per_model in _curves_by_metric(curves).items():
        figures[f"curve_{metric}"] = curves_figure(metric, per_model)
    for result in model_results:
        if result.examples:
            figures[f"examples_{result.label}"] = examples_figure(result.label, result.examples, result.classes)
    for name, png in figures.items():
        (out / FIGURES_DIR / f"{_file_safe(name)}.png").write_bytes(png)
    if "table" in summary:
        paths["table"] = out / TABLE_NAME
        paths["table"].write_text(table_markdown(summary["table"], DIRECTIONS))
    paths["report"].write_text(render_html(summary, figures))
    return paths


def mean_curves(model_results: Sequence[Any]) -> dict[str, dict[str, dict[str, list[float | None]]]]:
    """model → explainer → ``metric/detail`` → mean curve over finite-valued samples."""
    curves: dict[str, dict[str, dict[str, list[float | None]]]] = {}
    for result in model_results:
        for explainer, summaries in result.summaries.items():
            for name, metric_summary in summaries.items():
                for detail, mean in metric_summary.mean_details().items():
                    if mean.ndim == 1 and mean.numel() > 1:
                        curves.setdefault(result.label, {}).setdefault(explainer, {})[f"{name}/{detail}"] = [
                            _finite_or_none(v) for v in mean.tolist()]
    return curves


def sample_curves(model_results: Sequence[Any]) -> dict[str, dict[str, dict[str, dict[str, list[float | None]]]]]:
    """model → explainer → ``metric/detail`` → sample id → that sample's curve (``CURVE_DIGITS``
    decimals, ``None`` for a non-finite point)."""
    curves: dict[str, dict[str, dict[str, dict[str, list[float | None]]]]] = {}
    for result in model_results:
        for explainer, summaries in result.summaries.items():
            for name, metric_summary in summaries.items():
                for detail, values in metric_summary.details.items():
                    if values.ndim != 2 or values.shape[1] < 2 or not values.is_floating_point():
                        continue
                    per_sample = {str(int(sample)): [None if v is None else round(v, CURVE_DIGITS)
                                                     for v in map(_finite_or_none, row.tolist())]
                                  for sample, row in zip(metric_summary.sample_ids.tolist(), values)}
                    curves.setdefault(result.label, {}).setdefault(explainer, {})[f"{name}/{detail}"] = per_sample
    return curves


def _curves_by_metric(curves) -> dict[str, dict[str, list[float]]]:
    """``metric/detail`` → ``"model · explainer"`` → curve."""
    grouped: dict[str, dict[str, list[float]]] = {}
    for model, explainers in curves.items():
        for explainer, entries in explainers.items():
            for key, curve in entries.items():
                grouped.setdefault(key.replace("/", "_"), {})[f"{model} · {explainer}"] = curve
    return grouped


def _write_samples(path: Path, model_results: Sequence[Any]) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["model", "explainer", "metric", "sample_id", "value"])
        for result in model_results:
            for explainer, summaries in result.summaries.items():
                for name, metric_summary in summaries.items():
                    for sample_id, value in zip(metric_summary.sample_ids.tolist(), metric_summary.values.tolist()):
                        text = "nan" if math.isnan(value) else f"{value:.{CSV_DIGITS}g}"
                        writer.writerow([result.label, explainer, name, sample_id, text])


def _finite_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _json_default(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.tolist()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    return str(value)


def _file_safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
