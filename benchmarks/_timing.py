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
- :func:`machine` (what the figures were measured on) and :func:`drop_values` (argv surgery).

The scripts run as ``python benchmarks/<script>.py``, so ``benchmarks/`` is on ``sys.path``
and they ``import _timing``.
"""
from __future__ import annotations

import contextlib
import datetime
import json
import os
import platform
import resource
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
