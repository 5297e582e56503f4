"""Which metric lives where: names by family, and the lookup of a metric function by name.

The metric modules are imported on first use (``importlib``), so ``import seethrough.metrics``
stays light and a metric module never needs this one.
"""
from __future__ import annotations

import importlib
from typing import Any, Callable

#: Metric family (a module of :mod:`seethrough.metrics`) → the metric functions it defines.
METRIC_FAMILIES: dict[str, tuple[str, ...]] = {
    "localization": ("area_size", "precision", "pointing_game", "iou_at_percentile", "relevance_mass",
                     "relevance_rank"),
    "faithfulness": ("insertion", "deletion", "average_drop", "increase_in_confidence", "average_gain"),
    "robustness": ("infidelity", "max_sensitivity", "avg_sensitivity"),
    "sanity": ("randomization_check",),
    "complexity": ("sparseness", "entropy"),
    "parts": ("controlled_synthetic_data_check", "preservation_check", "deletion_check", "distractibility",
              "single_deletion", "target_sensitivity", "background_independence"),
}
#: Metric name → the module (family) that defines it.
MODULE_OF: dict[str, str] = {name: family for family, names in METRIC_FAMILIES.items() for name in names}
#: Every metric name, family by family.
METRIC_NAMES: tuple[str, ...] = tuple(MODULE_OF)

_PACKAGE = __name__.rpartition(".")[0]


def get_metric(name: str) -> Callable[..., Any]:
    """The metric function called ``name``."""
    if name not in MODULE_OF:
        raise ValueError(f"unknown metric {name!r}; valid: {', '.join(METRIC_NAMES)}")
    return getattr(importlib.import_module(f"{_PACKAGE}.{MODULE_OF[name]}"), name)
