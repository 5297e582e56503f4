"""``seethrough convert``: an original implementation's checkpoint → a seethrough model directory."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, List, Optional

import typer

from ._common import app, console, fail, parse_set


@app.command()
def convert(
    kind: str = typer.Argument(..., help="Which original wrote the checkpoint, e.g. scouter."),
    checkpoint: Path = typer.Argument(..., help="The original's checkpoint file."),
    out: Path = typer.Option(..., help="Directory for config.json + model.safetensors + README.md."),
    opt: Optional[List[str]] = typer.Option(None, "--opt", help="KEY=VALUE the checkpoint does not record, e.g. backbone=resnest50d."),
) -> None:
    """Convert an original implementation's checkpoint into a seethrough model directory."""
    from ..models.hub import save_pretrained
    from ..models.official import from_official, original_geometry

    try:
        model = from_official(kind, checkpoint, **parse_set(opt, "--opt"))
    except (ValueError, FileNotFoundError, TypeError) as err:
        fail(err)
    geometry = original_geometry(kind, model)   # the original's evaluation input (size, resize, mean/std)
    save_pretrained(model, out, converted_from=f"{kind}:{checkpoint}", **geometry)
    config: dict[str, Any] = getattr(model, "config")  # noqa: B009  (every converted model has its config)
    console.print(f"wrote {out}/ ({config['name']}, backbone {config['backbone']}, "
                  f"{config['num_classes']} classes; evaluated as the original: "
                  f"{json.dumps(geometry) if geometry else 'no recorded geometry'})")
