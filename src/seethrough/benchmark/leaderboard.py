"""The benchmark's leaderboard: models × explainers × metric families, ranked, with intervals.

Families (FunnyBirds' dimensions, Hesse et al. ICCV 2023, plus the classic ones):

- completeness = mean of the controlled synthetic data check, the preservation and deletion
  checks and distractibility;
- correctness = single deletion; contrastivity = target sensitivity;
- faithfulness = insertion and 1 − deletion, both with the "absent" substrate;
- localization = pointing game and relevance mass.

A family's per-image value is the mean of its metrics on that image; its interval is the
bootstrap interval of the mean over images (:mod:`.validity`). Rows are ranked by the mean of
the family means.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Mapping

import numpy as np

from .validity import LOWER_IS_BETTER, Interval, bootstrap_interval

#: Family → its metrics (the benchmark protocol's).
FAMILIES: dict[str, tuple[str, ...]] = {
    "completeness": ("controlled_synthetic_data_check", "preservation_check", "deletion_check", "distractibility"),
    "correctness": ("single_deletion",),
    "contrastivity": ("target_sensitivity",),
    "faithfulness": ("insertion", "deletion"),
    "localization": ("pointing_game", "relevance_mass"),
}
#: Decimal places printed in the leaderboard.
DECIMALS = 3


def family_values(samples: Mapping[tuple[str, str, str], Mapping[str, float]], model: str, explainer: str,
                  family: str) -> list[float]:
    """Per image, the mean of the family's metrics (lower-is-better ones as 1 − value)."""
    per_metric = [samples.get((model, explainer, metric), {}) for metric in FAMILIES[family]]
    ids = sorted(set().union(*[set(values) for values in per_metric]))
    out = []
    for sample in ids:
        values = []
        for metric, table in zip(FAMILIES[family], per_metric):
            value = table.get(sample, math.nan)
            if math.isfinite(value):
                values.append(1 - value if metric in LOWER_IS_BETTER else value)
        out.append(float(np.mean(values)) if values else math.nan)
    return out


def leaderboard(samples: Mapping[tuple[str, str, str], Mapping[str, float]]) -> list[dict]:
    """Rows ``{"model", "explainer", "families": {family: Interval}, "score"}``, best first."""
    rows = []
    for model, explainer in sorted({(m, e) for m, e, _ in samples}):
        families = {family: bootstrap_interval(family_values(samples, model, explainer, family))
                    for family in FAMILIES}
        means = [interval.mean for interval in families.values() if math.isfinite(interval.mean)]
        rows.append({"model": model, "explainer": explainer, "families": families,
                     "score": float(np.mean(means)) if means else math.nan})
    return sorted(rows, key=lambda row: -row["score"] if math.isfinite(row["score"]) else math.inf)


def leaderboard_markdown(rows: list[dict], validity: Mapping[str, dict], accuracy: Mapping[str, float],
                         prototypes: Mapping[str, dict] | None = None) -> str:
    """``leaderboard.md``: the ranked table, the prototype check (when a prototype model is in),
    then the "can this metric tell?" table."""
    header = ["rank", "model", "explainer", *FAMILIES, "mean"]
    lines = ["# seethrough benchmark", "", "Mean over images [95 % bootstrap interval]; higher is better "
             "(deletion enters faithfulness as 1 − deletion).", "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for rank, row in enumerate(rows, 1):
        cells = [_cell(row["families"][family]) for family in FAMILIES]
        lines.append(f"| {rank} | {row['model']} | {row['explainer']} | " + " | ".join(cells)
                     + f" | {_number(row['score'])} |")
    lines += ["", "Model accuracy (top-1 on the evaluated images): "
              + ", ".join(f"{model} {_number(value)}" for model, value in accuracy.items()), "",
              *_prototype_lines(prototypes or {}),
              "## Can this metric tell?", "",
              "A metric can tell when, for every model, the model's own maps and Grad-CAM have 95 % intervals "
              "strictly better than, and not overlapping, those of every sanity baseline (random, center, edges).",
              "", "| metric | can tell | separated pairs | failures |", "|---|---|---|---|"]
    for metric, entry in validity.items():
        failures = ", ".join(entry["failures"][:4]) + (" …" if len(entry["failures"]) > 4 else "")
        lines.append(f"| {metric} | {'yes' if entry['tells'] else '**no**'} | {entry['separated']}/{entry['pairs']} "
                     f"| {failures or '—'} |")
    return "\n".join(lines) + "\n"


def _prototype_lines(prototypes: Mapping[str, dict]) -> list[str]:
    if not prototypes:
        return []
    lines = ["## Prototypes on evidence", "",
             "Share of a prototype model's pushed prototypes whose patch (its latent cell's footprint) lies on an "
             "evidence part, and the share boxes of the same size placed at random in the same images would get.",
             "", "| model | prototypes | on evidence | chance |", "|---|---|---|---|"]
    for model, check in prototypes.items():
        lines.append(f"| {model} | {check['prototypes']} | {_cell(check['interval'])} | {_number(check['chance'])} |")
    return [*lines, ""]


def radar_figure(rows: list[dict], model: str, path: str | Path) -> Path:
    """One radar plot per model: an axis per family, a polygon per explainer (family means)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    names = list(FAMILIES)
    angles = np.linspace(0, 2 * np.pi, len(names), endpoint=False).tolist()
    figure = plt.figure(figsize=(4.5, 4.5))
    axis = figure.add_subplot(polar=True)
    for row in rows:
        if row["model"] != model:
            continue
        values = [row["families"][name].mean for name in names]
        values = [v if math.isfinite(v) else 0.0 for v in values]
        axis.plot(angles + angles[:1], values + values[:1], label=row["explainer"])
        axis.fill(angles + angles[:1], values + values[:1], alpha=0.08)
    axis.set_xticks(angles)
    axis.set_xticklabels(names, fontsize=8)
    axis.set_ylim(0, 1)
    axis.set_title(model)
    axis.legend(loc="upper right", bbox_to_anchor=(1.35, 1.1), fontsize=7)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(figure)
    return path


def _cell(interval: Interval) -> str:
    if interval.count == 0:
        return "—"
    return f"{_number(interval.mean)} [{_number(interval.low)}, {_number(interval.high)}]"


def _number(value: float) -> str:
    return f"{value:.{DECIMALS}f}" if math.isfinite(value) else "—"
