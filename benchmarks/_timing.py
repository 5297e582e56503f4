"""Shared helpers of the side-by-side benchmarks in ``benchmarks/`` (not a benchmark itself).

- interleaved timing: :func:`interleaved_rounds` warms every variant up, then times ``steps``
  steps of each variant per round in a changing (rotated) order, recording images/s and the
  "cpu use" of every timed block (process CPU s / wall s / torch threads);
- clean-round selection by CPU use (:func:`clean_rounds`, :func:`rounds_for_verdict`): on a
  shared CPU machine a block whose threads waited for cores is not comparable; the selection
  looks at CPU use only, never at the measured ratio;
- peak memory of a fresh process: :func:`reset_peak_rss` / :func:`peak_rss` (Linux ``VmHWM``,
  reset through ``/proc/self/clear_refs``), :func:`run_probe` (runs this script again with a
  ``--probe`` argument and parses its ``PROBE {json}`` line);
- :func:`machine` (what the figures were measured on) and :func:`drop_values` (argv surgery);
- side-by-side train steps, shared by the "head vs FC baseline" scripts: their common options
  (:func:`add_model_args`, ...), the fixed in-memory batch (:func:`make_batch`), one model +
  AdamW per class count and name (:class:`TrainStep`, :func:`build_models`), interleaved timing
  with class counts and models rotated (:func:`measure_train_steps`), fresh-process memory
  probes (:func:`probe_train_memory`, :func:`probe_all`), the median-of-per-round-ratios
  verdict (:func:`paired_ratio`), the report tables, and :func:`saved_tensor_mib` (what
  autograd keeps for backward); the forward pass alone of the same models, interleaved the same
  way (:func:`measure_forward_passes`, :func:`forward_rows`).

The scripts run as ``python benchmarks/<script>.py``, so ``benchmarks/`` is on ``sys.path``
and they ``import _timing``.
"""
from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Hashable, Sequence

import torch

PROBE_PREFIX = "PROBE "


# --------------------------------------------------------------------------- timing
def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(run: Callable[[int], object], n: int, device: torch.device) -> tuple[float, float]:
    """Wall seconds of ``run(n)`` and the process CPU seconds it used."""
    sync(device)
    start, cpu = time.perf_counter(), time.process_time()
    run(n)
    sync(device)
    return time.perf_counter() - start, time.process_time() - cpu


def rotated(order: Sequence, r: int) -> list:
    """``order`` rotated left by ``r`` (A B C, B C A, C A B, ...)."""
    order = list(order)
    k = r % len(order) if order else 0
    return order[k:] + order[:k]


def interleaved_rounds(
    run: dict[Hashable, Callable[[int], object]],
    order: Sequence[Hashable],
    *,
    warmup: int,
    repeats: int,
    steps: int,
    images_per_step: int,
    device: torch.device,
    round_order: Callable[[Sequence[Hashable], int], Sequence[Hashable]] = rotated,
    after_block: Callable[[Hashable, int], None] | None = None,
) -> tuple[dict[Hashable, list[float]], dict[Hashable, list[float]]]:
    """images/s of every variant in every round, and the CPU use of each timed block.

    Every variant first runs ``warmup`` untimed steps (allocator, kernels, optimizer state);
    then ``repeats`` rounds each time ``steps`` steps of every variant, in the order
    ``round_order(order, r)`` (default: ``order`` rotated by ``r``). CPU use = process CPU
    seconds / wall seconds / torch threads: well below 1 means the threads were waiting for
    cores, i.e. the machine was busy with something else. ``after_block(variant, r)`` runs
    after each timed block, outside the timed region.
    """
    for v in order:
        run[v](warmup)
    sync(device)
    per_round: dict[Hashable, list[float]] = {v: [] for v in order}
    cpu_use: dict[Hashable, list[float]] = {v: [] for v in order}
    for r in range(repeats):
        for v in round_order(order, r):
            wall, cpu = timed(run[v], steps, device)
            per_round[v].append(steps * images_per_step / wall)
            cpu_use[v].append(cpu / wall / torch.get_num_threads())
            if after_block is not None:
                after_block(v, r)
    return per_round, cpu_use


def clean_rounds(cpu_use: dict[Hashable, list[float]], repeats: int, threshold: float) -> list[int]:
    """Rounds in which every variant of ``cpu_use`` had cpu use >= ``threshold``."""
    return [r for r in range(repeats) if all(use[r] >= threshold for use in cpu_use.values())]


def rounds_for_verdict(clean: list[int], repeats: int) -> tuple[list[int], bool]:
    """The rounds a verdict uses and whether those are the clean subset: the clean rounds when
    at least 3 (and not all) are clean, else all rounds."""
    use_clean = 3 <= len(clean) < repeats
    return (clean if use_clean else list(range(repeats))), use_clean


# --------------------------------------------------------------------------- memory
def proc_status_mib(key: str) -> float | None:
    """A ``/proc/self/status`` field (``VmRSS``, ``VmHWM``) in MiB, or None."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    return None


def reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark (VmHWM) to the current RSS (Linux >= 4.0)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def start_peak_memory(device: torch.device) -> tuple[bool, float]:
    """Reset the peak marks; returns (whether VmHWM could be reset, baseline RSS MiB)."""
    reset = reset_peak_rss()
    base = proc_status_mib("VmRSS") if reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    return reset, base


def read_peak_memory(device: torch.device, reset: bool, base: float) -> dict:
    """Peak RSS since :func:`start_peak_memory` (and the CUDA peaks on CUDA)."""
    sync(device)
    peak = proc_status_mib("VmHWM") if reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result = {"peak_rss_mib": peak, "baseline_rss_mib": base, "over_baseline_mib": peak - base,
              "method": "VmHWM reset after imports" if reset else "ru_maxrss (not reset)"}
    if device.type == "cuda":
        result["cuda_max_allocated_mib"] = torch.cuda.max_memory_allocated(device) / 2**20
        result["cuda_max_reserved_mib"] = torch.cuda.max_memory_reserved(device) / 2**20
    return result


def print_probe(result: dict) -> None:
    print(PROBE_PREFIX + json.dumps(result), flush=True)


def run_probe(script: str, argv: list[str], probe: str) -> dict | None:
    """Run ``script`` in a fresh interpreter with ``argv + ["--probe", probe]``; its last
    ``PROBE {json}`` line, or None (with the stderr tail printed) when it failed."""
    cmd = [sys.executable, os.path.abspath(script), *argv, "--probe", probe]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(PROBE_PREFIX)]
    if proc.returncode != 0 or not lines:
        print(f"memory probe {probe} failed:\n{proc.stderr[-2000:]}", file=sys.stderr)
        return None
    return json.loads(lines[-1][len(PROBE_PREFIX):])


# --------------------------------------------------------------------------- report
def machine() -> dict:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    import timm

    info = {
        "nproc": os.cpu_count(), "affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "cpu_model": model, "torch_threads": torch.get_num_threads(), "loadavg": list(os.getloadavg()),
        "python": platform.python_version(), "torch": torch.__version__, "timm": timm.__version__,
    }
    with contextlib.suppress(ImportError):
        import lightning

        info["lightning"] = lightning.__version__
    info["date"] = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def drop_values(argv: list[str], flags: tuple[str, ...]) -> list[str]:
    """``argv`` without ``flags`` and their values (``--flag v`` or ``--flag=v``)."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
            continue
        if a in flags:
            skip = True
            continue
        if any(a.startswith(f + "=") for f in flags):
            continue
        out.append(a)
    return out


def setup_torch(args) -> torch.device:
    """Apply ``--threads`` and return the ``--device``."""
    if args.threads:
        torch.set_num_threads(args.threads)
    return torch.device(args.device)


def write_json(path: Path | None, summary: dict) -> None:
    """Write ``summary`` to ``--json PATH`` when given."""
    if path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(summary, indent=2))
        print(f"wrote {path}")


# --------------------------------------------------------------------------- side-by-side train steps
# The pieces every "head X vs the FC baseline" throughput script shares (scouter_throughput.py,
# intr_throughput.py): options, the fixed batch, one model + optimizer per (classes, name),
# interleaved timing with class counts and models rotated, fresh-process memory probes, the
# median-of-per-round-ratios verdict and the common report tables.

#: The engine's optimizer defaults (AdamW, one parameter group).
ENGINE_LR, ENGINE_WEIGHT_DECAY = 1e-4, 0.01


def add_model_args(p, *, classes: Sequence[int]) -> None:
    """Backbone, batch and class-count options (same for every model of a run)."""
    p.add_argument("--backbone", default="resnet18", help="timm model name (same for every model)")
    p.add_argument("--img-size", type=int, default=224)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--output-stride", type=int, default=32, help="backbone output stride (32: 7x7 maps at 224 px)")
    p.add_argument("--classes", type=int, nargs="+", default=list(classes), help="class counts C")


def add_timing_args(p) -> None:
    """Interleaved-timing and device options."""
    p.add_argument("--steps", type=int, default=1, help="timed steps per model per round")
    p.add_argument("--warmup", type=int, default=1, help="untimed steps per model before the rounds")
    p.add_argument("--repeats", type=int, default=9, help="interleaved rounds")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--precision", choices=("32-true", "bf16-mixed"), default="32-true")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")


def add_memory_args(p) -> None:
    p.add_argument("--memory-classes", type=int, nargs="*", default=None,
                   help="class counts whose peak memory is probed (default: the largest of --classes; "
                        "none: skip)")
    p.add_argument("--memory-steps", type=int, default=2, help="steps each memory probe runs after its warm-up")


def add_report_args(p) -> None:
    """CPU-use filter, JSON output and the internal probe argument."""
    p.add_argument("--clean-cpu-use", type=float, default=0.9, metavar="U",
                   help="CPU only: a round counts for a class count when both blocks' cpu use was >= U "
                        "(0 disables)")
    p.add_argument("--json", type=Path, default=None, help="also write the results to this JSON file")
    p.add_argument("--probe", default=None, help=argparse.SUPPRESS)  # "C:model", internal


def finish_args(p, args):
    """Checks and defaults shared by the scripts: CUDA present, class counts sorted and unique,
    memory probes at the largest class count unless given."""
    if args.device == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda: no CUDA device is available")
    args.classes = sorted(dict.fromkeys(args.classes))
    if args.memory_classes is None:
        args.memory_classes = [max(args.classes)]
    return args


class TrainStep:
    """One model and its optimizer, trained on the shared batch by :meth:`step`.

    ``backbone_state`` (a reference model's backbone state dict) is loaded strictly, so every
    model of a run starts from the same backbone weights. The optimizer is the engine's
    (AdamW, lr 1e-4, weight decay 0.01, one parameter group); ``bf16-mixed`` wraps forward
    and loss in ``torch.autocast``.
    """

    def __init__(self, name: str, num_classes: int, model: torch.nn.Module, device: torch.device, *,
                 precision: str = "32-true", backbone_state: dict | None = None) -> None:
        self.name, self.num_classes = name, num_classes
        if backbone_state is not None:
            model.backbone.load_state_dict(backbone_state, strict=True)
        self.model = model.to(device).train()
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=ENGINE_LR, weight_decay=ENGINE_WEIGHT_DECAY)
        self.autocast = (device.type, torch.bfloat16) if precision == "bf16-mixed" else None
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

    def head_runners(self, image: torch.Tensor, label: torch.Tensor) -> tuple[Callable[[int], None],
                                                                             Callable[[int], None]]:
        """``(head_step, full_step)``: ``head_step(n)`` runs n times ``head_forward`` +
        ``compute_loss`` + backward on the backbone features of ``image`` (computed once, no
        optimizer step); ``full_step(n)`` runs n whole train steps."""
        with torch.no_grad(), self._ctx():
            features = self.model.backbone(image).detach()
        features.requires_grad_(True)

        def head_step(n: int) -> None:
            for _ in range(n):
                with self._ctx():
                    loss = self.model.compute_loss(self.model.head_forward(features), label)["loss"]
                self.model.zero_grad(set_to_none=True)
                features.grad = None
                loss.backward()

        def full_step(n: int) -> None:
            for _ in range(n):
                self.step(image, label)

        return head_step, full_step


def make_batch(args, device: torch.device) -> tuple[torch.Tensor, dict[int, torch.Tensor]]:
    """The one image batch every model trains on (created once, on the device), and its labels per C."""
    g = torch.Generator().manual_seed(0)
    image = torch.randn(args.batch_size, 3, args.img_size, args.img_size, generator=g).to(device)
    labels = {c: (torch.arange(args.batch_size) % c).to(device) for c in args.classes + list(args.memory_classes)}
    return image, labels


ModelBuilder = Callable[..., TrainStep]  # (name, num_classes, args, device, backbone_state=None) -> TrainStep


def build_models(args, device: torch.device, names: Sequence[str],
                 build: ModelBuilder) -> dict[tuple[int, str], TrainStep]:
    """Every (C, name); ``names[0]`` is the reference whose backbone weights the others copy."""
    models = {}
    for c in args.classes:
        for name in names:
            state = models[(c, names[0])].model.backbone.state_dict() if name != names[0] else None
            models[(c, name)] = build(name, c, args, device, backbone_state=state)
    return models


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


def class_model_order(classes: Sequence[int], names: Sequence[str]):
    """Round r: class counts rotated by r, and within each the models rotated by r, so the
    blocks of the models of one class count always run back to back."""
    def order(_flat, r: int) -> list[tuple[int, str]]:
        return [(c, n) for c in rotated(classes, r) for n in rotated(names, r)]
    return order


def measure_train_steps(args, device, image, labels, models: dict[tuple[int, str], TrainStep],
                        names: Sequence[str]) -> tuple[dict, dict]:
    """:func:`interleaved_rounds` over every (C, name) train step, in :func:`class_model_order`."""
    def runner(m: TrainStep):
        def run(n: int) -> None:
            for _ in range(n):
                m.step(image, labels[m.num_classes])
        return run

    run = {key: runner(m) for key, m in models.items()}
    return interleaved_rounds(run, list(models), warmup=args.warmup, repeats=args.repeats, steps=args.steps,
                              images_per_step=args.batch_size, device=device,
                              round_order=class_model_order(args.classes, names),
                              after_block=lambda key, r: models[key].check_loss())


def probe_train_memory(args, build: ModelBuilder) -> None:
    """Fresh-process peak memory of one model (``--probe C:name``) over ``--warmup +
    --memory-steps`` train steps; prints one PROBE line."""
    c, name = args.probe.split(":", 1)
    c = int(c)
    device = setup_torch(args)
    image, labels = make_batch(args, device)
    reset, base = start_peak_memory(device)
    m = build(name, c, args, device)
    for _ in range(args.warmup + args.memory_steps):
        m.step(image, labels[c])
    print_probe({"model": name, "classes": c, **read_peak_memory(device, reset, base), "parameters": m.parameters()})


def probe_all(script: str, args, argv: list[str], names: Sequence[str]) -> dict[tuple[int, str], dict]:
    """:func:`run_probe` for every name at every ``--memory-classes``."""
    out = {}
    for c in args.memory_classes:
        for name in names:
            result = run_probe(script, argv, f"{c}:{name}")
            if result is not None:
                out[(c, name)] = result
    return out


def paired_ratio(per_round: dict, cpu_use: dict, key: Hashable, reference: Hashable, *, repeats: int,
                 clean_cpu_use: float, on_cpu: bool) -> dict:
    """Throughput of ``key`` over ``reference``: the median of the per-round ratios, over the
    rounds in which both blocks were clean (cpu use >= ``clean_cpu_use``, CPU only) when at
    least 3 are, else over all rounds; ``noisy`` when fewer than 3 were clean."""
    filtered = on_cpu and clean_cpu_use > 0
    clean = clean_rounds({k: cpu_use[k] for k in (reference, key)}, repeats, clean_cpu_use) if filtered \
        else list(range(repeats))
    used, use_clean = rounds_for_verdict(clean, repeats)
    paired = [s / f for s, f in zip(per_round[key], per_round[reference])]
    return {"ratio": statistics.median([paired[r] for r in used]), "round_ratios": paired, "rounds_used": used,
            "clean_rounds": clean, "used_clean_subset": use_clean,
            "median_of_round_ratios": statistics.median(paired),
            "ratio_of_medians": statistics.median(per_round[key]) / statistics.median(per_round[reference]),
            "noisy": filtered and len(clean) < 3}


def result_rows(per_round: dict, cpu_use: dict, models: dict, mem: dict,
                describe: Callable[[str], str]) -> dict[str, dict]:
    """One row per (C, name): images/s per round and their median/min/max, cpu use, parameters,
    whether a loss went NaN/Inf, and the memory probe (or None)."""
    rows = {}
    for (c, name), values in per_round.items():
        m = models[(c, name)]
        rows[f"{c}:{name}"] = {"classes": c, "model": name, "name": describe(name),
                               "images_per_s_median": statistics.median(values),
                               "images_per_s_min": min(values), "images_per_s_max": max(values),
                               "images_per_s_rounds": values, "cpu_use_rounds": cpu_use[(c, name)],
                               "parameters": m.parameters(), "loss_nonfinite": m.nonfinite,
                               "memory": mem.get((c, name))}
    return rows


def print_throughput_table(summary: dict, names: Sequence[str]) -> None:
    """img/s (median cpu use) per model and class count, ratios to ``names[0]`` (with PASS/FAIL
    where a target applies) and the clean-round counts, then every per-round ratio."""
    c, reference = summary["config"], names[0]
    head = f"{'classes':>7}" + "".join(f" {n + ' img/s':>17}" for n in names)
    head += "".join(f" {n + '/' + reference:>14}" for n in names[1:]) + "   clean rounds"
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


def print_memory_table(summary: dict) -> None:
    """The fresh-process peak memory of every probed model (nothing when none was probed)."""
    c = summary["config"]
    mem_rows = [r for r in summary["results"].values() if r["memory"]]
    if not mem_rows:
        return
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


def saved_tensor_mib(fn: Callable[[], torch.Tensor]) -> tuple[float, torch.Tensor]:
    """MiB of the tensors autograd saves for backward while ``fn()`` runs (each storage counted
    once), and ``fn``'s result. Parameters saved by reference count too."""
    seen: dict[tuple, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        with contextlib.suppress(RuntimeError):  # tensors without storage (e.g. some views)
            s = t.untyped_storage()
            seen[(t.device.type, s.data_ptr())] = s.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn()
    return sum(seen.values()) / 2**20, out


# --------------------------------------------------------------------------- side-by-side forward passes
def measure_forward_passes(args, device, image, models: dict[tuple[int, str], TrainStep], names: Sequence[str],
                           steps: int) -> tuple[dict, dict]:
    """:func:`interleaved_rounds` over the forward pass alone of every (C, name) of ``models``:
    eval mode, ``torch.no_grad()`` (``torch.autocast`` for bf16-mixed, as the train step),
    ``steps`` forward passes per block, in :func:`class_model_order`. Every model is back in
    training mode afterwards."""
    def runner(m: TrainStep):
        def run(n: int) -> None:
            with torch.no_grad(), m._ctx():
                for _ in range(n):
                    m.model(image)
        return run

    for m in models.values():
        m.model.eval()
    try:
        run = {key: runner(m) for key, m in models.items()}
        return interleaved_rounds(run, list(models), warmup=args.warmup, repeats=args.repeats, steps=steps,
                                  images_per_step=args.batch_size, device=device,
                                  round_order=class_model_order(args.classes, names))
    finally:
        for m in models.values():
            m.model.train()


def forward_rows(per_round: dict, cpu_use: dict, describe: Callable[[str], str]) -> dict[str, dict]:
    """One row per (C, name) of :func:`measure_forward_passes`, in the layout of
    :func:`result_rows` (no loss, no memory probe), so :func:`print_throughput_table` prints it."""
    return {f"{c}:{name}": {"classes": c, "model": name, "name": describe(name),
                            "images_per_s_median": statistics.median(values),
                            "images_per_s_min": min(values), "images_per_s_max": max(values),
                            "images_per_s_rounds": values, "cpu_use_rounds": cpu_use[(c, name)],
                            "loss_nonfinite": False, "memory": None}
            for (c, name), values in per_round.items()}
