"""Native explanations: the maps a model computes in its own forward pass, made viewable.

:func:`explain_batch` runs the model once and returns, for the chosen classes, their
probabilities and their maps normalized and resized to the image — the order of SCOUTER's
``test.py`` (normalize over all classes at feature resolution, then resize bilinearly).
:func:`render_batch` turns that into PNGs plus an ``explanations.json`` beside them.
"""
from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from ..core.calls import eval_mode
from .api import explain
from .render import (
    DEFAULT_ALPHA,
    DEFAULT_CMAP,
    _as_numpy,
    safe_filename,
    save_explanation_grid,
    save_overlay,
)
from .targets import select_classes

#: Machine-readable summary written by :func:`render_batch` beside the pictures.
SUMMARY_FILENAME = "explanations.json"
#: Former ``normalization=`` names of :func:`explain_batch` → ``normalize`` (one vocabulary now).
LEGACY_NORMALIZATIONS: dict[str, str] = {"per-class": "minmax"}
#: Suffix of the per-image grid PNG (``<stem>_explanation.png``).
GRID_SUFFIX = "explanation"
#: Digits of the probabilities shown in panel titles.
TITLE_PROB_DIGITS = 3
#: Explanation direction: +1 shows evidence for a class, -1 evidence against it
#: (SCOUTER's ``loss_status``; a negative SCOUTER's map of class c answers "why not c").
SIGNS: tuple[int, ...] = (1, -1)
_SIGN_LABELS = {1: "for", -1: "against"}


def explain_batch(
    model: nn.Module,
    images: torch.Tensor,
    *,
    policy: str | None = "pred",
    k: int = 3,
    labels: torch.Tensor | Sequence[int] | None = None,
    indices: Sequence[int] | None = None,
    normalize: str = "joint",
    sign: int | None = None,
    method: str = "native",
    method_options: dict[str, Any] | None = None,
    normalization: str | None = None,
) -> dict[str, Any]:
    """Explain a batch for pictures: choose classes from one forward pass, then
    :func:`~seethrough.explain` them (native maps reuse that forward pass).

    The model runs in eval mode under ``torch.no_grad()``; every submodule's training flag is
    restored afterwards (so stages kept in eval mode on purpose stay so).

    Args:
        model: a seethrough model (forward returns :class:`~seethrough.ModelOutput`).
        images: ``B×C×H×W`` normalized images.
        policy, k, labels, indices: which classes to explain, see
            :func:`~seethrough.explanations.targets.select_classes` (``indices`` with
            ``policy=None``: the same explicit classes for every image).
        normalize: as :func:`~seethrough.explain`: ``"joint"`` (official SCOUTER: min-max over
            all classes of the image; native only), ``"minmax"`` (per map) or ``"none"``. A
            post-hoc method with ``"joint"`` gets ``"minmax"`` (only native maps have every
            class). Maps with NaN or Inf are refused (a picture of them would lie).
        sign: +1 if the maps show evidence for their class, -1 if against it (negative
            SCOUTER). ``None`` takes ``model.config["sign"]`` when present, else +1. It does
            not change the maps; it is recorded and labels the rendered panels.
        method: ``"native"`` or a post-hoc method (``"gradcam"``, ``"scorecam"``, ``"rise"``, ...).
        method_options: options of the post-hoc explainer (e.g. ``target_layer``).
        normalization: the former name of ``normalize`` (``"per-class"`` = ``"minmax"``); deprecated.

    Returns:
        ``{"classes": B×K long, "probs": B×K softmax probabilities of those classes,
        "maps": B×K×H×W, "logits": B×C, "method", "policy", "normalize", "sign"}`` — tensors on
        the device of ``images``.
    """
    if normalization is not None:
        warnings.warn("explain_batch(normalization=...) is now normalize= (per-class is called minmax)",
                      DeprecationWarning, stacklevel=2)
        normalize = LEGACY_NORMALIZATIONS.get(normalization, normalization)
    if indices is not None and policy == "pred":
        policy = None  # explicit classes replace the default policy
    sign = _resolve_sign(model, sign)
    if method.lower() != "native" and normalize == "joint":
        normalize = "minmax"
    with torch.no_grad(), eval_mode(model):
        output = model(images)
        logits = output.logits.float()
        classes = select_classes(logits, policy, k=k, labels=labels, indices=indices)
        maps = explain(model, images, classes, method=method, normalize=normalize, nonfinite="raise",
                       output=output if method.lower() == "native" else None, **(method_options or {}))
    probs = torch.softmax(logits, dim=1).gather(1, classes)
    return {
        "classes": classes,
        "probs": probs,
        "maps": maps,
        "method": method,
        "logits": logits,
        "policy": policy if policy is not None else "explicit",
        "normalize": normalize,
        "sign": sign,
    }


def render_batch(
    result: dict[str, Any],
    images_uint8: np.ndarray | torch.Tensor,
    class_names: Sequence[str] | None,
    out_dir: str | Path,
    stems: Sequence[str],
    *,
    alpha: float = DEFAULT_ALPHA,
    cmap: str = DEFAULT_CMAP,
) -> list[Path]:
    """Save the pictures of an :func:`explain_batch` result and a JSON summary.

    Per image: ``<stem>_explanation.png`` (input + one titled overlay per selected class)
    and ``<stem>_<class name>.png`` (bare overlay at image resolution). Then
    ``explanations.json`` in ``out_dir`` with, per image, the files, class indices, names
    and probabilities, plus the protocol (policy, normalize, sign, alpha, cmap).
    Stems and class names are made file-name safe.

    Args:
        result: output of :func:`explain_batch` (maps normalized to ``[0, 1]``).
        images_uint8: ``B×H×W×3`` uint8, e.g. from :func:`~seethrough.explanations.render.denormalize`.
        class_names: one name per class; ``None`` uses the class indices.
        out_dir: folder to write into (created).
        stems: one file-name stem per image.

    Returns:
        every file written: the PNGs in image order, then ``explanations.json``.
    """
    classes = result["classes"].tolist()
    probs = result["probs"].tolist()
    heats = result["maps"].detach().cpu().numpy()
    images = _as_numpy(images_uint8)
    if len(stems) != len(classes) or images.shape[0] != len(classes):
        raise ValueError(
            f"got {images.shape[0]} images and {len(stems)} stems for {len(classes)} explained images"
        )
    if len(set(map(safe_filename, stems))) != len(stems):
        raise ValueError("stems must be distinct (after making them file-name safe)")
    names_of = _namer(class_names)
    class_labels = [[names_of(c) for c in row] for row in classes]  # validates before writing
    sign = result.get("sign", 1)
    out_dir = Path(out_dir)
    written: list[Path] = []
    records = []
    for image, stem, image_classes, names, image_probs, image_heats in zip(
        images, stems, classes, class_labels, probs, heats
    ):
        stem = safe_filename(stem)
        titles = [_title(name, p, sign) for name, p in zip(names, image_probs)]
        grid = save_explanation_grid(
            out_dir / f"{stem}_{GRID_SUFFIX}.png", image, image_heats, titles, alpha=alpha, cmap=cmap
        )
        overlays = [
            save_overlay(out_dir / f"{stem}_{part}.png", image, heat, alpha=alpha, cmap=cmap)
            for part, heat in zip(_file_parts(names, image_classes), image_heats)
        ]
        written += [grid, *overlays]
        records.append({
            "stem": stem,
            "grid": grid.name,
            "overlays": [p.name for p in overlays],
            "classes": image_classes,
            "names": names,
            "probs": image_probs,
        })
    summary = {
        "policy": result.get("policy"),
        "method": result.get("method", "native"),
        "normalize": result.get("normalize"),
        "sign": sign,
        "alpha": alpha,
        "cmap": cmap,
        "images": records,
    }
    summary_path = out_dir / SUMMARY_FILENAME
    summary_path.write_text(json.dumps(summary, indent=2, ensure_ascii=False), encoding="utf-8")
    return [*written, summary_path]


def _resolve_sign(model: nn.Module, sign: int | None) -> int:
    if sign is None:
        sign = getattr(model, "config", {}).get("sign", 1)
    if sign not in SIGNS:
        raise ValueError(f"sign must be +1 (evidence for) or -1 (evidence against), got {sign!r}")
    return int(sign)


def _namer(class_names: Sequence[str] | None):
    """``index -> display name``, with a clear error for an index without a name."""
    if class_names is None:
        return str

    def name_of(index: int) -> str:
        if not 0 <= index < len(class_names):
            raise ValueError(f"class {index} has no name: class_names has {len(class_names)} entries")
        return str(class_names[index])

    return name_of


def _title(name: str, prob: float, sign: int) -> str:
    direction = "" if sign == 1 else f"{_SIGN_LABELS[sign]}: "
    return f"{direction}{name}\np = {prob:.{TITLE_PROB_DIGITS}f}"


def _file_parts(names: Sequence[str], classes: Sequence[int]) -> list[str]:
    """File-name-safe class names; names that collide after cleaning get their index appended."""
    parts = [safe_filename(name, fallback=f"class{c}") for name, c in zip(names, classes)]
    return [
        f"{part}_{c}" if sum(p == part for p in parts) > 1 else part
        for part, c in zip(parts, classes)
    ]
