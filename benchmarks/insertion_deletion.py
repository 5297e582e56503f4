#!/usr/bin/env python
"""Insertion + deletion (RISE) throughput, side by side with its physical limit and a naive loop (issue #4).

The issue: "Insertion/deletion throughput vs the pure forward throughput of the same number of
forward passes (the physical limit; target >= 0.9) and vs a straightforward per-image loop
(report the speedup)."

Three variants score the same ``--images`` images (one fixed random ``N×3×H×W`` tensor and
smooth random maps, created once on the device; targets ``arange(N) % classes``), with the
same model (eval mode, no grad):

  forward   the physical limit: exactly the forward passes the metrics make, and nothing
            else — the same number of calls with the same batch sizes (``--batch-size``
            perturbed images per call, the last call of each metric partial), on a fixed
            pre-built batch;
  batched   ``seethrough.metrics.insertion`` then ``deletion`` (default protocol: RISE
            substrates, ``step`` = image width unless ``--steps``, softmax probability),
            ``batch_size=--batch-size``: every (image, step) image built from the rank
            tensor inside the chunk loop;
  naive     the straightforward implementation written here: for every image, sort its
            pixels, then for every step one forward pass of that single image (batch 1)
            and an in-place paste of the next ``step`` pixels (RISE's ``single_run``
            structure), the same substrates.

Each variant processes ``2·N·(n+1)`` images (n+1 curve points per image and metric); the
figures are forward-passed images per second. Before timing, the batched and naive AUCs
(and curves) are compared: they must agree to ``--tolerance`` (batch-1 vs batch-B
convolutions differ only by float rounding).

Timing is interleaved (``_timing.interleaved_rounds``): ``--warmup`` untimed evaluations of
each variant, then ``--repeats`` rounds that each time one full evaluation of every variant
in a rotated order. Ratios are medians of per-round ratios (batched/forward: the efficiency,
target >= ``--target``; batched/naive: the speedup). On CPU a round counts when every
variant's cpu use (process CPU s / wall s / threads) was >= ``--clean-cpu-use``; with at
least 3 such rounds only those are used (selection by CPU use only, never by ratio).

Example (CPU, about 1.5 minutes on 2 shared vCPUs)::

    python benchmarks/insertion_deletion.py --backbone resnet18 --img-size 32 --images 4 \\
        --batch-size 64 --repeats 7 --threads 1 --json insdel.json
"""
from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

import seethrough
from seethrough.explanations.api import logits_of
from seethrough.metrics import deletion, insertion
from seethrough.metrics.faithfulness import DELETION_SUBSTRATE, INSERTION_SUBSTRATE, auc, pixel_counts
from seethrough.metrics.substrates import make_substrate

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import (  # noqa: E402  (shared with the other side-by-side benchmarks)
    clean_rounds,
    interleaved_rounds,
    machine,
    rounds_for_verdict,
    setup_torch,
    write_json,
)

TARGET = 0.9
VARIANTS = ("forward", "batched", "naive")
#: Maps are random values on a coarse grid, upsampled bilinearly (like CAMs), so the pixel
#: order has structure and no ties.
MAP_GRID = 7


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backbone", default="resnet18", help="timm model name")
    p.add_argument("--model", choices=("fc", "timm"), default="fc",
                   help="fc: seethrough.create_model('fc') (returns ModelOutput); timm: the bare timm classifier")
    p.add_argument("--classes", type=int, default=10)
    p.add_argument("--img-size", type=int, default=32)
    p.add_argument("--images", type=int, default=4, help="images N evaluated per variant and round")
    p.add_argument("--batch-size", type=int, default=64, help="perturbed images per forward pass")
    p.add_argument("--steps", type=int, default=None, help="curve steps (default: step = image width, RISE)")
    p.add_argument("--warmup", type=int, default=1, help="untimed evaluations per variant before the rounds")
    p.add_argument("--repeats", type=int, default=7, help="interleaved rounds")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    p.add_argument("--target", type=float, default=TARGET, help="batched/forward ratio to reach")
    p.add_argument("--tolerance", type=float, default=1e-4, help="max |AUC batched - AUC naive| allowed")
    p.add_argument("--clean-cpu-use", type=float, default=0.9, metavar="U",
                   help="CPU only: a round counts when every block's cpu use was >= U (0 disables)")
    p.add_argument("--json", type=Path, default=None, help="also write the results to this JSON file")
    args = p.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda: no CUDA device is available")
    return args


# --------------------------------------------------------------------------- setup
def build_model(args: argparse.Namespace, device: torch.device) -> torch.nn.Module:
    torch.manual_seed(0)
    if args.model == "fc":
        model = seethrough.create_model("fc", num_classes=args.classes, backbone=args.backbone, pretrained=False)
    else:
        import timm

        model = timm.create_model(args.backbone, num_classes=args.classes, pretrained=False)
    return model.to(device).eval()


def make_inputs(args: argparse.Namespace, device: torch.device):
    g = torch.Generator().manual_seed(0)
    images = torch.randn(args.images, 3, args.img_size, args.img_size, generator=g)
    coarse = torch.rand(args.images, 1, MAP_GRID, MAP_GRID, generator=g)
    maps = F.interpolate(coarse, size=(args.img_size, args.img_size), mode="bilinear", align_corners=False)[:, 0]
    targets = torch.arange(args.images) % args.classes
    return images.to(device), maps.to(device), targets.to(device)


def protocol(args: argparse.Namespace) -> dict:
    return {"steps": args.steps} if args.steps is not None else {}


def schedule(args: argparse.Namespace) -> torch.Tensor:
    return pixel_counts(args.img_size ** 2, width=args.img_size, steps=args.steps)


# --------------------------------------------------------------------------- variants
def batched(model, images, maps, targets, args) -> dict[str, torch.Tensor]:
    common = dict(batch_size=args.batch_size, return_details=True, **protocol(args))
    _, ins = insertion(model, images, maps, targets, **common)
    _, dels = deletion(model, images, maps, targets, **common)
    return {"insertion": ins["curve"], "deletion": dels["curve"]}


def naive_curve(model, image, saliency, target, start, finish, counts) -> list[float]:
    """One image, one step at a time: score, then paste the next pixels of ``finish``."""
    order = torch.argsort(saliency.flatten(), descending=True, stable=True)
    current = start.clone()
    flat, source = current.view(current.shape[0], -1), finish.reshape(finish.shape[0], -1)
    scores, done = [], 0
    for count in counts:
        coords = order[done:count]
        flat[:, coords] = source[:, coords]
        done = count
        logits = logits_of(model, current[None]).float()
        scores.append(float(torch.softmax(logits, dim=1)[0, target]))
    return scores


def naive(model, images, maps, targets, args) -> dict[str, torch.Tensor]:
    counts = schedule(args).tolist()
    blurred = make_substrate(images, INSERTION_SUBSTRATE)
    zeros = make_substrate(images, DELETION_SUBSTRATE)
    curves = {"insertion": [], "deletion": []}
    with torch.no_grad():
        for i in range(images.shape[0]):
            t = int(targets[i])
            curves["insertion"].append(naive_curve(model, images[i], maps[i], t, blurred[i], images[i], counts))
            curves["deletion"].append(naive_curve(model, images[i], maps[i], t, images[i], zeros[i], counts))
    return {k: torch.tensor(v) for k, v in curves.items()}


def forward_sizes(args: argparse.Namespace) -> list[int]:
    """Batch sizes of the forward calls the two metrics make (per metric: full chunks, then the rest)."""
    pairs = args.images * schedule(args).numel()
    full, rest = divmod(pairs, args.batch_size)
    return 2 * ([args.batch_size] * full + ([rest] if rest else []))


def forward_only(model, buffer: torch.Tensor, sizes: list[int]) -> None:
    with torch.no_grad():
        for size in sizes:
            logits_of(model, buffer[:size])


# --------------------------------------------------------------------------- report
def check_agreement(model, images, maps, targets, args) -> dict:
    with torch.no_grad():
        fast, slow = batched(model, images, maps, targets, args), naive(model, images, maps, targets, args)
    out = {}
    for key in fast:
        a, b = fast[key].cpu(), slow[key]
        out[key] = {"auc_batched": auc(a).tolist(), "auc_naive": auc(b).tolist(),
                    "max_auc_diff": float((auc(a) - auc(b)).abs().max()),
                    "max_curve_diff": float((a - b).abs().max())}
    out["passed"] = all(v["max_auc_diff"] <= args.tolerance for k, v in out.items() if k != "passed")
    return out


def summarize(args, per_round, cpu_use, passes, agreement, info) -> dict:
    clean = (clean_rounds(cpu_use, args.repeats, args.clean_cpu_use)
             if args.device == "cpu" and args.clean_cpu_use > 0 else list(range(args.repeats)))
    used, use_clean = rounds_for_verdict(clean, args.repeats)
    results = {v: {"passes_per_s_median": statistics.median(per_round[v]), "passes_per_s_rounds": per_round[v],
                   "cpu_use_rounds": cpu_use[v]} for v in VARIANTS}
    ratios = {}
    for name, (num, den) in {"efficiency": ("batched", "forward"), "speedup": ("batched", "naive")}.items():
        paired = [n / d for n, d in zip(per_round[num], per_round[den])]
        ratios[name] = {"ratio": statistics.median([paired[r] for r in used]), "round_ratios": paired,
                        "ratio_of_medians": results[num]["passes_per_s_median"] / results[den]["passes_per_s_median"]}
    ratios["efficiency"].update(target=args.target, passed=ratios["efficiency"]["ratio"] >= args.target)
    config = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k != "json"}
    return {"config": config, "machine": info, "forward_passes_per_evaluation": passes,
            "points_per_curve": int(schedule(args).numel()), "rounds_used": used, "clean_rounds": clean,
            "used_clean_subset": use_clean,
            "noisy": args.device == "cpu" and args.clean_cpu_use > 0 and len(clean) < 3,
            "agreement": agreement, "results": results, "ratios": ratios}


def print_report(summary: dict) -> None:
    c, m = summary["config"], summary["machine"]
    step = f"{c['steps']} steps" if c["steps"] else f"step = width ({c['img_size']} px)"
    print(f"\n{c['model']}/{c['backbone']} {c['img_size']}px, {c['images']} images x insertion + deletion, "
          f"{summary['points_per_curve']} points per curve ({step}), batch {c['batch_size']}, {c['device']}, "
          f"{m['torch_threads']} threads; {c['repeats']} interleaved rounds (+{c['warmup']} warm-up)")
    print(f"forward passes per evaluation: {summary['forward_passes_per_evaluation']} images")
    for key in ("insertion", "deletion"):
        a = summary["agreement"][key]
        print(f"  {key:<9} AUC batched {' '.join(f'{x:.5f}' for x in a['auc_batched'])}")
        print(f"  {'':<9} AUC naive   {' '.join(f'{x:.5f}' for x in a['auc_naive'])}   "
              f"max |diff| {a['max_auc_diff']:.2e} (curves {a['max_curve_diff']:.2e})")
    print(f"  agreement: {'PASS' if summary['agreement']['passed'] else 'FAIL'} (tolerance {c['tolerance']})")
    print(f"{'variant':<9} {'passes/s':>10} {'cpu use':>8}   per round")
    for v in VARIANTS:
        r = summary["results"][v]
        rounds = " ".join(f"{x:.1f}" for x in r["passes_per_s_rounds"])
        print(f"{v:<9} {r['passes_per_s_median']:>10.1f} {statistics.median(r['cpu_use_rounds']):>8.2f}   {rounds}")
    subset = "clean rounds " + str(summary["rounds_used"]) if summary["used_clean_subset"] else "all rounds"
    eff, sp = summary["ratios"]["efficiency"], summary["ratios"]["speedup"]
    print(f"batched / forward (efficiency) {eff['ratio']:.3f}  per round "
          f"{' '.join(f'{x:.3f}' for x in eff['round_ratios'])}  ({subset}; ratio of medians "
          f"{eff['ratio_of_medians']:.3f})  target >= {eff['target']}: {'PASS' if eff['passed'] else 'FAIL'}"
          + ("  NOISY" if summary["noisy"] else ""))
    print(f"batched / naive (speedup)      {sp['ratio']:.2f}x per round "
          f"{' '.join(f'{x:.2f}' for x in sp['round_ratios'])}  (ratio of medians {sp['ratio_of_medians']:.2f}x)")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    device = setup_torch(args)
    info = machine()
    model = build_model(args, device)
    images, maps, targets = make_inputs(args, device)
    agreement = check_agreement(model, images, maps, targets, args)
    sizes = forward_sizes(args)
    buffer = torch.randn(args.batch_size, 3, args.img_size, args.img_size, device=device)

    def repeat(fn):
        def run(n: int) -> None:
            for _ in range(n):
                fn()
        return run

    run = {"forward": repeat(lambda: forward_only(model, buffer, sizes)),
           "batched": repeat(lambda: batched(model, images, maps, targets, args)),
           "naive": repeat(lambda: naive(model, images, maps, targets, args))}
    per_round, cpu_use = interleaved_rounds(run, VARIANTS, warmup=args.warmup, repeats=args.repeats, steps=1,
                                            images_per_step=sum(sizes), device=device)
    summary = summarize(args, per_round, cpu_use, sum(sizes), agreement, info)
    print_report(summary)
    write_json(args.json, summary)
    return 0 if agreement["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
