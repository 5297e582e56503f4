"""``seethrough train``."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer
from lightning.fabric.utilities.rank_zero import rank_zero_only

from ._common import app, console, fail, parse_set


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
    from ..config import resolve_config
    from ..engine import train as run_training

    try:
        if flags["devices"] is not None and flags["devices"].isdigit():
            flags["devices"] = int(flags["devices"])
        flags["data_options"] = parse_set(data_opt, "--data-opt") or None
        flags["model_options"] = parse_set(model_opt, "--model-opt") or None
        flags["stage_options"] = parse_set(stage_opt, "--stage-opt") or None
        flags["resize_options"] = parse_set(resize_opt, "--resize-opt") or None
        flags.update(parse_set(set_, "--set"))
        cfg = resolve_config(preset=preset, config_file=config, overrides=flags)
    except (ValueError, FileNotFoundError) as err:
        fail(err)
    try:
        summary = run_training(cfg)
    except (ValueError, FileNotFoundError) as err:
        fail(err)
    if getattr(rank_zero_only, "rank", 0) == 0:
        console.print(f"summary: {Path(cfg.out) / 'summary.json'}  (val acc1 {summary['val_acc1']:.4f})")
