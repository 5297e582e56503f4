"""Per-sample predictions (``seethrough eval --predictions FILE.csv``), so a model can be compared
with another implementation sample by sample."""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Sequence

import torch

#: How many top classes each row lists (the top-5 accuracy's k).
PREDICTION_TOPK = 5
#: Columns of the CSV, in order.
PREDICTION_COLUMNS = ("sample_id", "label", "pred", "pred_name", "prob", "top5", "top5_prob")


class PredictionRecorder:
    """Collects one row per sample from ``(batch, logits)`` (the ``on_batch`` hook of
    :func:`~seethrough.engine.validate.validate_model`): the sample id, the label, the
    predicted class (index and name), its softmax probability, the top-5 classes and theirs."""

    def __init__(self, classes: Sequence[str]) -> None:
        self.classes = list(classes)
        self.rows: list[dict] = []

    def __call__(self, batch: dict, logits: torch.Tensor) -> None:
        probs = torch.softmax(logits.detach().float(), dim=1).cpu()
        top_prob, top = probs.topk(min(PREDICTION_TOPK, probs.shape[1]), dim=1)
        for i, sample_id in enumerate(batch["id"]):
            pred = int(top[i, 0])
            self.rows.append({
                "sample_id": sample_id, "label": int(batch["label"][i]), "pred": pred,
                "pred_name": self.classes[pred] if pred < len(self.classes) else str(pred),
                "prob": float(top_prob[i, 0]),
                "top5": " ".join(str(int(c)) for c in top[i]),
                "top5_prob": " ".join(f"{float(p):.6g}" for p in top_prob[i]),
            })

    def write_csv(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=PREDICTION_COLUMNS)
            writer.writeheader()
            writer.writerows(self.rows)
        return path
