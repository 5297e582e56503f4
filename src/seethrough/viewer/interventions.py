"""Part removals for the view of a benchmark: each image with one part removed, and what that
did to every model's score of the true class (the single-deletion intervention of
:mod:`seethrough.metrics.parts`, shown instead of summarized)."""
from __future__ import annotations

from typing import Any

import torch

from ..data import build_dataset
from ..data.interventions import PartInterventions
from ..data.synthetic import SyntheticDataset
from ..explanations import denormalize
from ..models.loading import load_for_inference
from .collect import BATCH_SIZE, ViewedData
from .format import ViewWriter, thumbnail


def add_part_removals(writer: ViewWriter, models: dict[str, str], viewed: ViewedData) -> bool:
    """Add ``interventions`` to every viewed sample; False (nothing added) when the data has no parts."""
    probe = build_dataset(viewed.spec, viewed.split, **viewed.options)
    if not isinstance(probe, SyntheticDataset):
        return False
    rows: dict[str, list[dict[str, Any]]] = {}
    for position, (label, source) in enumerate(models.items()):
        loaded = load_for_inference(source)
        transform = loaded.transform(square=True)
        size = (loaded.img_size, loaded.img_size)
        model = loaded.model
        for start in range(0, len(viewed.ids), BATCH_SIZE):
            ids = viewed.ids[start:start + BATCH_SIZE]
            parts = PartInterventions.for_samples(probe, ids, transform, size)
            images = parts.images(parts.scenes)
            with torch.no_grad():
                original = model(images).logits.float()
            score = original.gather(1, parts.labels[:, None])[:, 0]
            for slot in range(parts.valid.shape[1]):
                drop = torch.zeros_like(parts.valid)
                drop[:, slot] = parts.valid[:, slot]
                if not bool(drop.any()):
                    continue
                after = parts.removed_logits(model, drop, "cpu").float().gather(1, parts.labels[:, None])[:, 0]
                pictures = denormalize(parts.remove(drop), loaded.mean, loaded.std) if position == 0 else None
                for b, sample in enumerate(ids):
                    if not bool(parts.valid[b, slot]):
                        continue
                    entries = rows.setdefault(str(sample), [])
                    if position == 0:
                        path = writer.image_path(f"{sample}-p{slot}")
                        assert pictures is not None
                        thumbnail(pictures[b], writer.out / path)
                        entries.append({"part": slot, "role": parts.roles[b][slot], "name": parts.names[b][slot],
                                        "thumb": path, "delta": {}})
                    entry = next(e for e in entries if e["part"] == slot)
                    entry["delta"][label] = round(float(after[b] - score[b]), 4)
    for sample_id, entries in rows.items():
        writer.sample_chunk(sample_id)["interventions"] = entries
    return True


__all__ = ["add_part_removals"]
