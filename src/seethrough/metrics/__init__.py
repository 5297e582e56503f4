"""Explanation metrics: every metric in a function form and a stateful form.

Function form — per-sample values for one batch::

    values = seethrough.metrics.insertion(model, images, maps, targets, steps=28)   # B floats
    values = seethrough.metrics.pointing_game(None, images, maps, targets, masks=masks)

Every function takes ``(model, images, maps, targets, *, <ground truth>, **protocol)``: ``maps``
are ``B×H×W`` at the image size, ``targets`` the explained class per image (see
:mod:`seethrough.metrics.inputs` for the shared conventions). Metrics that need no model
accept ``model=None``. Every protocol choice is a keyword with the literature's default.

Stateful form — :class:`Metric` (``update`` / ``compute`` / ``reset``, gathered across ranks).

=========== ===========================================================================
family      metrics
=========== ===========================================================================
localization area_size, precision, pointing_game, iou_at_percentile, relevance_mass,
            relevance_rank
faithfulness insertion, deletion, average_drop, increase_in_confidence, average_gain
robustness  infidelity, max_sensitivity, avg_sensitivity
sanity      randomization_check
complexity  sparseness, entropy
=========== ===========================================================================
"""
from __future__ import annotations

import importlib
from typing import Any, Callable

from .stateful import Metric, MetricSummary

#: Metric name → module of :mod:`seethrough.metrics` that defines it.
METRIC_FAMILIES: dict[str, tuple[str, ...]] = {
    "localization": ("area_size", "precision", "pointing_game", "iou_at_percentile", "relevance_mass",
                     "relevance_rank"),
    "faithfulness": ("insertion", "deletion", "average_drop", "increase_in_confidence", "average_gain"),
    "robustness": ("infidelity", "max_sensitivity", "avg_sensitivity"),
    "sanity": ("randomization_check",),
    "complexity": ("sparseness", "entropy"),
}
_MODULE_OF: dict[str, str] = {name: family for family, names in METRIC_FAMILIES.items() for name in names}
METRIC_NAMES: tuple[str, ...] = tuple(_MODULE_OF)


def get_metric(name: str) -> Callable[..., Any]:
    """The metric function called ``name``."""
    if name not in _MODULE_OF:
        raise ValueError(f"unknown metric {name!r}; valid: {', '.join(METRIC_NAMES)}")
    return getattr(importlib.import_module(f".{_MODULE_OF[name]}", __name__), name)


def __getattr__(name: str) -> Any:  # PEP 562: seethrough.metrics.<name> imports lazily
    if name in _MODULE_OF:
        return get_metric(name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(METRIC_NAMES))


__all__ = ["METRIC_FAMILIES", "METRIC_NAMES", "Metric", "MetricSummary", "get_metric", *METRIC_NAMES]
