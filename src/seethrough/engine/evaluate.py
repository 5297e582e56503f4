"""Accuracy of a model over a loader, summed per sample and all-reduced across ranks."""
from __future__ import annotations

import torch
from lightning.fabric import Fabric
from torch.utils.data import DataLoader

from .accuracy import TOPK, topk_correct


@torch.no_grad()
def evaluate_accuracy(model: torch.nn.Module, loader: DataLoader, fabric: Fabric) -> dict[str, float]:
    """``{"acc1", "acc5", "loss", "samples", "skipped"}`` over every sample of ``loader``."""
    was_training = model.training
    model.eval()
    sums = torch.zeros(3 + len(TOPK), dtype=torch.float64, device=fabric.device)  # n, loss, skipped, top-k
    for batch in loader:
        sums[2] += batch["skipped"]
        if "image" not in batch:
            continue
        out = model(batch["image"])
        labels = batch["label"]
        sums[0] += labels.numel()
        sums[1] += torch.nn.functional.cross_entropy(out.logits.float(), labels, reduction="sum")
        for i, count in enumerate(topk_correct(out.logits, labels).values()):
            sums[3 + i] += count
    model.train(was_training)
    sums = fabric.all_reduce(sums, reduce_op="sum") if fabric.world_size > 1 else sums
    n = max(sums[0].item(), 1.0)
    result = {"samples": int(sums[0].item()), "skipped": int(sums[2].item()), "loss": sums[1].item() / n}
    for i, k in enumerate(TOPK):
        result[f"acc{k}"] = sums[3 + i].item() / n
    return result
