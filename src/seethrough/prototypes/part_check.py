"""Are a prototype model's pushed prototypes on the evidence? (The benchmark's prototype check.)

Reads the model's gallery (``prototypes/gallery.json``, written after the push by
:func:`~.gallery.render_gallery`): each prototype's source image (a training-split index) and
its box — the footprint of its latent cell (``box="cell"``: rows ``[y·s, (y+1)·s)``, columns
``[x·s, (x+1)·s)`` with the feature stride ``s`` = image side / latent side, the patch the push
copied) or ProtoPNet's high-activation crop (``box="crop"``; at a coarse latent map its 95th
percentile spreads over much of the image, so it is a poor locator there); re-creates the
source images' parts from the run's data (only data with part ground truth: the built-in
synthetic set) and scores the boxes with
:mod:`seethrough.metrics.prototype_parts`: the share of prototypes on evidence, its chance level
(the same boxes thrown uniformly at the same images), and each prototype's overlap with the
evidence, decoys, distractors and background.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from ..data import build_dataset
from ..data.interventions import PART_ROLES, PartInterventions
from ..data.synthetic import SyntheticDataset
from ..metrics.parts import PART_DILATION
from ..metrics.prototype_parts import MIN_OVERLAP, box_overlap, chance_on_evidence, prototype_on_evidence
from ..models.loading import RUN_BEST_DIR, data_for_run, load_for_inference
from .gallery import GALLERY_DIR, GALLERY_JSON
from .push import NO_PATCH

#: The split a push reads (ProtoPNet pushes onto training images).
PUSH_SPLIT = "train"
#: Which box stands for a prototype: its latent cell's footprint, or the high-activation crop.
BOXES: tuple[str, ...] = ("cell", "crop")


def gallery_file(source: str | Path) -> Path:
    """The ``gallery.json`` of a run (its ``best/``) or of a model directory."""
    path = Path(source)
    for directory in (path / RUN_BEST_DIR / GALLERY_DIR, path / GALLERY_DIR):
        if (directory / GALLERY_JSON).is_file():
            return directory / GALLERY_JSON
    raise FileNotFoundError(f"{source} has no {GALLERY_DIR}/{GALLERY_JSON}: only a prototype model after its push "
                            "has one (train protopnet/lvw through at least one push epoch)")


def is_prototype_model(source: str | Path) -> bool:
    """Whether ``source`` holds a pushed prototype model with a gallery."""
    try:
        gallery_file(source)
    except FileNotFoundError:
        return False
    return True


def prototypes_on_parts(source: str | Path, *, data: str | None = None, data_options: dict[str, Any] | None = None,
                        box: str = "cell", dilation: int = PART_DILATION,
                        min_overlap: float = MIN_OVERLAP) -> dict[str, Any]:
    """The prototype check of ``source`` (a run or model directory with a gallery) on its training
    data (or ``data``/``data_options``, which must have the same training images).

    Returns ``{"on_evidence", "chance", "prototypes", "protocol", "per_prototype": [...]}``; the
    per-prototype rows hold the source index, label, box, overlap per role, on_evidence and chance.
    """
    if box not in BOXES:
        raise ValueError(f"box must be one of {', '.join(BOXES)}, got {box!r}")
    path = gallery_file(source)
    gallery = json.loads(path.read_text())
    entries = gallery["prototypes"]
    if any(entry["index"] == NO_PATCH for entry in entries):
        raise ValueError(f"{path}: some prototypes have no source image; push again")
    loaded = load_for_inference(source)
    spec, options = data_for_run(str(source), data, data_options)
    dataset = build_dataset(spec, PUSH_SPLIT, **options)
    if not isinstance(dataset, SyntheticDataset):
        raise ValueError(f"the prototype check needs data whose parts are known (the built-in synthetic data); "
                         f"{source} was trained on {spec}")
    dataset.transform = loaded.transform(square=True)
    size = (loaded.img_size, loaded.img_size)
    parts = PartInterventions.for_samples(dataset, [int(e["index"]) for e in entries], dataset.transform, size)
    boxes = torch.tensor([e["crop_box"] if box == "crop" else cell_box(e["y"], e["x"], gallery["latent_size"], size)
                          for e in entries])
    overlap = box_overlap(boxes, parts, dilation=dilation)
    on = prototype_on_evidence(boxes, parts, dilation=dilation, min_overlap=min_overlap)
    chance = chance_on_evidence(boxes, parts, dilation=dilation, min_overlap=min_overlap)
    rows = [{"prototype": int(e["prototype"]), "index": int(e["index"]), "label": int(e["label"]),
             "box": boxes[j].tolist(), "on_evidence": bool(on[j]), "chance": float(chance[j]),
             "overlap": {role: float(overlap[role][j]) for role in (*PART_ROLES, "background")}}
            for j, e in enumerate(entries)]
    return {"source": str(source), "prototypes": len(rows), "on_evidence": float(on.mean()),
            "chance": float(chance.mean()),
            "protocol": {"box": box if box == "cell" else f"crop ({gallery['percentile']}th percentile)",
                         "dilation": dilation, "min_overlap": min_overlap, "split": PUSH_SPLIT},
            "per_prototype": rows}


def cell_box(y: int, x: int, latent_size: list[int], size: tuple[int, int]) -> list[int]:
    """xyxy pixel box (x1/y1 exclusive) of latent cell ``(y, x)`` of an ``h×w`` map on an ``H×W`` image."""
    (h, w), (height, width) = latent_size, size
    if not (0 <= y < h and 0 <= x < w):
        raise ValueError(f"latent position ({y}, {x}) lies outside the {h}×{w} latent map")
    return [round(x * width / w), round(y * height / h), round((x + 1) * width / w), round((y + 1) * height / h)]


__all__ = ["BOXES", "cell_box", "gallery_file", "is_prototype_model", "prototypes_on_parts"]
