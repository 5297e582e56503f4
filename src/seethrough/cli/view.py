"""``seethrough view``: the self-contained HTML viewer of runs, the demo, evaluations and benchmarks."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from ._common import app, comma_list, console, fail, parse_set


@app.command()
def view(
    paths: List[str] = typer.Argument(..., help="Runs, model dirs, the demo folder, or an evaluate / benchmark --out folder."),
    out: Path = typer.Option(Path("view"), help="Folder of the viewer (index.html opens from file://, no server needed)."),
    limit: Optional[int] = typer.Option(None, help="Images shown (default: the evaluated ones up to 1000, else 64 validation images)."),
    explainers: Optional[str] = typer.Option(None, help="Comma list of explainers (default: the evaluation's, else native)."),
    top_k: int = typer.Option(5, help="Predictions stored per image (the class switcher)."),
    data: Optional[str] = typer.Option(None, help="KIND:PATH for runs (default: each run's own data)."),
    data_opt: Optional[List[str]] = typer.Option(None, "--data-opt", help="Dataset option KEY=VALUE."),
    max_map_side: int = typer.Option(24, help="Maps with a longer side are stored area-averaged down to it (the size budget)."),
    serve: bool = typer.Option(False, "--serve", help="Then serve the folder over HTTP (the standard library's server)."),
    port: int = typer.Option(8000, help="Port of --serve."),
) -> None:
    """Write one HTML viewer: images × models × explainers, per-model evidence, curves, metrics, leaderboard."""
    from ..viewer import serve as serve_view
    from ..viewer import write_view

    try:
        index = write_view(paths, out, limit=limit, explainers=comma_list(explainers), top_k=top_k, data=data,
                           data_options=parse_set(data_opt, "--data-opt") or None, max_map_side=max_map_side,
                           progress=True)
    except (ValueError, FileNotFoundError) as err:
        fail(err)
    console.print(f"viewer: {index.resolve()}")
    if serve:
        serve_view(out, port=port)


def write_default_view(source: Path, *, progress: bool = False) -> None:
    """The viewer that ``demo``, ``evaluate`` and ``benchmark`` write into ``source/view`` (``--no-view``
    skips it); a failure is reported and leaves the command's own results as they are."""
    from ..viewer import VIEW_DIR, write_view

    try:
        index = write_view([source], source / VIEW_DIR, progress=progress, title=str(source))
    except (ValueError, FileNotFoundError, RuntimeError) as err:
        console.print(f"[yellow]viewer not written:[/] {err} (the results above are complete; "
                      f"retry with seethrough view {source} --out {source / VIEW_DIR})")
        return
    console.print(f"viewer: {index.resolve()}")
