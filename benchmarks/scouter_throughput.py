#!/usr/bin/env python
"""SCOUTER vs the FC baseline: train-step throughput and peak memory, side by side (issue #3).

The issue: "Train-step throughput ratio SCOUTER / FC baseline on the same backbone and batch,
at 10, 100 and 1000 classes (target: >= 0.9 at 100 classes); peak memory at 1000 classes."

For every class count C of ``--classes`` the script builds, on the same timm backbone:

  fc          ``seethrough.create_model("fc", ...)``: backbone → GAP → Linear (+ the CAM maps
              the head always computes), loss = its ``compute_loss`` (cross-entropy);
  scouter-kN  ``seethrough.create_model("scouter", ..., to_k_layer=N)`` for each N of
              ``--to-k-layers`` (default 1, SCOUTER's default, and 3, its ImageNet recipe),
              with ``--hidden-dim`` (64), ``--slots-per-class`` (1), ``--iters`` (3); loss = its
              own ``compute_loss`` (NLL + the area term λ·mean(A)^power).

All models of a run share one backbone initialization (seed 0; SCOUTER's backbone weights
are copied from the FC model's) and train on **the same fixed in-memory batch** (one random
``B×3×H×W`` tensor created once, already on the device; labels ``arange(B) % C``), so data
loading is excluded. One timed step = forward, ``compute_loss``, ``zero_grad``, backward,
AdamW step (lr 1e-4, weight decay 0.01, the engine's defaults; ``--precision bf16-mixed``
wraps forward and loss in ``torch.autocast``).

Timing is interleaved (see ``_timing.py``): ``--warmup`` untimed steps per model, then
``--repeats`` rounds; each round times ``--steps`` steps of every model. Within a round the
class counts are visited in rotated order and, within a class count, the models too, so
SCOUTER and FC of the same C always run back to back. The ratio SCOUTER/FC at C is the
**median of the per-round ratios**; on CPU a round counts for C when the cpu use (process
CPU s / wall s / threads) of both blocks was >= ``--clean-cpu-use``; with at least 3 such
rounds only those are used (selection by CPU use, never by ratio). Target: ratio >= 0.9 at
``--target-classes`` (100).

Peak memory (``--memory-classes``, default the largest C) is measured per model in a fresh
subprocess (same imports, same batch, ``--warmup + --memory-steps`` steps): CPU peak RSS
(Linux ``VmHWM`` reset after the imports; "+" = above the RSS at the reset: weights,
gradients, AdamW state, activations), and ``torch.cuda.max_memory_allocated`` on CUDA.

``--profile N`` then profiles N steps of every model at ``--profile-classes`` (default the
target class count) with torch.profiler, and times the head alone (``head_forward`` +
``compute_loss`` + backward on a fixed feature map, no optimizer) against the whole step,
so the head's share of a step is visible; the head's ops are printed grouped by input
shape (which tells the xSlot's K×N einsums from the GRU over B·K rows).

Example (5.5 minutes on 2 shared vCPUs, 1 thread; resnet50 with ``--repeats 5``: 7.5 minutes)::

    python benchmarks/scouter_throughput.py --backbone resnet18 --img-size 224 --batch-size 16 \\
        --output-stride 32 --classes 10 100 1000 --steps 1 --warmup 1 --repeats 9 --threads 1 \\
        --profile 2 --profile-classes 1000
"""
from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import torch

import seethrough

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
    make_batch,
    machine,
    measure_train_steps,
    paired_ratio,
    print_memory_table,
    print_throughput_table,
    probe_all,
    probe_train_memory,
    result_rows,
    setup_torch,
    sync,
    timed,
    write_json,
)

TARGET, TARGET_CLASSES = 0.9, 100
REFERENCE = "fc"


# --------------------------------------------------------------------------- arguments
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_args(p, classes=[10, 100, 1000])
    p.add_argument("--to-k-layers", type=int, nargs="+", default=[1, 3],
                   help="one SCOUTER model per value (1: SCOUTER's default, 3: its ImageNet recipe)")
    p.add_argument("--hidden-dim", type=int, default=64)
    p.add_argument("--slots-per-class", type=int, default=1)
    p.add_argument("--iters", type=int, default=3)
    add_timing_args(p)
    p.add_argument("--target", type=float, default=TARGET, help="ratio SCOUTER/FC to reach")
    p.add_argument("--target-classes", type=int, default=TARGET_CLASSES, help="class count the target is for")
    add_memory_args(p)
    p.add_argument("--profile", type=int, default=0, metavar="N",
                   help="after timing, profile N steps of every model at --profile-classes")
    p.add_argument("--profile-classes", type=int, default=None, help="default: --target-classes (or the nearest C)")
    add_report_args(p)
    args = finish_args(p, p.parse_args(argv))
    if args.profile_classes is None:
        args.profile_classes = min(args.classes, key=lambda c: abs(c - args.target_classes))
    return args


def model_names(args: argparse.Namespace) -> list[str]:
    return [REFERENCE] + [f"scouter-k{k}" for k in dict.fromkeys(args.to_k_layers)]


def describe(name: str, args: argparse.Namespace) -> str:
    if name == REFERENCE:
        return "FC baseline (GAP → Linear, CAM)"
    return (f"SCOUTER to_k_layer {name.split('-k')[1]} (d {args.hidden_dim}, {args.slots_per_class} slot/class, "
            f"{args.iters} iters)")


# --------------------------------------------------------------------------- models
def build(name: str, num_classes: int, args: argparse.Namespace, device: torch.device,
          backbone_state: dict | None = None) -> TrainStep:
    """FC or SCOUTER-kN at ``num_classes`` (seed 0), with its optimizer."""
    common = dict(num_classes=num_classes, backbone=args.backbone, output_stride=args.output_stride)
    torch.manual_seed(0)
    if name == REFERENCE:
        model = seethrough.create_model("fc", **common)
    else:
        model = seethrough.create_model("scouter", **common, hidden_dim=args.hidden_dim,
                                        slots_per_class=args.slots_per_class, iters=args.iters,
                                        to_k_layer=int(name.split("-k")[1]))
    return TrainStep(name, num_classes, model, device, precision=args.precision, backbone_state=backbone_state)


# --------------------------------------------------------------------------- profiling
def profile(args, device, image, labels, models) -> dict:
    """torch.profiler tables of whole steps, and the head's share of a step."""
    from torch.profiler import ProfilerActivity, profile as torch_profile

    c = args.profile_classes
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    sort = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    out = {}
    for name in model_names(args):
        m = models.get((c, name))
        if m is None:
            continue
        label = labels[c]
        head_step, full_step = m.head_runners(image, label)
        head_step(1)
        head_s, full_s = [], []
        for _ in range(3):  # interleaved: head alone, whole step
            head_s.append(timed(head_step, args.profile, device)[0] / args.profile)
            full_s.append(timed(full_step, args.profile, device)[0] / args.profile)
        with torch_profile(activities=activities) as prof:
            full_step(args.profile)
            sync(device)
        step_table = prof.key_averages().table(sort_by=sort, row_limit=20)
        with torch_profile(activities=activities, record_shapes=True) as prof:
            head_step(args.profile)
            sync(device)
        averages = prof.key_averages(group_by_input_shape=True)
        head_table = averages.table(sort_by=sort, row_limit=25)
        slots = c * args.slots_per_class
        families = head_families(averages, rows=args.batch_size * slots, slots=slots, device=device)
        out[name] = {"classes": c, "head_ms_per_step": 1e3 * statistics.median(head_s),
                     "step_ms": 1e3 * statistics.median(full_s),
                     "head_share": statistics.median(head_s) / statistics.median(full_s),
                     "head_families_ms_per_step": {k: v / args.profile for k, v in families.items()},
                     "step_table": step_table, "head_table": head_table}
    return out


FAMILIES = {
    "gru": "GRU over B·K rows (its matmuls, gates, copies)",
    "slots": "other tensors over the K slots (K×N einsums, normalize, sigmoid, K×d sums; fc: the C×h×w CAM)",
    "other": "other shaped ops (conv1x1 + ReLU, position encoding, to_k, pooling, loss)",
    "unshaped": "ops without tensor shapes (cat of tensor lists, einsum/autograd wrappers)",
}


def head_families(averages, *, rows: int, slots: int, device: torch.device) -> dict[str, float]:
    """Self time (ms) of the head-alone profile, grouped by the shapes an op touched: any dim
    equal to B·K → the GRU (it runs on B·K rows of d), any dim equal to K → the K-slot
    tensors (einsums over K×N, normalize, sigmoid, ...), other shapes, no shapes. (A dim that
    equals B·K or K by coincidence would be misfiled; the table above shows the shapes.)"""
    out = dict.fromkeys(FAMILIES, 0.0)
    for e in averages:
        us = e.self_device_time_total if device.type == "cuda" else e.self_cpu_time_total
        dims = {d for shape in (e.input_shapes or []) if isinstance(shape, (list, tuple)) for d in shape
                if isinstance(d, int)}
        key = ("gru" if rows in dims else "slots" if slots in dims else "other" if dims else "unshaped")
        out[key] += us / 1e3
    return out


# --------------------------------------------------------------------------- report
def summarize(args, per_round, cpu_use, models, mem, info, logit_check) -> dict:
    names = model_names(args)
    rows = result_rows(per_round, cpu_use, models, mem, lambda name: describe(name, args))
    ratios = {}
    for c in args.classes:
        for name in names[1:]:
            entry = {"classes": c, "model": name,
                     **paired_ratio(per_round, cpu_use, (c, name), (c, REFERENCE), repeats=args.repeats,
                                    clean_cpu_use=args.clean_cpu_use, on_cpu=args.device == "cpu")}
            if c == args.target_classes:
                entry.update(target=args.target, passed=entry["ratio"] >= args.target)
            ratios[f"{c}:{name}"] = entry
    config = {k: v for k, v in vars(args).items() if k not in ("json", "probe")}
    return {"config": config, "machine": info, "backbone_check": logit_check, "results": rows, "ratios": ratios}


def print_report(summary: dict, profiles: dict) -> None:
    c, m = summary["config"], summary["machine"]
    names = [REFERENCE] + [f"scouter-k{k}" for k in dict.fromkeys(c["to_k_layers"])]
    for name, p in profiles.items():
        print(f"\n--- torch.profiler, {c['profile']} whole steps of {name} at {p['classes']} classes ---\n"
              f"{p['step_table']}")
        print(f"--- head alone ({name}, {p['classes']} classes): head_forward + compute_loss + backward, "
              f"grouped by input shape ---\n{p['head_table']}")
    print(f"\n{c['backbone']} {c['img_size']}px batch {c['batch_size']}, output stride {c['output_stride']}, "
          f"{c['device']} {c['precision']}, {m['torch_threads']} threads; {c['steps']} steps x {c['repeats']} "
          f"interleaved rounds (+{c['warmup']} warm-up); same in-memory batch, no data loading; AdamW")
    print(f"same backbone weights in every model: {summary['backbone_check']}")
    for name in names:
        print(f"  {name:<12} {describe(name, c_ns(c))}")
    print_throughput_table(summary, names)
    t = [q for q in summary["ratios"].values() if "passed" in q]
    for q in t:
        print(f"target: {q['model']}/fc at {q['classes']} classes = {q['ratio']:.3f} "
              f"{'>=' if q['passed'] else '<'} {q['target']}  {'PASS' if q['passed'] else 'FAIL'}")
    if not t:
        print(f"target: {c['target_classes']} classes not among --classes, no verdict")
    print_memory_table(summary)
    if profiles:
        print("\nhead alone vs whole step (median of 3 interleaved timings):")
        for name, p in profiles.items():
            print(f"  {name:<12} at {p['classes']} classes: head {p['head_ms_per_step']:.1f} ms of a "
                  f"{p['step_ms']:.1f} ms step ({100 * p['head_share']:.1f} %)")
        print("head-alone profile, self time per step by the shapes the ops touched (profiler overhead included):")
        for name, p in profiles.items():
            fam = p["head_families_ms_per_step"]
            total = sum(fam.values())
            print(f"  {name:<12} " + ", ".join(f"{k} {v:.1f} ms ({100 * v / total:.0f} %)" for k, v in fam.items()))
        for k, text in FAMILIES.items():
            print(f"    {k}: {text}")


def c_ns(config: dict) -> argparse.Namespace:
    return argparse.Namespace(**config)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if args.probe:
        probe_train_memory(args, build)
        return 0
    device = setup_torch(args)
    info = machine()
    image, labels = make_batch(args, device)
    models = build_models(args, device, model_names(args), build)
    check = backbone_check(models)
    per_round, cpu_use = measure_train_steps(args, device, image, labels, models, model_names(args))
    profiles = profile(args, device, image, labels, models) if args.profile else {}
    probe_argv = drop_values(argv, ("--json", "--profile", "--profile-classes"))
    mem = probe_all(__file__, args, probe_argv, model_names(args)) if args.memory_classes else {}
    summary = summarize(args, per_round, cpu_use, models, mem, info, check)
    if profiles:
        summary["profile"] = profiles
    print_report(summary, profiles)
    write_json(args.json, summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
