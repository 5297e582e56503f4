"""Explain image files with a trained model (``seethrough explain``)."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch

from ..data import RawSample, build_transform, open_image
from ..models.loading import load_for_inference
from .native import explain_batch, render_batch
from .render import denormalize


def explain_files(checkpoint: str, images: Sequence[str | Path], out: str | Path, *, policy: str = "pred",
                  k: int = 3, indices: Sequence[int] | None = None, labels: Sequence[int] | None = None,
                  normalization: str = "joint", alpha: float = 0.4, cmap: str = "jet", method: str = "native",
                  method_options: dict | None = None) -> list[Path]:
    """Load the model, preprocess the files as in training, render overlays into ``out``."""
    loaded = load_for_inference(checkpoint)
    if labels and len(labels) != len(images):
        raise ValueError(f"--label was given {len(labels)} times for {len(images)} images; give one per image")
    mode = "L" if loaded.in_chans == 1 else "RGB"
    transform = build_transform(loaded.img_size, train=False, mean=loaded.mean, std=loaded.std)
    batch = torch.stack([transform(RawSample(open_image(p, mode), 0, str(p)))["image"] for p in images])
    result = explain_batch(loaded.model, batch, policy=policy, k=k, labels=labels, indices=indices,
                           normalization=normalization, method=method, method_options=method_options)
    stems = [Path(p).stem for p in images]
    return render_batch(result, denormalize(batch, loaded.mean, loaded.std), loaded.classes, out, stems,
                        alpha=alpha, cmap=cmap)
