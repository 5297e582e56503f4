"""Explain image files with a trained model: the work behind ``seethrough explain``."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch

from ..data import RawSample, open_image
from ..explanations.heads import explain_heads, render_heads
from ..explanations.native import explain_batch, render_batch
from ..explanations.render import denormalize
from ..models.loading import RUN_BEST_DIR, load_for_inference
from ..prototypes.gallery import GALLERY_DIR, this_looks_like_that


def explain_files(checkpoint: str, images: Sequence[str | Path], out: str | Path, *, policy: str = "pred",
                  k: int = 3, indices: Sequence[int] | None = None, labels: Sequence[int] | None = None,
                  normalize: str = "joint", alpha: float = 0.4, cmap: str = "jet", method: str = "native",
                  method_options: dict | None = None, geometry: dict | None = None) -> list[Path]:
    """Load the model, preprocess the files as in training (``geometry``: ``img_size`` / ``mean`` /
    ``std`` overrides), render overlays into ``out``."""
    loaded, batch = _load(checkpoint, images, labels, geometry)
    result = explain_batch(loaded.model, batch, policy=policy, k=k, labels=labels, indices=indices,
                           normalize=normalize, method=method, method_options=method_options)
    stems = [Path(p).stem for p in images]
    return render_batch(result, denormalize(batch, loaded.mean, loaded.std), loaded.classes, out, stems,
                        alpha=alpha, cmap=cmap)


def explain_files_heads(checkpoint: str, images: Sequence[str | Path], out: str | Path, *, k: int = 5,
                        labels: Sequence[int] | None = None, layer: int = -1,
                        geometry: dict | None = None) -> list[Path]:
    """INTR's per-head views for image files: with ``labels`` the true class's query first
    (``k=1``: gt_query_heads), then its ``k - 1`` look-alikes (sim_query_heads)."""
    loaded, batch = _load(checkpoint, images, labels, geometry)
    result = explain_heads(loaded.model, batch, labels=labels or None, k=k, layer=layer)
    return render_heads(result, denormalize(batch, loaded.mean, loaded.std), loaded.classes, out,
                        [Path(p).stem for p in images])


def explain_files_prototypes(checkpoint: str, images: Sequence[str | Path], out: str | Path, *,
                             k: int = 3, geometry: dict | None = None) -> list[Path]:
    """ProtoPNet's "this looks like that" for image files: each image's ``k`` most activated
    prototypes next to their source patches from the model's gallery (``best/prototypes``)."""
    loaded, batch = _load(checkpoint, images, None, geometry)
    root = Path(checkpoint)
    gallery = next((d for d in (root / RUN_BEST_DIR / GALLERY_DIR, root / GALLERY_DIR, root.parent / GALLERY_DIR)
                    if (d / "gallery.json").is_file()), None)
    if gallery is None:
        raise FileNotFoundError(f"{checkpoint} has no prototype gallery ({RUN_BEST_DIR}/{GALLERY_DIR}/gallery.json): it is "
                                "written at the end of a prototype model's training once a push has run")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for image, source in zip(batch, images):
        path = out / f"{Path(source).stem}_this_looks_like_that.png"
        this_looks_like_that(loaded.model, image, gallery, path, k=k, mean=loaded.mean, std=loaded.std,
                             classes=loaded.classes)
        paths.append(path)
    return paths


def _load(checkpoint: str, images: Sequence[str | Path], labels: Sequence[int] | None, geometry: dict | None = None):
    """The model for inference and the files preprocessed as in training, as one batch."""
    loaded = load_for_inference(checkpoint, **(geometry or {}))
    if labels and len(labels) != len(images):
        raise ValueError(f"--label was given {len(labels)} times for {len(images)} images; give one per image")
    mode = "L" if loaded.in_chans == 1 else "RGB"
    transform = loaded.transform(square=True)   # the files are explained as one batch
    return loaded, torch.stack([transform(RawSample(open_image(p, mode), 0, str(p)))["image"] for p in images])
