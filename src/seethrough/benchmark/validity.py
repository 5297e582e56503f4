"""Can a metric tell a faithful explanation from a useless one? (MetaQuantus' question:
Hedström et al., "The meta-evaluation problem in explainable AI", TMLR 2023.)

For every metric, every model and every *real* explainer (the model's own maps, Grad-CAM), the
95 % percentile-bootstrap interval of the mean over images is compared with the intervals of
the sanity baselines (``random``, ``center``, ``edges``, :mod:`seethrough.explanations.baselines`).
A pair is *separated* when the two intervals do not overlap and the real explainer is on the
better side. A metric **can tell** when every (model, real explainer) pair is separated from
every baseline. Metrics of the model alone (background independence) take no part.
"""
from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np

#: Bootstrap resamples of the mean, confidence level, and the seed of the resampling.
BOOTSTRAP_RESAMPLES, CONFIDENCE, BOOTSTRAP_SEED = 1000, 0.95, 0
#: Metrics for which lower is better (everything else: higher is better).
LOWER_IS_BETTER: frozenset[str] = frozenset({"deletion", "average_drop", "infidelity", "max_sensitivity",
                                             "avg_sensitivity", "entropy"})
#: Metrics that score the model, not the explanation (the same for every explainer).
MODEL_PROPERTIES: frozenset[str] = frozenset({"background_independence"})
#: Explainers whose maps must beat the baselines, and the baselines.
REAL_EXPLAINERS: tuple[str, ...] = ("native", "gradcam")
BASELINES: tuple[str, ...] = ("random", "center", "edges")


@dataclass(frozen=True)
class Interval:
    """Mean over finite samples and its bootstrap interval ``[low, high]`` (NaN when empty)."""

    mean: float
    low: float
    high: float
    count: int

    def to_dict(self) -> dict[str, float | int | None]:
        return {"mean": _finite(self.mean), "low": _finite(self.low), "high": _finite(self.high),
                "count": self.count}


def bootstrap_interval(values: Iterable[float], *, resamples: int = BOOTSTRAP_RESAMPLES,
                       confidence: float = CONFIDENCE, seed: int = BOOTSTRAP_SEED) -> Interval:
    """Percentile bootstrap of the mean of the finite ``values`` (Efron & Tibshirani 1993, §13.3)."""
    x = np.asarray([v for v in values if math.isfinite(v)], dtype=np.float64)
    if x.size == 0:
        return Interval(math.nan, math.nan, math.nan, 0)
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, x.size, size=(resamples, x.size))].mean(axis=1)
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return Interval(float(x.mean()), float(low), float(high), int(x.size))


def read_samples(path: str | Path) -> dict[tuple[str, str, str], dict[str, float]]:
    """``samples.csv`` of ``seethrough evaluate`` → (model, explainer, metric) → {sample id: value}."""
    table: dict[tuple[str, str, str], dict[str, float]] = {}
    with Path(path).open(newline="") as handle:
        for row in csv.DictReader(handle):
            value = float(row["value"]) if row["value"] not in ("", "nan", "NaN") else math.nan
            table.setdefault((row["model"], row["explainer"], row["metric"]), {})[row["sample_id"]] = value
    return table


def separated(real: Interval, baseline: Interval, metric: str) -> bool:
    """Whether ``real``'s interval lies strictly on the better side of ``baseline``'s."""
    if real.count == 0 or baseline.count == 0:
        return False
    if metric in LOWER_IS_BETTER:
        return real.high < baseline.low
    return real.low > baseline.high


def can_tell(intervals: Mapping[tuple[str, str, str], Interval], *, real: Iterable[str] = REAL_EXPLAINERS,
             baselines: Iterable[str] = BASELINES) -> dict[str, dict]:
    """metric → ``{"tells": bool, "separated": k, "pairs": n, "failures": [...]}``."""
    real, baselines = tuple(real), tuple(baselines)
    out: dict[str, dict] = {}
    metrics = sorted({metric for _, _, metric in intervals} - MODEL_PROPERTIES)
    models = sorted({model for model, _, _ in intervals})
    for metric in metrics:
        pairs, failures = 0, []
        for model in models:
            for explainer in real:
                mine = intervals.get((model, explainer, metric))
                if mine is None:
                    continue
                for baseline in baselines:
                    theirs = intervals.get((model, baseline, metric))
                    if theirs is None:
                        continue
                    pairs += 1
                    if not separated(mine, theirs, metric):
                        failures.append(f"{model}/{explainer} vs {baseline}")
        out[metric] = {"tells": pairs > 0 and not failures, "separated": pairs - len(failures), "pairs": pairs,
                       "failures": failures, "lower_is_better": metric in LOWER_IS_BETTER}
    return out


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None
