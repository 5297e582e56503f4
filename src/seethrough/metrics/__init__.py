"""Explanation metrics: every metric in a function form and a stateful form.

Function form — per-sample values for one batch::

    values = seethrough.metrics.insertion(model, images, maps, targets, steps=28)   # B floats
    values = seethrough.metrics.pointing_game(None, images, maps, targets, masks=masks)

Every function takes ``(model, images, maps, targets, *, <ground truth>, **protocol)``: ``maps``
are ``B×H×W`` at the image size, ``targets`` the explained class per image (see
:mod:`seethrough.core.inputs` for the shared conventions). Metrics that need no model
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

from typing import Any

from .registry import METRIC_FAMILIES, METRIC_NAMES, MODULE_OF, get_metric
from .stateful import Metric, MetricSummary


def __getattr__(name: str) -> Any:  # PEP 562: seethrough.metrics.<name> imports lazily
    if name in MODULE_OF:
        return get_metric(name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(METRIC_NAMES))


__all__ = ["METRIC_FAMILIES", "METRIC_NAMES", "Metric", "MetricSummary", "get_metric", *METRIC_NAMES]
