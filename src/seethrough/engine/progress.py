"""A rich progress bar for one epoch showing loss, accuracy and images/s (rank 0 only)."""
from __future__ import annotations

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


class EpochProgress:
    """Context manager; ``update(done, loss=..., acc=..., ips=...)`` refreshes the bar."""

    def __init__(self, description: str, total: int, *, start: int = 0, enabled: bool = True) -> None:
        self.enabled = enabled
        self.progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]:.4f}  acc {task.fields[acc]:.3f}  {task.fields[ips]:.1f} img/s"),
            TimeElapsedColumn(), TimeRemainingColumn(), transient=False, disable=not enabled,
        )
        self.task = self.progress.add_task(description, total=total, completed=start, loss=0.0, acc=0.0, ips=0.0)

    def __enter__(self) -> "EpochProgress":
        self.progress.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.progress.__exit__(*exc)

    def update(self, done: int, **fields: float) -> None:
        """Move to ``done`` batches and show ``fields`` (loss, acc, ips) in the bar's columns."""
        self.progress.update(self.task, completed=done, **fields)  # type: ignore[arg-type]  # rich: extra **fields go to the task's columns
