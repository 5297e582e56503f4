"""``seethrough prototypes ...``: pruning, LVW's Grad-CAM targets and IoU evaluation."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from ._common import console, fail, parse_set, prototypes_app


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
    last_layer_epochs: int = typer.Option(100, help="Then retrain the last layer this many epochs (Adam 1e-4) on the same images, as run_pruning.py; 0: prune only."),
) -> None:
    """ProtoPNet's pruning: drop prototypes whose k nearest training images are mostly of other classes."""
    from ..prototypes.tasks import prune_model

    try:
        report = prune_model(model, out, data=data, data_options=parse_set(data_opt, "--data-opt") or None,
                             split=split, k=k, tau=tau, batch_size=batch_size, last_layer_epochs=last_layer_epochs)
    except (ValueError, FileNotFoundError) as err:
        fail(err)
    console.print(f"kept {len(report['kept'])} prototypes, pruned {len(report['pruned'])} "
                  f"(k={k}, tau={tau}); model and prune.json in {out}/")


@prototypes_app.command("attention-maps")
def attention_maps(
    base: str = typer.Argument(..., help="The fine-tuned base model (run dir or model dir), usually an FC run."),
    out: Path = typer.Option(..., help="Output .safetensors file (maps keyed by sample id)."),
    data: Optional[str] = typer.Option(None, help="KIND:PATH (default: the data the base run was trained on)."),
    data_opt: Optional[List[str]] = typer.Option(None, "--data-opt", help="Dataset option KEY=VALUE."),
    split: str = typer.Option("train", help="train for LVW training, val for its IoU evaluation."),
    target: str = typer.Option("gt", help="Class explained: gt (the label) or pred."),
    target_layer: Optional[str] = typer.Option(None, help="Grad-CAM layer (default: the backbone output)."),
    batch_size: int = typer.Option(16),
    accelerator: str = typer.Option("cpu"),
) -> None:
    """LVW's alignment targets: the base model's Grad-CAM maps, min-max, at its input size, keyed by sample id."""
    from ..models.loading import data_for_run
    from ..prototypes.gradcam_targets import compute_gradcam_targets

    try:
        spec, options = data_for_run(base, data, parse_set(data_opt, "--data-opt") or None)
        path = compute_gradcam_targets(base, spec, split=split, data_options=options, out=out, batch_size=batch_size,
                                       target_layer=target_layer, accelerator=accelerator, target=target)
    except (ValueError, FileNotFoundError, LookupError) as err:
        fail(err)
    console.print(f"wrote {path}")


@prototypes_app.command()
def iou(
    model: str = typer.Argument(..., help="A trained lvw (or protopnet) run or model dir."),
    maps: Path = typer.Option(..., help="The base model's Grad-CAM maps of the same split (attention-maps --split val)."),
    data: Optional[str] = typer.Option(None, help="KIND:PATH (default: the data the run was trained on)."),
    data_opt: Optional[List[str]] = typer.Option(None, "--data-opt", help="Dataset option KEY=VALUE."),
    split: str = typer.Option("val"),
    percentile: float = typer.Option(50.0, help="Binarize both maps at their own percentile (the original's -thr)."),
    top_k: int = typer.Option(10, help="Words fused into the model's map."),
    batch_size: int = typer.Option(32),
    out: Optional[Path] = typer.Option(None, help="Write the result as JSON."),
) -> None:
    """LVW's IoU between the model's top-k word map and the base model's Grad-CAM (top and bottom conventions, chance)."""
    from ..prototypes.tasks import lvw_iou_run

    try:
        result = lvw_iou_run(model, maps, data=data, data_options=parse_set(data_opt, "--data-opt") or None,
                             split=split, percentile=percentile, top_k=top_k, batch_size=batch_size, out=out)
    except (ValueError, FileNotFoundError, LookupError) as err:
        fail(err)
    for convention in ("top", "bottom"):
        r = result[convention]
        console.print(f"IoU at percentile {percentile:g} ({convention} region): {r['mean']:.4f} "
                      f"(chance {r['chance']:.4f}; {r['count']} images, {r['nan_count']} undefined)")


@prototypes_app.command()
def parts(
    model: str = typer.Argument(..., help="A pushed protopnet/lvw run or model dir (with prototypes/gallery.json)."),
    data: Optional[str] = typer.Option(None, help="KIND:PATH (default: the data the run was trained on; needs parts)."),
    data_opt: Optional[List[str]] = typer.Option(None, "--data-opt", help="Dataset option KEY=VALUE."),
    box: str = typer.Option("cell", help="cell (the pushed latent cell's footprint) or crop (the 95th-percentile crop)."),
    min_overlap: float = typer.Option(0.5, help="Share of the box that must lie on an evidence part."),
    out: Optional[Path] = typer.Option(None, help="Write the result (with every prototype) as JSON."),
) -> None:
    """The share of pushed prototypes whose patch lies on an evidence part, beside its chance level (synthetic data)."""
    import json

    from ..prototypes.part_check import prototypes_on_parts

    try:
        result = prototypes_on_parts(model, data=data, data_options=parse_set(data_opt, "--data-opt") or None,
                                     box=box, min_overlap=min_overlap)
    except (ValueError, FileNotFoundError) as err:
        fail(err)
    console.print(f"{result['prototypes']} prototypes: {result['on_evidence']:.3f} on an evidence part "
                  f"(chance {result['chance']:.3f}; box {result['protocol']['box']}, "
                  f"≥ {min_overlap:g} of it on a {result['protocol']['dilation']}×{result['protocol']['dilation']}-"
                  "dilated part)")
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2))
