"""Per-head views of attention models (INTR): every head of a class query, and its look-alikes.

A model that exposes per-head attention puts it in ``out.extras["attention"]`` with shape
``[L, B, heads, C, h·w]`` (layers, images, heads, class queries, positions). INTR's two views:

- ``gt_query_heads``: the ground-truth class query, one panel per head plus the head average;
- ``sim_query_heads``: the ``k`` queries with the highest logits (the ground truth forced in
  when known) — which parts the true class shares with its look-alikes, head by head.

Both come from the attention of one forward pass (the average is the mean of the heads, not
a second attention call). Maps are upsampled bicubically to the image and min-max normalized
per panel, as INTR's visualisation does (its extra median and Gaussian blurs are left out:
they change what the map says).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..core.calls import eval_mode
from ..core.minmax import minmax
from .render import DEFAULT_CMAP, INPUT_TITLE, _as_numpy, overlay, safe_filename
from .targets import select_classes

#: Key of the per-head attention in ``ModelOutput.extras``.
ATTENTION_KEY = "attention"
#: INTR's overlay opacity and the number of look-alike queries of ``sim_query_heads``.
HEADS_ALPHA = 0.5
DEFAULT_SIMILAR = 5
#: Summary written beside the strips.
HEADS_SUMMARY = "heads.json"
PANEL_INCHES, DPI, FONT = 1.5, 100, 7


def explain_heads(model: nn.Module, images: torch.Tensor, *, labels: torch.Tensor | Sequence[int] | None = None,
                  k: int = DEFAULT_SIMILAR, layer: int = -1) -> dict[str, Any]:
    """Per-head maps of the ground-truth query (when ``labels`` are given) and its look-alikes.

    Returns ``{"classes": B×K, "probs": B×K, "heads": B×K×(heads+1)×H×W in [0, 1] (last panel =
    head average), "layer": the decoder layer index used}``. ``K = k`` queries with the highest
    logits, the ground truth first when given (``k=1`` with labels is INTR's gt_query_heads).
    """
    with torch.no_grad(), eval_mode(model):
        output = model(images)
    attention = getattr(output, "extras", {}).get(ATTENTION_KEY)
    if attention is None or attention.ndim != 5:
        raise ValueError(f"{type(model).__name__} has no per-head attention (extras['{ATTENTION_KEY}'] of shape "
                         "[layers, B, heads, C, h·w]); per-head views need an attention model such as intr")
    layers = attention.shape[0]
    if not -layers <= layer < layers:
        raise ValueError(f"layer {layer} does not exist: the model has {layers} decoder layers (0..{layers - 1} or -1)")
    logits = output.logits.float()
    classes = _queries(logits, labels, k)
    h, w = output.maps.shape[-2:]
    chosen = attention[layer].float()                                           # B×heads×C×hw
    index = classes[:, None, :, None].expand(-1, chosen.shape[1], -1, chosen.shape[-1])
    per_head = torch.gather(chosen, 2, index).transpose(1, 2)                   # B×K×heads×hw
    panels = torch.cat([per_head, per_head.mean(dim=2, keepdim=True)], dim=2)   # + head average
    batch, queries, count = panels.shape[:3]
    maps = F.interpolate(panels.reshape(batch * queries * count, 1, h, w), size=tuple(images.shape[-2:]),
                         mode="bicubic", align_corners=False)
    maps = minmax(maps, (-2, -1)).clamp(0, 1)  # bicubic overshoots
    return {"classes": classes, "probs": torch.softmax(logits, 1).gather(1, classes),
            "heads": maps.reshape(batch, queries, count, *images.shape[-2:]), "layer": layer % layers}


def render_heads(result: dict[str, Any], images_uint8: np.ndarray | torch.Tensor, class_names: Sequence[str] | None,
                 out_dir: str | Path, stems: Sequence[str], *, alpha: float = HEADS_ALPHA,
                 cmap: str = DEFAULT_CMAP) -> list[Path]:
    """One strip per image, ``<stem>_heads.png``: a row per query (head 1..n, then the average),
    plus ``heads.json`` (classes, names, probabilities, layer)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    images = _as_numpy(images_uint8)
    heads = result["heads"].detach().cpu().numpy()
    classes, probs = result["classes"].tolist(), result["probs"].tolist()
    names = list(class_names) if class_names is not None else [str(i) for i in range(max(map(max, classes)) + 1)]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written, records = [], []
    for image, stem, rows, row_classes, row_probs in zip(images, stems, heads, classes, probs):
        count = rows.shape[1]
        figure = Figure(figsize=((count + 1) * PANEL_INCHES, len(rows) * PANEL_INCHES), dpi=DPI)
        FigureCanvasAgg(figure)
        axes = figure.subplots(len(rows), count + 1, squeeze=False)
        for r, (panels, c, p) in enumerate(zip(rows, row_classes, row_probs)):
            axes[r, 0].imshow(image)
            axes[r, 0].set_title(f"{INPUT_TITLE}\n{names[c]} p={p:.2f}", fontsize=FONT)
            for j, heat in enumerate(panels):
                axes[r, j + 1].imshow(overlay(image, heat, alpha=alpha, cmap=cmap))
                axes[r, j + 1].set_title("average" if j == count - 1 else f"head {j + 1}", fontsize=FONT)
        for ax in axes.ravel():
            ax.set_axis_off()
        figure.suptitle(f"decoder layer {result['layer']}", fontsize=FONT + 1)
        figure.tight_layout()
        path = out_dir / f"{safe_filename(stem)}_heads.png"
        figure.savefig(path, format="png")
        written.append(path)
        records.append({"stem": stem, "strip": path.name, "classes": row_classes,
                        "names": [names[c] for c in row_classes], "probs": row_probs})
    summary = out_dir / HEADS_SUMMARY
    summary.write_text(json.dumps({"layer": result["layer"], "alpha": alpha, "cmap": cmap, "images": records},
                                  indent=2, ensure_ascii=False))
    return [*written, summary]


def _queries(logits: torch.Tensor, labels, k: int) -> torch.Tensor:
    """Top-``k`` classes by logit; with labels the ground truth first and the rest by logit."""
    num_classes = logits.shape[1]
    if not 1 <= k <= num_classes:
        raise ValueError(f"k must be between 1 and the class count {num_classes}, got {k}")
    if labels is None:
        return select_classes(logits, "pred", k=k)
    gt = select_classes(logits, "gt", labels=labels)                            # B×1 (range-checked)
    others = logits.scatter(1, gt, float("-inf"))
    return torch.cat([gt, torch.topk(others, k - 1, dim=1).indices], dim=1) if k > 1 else gt
