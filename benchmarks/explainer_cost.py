#!/usr/bin/env python
"""The cost of every explainer relative to one forward pass of the same batch (issue #4).

The issue: "The cost of each explainer relative to one forward pass (native should be ≈ 1×)."

One model (``seethrough.create_model(--model, backbone=--backbone)``, random weights, eval
mode) and one fixed in-memory batch ``B×3×H×W`` on ``--device``; targets are explicit class
indices, so no explainer pays for a target-policy forward pass. For every explainer of
``--methods`` (default: all of ``seethrough.list_explainers()``) the script times
``seethrough.explain(model, images, targets, method=...)`` with its defaults (normalize
"minmax", upsample "bilinear"), except the options given on the command line: RISE's
``--rise-masks`` (default the paper's N) and ``--rise-batch``, ScoreCAM/AblationCAM's
``--cam-batch``.

Ratio = seconds of one explainer call / seconds of one forward pass of the same batch
(``logits_of(model, images)`` under ``torch.no_grad()``), measured in pairs: before every
explainer call the forward pass is timed ``--forward-repeats`` times (median), and the figure
is the median of the per-pair ratios, so slow drifts of a shared machine cancel. An explainer
is called ``--repeats`` times, but no new pair starts once ``--max-seconds`` have been spent
on it (RISE and Score-CAM take hundreds of forward passes per image: one call). Everything is warmed up
first (``--warmup`` forward passes and one Grad-CAM call). "cpu use" is process CPU s / wall
s / torch threads of the explainer's timed calls: well below 1 means the threads waited for
cores, so the figure is not clean.

Example (about 1.5 minutes on 2 shared vCPUs, 1 thread)::

    python benchmarks/explainer_cost.py --backbone resnet18 --img-size 64 --batch-size 8 \\
        --rise-masks 1000 --threads 1 --json /tmp/explainer_cost.json
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

import seethrough
from seethrough.explanations.api import logits_of
from seethrough.explanations.rise import BATCH_SIZE as RISE_BATCH, NUM_MASKS

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import machine, setup_torch, sync, timed, write_json  # noqa: E402

#: Explainers whose cost scales with a count of forward passes set on the command line.
SCALED_BY = {"rise": "--rise-masks forward passes per image", "scorecam": "one forward pass per channel per image",
             "ablationcam": "one head pass per channel per image"}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="fc", help="seethrough model name (fc, scouter)")
    p.add_argument("--backbone", default="resnet18", help="timm model name")
    p.add_argument("--output-stride", type=int, default=None, help="backbone output stride (dilation)")
    p.add_argument("--num-classes", type=int, default=10)
    p.add_argument("--img-size", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--methods", nargs="+", default=None, help="explainers to time (default: all registered)")
    p.add_argument("--rise-masks", type=int, default=NUM_MASKS, help="RISE num_masks (paper: %(default)s)")
    p.add_argument("--rise-batch", type=int, default=RISE_BATCH, help="RISE masked images per forward pass")
    p.add_argument("--cam-batch", type=int, default=None,
                   help="ScoreCAM/AblationCAM batch_size (default: the grad-cam package's 16 / 32)")
    p.add_argument("--warmup", type=int, default=3, help="untimed forward passes before anything is timed")
    p.add_argument("--repeats", type=int, default=5, help="timed calls per explainer (fewer past --max-seconds)")
    p.add_argument("--forward-repeats", type=int, default=5, help="timed forward passes before each explainer")
    p.add_argument("--max-seconds", type=float, default=10.0, help="stop repeating an explainer after this long")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path, default=None, help="also write the results to this JSON file")
    return p.parse_args(argv)


def method_options(method: str, args: argparse.Namespace) -> dict:
    if method == "rise":
        return {"num_masks": args.rise_masks, "batch_size": args.rise_batch}
    if method in ("scorecam", "ablationcam") and args.cam_batch:
        return {"batch_size": args.cam_batch}
    return {}


def time_pairs(call, forward, args: argparse.Namespace, device: torch.device) -> dict:
    """Alternate ``--forward-repeats`` timed forward passes and one timed explainer call, up to
    ``--repeats`` times (at least once; no new pair past ``--max-seconds`` of explainer time).
    Each pair gives a ratio (explainer / median of its forward passes); the median ratio is
    the figure, so drifts of a shared machine between pairs cancel."""
    seconds, forwards, ratios, cpu_total = [], [], [], 0.0
    while len(seconds) < args.repeats and (not seconds or sum(seconds) < args.max_seconds):
        baseline = statistics.median(timed(lambda _: forward(), 1, device)[0] for _ in range(args.forward_repeats))
        wall, cpu = timed(lambda _: call(), 1, device)
        seconds.append(wall)
        forwards.append(baseline)
        ratios.append(wall / baseline)
        cpu_total += cpu
    return {"seconds": seconds, "median_s": statistics.median(seconds), "forward_s": forwards,
            "ratios": ratios, "ratio": statistics.median(ratios),
            "cpu_use": cpu_total / sum(seconds) / torch.get_num_threads()}


def main(argv=None) -> dict:
    args = parse_args(argv)
    device = setup_torch(args)
    torch.manual_seed(args.seed)
    options = {} if args.output_stride is None else {"output_stride": args.output_stride}
    model = seethrough.create_model(args.model, num_classes=args.num_classes, backbone=args.backbone, **options)
    model = model.to(device).eval()
    images = torch.randn(args.batch_size, 3, args.img_size, args.img_size, device=device)
    targets = torch.arange(args.batch_size, device=device) % args.num_classes
    methods = args.methods or seethrough.list_explainers()
    unknown = sorted(set(methods) - set(seethrough.list_explainers()))
    if unknown:
        raise SystemExit(f"unknown explainers {unknown}; valid: {', '.join(seethrough.list_explainers())}")

    def forward() -> None:
        with torch.no_grad():
            logits_of(model, images)

    for _ in range(args.warmup):
        forward()
    seethrough.explain(model, images, targets, method="gradcam")
    sync(device)
    with torch.no_grad():
        grid = tuple(model(images).maps.shape[-2:])

    rows = {}
    started = time.perf_counter()
    for method in methods:
        opts = method_options(method, args)
        row = time_pairs(lambda: seethrough.explain(model, images, targets, method=method, **opts), forward,
                         args, device)
        rows[method] = {**row, "options": opts}
        print(f"  {method:<13} {row['median_s'] * 1e3:10.1f} ms  {row['ratio']:9.2f}×  (cpu use {row['cpu_use']:.2f})",
              flush=True)
    total = time.perf_counter() - started

    print(f"\nExplainer cost on {args.model}/{args.backbone}, batch {args.batch_size}×3×{args.img_size}², "
          f"feature grid {grid[0]}×{grid[1]}, {args.device}, {torch.get_num_threads()} thread(s):\n")
    print("| explainer | ms / batch | × one forward | calls | cpu use | options |")
    print("|---|---:|---:|---:|---:|---|")
    for method, row in sorted(rows.items(), key=lambda kv: kv[1]["ratio"]):
        opts = ", ".join(f"{k}={v}" for k, v in row["options"].items()) or "defaults"
        print(f"| {method} | {row['median_s'] * 1e3:.1f} | {row['ratio']:.2f} | {len(row['seconds'])} | "
              f"{row['cpu_use']:.2f} | {opts} |")
    forward_ms = statistics.median(f for r in rows.values() for f in r["forward_s"]) * 1e3
    print(f"\nforward pass: {forward_ms:.1f} ms (median of all baselines); timed part took {total:.0f} s")
    for method, why in SCALED_BY.items():
        if method in rows:
            print(f"  {method}: cost scales with {why}")
    summary = {"benchmark": "explainer_cost", "args": {k: str(v) if isinstance(v, Path) else v
                                                       for k, v in vars(args).items()},
               "feature_grid": list(grid), "machine": machine(), "explainers": rows}
    write_json(args.json, summary)
    return summary


if __name__ == "__main__":
    main()
