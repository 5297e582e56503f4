"""Figures of an evaluation, returned as PNG bytes (matplotlib, Agg backend)."""
from __future__ import annotations

import io
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from ..explanations.render import overlay

#: Figure resolution and panel sizes (inches).
DPI = 110
CURVE_SIZE = (5.0, 3.4)
PANEL_INCHES = 1.6
#: The x axis of a step curve: fraction of pixels inserted or deleted.
CURVE_XLABEL = {"insertion": "fraction of pixels inserted", "deletion": "fraction of pixels deleted"}


def curves_figure(key: str, curves: Mapping[str, Sequence[float | None]]) -> bytes:
    """Mean curves of one metric (``key`` like ``insertion_curve``), one line per model · explainer."""
    import matplotlib
    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    metric = key.split("_curve")[0]
    fig, ax = plt.subplots(figsize=CURVE_SIZE, dpi=DPI)
    for label, curve in curves.items():
        values = np.array([np.nan if v is None else v for v in curve], dtype=float)
        ax.plot(np.linspace(0.0, 1.0, len(values)), values, label=label, linewidth=1.4)
    ax.set_xlabel(CURVE_XLABEL.get(metric, "step (fraction)"))
    ax.set_ylabel("score of the explained class")
    ax.set_title(metric)
    ax.grid(alpha=0.3)
    ax.legend(fontsize="x-small")
    return _png(fig)


def examples_figure(label: str, examples: dict[str, dict[str, Any]], classes: Sequence[str]) -> bytes:
    """Rows: the first samples; columns: the image, then each explainer's map over it."""
    import matplotlib
    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    explainers = list(examples)
    first = examples[explainers[0]]
    images = np.concatenate(first["images"])
    rows, cols = images.shape[0], 1 + len(explainers)
    fig, axes = plt.subplots(rows, cols, figsize=(PANEL_INCHES * cols, PANEL_INCHES * rows), dpi=DPI, squeeze=False)
    for row in range(rows):
        target = first["targets"][row]
        axes[row, 0].imshow(images[row])
        axes[row, 0].set_title(f"#{first['ids'][row]} true {_name(classes, first['labels'][row])}", fontsize="x-small")
        for col, explainer in enumerate(explainers, start=1):
            heat = _unit(torch.cat(examples[explainer]["maps"])[row])
            axes[row, col].imshow(overlay(images[row], heat))
            title = explainer if row == 0 else ""
            axes[row, col].set_title(f"{title}\n{_name(classes, target)} p={first['probs'][row]:.2f}".strip(),
                                     fontsize="x-small")
    for ax in axes.ravel():
        ax.set_axis_off()
    fig.suptitle(label, fontsize="small")
    fig.tight_layout()
    return _png(fig)


def _unit(heat: torch.Tensor) -> np.ndarray:
    """Min-max to [0, 1] for display only (maps evaluated with normalize="none" are raw)."""
    heat = torch.nan_to_num(heat.float())
    span = heat.max() - heat.min()
    return ((heat - heat.min()) / span if span > 0 else torch.zeros_like(heat)).numpy()


def _name(classes: Sequence[str], index: int) -> str:
    return classes[index] if 0 <= index < len(classes) else str(index)


def _png(fig) -> bytes:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()
