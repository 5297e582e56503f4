"""``seethrough protocols | explainers | presets | models``: what can be named on the command line."""
from __future__ import annotations

from ._common import app, console


@app.command()
def protocols() -> None:
    """List the evaluation protocol presets (use with `seethrough evaluate --protocol NAME`)."""
    from ..protocol import list_protocols, load_protocol

    for name in list_protocols():
        console.print(f"[bold]{name}[/]  {load_protocol(name).description}")


@app.command()
def explainers() -> None:
    """List the explanation methods accepted by `seethrough evaluate --explainers`."""
    from ..explanations.api import list_explainers

    for name in list_explainers():
        console.print(name)


@app.command()
def presets() -> None:
    """List the shipped presets (use with `seethrough train --preset NAME`)."""
    from ..config import list_presets, preset_description

    for name in list_presets():
        console.print(f"[bold]{name}[/]  {preset_description(name)}")


@app.command()
def models() -> None:
    """List the model names accepted by --model."""
    from ..models import list_models

    for name in list_models():
        console.print(name)
