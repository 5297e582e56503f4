#!/usr/bin/env python
"""ProtoPNet (and LVW) vs the FC baseline: joint-stage train-step throughput and forward cost (issue #7).

The issue asks for "joint-stage throughput vs the FC baseline on the same backbone". For every
class count C of ``--classes`` (default 37: Oxford-IIIT Pet, LVW's dataset; 200: CUB, ProtoPNet's)
the script builds, on the same timm backbone (``--backbone``, default resnet34: ProtoPNet's
79.2 % CUB row and LVW's backbone):

  fc         ``seethrough.create_model("fc", ...)``: backbone → GAP → Linear (+ its CAM maps);
             every parameter trains, the backbone in training mode;
  protopnet  ``seethrough.create_model("protopnet", ...)`` as the protopnet preset: 10
             prototypes per class of ``--prototype-dim`` (128) channels, ``--add-on``
             ``regular``, log similarity; the **joint stage** of ProtoPNet's recipe
             (``seethrough.engine.stages.PrototypeRecipe.set_trainable(model, "joint")``: backbone,
             add-on and prototypes train, the last layer does not) with that stage's optimizer
             (``PrototypeRecipe.build_optimizers(model)["joint"]``: Adam, backbone lr 1e-4, add-on and
             prototypes 3e-3, weight decay 1e-3 on backbone and add-on); loss
             ``model.compute_loss(out, labels)`` = CE + 0.8 Clst − 0.08 Sep + 1e-4 L1;
  lvw        ``seethrough.create_model("lvw", ...)`` (5 shared words per class, the same
             add-on), the same joint stage and optimizer; loss CE + 0.8 Clst (class-agnostic)
             + 1e-4 L1 + 10 MSE(top-10 word map, Grad-CAM target), the target a fixed random
             B×H×W map in [0, 1) passed as ``batch={"attention_map": ...}`` (the base model's
             Grad-CAM in a real run; its values do not change the cost).

``--models`` picks protopnet and/or lvw (default both). FC's optimizer (``--fc-optimizer``) is
by default Adam with ProtoPNet's joint rates (backbone lr 1e-4, the classifier 3e-3 like the
prototype head's new layers, weight decay 1e-3 on both), so the models differ in their head
and loss only; ``adamw`` gives the engine's AdamW (lr 1e-4, decay 0.01).

Every model starts from the same backbone weights (the prototype models copy FC's, checked)
and trains on **the same fixed in-memory batch** (``B×3×H×W``, labels ``arange(B) % C``; no
data loading). One train step = forward, ``compute_loss``, ``zero_grad``, backward, optimizer
step. The **forward pass alone** (``--parts forward``) runs each model in eval mode under
``torch.no_grad()`` with its full output (FC's CAM maps; the prototype models' distance and
similarity maps and class maps), after the backbone weights (and BatchNorm statistics) of all
models were reset to the common initial ones.

Timing (``_timing.interleaved_rounds``): ``--warmup`` untimed steps per model, then
``--repeats`` rounds each timing ``--steps`` (forward: ``--forward-steps``) steps of every
model, class counts and models rotated from round to round (the models of one C back to back),
CUDA synchronized around every timed block. The ratio model/fc of images/s is the **median of
the per-round ratios** over the rounds whose two blocks had cpu use (process CPU s / wall s /
threads) >= ``--clean-cpu-use`` (CPU only; all rounds when fewer than 3 are clean). Peak
memory of one model's train steps in a fresh process at ``--memory-classes`` (default the
largest C; none: skip): CPU peak RSS (VmHWM reset after the imports), CUDA
``max_memory_allocated``.

Examples (2 shared vCPUs, 1 thread)::

    python benchmarks/prototype_throughput.py --backbone resnet34 --img-size 224 --batch-size 4 \\
        --classes 200 --steps 1 --warmup 1 --repeats 3 --threads 1
    python benchmarks/prototype_throughput.py --device cuda --batch-size 80 --classes 37 200 \\
        --steps 5 --forward-steps 20 --warmup 3 --repeats 9
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

import seethrough
from seethrough.engine.stages import PROTOTYPE_STAGE_DEFAULTS, PrototypeRecipe

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import (  # noqa: E402  (shared with the other side-by-side benchmarks)
    TrainStep,
    add_memory_args,
    add_model_args,
    add_report_args,
    add_timing_args,
    backbone_check,
    build_models,
    drop_values,
    finish_args,
    forward_rows,
    machine,
    make_batch,
    measure_forward_passes,
    measure_train_steps,
    paired_ratio,
    print_memory_table,
    print_throughput_table,
    probe_all,
    probe_train_memory,
    result_rows,
    setup_torch,
    write_json,
)

REFERENCE, PROTOTYPE_MODELS = "fc", ("protopnet", "lvw")
PARTS = ("train", "forward")
#: The stage every prototype model trains in here (ProtoPNet's joint stage, LVW's from epoch 10).
STAGE = "joint"
#: ``PrototypeRecipe(epochs)``: only its parameter groups are used here, not its epoch plan.
RECIPE_EPOCHS = 1
#: The protopnet preset's head (src/seethrough/presets/protopnet.yaml, LVW's lvw.yaml alike).
PROTOTYPE_DIM, ADD_ON, ACTIVATION = 128, "regular", "log"
#: Seed of the LVW step's stand-in Grad-CAM target.
ATTENTION_SEED = 1


# --------------------------------------------------------------------------- arguments
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_args(p, classes=[37, 200])
    p.set_defaults(backbone="resnet34", batch_size=8)  # ProtoPNet's ResNet-34 row, LVW's backbone
    p.add_argument("--models", choices=PROTOTYPE_MODELS, nargs="+", default=list(PROTOTYPE_MODELS),
                   help="prototype models timed next to fc (default: both)")
    p.add_argument("--prototype-dim", type=int, default=PROTOTYPE_DIM, help="prototype channels D")
    p.add_argument("--add-on", choices=("regular", "bottleneck"), default=ADD_ON,
                   help="add-on layers of the prototype models (the presets' regular)")
    p.add_argument("--fc-optimizer", choices=("adam", "adamw"), default="adam",
                   help="adam: ProtoPNet's joint rates (backbone 1e-4, classifier 3e-3, wd 1e-3); adamw: the "
                        "engine's (lr 1e-4, wd 0.01)")
    p.add_argument("--parts", choices=PARTS, nargs="+", default=list(PARTS),
                   help="what to measure: joint-stage train steps and/or the forward pass alone")
    add_timing_args(p)
    p.set_defaults(repeats=5)
    p.add_argument("--forward-steps", type=int, default=None,
                   help="timed forward passes per model per round (default: --steps)")
    add_memory_args(p)
    add_report_args(p)
    args = finish_args(p, p.parse_args(argv))
    if args.forward_steps is None:
        args.forward_steps = args.steps
    for flag, value in (("--steps", args.steps), ("--forward-steps", args.forward_steps),
                        ("--repeats", args.repeats), ("--batch-size", args.batch_size),
                        ("--prototype-dim", args.prototype_dim)):
        if value < 1:
            p.error(f"{flag} must be at least 1, got {value}")
    if args.warmup < 0:
        p.error(f"--warmup must be >= 0, got {args.warmup}")
    args.models = [m for m in PROTOTYPE_MODELS if m in args.models]
    args.parts = [part for part in PARTS if part in args.parts]
    return args


def names_of(args: argparse.Namespace) -> tuple[str, ...]:
    """The reference first (``build_models`` copies its backbone into the others)."""
    return (REFERENCE, *args.models)


def describe(name: str, args: argparse.Namespace) -> str:
    o = PROTOTYPE_STAGE_DEFAULTS
    if name == REFERENCE:
        opt = (f"Adam backbone lr {o['joint_lr_backbone']} / classifier {o['joint_lr_add_on']}, "
               f"wd {o['joint_wd_backbone']}" if args.fc_optimizer == "adam" else "AdamW (engine defaults)")
        return f"FC baseline (GAP → Linear, CAM), every parameter trains; {opt}"
    head = (f"{args.add_on} add-on, D {args.prototype_dim}, "
            + ("10 class-specific prototypes per class; CE + Clst + Sep + L1" if name == "protopnet"
               else "5 shared words per class; CE + Clst + L1 + alignment to a random attention_map"))
    return (f"{name} joint stage ({head}); Adam backbone lr {o['joint_lr_backbone']}, add-on / prototypes "
            f"{o['joint_lr_add_on']}, last layer frozen")


# --------------------------------------------------------------------------- models
class PrototypeStep(TrainStep):
    """A prototype model in the joint stage with the recipe's joint optimizer; the step passes
    ``loss_batch`` (LVW's ``attention_map``) to ``compute_loss`` and keeps the last loss terms."""

    def __init__(self, name: str, num_classes: int, model: torch.nn.Module, device: torch.device, *,
                 precision: str, backbone_state: dict | None, loss_batch: dict | None) -> None:
        super().__init__(name, num_classes, model, device, precision=precision, backbone_state=backbone_state)
        recipe = PrototypeRecipe(RECIPE_EPOCHS)
        recipe.set_trainable(self.model, STAGE)
        self.optimizer = recipe.build_optimizers(self.model)[STAGE]
        self.loss_batch = loss_batch
        self.last_terms: dict[str, torch.Tensor] = {}

    def step(self, image: torch.Tensor, label: torch.Tensor) -> None:
        with self._ctx():
            terms = self.model.compute_loss(self.model(image), label, batch=self.loss_batch)
        self.optimizer.zero_grad(set_to_none=True)
        terms["loss"].backward()
        self.optimizer.step()
        self.last_loss = terms["loss"].detach()
        self.last_terms = {k: v.detach() for k, v in terms.items()}


def fc_adam(model: torch.nn.Module) -> torch.optim.Optimizer:
    """Adam with ProtoPNet's joint rates: backbone as ProtoPNet's, the classifier as its new head layers."""
    o = PROTOTYPE_STAGE_DEFAULTS
    return torch.optim.Adam([
        {"params": list(model.backbone.parameters()), "lr": o["joint_lr_backbone"],
         "weight_decay": o["joint_wd_backbone"]},
        {"params": list(model.fc.parameters()), "lr": o["joint_lr_add_on"], "weight_decay": o["joint_wd_add_on"]},
    ])


def attention_target(args: argparse.Namespace, device: torch.device) -> dict:
    """LVW's alignment target in the batch: a fixed random B×H×W map in [0, 1)."""
    g = torch.Generator().manual_seed(ATTENTION_SEED)
    target = torch.rand(args.batch_size, args.img_size, args.img_size, generator=g).to(device)
    return {"attention_map": target}


def build(name: str, num_classes: int, args: argparse.Namespace, device: torch.device,
          backbone_state: dict | None = None) -> TrainStep:
    """FC, ProtoPNet or LVW at ``num_classes`` (seed 0), with its optimizer."""
    torch.manual_seed(0)
    common = dict(num_classes=num_classes, backbone=args.backbone, output_stride=args.output_stride)
    if name == REFERENCE:
        model = seethrough.create_model("fc", **common)
        step = TrainStep(name, num_classes, model, device, precision=args.precision, backbone_state=backbone_state)
        if args.fc_optimizer == "adam":
            step.optimizer = fc_adam(step.model)
        return step
    if name not in PROTOTYPE_MODELS:
        raise ValueError(f"unknown model {name!r}; this script knows {REFERENCE}, {', '.join(PROTOTYPE_MODELS)}")
    model = seethrough.create_model(name, **common, prototype_dim=args.prototype_dim, add_on=args.add_on,
                                    activation=ACTIVATION)
    loss_batch = attention_target(args, device) if name == "lvw" else None
    return PrototypeStep(name, num_classes, model, device, precision=args.precision, backbone_state=backbone_state,
                         loss_batch=loss_batch)


def trainable(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def stage_check(models: dict) -> str:
    """After the timed steps: every prototype model's backbone, add-on and prototypes got a
    gradient and its last layer none (the joint stage), and the model is in training mode."""
    problems = []
    for (c, name), m in models.items():
        if name == REFERENCE:
            continue
        model = m.model
        trained = [("backbone", list(model.backbone.parameters())), ("add-on", list(model.add_on.parameters())),
                   ("prototypes", [model.prototypes])]
        for part, params in trained:
            if any(p.grad is None for p in params if p.dtype.is_floating_point):
                problems.append(f"C={c} {name}: a {part} parameter got no gradient")
        if model.last_layer.weight.requires_grad or model.last_layer.weight.grad is not None:
            problems.append(f"C={c} {name}: the last layer trains")
        if not model.training or model.stage != STAGE:
            problems.append(f"C={c} {name}: not in training mode / stage {model.stage!r}")
    return "NO: " + "; ".join(problems) if problems else \
        "yes (backbone, add-on, prototypes get gradients; last layer frozen)"


# --------------------------------------------------------------------------- measurements
def ratios_to_fc(per_round, cpu_use, args, names) -> dict:
    """model/fc images/s per class count (``_timing.paired_ratio``), no pass/fail target."""
    out = {}
    for c in args.classes:
        for name in names[1:]:
            q = paired_ratio(per_round, cpu_use, (c, name), (c, REFERENCE), repeats=args.repeats,
                             clean_cpu_use=args.clean_cpu_use, on_cpu=args.device == "cpu")
            out[f"{c}:{name}"] = {"classes": c, "model": name, **q}
    return out


def measure(args, device, image, labels, argv: list[str]) -> dict:
    names = names_of(args)
    models = build_models(args, device, names, build)
    summary = {"backbone_check": backbone_check(models)}
    reference = models[(args.classes[0], REFERENCE)].model.backbone
    initial = {k: v.detach().clone() for k, v in reference.state_dict().items()}
    if "train" in args.parts:
        per_round, cpu_use = measure_train_steps(args, device, image, labels, models, names)
        probe_argv = drop_values(argv, ("--json",))
        mem = probe_all(__file__, args, probe_argv, names) if args.memory_classes else {}
        rows = result_rows(per_round, cpu_use, models, mem, lambda name: describe(name, args))
        for (c, name), m in models.items():
            rows[f"{c}:{name}"]["parameters"]["trainable"] = trainable(m.model)
            terms = getattr(m, "last_terms", {})
            rows[f"{c}:{name}"]["last_loss_terms"] = {k: float(v) for k, v in terms.items()}
        summary["train"] = {"stage_check": stage_check(models), "results": rows,
                            "ratios": ratios_to_fc(per_round, cpu_use, args, names)}
    if "forward" in args.parts:
        for m in models.values():
            m.model.backbone.load_state_dict(initial, strict=True)
        per_round, cpu_use = measure_forward_passes(args, device, image, models, names, args.forward_steps)
        summary["forward"] = {"results": forward_rows(per_round, cpu_use, lambda name: describe(name, args)),
                              "ratios": ratios_to_fc(per_round, cpu_use, args, names)}
    return summary


# --------------------------------------------------------------------------- report
def print_report(summary: dict) -> None:
    c, m, r = summary["config"], summary["machine"], summary["measured"]
    names = names_of(argparse.Namespace(**c))
    print(f"\n{c['backbone']} {c['img_size']}px batch {c['batch_size']}, output stride {c['output_stride']}, "
          f"{c['device']} {c['precision']}, {m['torch_threads']} threads; {c['repeats']} interleaved rounds "
          f"(+{c['warmup']} warm-up); same in-memory batch, no data loading; same backbone weights in all "
          f"models: {r['backbone_check']}")
    print(f"  machine: {m['cpu_model']}, {m['nproc']} CPUs ({m['affinity']} usable), load average at start "
          f"{' '.join(f'{x:.2f}' for x in m['loadavg'])}; torch {m['torch']}, timm {m['timm']}")
    ns = argparse.Namespace(**c)
    for name in names:
        print(f"  {name:<10} {describe(name, ns)}")
    if "train" in r:
        t = r["train"]
        print(f"\njoint-stage train steps ({c['steps']} per block); joint stage as set: {t['stage_check']}")
        print_throughput_table({"config": c, **t}, names)
        for key, row in t["results"].items():
            n = row["parameters"]
            terms = ", ".join(f"{k} {v:.4g}" for k, v in row["last_loss_terms"].items())
            print(f"  {key:<14} img/s min-max {row['images_per_s_min']:.2f}-{row['images_per_s_max']:.2f}; "
                  f"{n['trainable']:,} of {n['total']:,} parameters train" + (f"; last loss: {terms}" if terms else ""))
        print_memory_table({"config": c, **t})
    if "forward" in r:
        f = r["forward"]
        print(f"\nforward pass alone ({c['forward_steps']} per block): eval mode, torch.no_grad(), full output "
              "(maps included), backbones reset to the common initial weights")
        print_throughput_table({"config": c, **f}, names)
        for key, row in f["results"].items():
            print(f"  {key:<14} img/s min-max {row['images_per_s_min']:.2f}-{row['images_per_s_max']:.2f}")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if args.probe:
        probe_train_memory(args, build)
        return 0
    device = setup_torch(args)
    info = machine()
    image, labels = make_batch(args, device)
    config = {k: v for k, v in vars(args).items() if k not in ("json", "probe")}
    summary = {"config": config, "machine": info, "measured": measure(args, device, image, labels, argv)}
    print_report(summary)
    write_json(args.json, summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
