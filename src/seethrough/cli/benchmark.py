"""``seethrough benchmark``: every model × explainer on the causal synthetic benchmark."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from ._common import app, comma_list, console, fail


@app.command()
def benchmark(
    runs: Optional[List[str]] = typer.Argument(None, help="Run or model directories to compare (default: train --models)."),
    models: Optional[str] = typer.Option(None, help="Comma list of recipes trained on the benchmark data when no RUN is given: fc,scouter+,scouter-,intr,castream,protopnet (default: the budget's)."),
    explainers: Optional[str] = typer.Option(None, help="Comma list of explainers (any registered name; default native,gradcam); the baselines random,center,edges are always added."),
    quick: bool = typer.Option(False, "--quick", help="fc, scouter+, intr, castream; 48 images (≤ 10 min on 2 CPU cores)."),
    out: Path = typer.Option(Path("benchmark"), help="Folder for runs/, results.json, leaderboard.md, report.html, figures/."),
    accelerator: str = typer.Option("auto"),
    progress: bool = typer.Option(True, "--progress/--no-progress"),
    view: bool = typer.Option(True, "--view/--no-view", help="Write the HTML viewer (images, interventions, leaderboard) into OUT/view."),
) -> None:
    """Rank models and explainers on part interventions, faithfulness and localization, with sanity baselines."""
    from ..benchmark import benchmark as run_benchmark

    if runs and models:
        fail(ValueError("give RUN directories or --models recipes, not both"))
    try:
        summary = run_benchmark(runs or comma_list(models), explainers=comma_list(explainers), quick=quick, out=out,
                                accelerator=accelerator, progress=progress)
    except (ValueError, FileNotFoundError) as err:
        fail(err)
    console.print((out / "leaderboard.md").read_text())
    seconds = summary["benchmark"]["seconds"]
    console.print(f"leaderboard: {out / 'leaderboard.md'}  report: {out / 'report.html'}  ({seconds / 60:.1f} min)")
    if view:
        from .view import write_default_view

        write_default_view(out)
