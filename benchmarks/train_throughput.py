#!/usr/bin/env python
"""Engine overhead: seethrough's training step vs a bare timm training loop, side by side.

Measures images/s and peak memory of three variants on the SAME fixed in-memory batch
(one random ``B×3×H×W`` tensor and its labels, created once, already on the device), so
data loading, decoding, augmentation and host→device copies are excluded from all of them:

  A  bare timm loop   ``timm.create_model(backbone, num_classes=C)``, AdamW, cross-entropy,
                      ``zero_grad`` / ``backward`` / ``step`` (autocast + GradScaler for the
                      mixed precisions, the usual idiom; the precision Fabric really runs:
                      Fabric turns ``16-mixed`` on CPU into ``bf16-mixed``).
  B  engine step      a real :class:`seethrough.engine.Trainer` built exactly as
                      :func:`seethrough.engine.train` builds it (Fabric, ``fc`` model,
                      ``build_optimizer``, ``fabric.setup``), driven through its own
                      ``Trainer.train_step(batch)``: Fabric forward wrapper, ``compute_loss``,
                      the finite-loss check, ``fabric.backward``, the optimizer step and
                      the top-k counting are all inside the timed region.
  C  engine epoch     the same Trainer's ``Trainer.train_epoch()`` over a DataLoader that
                      yields that same batch ``--steps`` times (Fabric-wrapped, no workers,
                      identity collate): adds the per-step running sums, the periodic
                      ``.item()`` / JSONL + TensorBoard logging every ``log_every`` steps and
                      the loader's own iteration. The progress bar is off (non-interactive).

B and C start from A's exact weights (the timm backbone's state dict and its ``fc``
copied into the engine's ``fc`` model), and the script checks that both give the same
logits before timing: seethrough's ``fc`` computes the class activation maps
(``einsum`` of the classifier with the feature map) and takes their spatial mean, which
equals GAP → Linear; the maps cost ``B·C·D·h·w`` extra multiply-adds, reported as is.

Timing is interleaved: ``--repeats`` rounds, each timing ``--steps`` steps of every variant
in a rotated order (A B C, B C A, C A B, ...) after ``--warmup`` untimed steps each, so
drift of a shared machine hits all variants alike. The verdict is the median of the
per-round ratios B/A (each round's B and A ran back to back); the ratio of the
per-variant medians and of the best rounds are printed too. The target is B/A >= 0.95
("the engine adds no overhead").

"cpu use" is process CPU seconds / wall seconds / torch threads for a timed block: well
below 1 means our threads waited for cores another process held (with 2 OpenMP threads
on 2 shared cores a round can run 20x slower). On CPU a round is "clean" when every
variant's cpu use is >= ``--clean-cpu-use``; with at least 3 clean rounds the verdict uses
only those (the selection looks at CPU use, never at the ratio), with fewer it is marked
NOISY. On a shared machine use short blocks, many rounds and ``--threads 1``. On CUDA
"cpu use" means nothing and every round counts.

Peak memory is measured per variant in a fresh subprocess (same imports, same batch,
``--warmup + --memory-steps`` steps): on CPU the peak resident set size of that process
(Linux ``VmHWM``, reset through ``/proc/self/clear_refs`` once the imports and the batch
exist, so an import-time peak cannot hide it; it includes the interpreter and the
libraries, and "+ over imports" subtracts the RSS at the reset: weights, gradients,
optimizer state, activations and whatever the engine builds); on CUDA
``torch.cuda.max_memory_allocated`` of that process.

Example::

    python benchmarks/train_throughput.py --backbone resnet18 --img-size 64 --batch-size 32 \\
        --steps 5 --warmup 5 --repeats 11 --threads 1 --json bench.json
"""
from __future__ import annotations

import argparse
import contextlib
import math
import statistics
import sys
import tempfile
from pathlib import Path

import timm
import torch
from lightning.fabric import Fabric
from PIL import Image
from torch.nn import functional as F
from torch.utils.data import DataLoader, Dataset, Sampler

from seethrough.config import resolve_config
from seethrough.engine import Trainer

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import (  # noqa: E402  (shared with the other side-by-side benchmarks)
    clean_rounds,
    setup_torch,
    write_json,
    drop_values as _drop_values,
    interleaved_rounds,
    machine,
    print_probe,
    read_peak_memory,
    run_probe,
    start_peak_memory,
    sync,
)

TARGET = 0.95
VARIANTS = {
    "A": "bare timm loop",
    "B": "engine Trainer.train_step",
    "C": "engine Trainer.train_epoch",
}


# --------------------------------------------------------------------------- arguments
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backbone", default="resnet18", help="timm model name")
    p.add_argument("--img-size", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--num-classes", type=int, default=10)
    p.add_argument("--steps", type=int, default=30, help="timed steps per variant per round")
    p.add_argument("--warmup", type=int, default=5, help="untimed steps per variant before the rounds")
    p.add_argument("--repeats", type=int, default=3, help="interleaved rounds")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--precision", choices=("32-true", "bf16-mixed", "16-mixed"), default="32-true")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    p.add_argument("--variants", default="ABC", help="which of A, B, C to time (A is always timed)")
    p.add_argument("--memory-steps", type=int, default=3,
                   help="steps each memory probe runs after its warm-up (0 skips the probes)")
    p.add_argument("--profile", type=int, default=0, metavar="N",
                   help="after timing, profile N steps of A and B with torch.profiler and print the top ops")
    p.add_argument("--clean-cpu-use", type=float, default=0.9, metavar="U",
                   help="CPU only: a round is 'clean' when every variant's cpu use was >= U; with at least "
                        "3 clean rounds the verdict uses only those (0 disables)")
    p.add_argument("--json", type=Path, default=None, help="also write the results to this JSON file")
    p.add_argument("--probe", choices=tuple(VARIANTS), default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.variants = "A" + "".join(v for v in "BC" if v in args.variants.upper())
    if args.device == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda: no CUDA device is available")
    return args


def effective_precision(args: argparse.Namespace) -> str:
    """The precision Fabric really runs (it turns ``16-mixed`` on CPU into ``bf16-mixed``);
    the bare loop uses the same, so both variants do the same math."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fabric = Fabric(accelerator=args.device, devices=1, precision=args.precision)
    return str(fabric.strategy.precision.precision)


def make_batch(args: argparse.Namespace, device: torch.device) -> dict:
    """The one batch every variant trains on, created once and kept on the device."""
    g = torch.Generator().manual_seed(0)
    image = torch.randn(args.batch_size, 3, args.img_size, args.img_size, generator=g)
    label = torch.arange(args.batch_size) % args.num_classes
    return {"image": image.to(device), "label": label.to(device), "skipped": 0}


# --------------------------------------------------------------------------- variant A
class BareLoop:
    """The reference: what anyone would write with timm and torch alone."""

    def __init__(self, args: argparse.Namespace, device: torch.device) -> None:
        torch.manual_seed(0)
        self.model = timm.create_model(args.backbone, num_classes=args.num_classes).to(device).train()
        # the engine's optimizer settings (AdamW, lr 1e-4, decay 0.01), one parameter group
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=1e-4, weight_decay=0.01)
        self.autocast = None
        self.scaler = None
        precision = effective_precision(args)
        if precision != "32-true":
            dtype = torch.bfloat16 if precision == "bf16-mixed" else torch.float16
            self.autocast = (device.type, dtype)
            if precision == "16-mixed":
                self.scaler = torch.amp.GradScaler(device=device.type)

    def step(self, batch: dict) -> None:
        ctx = torch.autocast(*self.autocast) if self.autocast else contextlib.nullcontext()
        with ctx:
            loss = F.cross_entropy(self.model(batch["image"]), batch["label"])
        self.optimizer.zero_grad(set_to_none=True)
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            loss.backward()
            self.optimizer.step()


# --------------------------------------------------------------------------- variants B, C
class _RepeatSampler(Sampler):
    """``n`` indices; has the engine sampler's ``start_epoch`` (train_epoch calls it)."""

    def __init__(self, n: int) -> None:
        self.n = n

    def start_epoch(self, epoch: int, *, skip: int = 0) -> None:
        pass

    def __iter__(self):
        return iter(range(self.n))

    def __len__(self) -> int:
        return self.n


class _RepeatDataset(Dataset):
    def __init__(self, batch: dict) -> None:
        self.batch = batch

    def __getitem__(self, index: int) -> dict:
        return self.batch

    def __len__(self) -> int:
        return 1 << 30


def _identity(item):
    return item


def _write_tiny_folder(root: Path, num_classes: int, batch_size: int) -> None:
    """An ImageFolder just big enough for the Trainer to build its loaders (never trained on)."""
    pixel = Image.new("RGB", (8, 8), (127, 127, 127))
    per_class = {"train": math.ceil(batch_size / num_classes), "val": 1}
    for split, count in per_class.items():
        for c in range(num_classes):
            folder = root / split / f"c{c:04d}"
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                pixel.save(folder / f"{i}.png")


class Engine:
    """A real Trainer, constructed as ``seethrough.engine.train(cfg)`` constructs it."""

    def __init__(self, args: argparse.Namespace, device: torch.device, batch: dict, workdir: Path) -> None:
        data_root = workdir / "data"
        _write_tiny_folder(data_root, args.num_classes, args.batch_size)
        self.cfg = resolve_config(overrides=dict(
            data=f"folder:{data_root}", model="fc", backbone=args.backbone, num_classes=args.num_classes,
            img_size=args.img_size, batch_size=args.batch_size, precision=args.precision,
            accelerator=args.device, devices=1, workers=0, epochs=1, out=str(workdir / "run"),
            progress=False, seed=0,
        ))
        cfg = self.cfg
        fabric = Fabric(accelerator=cfg.accelerator, devices=cfg.devices, num_nodes=cfg.num_nodes,
                        strategy=cfg.strategy, precision=cfg.precision)
        fabric.launch()
        self.fabric = fabric
        self.trainer = Trainer(cfg, fabric)
        self.trainer.model.train()
        self.batch = batch
        # C: train_epoch over the same in-memory batch, repeated
        self.sampler = _RepeatSampler(args.steps)
        loader = DataLoader(_RepeatDataset(batch), batch_size=None, sampler=self.sampler,
                            num_workers=0, collate_fn=_identity)
        self.trainer.train_loader = fabric.setup_dataloaders(loader, use_distributed_sampler=False)

    def step(self, batch: dict) -> None:
        self.trainer.train_step(batch)

    def epoch(self, n: int) -> None:
        state = self.trainer.state
        state.batch_in_epoch, state.epoch_sums = 0, []
        self.sampler.n = n
        self.trainer.train_epoch()

    def copy_weights_from(self, bare: BareLoop) -> None:
        """Give the engine's fc model the bare timm model's exact weights."""
        src = bare.model
        head = src.get_classifier()
        head_name = next(name for name, m in src.named_modules() if m is head)
        body_state = {k: v for k, v in src.state_dict().items() if not k.startswith(head_name + ".")}
        dst = self.trainer.model.module
        dst.backbone.body.load_state_dict(body_state, strict=True)
        with torch.no_grad():
            dst.fc.weight.copy_(head.weight)
            dst.fc.bias.copy_(head.bias)


def max_logit_difference(bare: BareLoop, engine: Engine, batch: dict) -> float:
    bare.model.eval()
    engine.trainer.model.eval()
    ctx = torch.autocast(*bare.autocast) if bare.autocast else contextlib.nullcontext()
    with torch.no_grad():
        with ctx:
            a = bare.model(batch["image"]).float()
        b = engine.trainer.model(batch["image"]).logits.float()
    bare.model.train()
    engine.trainer.model.train()
    return float((a - b).abs().max())


# --------------------------------------------------------------------------- timing
def runners(bare: BareLoop, engine: Engine | None, batch: dict) -> dict:
    def loop(step):
        def run(n):
            for _ in range(n):
                step(batch)
        return run

    out = {"A": loop(bare.step)}
    if engine is not None:
        out["B"] = loop(engine.step)
        out["C"] = engine.epoch
    return out


def measure(args: argparse.Namespace, device: torch.device, batch: dict, run: dict) -> tuple[dict, dict]:
    """images/s of every variant in every round, and the CPU use of each timed block
    (process CPU seconds / wall seconds / torch threads: well below 1 means the threads
    were waiting for cores, i.e. the machine was busy with something else)."""
    order = [v for v in args.variants if v in run]
    # warm-up (allocator, kernels, optimizer state, log files), then rounds in rotated order
    return interleaved_rounds(run, order, warmup=args.warmup, repeats=args.repeats, steps=args.steps,
                              images_per_step=args.batch_size, device=device)


# --------------------------------------------------------------------------- memory
def probe(args: argparse.Namespace) -> None:
    """Fresh-process peak memory of one variant; prints one JSON line.

    CPU: after the imports and the batch exist, the peak-RSS mark is reset, so ``peak_rss_mib``
    is the highest resident set size while the variant is built and trained, and
    ``over_baseline_mib`` subtracts the RSS at the reset (interpreter + libraries + batch).
    Without a resettable mark (non-Linux) ``ru_maxrss`` is used and the import peak may hide it.
    """
    device = setup_torch(args)
    batch = make_batch(args, device)
    reset, base = start_peak_memory(device)
    n = args.warmup + args.memory_steps
    with tempfile.TemporaryDirectory() as tmp:
        if args.probe == "A":
            bare = BareLoop(args, device)
            for _ in range(n):
                bare.step(batch)
        else:
            engine = Engine(args, device, batch, Path(tmp))
            if args.probe == "B":
                for _ in range(n):
                    engine.step(batch)
            else:
                engine.epoch(n)
        result = {"variant": args.probe, **read_peak_memory(device, reset, base)}
    print_probe(result)


def memory(args: argparse.Namespace, argv: list[str]) -> dict[str, dict]:
    out = {}
    for v in args.variants:
        result = run_probe(__file__, argv, v)
        if result is not None:
            out[v] = result
    return out


# --------------------------------------------------------------------------- profiling
def profile(args: argparse.Namespace, device: torch.device, run: dict) -> dict[str, str]:
    from torch.profiler import ProfilerActivity, profile as torch_profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    sort = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    tables = {}
    for v in ("A", "B"):
        if v not in run:
            continue
        with torch_profile(activities=activities) as prof:
            run[v](args.profile)
            sync(device)
        tables[v] = prof.key_averages().table(sort_by=sort, row_limit=20)
    return tables


# --------------------------------------------------------------------------- report
def summarize(args, per_round, cpu_use, mem, logit_diff, info) -> dict:
    rows = {}
    for v, values in per_round.items():
        rows[v] = {"name": VARIANTS[v], "images_per_s_median": statistics.median(values),
                   "images_per_s_min": min(values), "images_per_s_max": max(values),
                   "images_per_s_rounds": values, "cpu_use_rounds": cpu_use[v], "memory": mem.get(v)}
    ratios = {}
    clean = list(range(args.repeats))
    if args.device == "cpu" and args.clean_cpu_use > 0:
        clean = clean_rounds(cpu_use, args.repeats, args.clean_cpu_use)
    use_clean = len(clean) >= 3 and len(clean) < args.repeats
    for v in per_round:
        if v == "A":
            continue
        paired = [b / a for b, a in zip(per_round[v], per_round["A"])]
        clean_paired = [paired[r] for r in clean]
        ratio = statistics.median(clean_paired if use_clean else paired)
        ratios[f"{v}/A"] = {"ratio": ratio, "rounds_used": clean if use_clean else list(range(args.repeats)),
                            "median_of_round_ratios": statistics.median(paired),
                            "median_of_clean_round_ratios": statistics.median(clean_paired) if clean else None,
                            "round_ratios": paired,
                            "ratio_of_medians": rows[v]["images_per_s_median"] / rows["A"]["images_per_s_median"],
                            "ratio_of_best_rounds": rows[v]["images_per_s_max"] / rows["A"]["images_per_s_max"],
                            "target": TARGET, "pass": ratio >= TARGET,
                            "noisy": args.device == "cpu" and args.clean_cpu_use > 0 and len(clean) < 3}
    if ratios:
        note = (f"{len(clean)} of {args.repeats} rounds clean (every variant's cpu use >= "
                      f"{args.clean_cpu_use})" if args.device == "cpu" and args.clean_cpu_use > 0 else "")
        for r in ratios.values():
            r["clean_rounds_note"] = note
    config = {k: v for k, v in vars(args).items() if k not in ("json", "probe", "profile")}
    config["effective_precision"] = effective_precision(args)
    return {"config": config, "machine": info, "max_logit_difference": logit_diff,
            "results": rows, "ratios": ratios}


def print_table(summary: dict) -> None:
    c, m = summary["config"], summary["machine"]
    print(f"\n{c['backbone']} {c['img_size']}px batch {c['batch_size']}, {c['num_classes']} classes, "
          f"{c['device']} {c['precision']}"
          + (f" (Fabric runs {c['effective_precision']})" if c["effective_precision"] != c["precision"] else "")
          + f", {m['torch_threads']} threads; {c['steps']} steps x "
          f"{c['repeats']} interleaved rounds (+{c['warmup']} warm-up); same in-memory batch, no data loading")
    if summary["max_logit_difference"] is not None:
        print(f"same weights, same math: max |logit A - logit B| = {summary['max_logit_difference']:.2e}")
    gpu = c["device"] == "cuda"
    mem_head = "peak CUDA alloc MiB" if gpu else "peak RSS MiB (+ over imports)"
    print(f"{'variant':<30} {'img/s median':>12} {'min':>8} {'max':>8} {'cpu use':>8}   {mem_head}")
    for v, row in summary["results"].items():
        mem = row["memory"]
        if mem is None:
            mtxt = "-"
        elif gpu:
            mtxt = f"{mem['cuda_max_allocated_mib']:.0f}"
        else:
            mtxt = f"{mem['peak_rss_mib']:.0f}  (+{mem['over_baseline_mib']:.0f})"
        print(f"{v} {row['name']:<28} {row['images_per_s_median']:>12.1f} {row['images_per_s_min']:>8.1f} "
              f"{row['images_per_s_max']:>8.1f} {statistics.median(row['cpu_use_rounds']):>8.2f}   {mtxt}")
    for key, r in summary["ratios"].items():
        rounds = " ".join(f"{x:.3f}" for x in r["round_ratios"])
        used = ("clean rounds" if len(r["rounds_used"]) < len(r["round_ratios"]) else "all rounds")
        print(f"ratio {key}: {r['ratio']:.3f}  target >= {r['target']}  {'PASS' if r['pass'] else 'FAIL'}"
              f"{' (NOISY: fewer than 3 clean rounds, rerun)' if r['noisy'] else ''}   (median of per-round ratios, {used}; all rounds {r['median_of_round_ratios']:.3f}, "
              f"ratio of medians {r['ratio_of_medians']:.3f}, of best rounds {r['ratio_of_best_rounds']:.3f})")
        print(f"  per round: {rounds}")
    note = next(iter(summary["ratios"].values()), {}).get("clean_rounds_note")
    if note:
        print(f"  {note}")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if args.probe:
        probe(args)
        return 0
    device = setup_torch(args)
    info = machine()
    batch = make_batch(args, device)
    with tempfile.TemporaryDirectory() as tmp:
        bare = BareLoop(args, device)
        engine = Engine(args, device, batch, Path(tmp)) if len(args.variants) > 1 else None
        logit_diff = None
        if engine is not None:
            try:
                engine.copy_weights_from(bare)
                logit_diff = max_logit_difference(bare, engine, batch)
            except (RuntimeError, StopIteration) as err:
                print(f"note: could not give both models the same weights ({err}); timing anyway")
        run = runners(bare, engine, batch)
        per_round, cpu_use = measure(args, device, batch, run)
        tables = profile(args, device, run) if args.profile else {}
    probe_argv = _drop_values(argv, ("--json", "--profile"))
    mem = memory(args, probe_argv) if args.memory_steps > 0 else {}
    summary = summarize(args, per_round, cpu_use, mem, logit_diff, info)
    for v, table in tables.items():
        print(f"\n--- torch.profiler, {args.profile} steps of {v} ({VARIANTS[v]}) ---\n{table}")
        summary.setdefault("profile", {})[v] = table
    print_table(summary)
    write_json(args.json, summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
