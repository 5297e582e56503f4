"""``seethrough prototypes ...``: pruning, LVW's Grad-CAM targets and IoU evaluation."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from .cli import _fail, _parse_set, console

prototypes_app = typer.Typer(no_args_is_help=True, help="Prototype models (protopnet, lvw): prune, LVW targets and IoU.")


@prototypes_app.command()
def prune(
    model: str = typer.Argument(..., help="Run dir or model dir of a protopnet / lvw model."),
    out: Path = typer.Option(..., help="Directory for the pruned model (+ prune.json)."),
    data: Optional[str] = typer.Option(None, help="KIND:PATH (default: the data the run was trained on)."),
    data_opt: Optional[List[str]] = typer.Option(None, "--data-opt", help="Dataset option KEY=VALUE."),
    split: str = typer.Option("train", help="Images whose patches vote (ProtoPNet: the push set)."),
    k: int = typer.Option(6, help="Nearest images per prototype."),
    tau: int = typer.Option(3, help="Prune when fewer than tau of the k are of the prototype's class."),
    batch_size: int = typer.Option(32),
) -> None:
    """ProtoPNet's pruning: drop prototypes whose k nearest training images are mostly of other classes."""
    from .prototypes.tasks import prune_model

    try:
        report = prune_model(model, out, data=data, data_options=_parse_set(data_opt, "--data-opt") or None,
                             split=split, k=k, tau=tau, batch_size=batch_size)
    except (ValueError, FileNotFoundError) as err:
        _fail(err)
    console.print(f"kept {len(report['kept'])} prototypes, pruned {len(report['pruned'])} "
                  f"(k={k}, tau={tau}); model and prune.json in {out}/")
