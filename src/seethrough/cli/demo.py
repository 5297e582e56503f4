"""``seethrough demo``: the built-in synthetic data, trained and explained in a few CPU minutes."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ._common import app, console, fail


@app.command()
def demo(
    out: Path = typer.Option(Path("seethrough-demo"), help="Where pictures and summary.json go."),
    epochs: Optional[int] = typer.Option(None, help="Override the demo's epoch count."),
    backbone: Optional[str] = typer.Option(None, help="Override the demo's backbone (any timm name)."),
    samples: Optional[int] = typer.Option(None, help="Synthetic images per split (default: the generator's)."),
    accelerator: str = typer.Option("auto"),
    view: bool = typer.Option(True, "--view/--no-view", help="Write the HTML viewer of every demo model into OUT/view."),
) -> None:
    """Train on the built-in synthetic data, then write explanation pictures, a summary and the viewer."""
    from ..demo import run_demo

    try:
        summary = run_demo(out, epochs=epochs, backbone=backbone, samples=samples, accelerator=accelerator)
    except (ValueError, FileNotFoundError) as err:
        fail(err)
    for name, result in summary["models"].items():
        console.print(f"[bold]{name}[/]: val acc {result['val_acc1']:.3f}, map mass on the evidence "
                      f"{result['evidence_mass']:.3f} (uniform map: {result['evidence_mass_uniform']:.3f}; "
                      f"class explained: {result['explained_class']})")
        for variant, other in result.items():
            if isinstance(other, dict) and "evidence_mass" in other:
                console.print(f"  {name} \\[{variant}], same weights: val acc {other['val_acc1']:.3f}, map mass on the "
                              f"evidence {other['evidence_mass']:.3f}")
    console.print(f"pictures in {out}/, numbers in {out / 'summary.json'}")
    if view:
        from .view import write_default_view

        write_default_view(out)
