"""Which epoch ``OUT/best/`` holds (the ``select`` config key, ``--select``).

- ``best``: the highest validation top-1 (the first epoch reaching it).
- ``last``: the last epoch. SCOUTER's ``train.py:181-196`` overwrites its checkpoint every
  epoch, so its ``use_pre`` (``sloter/slot_model.py:26-33``) and ``test.py:117`` read the last
  epoch; INTR's ``main.py:221-233`` does the same (``checkpoint.pth``), and LVW's released
  model (``200_19push0.8621.pth``) is the last last-layer epoch of the last push.
- ``best-loss``: the lowest validation loss (cross-entropy), strictly lower than any before,
  as CA-Stream's ``main_INets.py:370-377`` keeps ``best_model.pth``.

A multi-stage run (ProtoPNet, LVW) lets only the epochs its recipe calls eligible compete
(after the first push, the pushed models), whatever the rule.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

#: select → (the validation value that decides, how it is read in summary.json).
RULES = {"best": ("val_acc1", "highest val top-1"), "last": ("epoch", "last epoch"),
         "best-loss": ("val_loss", "lowest val loss")}


@dataclass
class Selection:
    """The epoch in ``best/`` so far and the values that decided it (kept in ``last.ckpt``)."""

    epoch: int = -1
    acc1: float = -1.0
    loss: float = math.inf

    def improves(self, select: str, acc1: float, loss: float) -> bool:
        """Whether an epoch with validation ``acc1`` / ``loss`` replaces ``best/`` under ``select``."""
        if select == "last":
            return True
        if select == "best-loss":
            return loss < self.loss
        if select == "best":
            return acc1 > self.acc1
        raise ValueError(f"--select must be one of {', '.join(RULES)}, got {select!r}")


def summary_entry(select: str, epoch: int, acc1: float, loss: float, test_split: str | None) -> dict:
    """``summary.json``'s ``selection``: the rule, the epoch it chose and its validation values."""
    return {"select": select, "rule": RULES[select][1], "epoch": epoch if epoch > 0 else None,
            "val_acc1": acc1 if epoch > 0 else None,
            "val_loss": loss if epoch > 0 and math.isfinite(loss) else None,
            "val_is_test_split": test_split}


def selection_warning(select: str, data: str, test_split: str | None) -> str | None:
    """The one warning of a run that picks ``best/`` on a split that is the dataset's test split
    (``test_split``: the dataset's description of it), or None."""
    if select == "last" or not test_split:
        return None
    return (f"--select {select} picks best/ on the validation data {data}, which is {test_split}: that is model "
            "selection on the test set, and best/'s test score is optimistic. Use --select last, or a "
            "--val-data held out from the training data.")
