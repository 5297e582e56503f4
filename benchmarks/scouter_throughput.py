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
import contextlib
import statistics
import sys
from pathlib import Path
from typing import Sequence

import torch

import seethrough

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import (  # noqa: E402  (shared with the other side-by-side benchmarks)
    clean_rounds,
    setup_torch,
    write_json,
    drop_values,
    interleaved_rounds,
    machine,
    print_probe,
    read_peak_memory,
    rotated,
    rounds_for_verdict,
    run_probe,
    start_peak_memory,
    sync,
    timed,
)

TARGET, TARGET_CLASSES = 0.9, 100
REFERENCE = "fc"


# --------------------------------------------------------------------------- arguments
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backbone", default="resnet18", help="timm model name (same for every model)")
    p.add_argument("--img-size", type=int, default=224)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--output-stride", type=int, default=32, help="backbone output stride (32: 7x7 maps at 224 px)")
    p.add_argument("--classes", type=int, nargs="+", default=[10, 100, 1000], help="class counts C")
    p.add_argument("--to-k-layers", type=int, nargs="+", default=[1, 3],
                   help="one SCOUTER model per value (1: SCOUTER's default, 3: its ImageNet recipe)")
    p.add_argument("--hidden-dim", type=int, default=64)
    p.add_argument("--slots-per-class", type=int, default=1)
    p.add_argument("--iters", type=int, default=3)
    p.add_argument("--steps", type=int, default=1, help="timed steps per model per round")
    p.add_argument("--warmup", type=int, default=1, help="untimed steps per model before the rounds")
    p.add_argument("--repeats", type=int, default=9, help="interleaved rounds")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--precision", choices=("32-true", "bf16-mixed"), default="32-true")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    p.add_argument("--target", type=float, default=TARGET, help="ratio SCOUTER/FC to reach")
    p.add_argument("--target-classes", type=int, default=TARGET_CLASSES, help="class count the target is for")
    p.add_argument("--memory-classes", type=int, nargs="*", default=None,
                   help="class counts whose peak memory is probed (default: the largest of --classes; "
                        "none: skip)")
    p.add_argument("--memory-steps", type=int, default=2, help="steps each memory probe runs after its warm-up")
    p.add_argument("--profile", type=int, default=0, metavar="N",
                   help="after timing, profile N steps of every model at --profile-classes")
    p.add_argument("--profile-classes", type=int, default=None, help="default: --target-classes (or the nearest C)")
    p.add_argument("--clean-cpu-use", type=float, default=0.9, metavar="U",
                   help="CPU only: a round counts for a class count when both blocks' cpu use was >= U "
                        "(0 disables)")
    p.add_argument("--json", type=Path, default=None, help="also write the results to this JSON file")
    p.add_argument("--probe", default=None, help=argparse.SUPPRESS)  # "C:model", internal
    args = p.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda: no CUDA device is available")
    args.classes = sorted(dict.fromkeys(args.classes))
    if args.memory_classes is None:
        args.memory_classes = [max(args.classes)]
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
class Model:
    """One model + its optimizer, trained on the shared batch by :meth:`step`."""

    def __init__(self, name: str, num_classes: int, args: argparse.Namespace, device: torch.device,
                 backbone_state: dict | None = None) -> None:
        self.name, self.num_classes = name, num_classes
        common = dict(num_classes=num_classes, backbone=args.backbone, output_stride=args.output_stride)
        torch.manual_seed(0)
        if name == REFERENCE:
            model = seethrough.create_model("fc", **common)
        else:
            model = seethrough.create_model("scouter", **common, hidden_dim=args.hidden_dim,
                                            slots_per_class=args.slots_per_class, iters=args.iters,
                                            to_k_layer=int(name.split("-k")[1]))
        if backbone_state is not None:
            model.backbone.load_state_dict(backbone_state, strict=True)
        self.model = model.to(device).train()
        # the engine's optimizer settings (AdamW, lr 1e-4, decay 0.01), one parameter group
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=1e-4, weight_decay=0.01)
        self.autocast = (device.type, torch.bfloat16) if args.precision == "bf16-mixed" else None
        self.last_loss: torch.Tensor | None = None
        self.nonfinite = False

    def _ctx(self):
        return torch.autocast(*self.autocast) if self.autocast else contextlib.nullcontext()

    def step(self, image: torch.Tensor, label: torch.Tensor) -> None:
        with self._ctx():
            loss = self.model.compute_loss(self.model(image), label)["loss"]
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.last_loss = loss.detach()

    def check_loss(self) -> None:
        """Outside the timed region: remember whether a loss went NaN/Inf (timings of NaN math
        would not be representative)."""
        if self.last_loss is not None and not bool(torch.isfinite(self.last_loss)):
            self.nonfinite = True

    def parameters(self) -> dict[str, int]:
        total = sum(p.numel() for p in self.model.parameters())
        backbone = sum(p.numel() for p in self.model.backbone.parameters())
        return {"total": total, "head": total - backbone}


def make_batch(args: argparse.Namespace, device: torch.device) -> tuple[torch.Tensor, dict[int, torch.Tensor]]:
    """The one image batch every model trains on (created once, on the device), and its labels per C."""
    g = torch.Generator().manual_seed(0)
    image = torch.randn(args.batch_size, 3, args.img_size, args.img_size, generator=g).to(device)
    labels = {c: (torch.arange(args.batch_size) % c).to(device) for c in args.classes + list(args.memory_classes)}
    return image, labels


def build_models(args: argparse.Namespace, device: torch.device) -> dict[tuple[int, str], Model]:
    models = {}
    for c in args.classes:
        for name in model_names(args):
            state = models[(c, REFERENCE)].model.backbone.state_dict() if name != REFERENCE else None
            models[(c, name)] = Model(name, c, args, device, backbone_state=state)
    return models


# --------------------------------------------------------------------------- timing
def round_order(classes: Sequence[int], names: Sequence[str]):
    """Round r: class counts rotated by r, and within each the models rotated by r, so the
    FC and SCOUTER blocks of one class count always run back to back."""
    def order(_flat, r: int) -> list[tuple[int, str]]:
        return [(c, n) for c in rotated(classes, r) for n in rotated(names, r)]
    return order


def measure(args, device, image, labels, models) -> tuple[dict, dict]:
    def runner(m: Model):
        def run(n: int) -> None:
            for _ in range(n):
                m.step(image, labels[m.num_classes])
        return run

    run = {key: runner(m) for key, m in models.items()}
    order = list(models)
    return interleaved_rounds(run, order, warmup=args.warmup, repeats=args.repeats, steps=args.steps,
                              images_per_step=args.batch_size, device=device,
                              round_order=round_order(args.classes, model_names(args)),
                              after_block=lambda key, r: models[key].check_loss())


# --------------------------------------------------------------------------- memory
def probe(args: argparse.Namespace) -> None:
    """Fresh-process peak memory of one model at one class count; prints one PROBE line."""
    c, name = args.probe.split(":", 1)
    c = int(c)
    device = setup_torch(args)
    image, labels = make_batch(args, device)
    reset, base = start_peak_memory(device)
    m = Model(name, c, args, device)
    for _ in range(args.warmup + args.memory_steps):
        m.step(image, labels[c])
    result = {"model": name, "classes": c, **read_peak_memory(device, reset, base), "parameters": m.parameters()}
    print_probe(result)


def memory(args: argparse.Namespace, argv: list[str]) -> dict[tuple[int, str], dict]:
    out = {}
    for c in args.memory_classes:
        for name in model_names(args):
            result = run_probe(__file__, argv, f"{c}:{name}")
            if result is not None:
                out[(c, name)] = result
    return out


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
        with torch.no_grad(), m._ctx():
            features = m.model.backbone(image).detach()
        features.requires_grad_(True)

        def head_step(n: int) -> None:
            for _ in range(n):
                with m._ctx():
                    loss = m.model.compute_loss(m.model.head_forward(features), label)["loss"]
                m.model.zero_grad(set_to_none=True)
                features.grad = None
                loss.backward()

        def full_step(n: int) -> None:
            for _ in range(n):
                m.step(image, label)

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
    rows = {}
    for (c, name), values in per_round.items():
        m = models[(c, name)]
        rows[f"{c}:{name}"] = {"classes": c, "model": name, "name": describe(name, args),
                               "images_per_s_median": statistics.median(values),
                               "images_per_s_min": min(values), "images_per_s_max": max(values),
                               "images_per_s_rounds": values, "cpu_use_rounds": cpu_use[(c, name)],
                               "parameters": m.parameters(), "loss_nonfinite": m.nonfinite,
                               "memory": mem.get((c, name))}
    ratios = {}
    for c in args.classes:
        ref = per_round[(c, REFERENCE)]
        for name in names[1:]:
            pair = {k: cpu_use[k] for k in ((c, REFERENCE), (c, name))}
            clean = (clean_rounds(pair, args.repeats, args.clean_cpu_use)
                     if args.device == "cpu" and args.clean_cpu_use > 0 else list(range(args.repeats)))
            used, use_clean = rounds_for_verdict(clean, args.repeats)
            paired = [s / f for s, f in zip(per_round[(c, name)], ref)]
            ratio = statistics.median([paired[r] for r in used])
            med = rows[f"{c}:{name}"]["images_per_s_median"] / rows[f"{c}:{REFERENCE}"]["images_per_s_median"]
            entry = {"classes": c, "model": name, "ratio": ratio, "round_ratios": paired,
                     "rounds_used": used, "clean_rounds": clean, "used_clean_subset": use_clean,
                     "median_of_round_ratios": statistics.median(paired), "ratio_of_medians": med,
                     "noisy": args.device == "cpu" and args.clean_cpu_use > 0 and len(clean) < 3}
            if c == args.target_classes:
                entry.update(target=args.target, passed=ratio >= args.target)
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
    head = f"{'classes':>7}" + "".join(f" {n + ' img/s':>17}" for n in names)
    head += "".join(f" {n + '/fc':>14}" for n in names[1:]) + "   clean rounds"
    print(head)
    for cls in c["classes"]:
        line = f"{cls:>7}"
        for n in names:
            r = summary["results"][f"{cls}:{n}"]
            line += f" {r['images_per_s_median']:>10.2f} ({statistics.median(r['cpu_use_rounds']):.2f})"
        cleans = []
        for n in names[1:]:
            q = summary["ratios"][f"{cls}:{n}"]
            mark = (" PASS" if q["passed"] else " FAIL") if "passed" in q else ""
            line += f" {q['ratio']:>9.3f}{mark:<5}"
            cleans.append(f"{len(q['clean_rounds'])}/{len(q['round_ratios'])}" + (" NOISY" if q["noisy"] else ""))
        print(line + "   " + ", ".join(cleans))
    print("  (img/s median (median cpu use); ratio = median of per-round ratios over the rounds clean for "
          "that class count, or all when fewer than 3 are clean)")
    for key, q in summary["ratios"].items():
        rounds = " ".join(f"{x:.3f}" for x in q["round_ratios"])
        print(f"  {key:<18} per round: {rounds}   (ratio of medians {q['ratio_of_medians']:.3f})")
    for key, r in summary["results"].items():
        if r["loss_nonfinite"]:
            print(f"  WARNING: {key} produced a NaN/Inf loss during timing")
    t = [q for q in summary["ratios"].values() if "passed" in q]
    for q in t:
        print(f"target: {q['model']}/fc at {q['classes']} classes = {q['ratio']:.3f} "
              f"{'>=' if q['passed'] else '<'} {q['target']}  {'PASS' if q['passed'] else 'FAIL'}")
    if not t:
        print(f"target: {c['target_classes']} classes not among --classes, no verdict")
    mem_rows = [r for r in summary["results"].values() if r["memory"]]
    if mem_rows:
        gpu = c["device"] == "cuda"
        print(f"\npeak memory, fresh process per model ({c['warmup']} + {c['memory_steps']} steps): "
              + ("torch.cuda.max_memory_allocated" if gpu else "peak RSS (VmHWM) and + over the RSS after imports"))
        print(f"{'classes':>7} {'model':<12} {'peak MiB':>9} {'+ MiB':>7} {'params':>12} {'head params':>12}")
        for r in mem_rows:
            mm = r["memory"]
            peak = mm["cuda_max_allocated_mib"] if gpu else mm["peak_rss_mib"]
            over = "" if gpu else f"{mm['over_baseline_mib']:.0f}"
            print(f"{r['classes']:>7} {r['model']:<12} {peak:>9.0f} {over:>7} {r['parameters']['total']:>12,} "
                  f"{r['parameters']['head']:>12,}")
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


def backbone_check(models: dict) -> str:
    """All models start from the same backbone weights (checked, not assumed)."""
    ref = None
    for m in models.values():
        state = m.model.backbone.state_dict()
        if ref is None:
            ref = state
            continue
        if any(not torch.equal(ref[k], v) for k, v in state.items()):
            return "NO (backbone weights differ)"
    return "yes (identical state dicts)"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if args.probe:
        probe(args)
        return 0
    device = setup_torch(args)
    info = machine()
    image, labels = make_batch(args, device)
    models = build_models(args, device)
    check = backbone_check(models)
    per_round, cpu_use = measure(args, device, image, labels, models)
    profiles = profile(args, device, image, labels, models) if args.profile else {}
    probe_argv = drop_values(argv, ("--json", "--profile", "--profile-classes"))
    mem = memory(args, probe_argv) if args.memory_classes else {}
    summary = summarize(args, per_round, cpu_use, models, mem, info, check)
    if profiles:
        summary["profile"] = profiles
    print_report(summary, profiles)
    write_json(args.json, summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
