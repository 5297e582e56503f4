"""``seethrough explain``: pictures of a model's evidence for image files."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from ..explanations.native import LEGACY_NORMALIZATIONS
from ._common import (
    EXPLAIN_DEFAULT_K,
    HEADS_DEFAULT_K,
    IMG_SIZE_HELP,
    MEAN_HELP,
    STD_HELP,
    app,
    console,
    fail,
    geometry_overrides,
    parse_set,
)
from .explain_files import explain_files, explain_files_heads, explain_files_prototypes


@app.command()
def explain(
    checkpoint: str = typer.Argument(..., help="Run dir, model dir, last.ckpt or Hub id."),
    images: List[Path] = typer.Argument(..., help="Image files."),
    out: Path = typer.Option(Path("explanations"), help="Output folder for PNGs and explanations.json."),
    policy: str = typer.Option("pred", help="gt | pred | least | next | FILE.json (label → class map): which classes to show; --classes gives them explicitly."),
    k: Optional[int] = typer.Option(None, help="How many classes for pred/least (3), with --heads the true class + look-alikes (5: INTR's tools/visualization.py top_q), with --prototypes how many prototypes (3)."),
    classes: Optional[str] = typer.Option(None, help="Explicit class indices for every image, e.g. 0,3,7 (replaces --policy)."),
    label: Optional[List[int]] = typer.Option(None, help="Ground-truth label per image (policies gt, next, FILE.json)."),
    normalize: str = typer.Option("joint", help="joint (min-max over all classes of the image, official SCOUTER; native only) | minmax (per map) | none."),
    normalization: Optional[str] = typer.Option(None, hidden=True, help="Former name of --normalize (per-class = minmax)."),
    alpha: float = typer.Option(0.4, help="Overlay opacity."),
    cmap: str = typer.Option("jet", help="Matplotlib colormap."),
    method: str = typer.Option("native", help="native (the model's own maps) or a post-hoc method: gradcam, scorecam, rise, ... (see `seethrough explainers`)."),
    method_opt: Optional[List[str]] = typer.Option(None, "--method-opt", help="Explainer option KEY=VALUE, e.g. target_layer=backbone."),
    heads: bool = typer.Option(False, "--heads", help="Per-head strips (INTR): the --label class's query first, then its look-alikes up to --k."),
    layer: int = typer.Option(-1, help="Decoder layer for --heads (-1: the last)."),
    prototypes: bool = typer.Option(False, "--prototypes", help="'This looks like that' (protopnet, lvw): the --k most activated prototypes next to their source patches from the gallery."),
    img_size: Optional[int] = typer.Option(None, help=IMG_SIZE_HELP),
    mean: Optional[str] = typer.Option(None, help=MEAN_HELP),
    std: Optional[str] = typer.Option(None, help=STD_HELP),
) -> None:
    """Overlay each image with evidence maps for the chosen classes (the model's own, or post-hoc)."""
    try:
        k = k if k is not None else (HEADS_DEFAULT_K if heads else EXPLAIN_DEFAULT_K)
        geometry = geometry_overrides(img_size, mean, std)
        indices = [int(c) for c in classes.split(",")] if classes else None
        if normalization is not None:
            console.print("note: --normalization is now --normalize (per-class is called minmax)", style="yellow")
            normalize = LEGACY_NORMALIZATIONS.get(normalization, normalization)
        if prototypes:
            paths = explain_files_prototypes(checkpoint, images, out, k=k, geometry=geometry)
            console.print(f"wrote {len(paths)} files to {out}/")
            return
        if heads:
            paths = explain_files_heads(checkpoint, images, out, k=k, labels=label, layer=layer, geometry=geometry)
            console.print(f"wrote {len(paths)} files to {out}/")
            return
        paths = explain_files(checkpoint, images, out, policy=policy, k=k, indices=indices, labels=label,
                              normalize=normalize, alpha=alpha, cmap=cmap, method=method,
                              method_options=parse_set(method_opt, "--method-opt"), geometry=geometry)
    except (ValueError, FileNotFoundError) as err:
        fail(err)
    console.print(f"wrote {len(paths)} files to {out}/")
