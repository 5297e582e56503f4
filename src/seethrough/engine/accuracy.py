"""Per-sample accuracy: top-k hits, and the running sums of an epoch (training or validation)
summed per sample — never averaged per batch — and all-reduced across ranks."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import cast

import torch
from lightning.fabric import Fabric

#: The k of the top-k accuracies every run reports.
TOPK: tuple[int, ...] = (1, 5)


def topk_correct(logits: torch.Tensor, labels: torch.Tensor, ks: tuple[int, ...] = TOPK) -> dict[int, torch.Tensor]:
    """Number of samples whose label is among the top-k logits, for each k (k capped at C)."""
    kmax = min(max(ks), logits.shape[1])
    top = logits.topk(kmax, dim=1).indices
    hits = top.eq(labels[:, None])
    return {k: hits[:, : min(k, kmax)].any(dim=1).sum() for k in ks}


@dataclass
class EpochSums:
    """Running sums of one pass over a loader, kept on the device (no sync per step).

    Attributes:
        samples: labelled samples seen.
        loss: the loss summed over samples (``mean loss · n`` per batch).
        skipped: unreadable images skipped by the loader.
        correct: top-k hits per k of :data:`TOPK`.
    """

    device: torch.device | str = "cpu"
    samples: torch.Tensor = field(init=False)
    loss: torch.Tensor = field(init=False)
    skipped: torch.Tensor = field(init=False)
    correct: torch.Tensor = field(init=False)

    def __post_init__(self) -> None:
        zero = torch.zeros((), dtype=torch.float64, device=self.device)
        self.samples, self.loss, self.skipped = zero.clone(), zero.clone(), zero.clone()
        self.correct = torch.zeros(len(TOPK), dtype=torch.float64, device=self.device)

    def add(self, logits: torch.Tensor, labels: torch.Tensor, loss_sum: torch.Tensor) -> None:
        """One batch: its logits, labels and the loss summed over its samples."""
        self.samples += labels.numel()
        self.loss += loss_sum.detach().double()
        self.correct += torch.stack(list(topk_correct(logits.detach(), labels).values())).double()

    def add_skipped(self, count: int | torch.Tensor) -> None:
        self.skipped += count

    # -- checkpoints and ranks ------------------------------------------------------------------
    def to_list(self) -> list[float]:
        """``[samples, loss, skipped, correct@k...]`` (what a checkpoint stores mid-epoch)."""
        return [self.samples.item(), self.loss.item(), self.skipped.item(), *self.correct.tolist()]

    @classmethod
    def from_list(cls, values: list[float], device: torch.device | str = "cpu") -> "EpochSums":
        """The sums of :meth:`to_list` (an empty list: a fresh epoch)."""
        sums = cls(device)
        if values:
            sums.samples += values[0]
            sums.loss += values[1]
            sums.skipped += values[2]
            sums.correct += torch.tensor(values[3:], dtype=torch.float64, device=sums.device)
        return sums

    def all_reduce(self, fabric: Fabric) -> "EpochSums":
        """The sums over every rank (this rank's when there is one)."""
        if fabric.world_size == 1:
            return self
        packed = cast(torch.Tensor, fabric.all_reduce(
            torch.tensor(self.to_list(), dtype=torch.float64, device=fabric.device), reduce_op="sum"))
        return EpochSums.from_list(packed.tolist(), fabric.device)

    # -- results ----------------------------------------------------------------------------------
    def mean_loss(self) -> float:
        return self.loss.item() / max(self.samples.item(), 1.0)

    def accuracy(self, k: int = 1) -> float:
        return self.correct[TOPK.index(k)].item() / max(self.samples.item(), 1.0)

    def summary(self) -> dict[str, float]:
        """``{"samples", "skipped", "loss", "acc1", "acc5"}``."""
        result = {"samples": int(self.samples.item()), "skipped": int(self.skipped.item()), "loss": self.mean_loss()}
        result.update({f"acc{k}": self.accuracy(k) for k in TOPK})
        return result
