"""``seethrough data ...``: dataset utilities."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ._common import console, data_app, fail


@data_app.command("imagenet-val")
def imagenet_val(
    root: Path = typer.Argument(..., help="ImageNet CLS-LOC root (with val/) or the flat val folder."),
    csv: Optional[Path] = typer.Option(None, help="LOC_val_solution.csv (default: in the CLS-LOC root)."),
    out: Optional[Path] = typer.Option(None, help="Destination (default: <CLS-LOC root>/val_by_synset)."),
    method: str = typer.Option("symlink", help="symlink | hardlink | copy (originals are never moved)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Report what would be done, change nothing."),
) -> None:
    """Regroup flat ImageNet val images into synset folders, without touching the originals."""
    from ..data.imagenet_val import regroup_val

    base = root if (root / "val").is_dir() else root.parent  # ROOT may be the flat val folder itself
    out = out or base / "val_by_synset"
    try:
        report = regroup_val(root, csv or base / "LOC_val_solution.csv", out, method=method,  # type: ignore[arg-type]  # checked there
                             dry_run=dry_run)
    except (ValueError, FileNotFoundError, OSError) as err:
        fail(err)
    console.print(report["summary"])
    if not dry_run:
        console.print(f"train with: --data imagenet:{base} --data-opt val_dir={out}")
