"""The ``seethrough`` command: train, eval, explain, demo, data, presets."""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import List, Optional

import typer
import yaml
from lightning.fabric.utilities.rank_zero import rank_zero_only
from rich.console import Console

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Image classifiers that show their evidence: train, explain, evaluate.")
data_app = typer.Typer(no_args_is_help=True, help="Dataset utilities.")
app.add_typer(data_app, name="data")
console = Console()


def _fail(err: Exception) -> None:
    console.print(f"[bold red]error:[/] {err}")
    raise typer.Exit(code=2)


#: Classes shown by `explain` (pred/least/topk, prototypes) and by `explain --heads` (INTR's
#: tools/visualization.py top_q = 5: the true class and four look-alikes).
EXPLAIN_DEFAULT_K, HEADS_DEFAULT_K = 3, 5
#: Help texts of the input-geometry overrides shared by eval, evaluate and explain.
_IMG_SIZE_HELP = "Input size, overriding the model's recorded one (a converted checkpoint records its original's)."
_MEAN_HELP = "Normalization mean per channel, e.g. 0.1307 or 0.485,0.456,0.406 (overrides the model's)."
_STD_HELP = "Normalization std per channel (overrides the model's)."


def _geometry(img_size: int | None, mean: str | None, std: str | None) -> dict:
    """``--img-size`` / ``--mean`` / ``--std`` → load_for_inference overrides (only those given)."""
    def floats(text: str, flag: str) -> list[float]:
        try:
            return [float(v) for v in text.split(",") if v.strip()]
        except ValueError:
            raise ValueError(f"{flag} expects comma-separated numbers, e.g. 0.485,0.456,0.406; got {text!r}") from None
    geometry: dict = {}
    if img_size is not None:
        geometry["img_size"] = img_size
    if mean is not None:
        geometry["mean"] = floats(mean, "--mean")
    if std is not None:
        geometry["std"] = floats(std, "--std")
    return geometry


def _parse_set(pairs: list[str] | None, flag: str) -> dict:
    """``["k=v", ...]`` → ``{k: yaml(v)}`` (so numbers, booleans and lists get their types)."""
    values = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"{flag} expects KEY=VALUE, got {pair!r}")
        values[key.strip().replace("-", "_")] = yaml.safe_load(value)
    return values


@app.command()
def train(
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="YAML file of config keys."),
    preset: Optional[str] = typer.Option(None, help="A shipped preset (see `seethrough presets`)."),
    data: Optional[str] = typer.Option(None, help="KIND:PATH, e.g. cub:/data/CUB_200_2011, mnist:DIR, synthetic."),
    val_data: Optional[str] = typer.Option(None, help="Validation data if not the val split of --data."),
    data_opt: Optional[List[str]] = typer.Option(None, "--data-opt", help="Dataset option KEY=VALUE (repeatable), e.g. num_classes=25."),
    model: Optional[str] = typer.Option(None, help="Model name (see `seethrough models`)."),
    backbone: Optional[str] = typer.Option(None, help="Any timm model name, optionally with its pretrained tag: resnet50.tv_in1k (torchvision's weights); resnet50 alone: timm's default tag."),
    pretrained: Optional[bool] = typer.Option(None, "--pretrained/--no-pretrained", help="timm pretrained weights (which ones: --backbone NAME.TAG; the tag loaded goes into the model card)."),
    num_classes: Optional[int] = typer.Option(None, help="Checked against the data (read from it if omitted)."),
    in_chans: Optional[int] = typer.Option(None, help="1 for grayscale input, 3 for RGB."),
    freeze_layers: Optional[int] = typer.Option(None, help="Freeze the stem and the first K stages (SCOUTER)."),
    output_stride: Optional[int] = typer.Option(None, help="Backbone output stride (8/16/32) for larger maps."),
    stem: Optional[str] = typer.Option(None, help="'mnist': SCOUTER's Conv2d(1, 64, 3, 2, 1) ResNet stem (with --in-chans 1)."),
    use_pre: Optional[str] = typer.Option(None, help="Initialize the backbone from this FC-baseline run of the same data (SCOUTER's use_pre)."),
    attention_maps: Optional[str] = typer.Option(None, help="LVW: the base model's run/model dir (its Grad-CAM maps are computed once into the run) or a maps file from `seethrough prototypes attention-maps`."),
    push_data: Optional[str] = typer.Option(None, help="Prototype models: KIND:PATH whose train split the push reads (ProtoPNet: the unaugmented train_cropped while --data is train_cropped_augmented); default: --data."),
    init_from: Optional[str] = typer.Option(None, help="Start from every weight of this model dir of the same architecture (e.g. `seethrough convert detr ...` for INTR)."),
    model_opt: Optional[List[str]] = typer.Option(None, "--model-opt", help="Model option KEY=VALUE (repeatable)."),
    stage_opt: Optional[List[str]] = typer.Option(None, "--stage-opt", help="Multi-stage recipe option KEY=VALUE, e.g. push_every=10 (protopnet, lvw)."),
    img_size: Optional[int] = typer.Option(None, help="Square input size in pixels."),
    augment: Optional[str] = typer.Option(None, help="none | flip | crop-flip | scouter | detr (DETR multiscale, with --resize detr) | castream (resize, random resized crop, flip; as commit 9489e8d) | castream-jitter (the same + ColorJitter(0.4), as the repository's HEAD)."),
    resize: Optional[str] = typer.Option(None, help="square (resize to --img-size with torchvision) | pil-bilinear (the same with PIL's bilinear filter, as the originals: SCOUTER, ProtoPNet, LVW, CA-Stream) | detr (keep aspect: shorter side 800, max 1333; padded batches)."),
    resize_opt: Optional[List[str]] = typer.Option(None, "--resize-opt", help="DETR resize option KEY=VALUE, e.g. eval_size=512."),
    epochs: Optional[int] = typer.Option(None),
    batch_size: Optional[int] = typer.Option(None, help="Per-process batch size."),
    optimizer: Optional[str] = typer.Option(None, help="adamw | sgd."),
    lr: Optional[float] = typer.Option(None),
    lr_backbone: Optional[float] = typer.Option(None, help="Backbone learning rate (DETR/INTR); default: --lr."),
    weight_decay: Optional[float] = typer.Option(None),
    weight_decay_on: Optional[str] = typer.Option(None, help="weights (not biases and norms; default) | all (every parameter, as the originals and the paper presets)."),
    min_lr: Optional[float] = typer.Option(None, help="Floor of the cosine schedule (INTR's --min_lr 1e-6; default 0)."),
    scheduler: Optional[str] = typer.Option(None, help="step | multistep | cosine | none."),
    step_size: Optional[int] = typer.Option(None, help="StepLR period in epochs."),
    gamma: Optional[float] = typer.Option(None, help="LR decay factor of step schedules."),
    warmup_epochs: Optional[int] = typer.Option(None),
    clip_grad: Optional[float] = typer.Option(None, help="Max gradient norm."),
    seed: Optional[int] = typer.Option(None),
    workers: Optional[int] = typer.Option(None, help="DataLoader worker processes."),
    on_bad_image: Optional[str] = typer.Option(None, help="error | skip (skip logs and counts each file)."),
    accelerator: Optional[str] = typer.Option(None, help="auto | cpu | cuda | mps."),
    devices: Optional[str] = typer.Option(None, help="Devices per node (int or 'auto')."),
    num_nodes: Optional[int] = typer.Option(None),
    strategy: Optional[str] = typer.Option(None, help="auto | ddp | ... (Fabric strategies)."),
    precision: Optional[str] = typer.Option(None, help="32-true | 16-mixed | bf16-mixed."),
    out: Optional[str] = typer.Option(None, help="Run directory (checkpoints, logs, summary.json)."),
    resume: Optional[bool] = typer.Option(None, "--resume/--no-resume", help="Continue OUT/last.ckpt exactly."),
    select: Optional[str] = typer.Option(None, help="What OUT/best/ holds: best (highest val top-1) | last (last epoch; SCOUTER, INTR) | best-loss (lowest val loss; CA-Stream)."),
    checkpoint_every: Optional[int] = typer.Option(None, help="Also checkpoint every N steps (0: epoch ends only)."),
    max_batches: Optional[int] = typer.Option(None, help="Stop each epoch after N batches (smoke runs)."),
    progress: Optional[bool] = typer.Option(None, "--progress/--no-progress"),
    set_: Optional[List[str]] = typer.Option(None, "--set", help="Any config key KEY=VALUE (repeatable)."),
) -> None:
    """Train a model. Values: defaults < --preset < --config < flags."""
    flags = {k: v for k, v in locals().items()
             if k not in {"config", "preset", "data_opt", "model_opt", "stage_opt", "resize_opt", "set_"}}
    from .config import resolve_config
    from .engine import train as run_training

    try:
        if flags["devices"] is not None and flags["devices"].isdigit():
            flags["devices"] = int(flags["devices"])
        flags["data_options"] = _parse_set(data_opt, "--data-opt") or None
        flags["model_options"] = _parse_set(model_opt, "--model-opt") or None
        flags["stage_options"] = _parse_set(stage_opt, "--stage-opt") or None
        flags["resize_options"] = _parse_set(resize_opt, "--resize-opt") or None
        flags.update(_parse_set(set_, "--set"))
        cfg = resolve_config(preset=preset, config_file=config, overrides=flags)
    except (ValueError, FileNotFoundError) as err:
        _fail(err)
    try:
        summary = run_training(cfg)
    except (ValueError, FileNotFoundError) as err:
        _fail(err)
    if rank_zero_only.rank == 0:
        console.print(f"summary: {Path(cfg.out) / 'summary.json'}  (val acc1 {summary['val_acc1']:.4f})")


@app.command("eval")
def evaluate(
    checkpoint: str = typer.Argument(..., help="RUN (= RUN/best), RUN/last, a model dir, a last.ckpt or a Hub id."),
    data: str = typer.Option(..., help="KIND:PATH of the data to score."),
    split: str = typer.Option("val", help="train | val."),
    data_opt: Optional[List[str]] = typer.Option(None, "--data-opt", help="Dataset option KEY=VALUE."),
    batch_size: int = typer.Option(64),
    workers: int = typer.Option(2),
    accelerator: str = typer.Option("auto"),
    on_bad_image: str = typer.Option("error"),
    out: Optional[Path] = typer.Option(None, help="Write the result as JSON here."),
    predictions: Optional[Path] = typer.Option(None, help="Also write one CSV row per sample (sample_id, label, pred, pred_name, prob, top5, top5_prob)."),
    img_size: Optional[int] = typer.Option(None, help=_IMG_SIZE_HELP),
    mean: Optional[str] = typer.Option(None, help=_MEAN_HELP),
    std: Optional[str] = typer.Option(None, help=_STD_HELP),
) -> None:
    """Accuracy (top-1, top-5, loss) of a trained model on a dataset split."""
    from .evaluation import evaluate_checkpoint

    try:
        result = evaluate_checkpoint(checkpoint, data, split=split, data_options=_parse_set(data_opt, "--data-opt"),
                                     batch_size=batch_size, workers=workers, accelerator=accelerator,
                                     on_bad_image=on_bad_image, predictions=predictions,
                                     **_geometry(img_size, mean, std))
    except (ValueError, FileNotFoundError) as err:
        _fail(err)
    console.print_json(json.dumps(result))
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2))


@app.command()
def explain(
    checkpoint: str = typer.Argument(..., help="Run dir, model dir, last.ckpt or Hub id."),
    images: List[Path] = typer.Argument(..., help="Image files."),
    out: Path = typer.Option(Path("explanations"), help="Output folder for PNGs and explanations.json."),
    policy: str = typer.Option("pred", help="gt | pred | least | topk | explicit: which classes to show."),
    k: Optional[int] = typer.Option(None, help="How many classes for pred/least/topk (3), with --heads the true class + look-alikes (5: INTR's tools/visualization.py top_q), with --prototypes how many prototypes (3)."),
    classes: Optional[str] = typer.Option(None, help="Explicit class indices, e.g. 0,3,7 (policy explicit)."),
    label: Optional[List[int]] = typer.Option(None, help="Ground-truth label per image (policy gt)."),
    normalization: str = typer.Option("joint", help="joint (over all classes, official) | per-class."),
    alpha: float = typer.Option(0.4, help="Overlay opacity."),
    cmap: str = typer.Option("jet", help="Matplotlib colormap."),
    method: str = typer.Option("native", help="native (the model's own maps) or a post-hoc method: gradcam, scorecam, rise, ... (see `seethrough explainers`)."),
    method_opt: Optional[List[str]] = typer.Option(None, "--method-opt", help="Explainer option KEY=VALUE, e.g. target_layer=backbone."),
    heads: bool = typer.Option(False, "--heads", help="Per-head strips (INTR): the --label class's query first, then its look-alikes up to --k."),
    layer: int = typer.Option(-1, help="Decoder layer for --heads (-1: the last)."),
    prototypes: bool = typer.Option(False, "--prototypes", help="'This looks like that' (protopnet, lvw): the --k most activated prototypes next to their source patches from the gallery."),
    img_size: Optional[int] = typer.Option(None, help=_IMG_SIZE_HELP),
    mean: Optional[str] = typer.Option(None, help=_MEAN_HELP),
    std: Optional[str] = typer.Option(None, help=_STD_HELP),
) -> None:
    """Overlay each image with evidence maps for the chosen classes (the model's own, or post-hoc)."""
    from .explanations.files import explain_files

    try:
        k = k if k is not None else (HEADS_DEFAULT_K if heads else EXPLAIN_DEFAULT_K)
        geometry = _geometry(img_size, mean, std)
        indices = [int(c) for c in classes.split(",")] if classes else None
        if indices is not None and policy == "pred":
            policy = "explicit"
        if prototypes:
            from .explanations.files import explain_files_prototypes

            paths = explain_files_prototypes(checkpoint, images, out, k=k, geometry=geometry)
            console.print(f"wrote {len(paths)} files to {out}/")
            return
        if heads:
            from .explanations.files import explain_files_heads

            paths = explain_files_heads(checkpoint, images, out, k=k, labels=label, layer=layer, geometry=geometry)
            console.print(f"wrote {len(paths)} files to {out}/")
            return
        paths = explain_files(checkpoint, images, out, policy=policy, k=k, indices=indices, labels=label,
                              normalization=normalization, alpha=alpha, cmap=cmap, method=method,
                              method_options=_parse_set(method_opt, "--method-opt"), geometry=geometry)
    except (ValueError, FileNotFoundError) as err:
        _fail(err)
    console.print(f"wrote {len(paths)} files to {out}/")


@app.command()
def demo(
    out: Path = typer.Option(Path("seethrough-demo"), help="Where pictures and summary.json go."),
    epochs: Optional[int] = typer.Option(None, help="Override the demo's epoch count."),
    backbone: Optional[str] = typer.Option(None, help="Override the demo's backbone (any timm name)."),
    samples: Optional[int] = typer.Option(None, help="Synthetic images per split (default: the generator's)."),
    accelerator: str = typer.Option("auto"),
) -> None:
    """Train on the built-in synthetic data, then write explanation pictures and a summary."""
    from .demo import run_demo

    try:
        summary = run_demo(out, epochs=epochs, backbone=backbone, samples=samples, accelerator=accelerator)
    except (ValueError, FileNotFoundError) as err:
        _fail(err)
    for name, result in summary["models"].items():
        console.print(f"[bold]{name}[/]: val acc {result['val_acc1']:.3f}, map mass on the evidence "
                      f"{result['evidence_mass']:.3f} (uniform map: {result['evidence_mass_uniform']:.3f}; "
                      f"class explained: {result['explained_class']})")
        for variant, other in result.items():
            if isinstance(other, dict) and "evidence_mass" in other:
                console.print(f"  {name} \\[{variant}], same weights: val acc {other['val_acc1']:.3f}, map mass on the "
                              f"evidence {other['evidence_mass']:.3f}")
    console.print(f"pictures in {out}/, numbers in {out / 'summary.json'}")


@app.command()
def convert(
    kind: str = typer.Argument(..., help="Which original wrote the checkpoint, e.g. scouter."),
    checkpoint: Path = typer.Argument(..., help="The original's checkpoint file."),
    out: Path = typer.Option(..., help="Directory for config.json + model.safetensors + README.md."),
    opt: Optional[List[str]] = typer.Option(None, "--opt", help="KEY=VALUE the checkpoint does not record, e.g. backbone=resnest50d."),
) -> None:
    """Convert an original implementation's checkpoint into a seethrough model directory."""
    from .models.official import from_official

    try:
        model = from_official(kind, checkpoint, **_parse_set(opt, "--opt"))
    except (ValueError, FileNotFoundError, TypeError) as err:
        _fail(err)
    from .models.official_geometry import original_geometry

    geometry = original_geometry(kind, model)   # the original's evaluation input (size, resize, mean/std)
    model.save_pretrained(out, converted_from=f"{kind}:{checkpoint}", **geometry)
    console.print(f"wrote {out}/ ({model.config['name']}, backbone {model.config['backbone']}, "
                  f"{model.config['num_classes']} classes; evaluated as the original: "
                  f"{json.dumps(geometry) if geometry else 'no recorded geometry'})")


@app.command("evaluate")
def evaluate_explanations(
    models: List[str] = typer.Argument(..., help="Models: run dirs, model dirs, last.ckpt files or Hub ids."),
    data: Optional[str] = typer.Option(None, help="KIND:PATH (default: the data each run was trained on)."),
    split: str = typer.Option("val", help="train | val."),
    data_opt: Optional[List[str]] = typer.Option(None, "--data-opt", help="Dataset option KEY=VALUE."),
    protocol: str = typer.Option("default", help="Protocol preset (see `seethrough protocols`) or YAML file."),
    explainers: Optional[str] = typer.Option(None, help="Comma list, e.g. native,gradcam,scorecam (see `seethrough explainers`)."),
    metrics: Optional[str] = typer.Option(None, help="Comma list, e.g. insertion,deletion,pointing_game; "
                                          "'all' = every registered metric."),
    targets: Optional[str] = typer.Option(None, help="Explained class: gt | pred | least | next | FILE.json "
                                          "(label → class map, ReScience's lsc_label_id.json format)."),
    negative_targets: Optional[str] = typer.Option(None, "--negative-targets",
                                                   help="Explained class of negative (sign -1) models: same "
                                                        "choices as --targets."),
    set_: Optional[List[str]] = typer.Option(None, "--set", help="metric.param=VALUE or explainer.option=VALUE (repeatable)."),
    label: Optional[List[str]] = typer.Option(None, "--label", help="Display name per model (repeat, in order)."),
    limit: Optional[int] = typer.Option(None, help="Evaluate the first N samples only."),
    batch_size: int = typer.Option(16),
    workers: int = typer.Option(0),
    accelerator: str = typer.Option("auto"),
    on_bad_image: str = typer.Option("skip", help="error | skip (skipped files are counted in the report)."),
    out: Path = typer.Option(Path("evaluation"), help="Folder for results.json, samples.csv, report.html, figures/."),
    progress: bool = typer.Option(True, "--progress/--no-progress"),
    img_size: Optional[int] = typer.Option(None, help=_IMG_SIZE_HELP),
    mean: Optional[str] = typer.Option(None, help=_MEAN_HELP),
    std: Optional[str] = typer.Option(None, help=_STD_HELP),
) -> None:
    """Evaluate explanations: every model x explainer x metric, with a JSON/CSV/HTML report."""
    from .protocol import load_protocol
    from .suite import evaluate

    try:
        chosen = load_protocol(protocol, explainers=_comma(explainers), metrics=_comma(metrics),
                               overrides=set_, targets=targets, negative_targets=negative_targets)
        summary = evaluate(models, data=data, split=split, data_options=_parse_set(data_opt, "--data-opt"),
                           protocol=chosen, out=out, limit=limit, batch_size=batch_size, workers=workers,
                           accelerator=accelerator, on_bad_image=on_bad_image, labels=label or None,
                           progress=progress, geometry=_geometry(img_size, mean, std))
    except (ValueError, FileNotFoundError, TypeError) as err:
        _fail(err)
    _print_summary(summary)
    rank_zero_only(console.print)(f"report: {out / 'report.html'}  results: {out / 'results.json'}")


def _comma(text: str | None) -> list[str] | None:
    return None if text is None else [part.strip() for part in text.split(",") if part.strip()]


@rank_zero_only
def _print_summary(summary: dict) -> None:
    """One table per model: a row per metric, a column per explainer (mean ± std, NaN count)."""
    from rich.table import Table

    for label, model in summary["models"].items():
        explainers = list(model["explainers"])
        names: list[str] = []
        for metrics in model["explainers"].values():
            names += [name for name in metrics if name not in names]
        table = Table(title=f"{label}: explained class {model['data']['explained_class']}, "
                            f"top-1 {model['accuracy']['top1']:.3f}, {model['data']['evaluated']} samples")
        table.add_column("metric")
        for explainer in explainers:
            table.add_column(explainer, justify="right")
        for name in names:
            cells = []
            for explainer in explainers:
                entry = model["explainers"][explainer].get(name)
                if entry is None or entry["mean"] is None:
                    cells.append("—")
                    continue
                std = "" if entry["std"] is None else f" ± {entry['std']:.3g}"
                cells.append(f"{entry['mean']:.4g}{std}" + (f" [NaN {entry['nan_count']}]" if entry["nan_count"] else ""))
            table.add_row(name, *cells)
        console.print(table)


@app.command()
def protocols() -> None:
    """List the evaluation protocol presets (use with `seethrough evaluate --protocol NAME`)."""
    from .protocol import list_protocols, load_protocol

    for name in list_protocols():
        console.print(f"[bold]{name}[/]  {load_protocol(name).description}")


@app.command()
def explainers() -> None:
    """List the explanation methods accepted by `seethrough evaluate --explainers`."""
    from .explanations.api import list_explainers

    for name in list_explainers():
        console.print(name)


@app.command()
def presets() -> None:
    """List the shipped presets (use with `seethrough train --preset NAME`)."""
    from .config import list_presets, preset_description

    for name in list_presets():
        console.print(f"[bold]{name}[/]  {preset_description(name)}")


@app.command()
def models() -> None:
    """List the model names accepted by --model."""
    from .models import list_models

    for name in list_models():
        console.print(name)


@data_app.command("imagenet-val")
def imagenet_val(
    root: Path = typer.Argument(..., help="ImageNet CLS-LOC root (with val/) or the flat val folder."),
    csv: Optional[Path] = typer.Option(None, help="LOC_val_solution.csv (default: in the CLS-LOC root)."),
    out: Optional[Path] = typer.Option(None, help="Destination (default: <CLS-LOC root>/val_by_synset)."),
    method: str = typer.Option("symlink", help="symlink | hardlink | copy (originals are never moved)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Report what would be done, change nothing."),
) -> None:
    """Regroup flat ImageNet val images into synset folders, without touching the originals."""
    from .data.imagenet_val import regroup_val

    base = root if (root / "val").is_dir() else root.parent  # ROOT may be the flat val folder itself
    out = out or base / "val_by_synset"
    try:
        report = regroup_val(root, csv or base / "LOC_val_solution.csv", out, method=method, dry_run=dry_run)
    except (ValueError, FileNotFoundError, OSError) as err:
        _fail(err)
    console.print(report["summary"])
    if not dry_run:
        console.print(f"train with: --data imagenet:{base} --data-opt val_dir={out}")


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    app()


if __name__ == "__main__":
    main()


def _register_subcommands() -> None:
    from .cli_prototypes import prototypes_app

    app.add_typer(prototypes_app, name="prototypes")


_register_subcommands()
