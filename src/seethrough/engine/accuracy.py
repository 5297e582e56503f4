"""Per-sample top-k correctness (summed over samples, not averaged per batch)."""
from __future__ import annotations

import torch

TOPK = (1, 5)


def topk_correct(logits: torch.Tensor, labels: torch.Tensor, ks: tuple[int, ...] = TOPK) -> dict[int, torch.Tensor]:
    """Number of samples whose label is among the top-k logits, for each k (k capped at C)."""
    kmax = min(max(ks), logits.shape[1])
    top = logits.topk(kmax, dim=1).indices
    hits = top.eq(labels[:, None])
    return {k: hits[:, : min(k, kmax)].any(dim=1).sum() for k in ks}
