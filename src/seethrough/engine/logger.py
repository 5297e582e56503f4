"""Run logs: JSON lines (machine-readable), TensorBoard scalars, all on rank 0 only."""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

JSONL_NAME = "metrics.jsonl"
TENSORBOARD_DIR = "tensorboard"


class RunLogger:
    """Appends one JSON object per event to ``out/metrics.jsonl`` and mirrors scalars to
    TensorBoard. Does nothing when ``enabled`` is False (non-zero ranks)."""

    def __init__(self, out: str | Path, *, enabled: bool = True, tensorboard: bool = True) -> None:
        self.enabled = enabled
        self.path = Path(out) / JSONL_NAME
        self.writer = None
        if enabled and tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(Path(out) / TENSORBOARD_DIR))

    def log(self, event: str, step: int, **values: Any) -> None:
        if not self.enabled:
            return
        record = {"event": event, "step": step, "time": time.time(), **values}
        with open(self.path, "a") as handle:
            handle.write(json.dumps(record) + "\n")
        if self.writer is not None:
            for key, value in values.items():
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    self.writer.add_scalar(f"{event}/{key}", value, step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
