#!/usr/bin/env python
"""Infidelity and max-sensitivity: seethrough vs Captum, same settings, side by side (issue #4).

The issue: "Infidelity and sensitivity vs Captum with the same settings (target ≥ 5× faster,
same values)."

One seethrough model (``--model``, default the FC baseline with its CAM as the native map) on
``--backbone`` at ``--img-size``, random weights (seed 0), one fixed random batch of
``--batch-size`` images, targets ``arange(B) % classes``, maps = ``seethrough.explain(...,
method="native")`` (min-max normalized, upsampled). Variants, each evaluating the whole batch:

  infidelity   ``seethrough.metrics.infidelity`` (Gaussian, ``--std``, ``--perturbations``
               draws, β-normalized, logit score, ``--chunk`` perturbed images per forward)
  captum-infd  ``captum.metrics.infidelity`` with the same forward (logits), attributions =
               maps expanded over the channels, ``n_perturb_samples``, ``normalize=True``,
               ``max_examples_per_batch=--chunk`` and a ``perturb_func`` that draws *the same
               noise* as seethrough (each image's seeded generator, one draw per perturbation)
               — so the values must agree;
  captum-infd-randn  the same, with a plain ``torch.randn`` perturb_func on the device (the
               cheapest noise Captum can be given; values differ by the noise);
  sensitivity  ``seethrough.metrics.max_sensitivity`` (``--radius``, ``--samples``, Frobenius,
               relative, explainer "native", ``--chunk`` per explainer call)
  captum-sens  ``captum.metrics.sensitivity_max`` with ``explanation_func`` =
               ``seethrough.explain`` (native), the same seeded uniform noise, ``norm_ord="fro"``,
               ``max_examples_per_batch=--chunk``;
  captum-sens-default  the same with Captum's default perturb_func (uniform noise drawn on the
               CPU, then moved).

Timing is interleaved (``_timing.interleaved_rounds``: ``--warmup`` untimed calls, then
``--repeats`` rounds in rotated order); the speed ratio of a pair is the median of its
per-round ratios, over the rounds whose CPU use was ≥ ``--clean-cpu-use`` when at least 3
were (selection by CPU use only). Values: max |seethrough − Captum| over the batch for the
same-noise variants (and the relative difference).

Example (the defaults; 25 s with 1 thread, about 1 minute with 2 threads on 2 busy shared vCPUs)::

    python benchmarks/robustness_vs_captum.py --backbone resnet18 --img-size 64 --batch-size 4 \\
        --perturbations 16 --samples 8 --chunk 32 --repeats 5 --threads 1 --json runs/bench/robustness.json

Why the ratio stays near 1× on the same settings: both libraries spend their time in the same
``B·n`` batched forward passes (infidelity) or explainer calls (sensitivity). Captum already
batches them (``max_examples_per_batch``); what seethrough saves is Captum's repeated forward of
the clean inputs per chunk (infidelity) and its re-explanation of the clean inputs plus
``repeat_interleave`` copies (sensitivity) — a few per cent to ~20 %.
"""
from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import torch

import seethrough
from seethrough.explanations.api import logits_of
from seethrough.core.noise import sample_generator
from seethrough.metrics.robustness import INFIDELITY_STREAM, SENSITIVITY_STREAM, infidelity, max_sensitivity

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import (  # noqa: E402  (shared with the other side-by-side benchmarks)
    clean_rounds,
    interleaved_rounds,
    machine,
    rounds_for_verdict,
    setup_torch,
    write_json,
)

TARGET = 5.0
PAIRS = {  # ours → Captum variants it is compared with
    "infidelity": ("captum-infd", "captum-infd-randn"),
    "sensitivity": ("captum-sens", "captum-sens-default"),
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="fc", help="seethrough model name (native maps are explained)")
    p.add_argument("--backbone", default="resnet18", help="timm model name")
    p.add_argument("--classes", type=int, default=10)
    p.add_argument("--img-size", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=4, help="images evaluated per call")
    p.add_argument("--chunk", type=int, default=32, help="perturbed images per forward/explainer call (both libraries)")
    p.add_argument("--perturbations", type=int, default=16, help="infidelity draws per image")
    p.add_argument("--std", type=float, default=0.2, help="Gaussian infidelity noise std")
    p.add_argument("--samples", type=int, default=8, help="sensitivity draws per image")
    p.add_argument("--radius", type=float, default=0.2, help="sensitivity L-inf radius")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--clean-cpu-use", type=float, default=0.9)
    p.add_argument("--json", type=Path, default=None)
    return p.parse_args(argv)


def seeded_perturb(kind: str, batch: int, shape, device, *, std: float = 0.0):
    """A Captum perturb_func drawing seethrough's noise: image i's generator (seed 0, sample id
    i), one draw per perturbation, rows in Captum's repeat_interleave order."""
    stream = INFIDELITY_STREAM if kind == "gaussian" else SENSITIVITY_STREAM
    gens = [sample_generator(0, i, stream, device) for i in range(batch)]

    def draw(rows: int, radius: float = 0.0) -> torch.Tensor:
        per = rows // batch
        if kind == "gaussian":
            return torch.stack([torch.randn(shape, generator=gens[r // per], device=device) for r in range(rows)]) * std
        return torch.stack([torch.empty(shape, device=device).uniform_(-radius, radius, generator=gens[r // per])
                            for r in range(rows)])

    if kind == "gaussian":
        def perturb(inputs):
            noise = draw(inputs.shape[0])
            return noise, inputs - noise
        return perturb

    def perturb_uniform(inputs, radius):
        return inputs + draw(inputs.shape[0], radius)
    return perturb_uniform


def build(args, device):
    torch.manual_seed(0)
    model = seethrough.create_model(args.model, num_classes=args.classes, backbone=args.backbone,
                                    pretrained=False).to(device).eval()
    images = torch.randn(args.batch_size, 3, args.img_size, args.img_size, device=device)
    targets = torch.arange(args.batch_size, device=device) % args.classes
    maps = seethrough.explain(model, images, targets)
    return model, images, targets, maps


def variants(args, model, images, targets, maps):
    shape, b, device = tuple(images.shape[1:]), images.shape[0], images.device
    forward = lambda x: logits_of(model, x)  # noqa: E731
    attributions = maps[:, None].expand_as(images)

    def explanation(inputs, target):
        inputs = inputs[0] if isinstance(inputs, tuple) else inputs
        return (seethrough.explain(model, inputs, target),)

    def randn_perturb(inputs):
        noise = torch.randn_like(inputs) * args.std
        return noise, inputs - noise

    from captum.metrics import infidelity as captum_infidelity, sensitivity_max

    calls = {
        "infidelity": lambda: infidelity(model, images, maps, targets, num_perturbations=args.perturbations,
                                         std=args.std, normalize=True, score="logit", batch_size=args.chunk),
        "captum-infd": lambda: captum_infidelity(forward, seeded_perturb("gaussian", b, shape, device, std=args.std),
                                                 images, attributions, target=targets,
                                                 n_perturb_samples=args.perturbations,
                                                 max_examples_per_batch=args.chunk, normalize=True),
        "captum-infd-randn": lambda: captum_infidelity(forward, randn_perturb, images, attributions, target=targets,
                                                       n_perturb_samples=args.perturbations,
                                                       max_examples_per_batch=args.chunk, normalize=True),
        "sensitivity": lambda: max_sensitivity(model, images, maps, targets, radius=args.radius,
                                               num_samples=args.samples, norm="fro", batch_size=args.chunk),
        "captum-sens": lambda: sensitivity_max(explanation, images,
                                               perturb_func=seeded_perturb("uniform", b, shape, device),
                                               perturb_radius=args.radius, n_perturb_samples=args.samples,
                                               norm_ord="fro", max_examples_per_batch=args.chunk, target=targets),
        "captum-sens-default": lambda: sensitivity_max(explanation, images, perturb_radius=args.radius,
                                                       n_perturb_samples=args.samples, norm_ord="fro",
                                                       max_examples_per_batch=args.chunk, target=targets),
    }
    return calls


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    device = setup_torch(args)
    model, images, targets, maps = build(args, device)
    calls = variants(args, model, images, targets, maps)

    values = {name: calls[name]().detach().float().reshape(-1).cpu() for name in ("infidelity", "captum-infd",
                                                                                 "sensitivity", "captum-sens")}
    agreement = {}
    for ours, theirs in (("infidelity", "captum-infd"), ("sensitivity", "captum-sens")):
        diff = (values[ours] - values[theirs]).abs()
        agreement[ours] = {"seethrough": values[ours].tolist(), "captum": values[theirs].tolist(),
                           "max_abs_diff": float(diff.max()),
                           "max_rel_diff": float((diff / values[theirs].abs().clamp(min=1e-12)).max())}

    order = list(calls)
    run = {name: (lambda fn: (lambda n: [fn() for _ in range(n)]))(calls[name]) for name in order}
    per_round, cpu_use = interleaved_rounds(run, order, warmup=args.warmup, repeats=args.repeats, steps=1,
                                            images_per_step=args.batch_size, device=device)
    speed = {}
    for ours, others in PAIRS.items():
        for other in others:
            pair_use = {ours: cpu_use[ours], other: cpu_use[other]}
            rounds, used_clean = rounds_for_verdict(clean_rounds(pair_use, args.repeats, args.clean_cpu_use),
                                                    args.repeats)
            ratios = [per_round[ours][r] / per_round[other][r] for r in rounds]
            speed[f"{ours} vs {other}"] = {"speedup": statistics.median(ratios), "rounds": rounds,
                                           "clean_rounds_only": used_clean, "target": TARGET,
                                           "reached": statistics.median(ratios) >= TARGET}
    summary = {
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "forward_passes": {"infidelity": args.batch_size * (args.perturbations + 1),
                           "sensitivity_explanations": args.batch_size * args.samples},
        "images_per_s": {name: statistics.median(per_round[name]) for name in order},
        "cpu_use": {name: statistics.median(cpu_use[name]) for name in order},
        "speedup": speed, "agreement": agreement, "machine": machine(),
    }
    print_report(summary)
    write_json(args.json, summary)
    return summary


def print_report(summary: dict) -> None:
    c = summary["config"]
    print(f"\n{c['model']} on {c['backbone']} {c['img_size']}px, batch {c['batch_size']}, chunk {c['chunk']}, "
          f"{c['device']}; infidelity {c['perturbations']} Gaussian draws (std {c['std']}), "
          f"max-sensitivity {c['samples']} draws (radius {c['radius']})")
    print(f"{'variant':<22}{'images/s':>10}{'cpu use':>9}")
    for name, ips in summary["images_per_s"].items():
        print(f"{name:<22}{ips:>10.2f}{summary['cpu_use'][name]:>9.2f}")
    print("\nspeed (median of per-round ratios; target ≥ 5×):")
    for pair, s in summary["speedup"].items():
        print(f"  {pair:<38} {s['speedup']:.2f}×  ({'clean rounds' if s['clean_rounds_only'] else 'all rounds'} "
              f"{s['rounds']})")
    print("\nvalues with identical noise (seethrough | Captum):")
    for name, a in summary["agreement"].items():
        pairs = ", ".join(f"{x:.6g} | {y:.6g}" for x, y in zip(a["seethrough"], a["captum"]))
        print(f"  {name:<12} max |diff| {a['max_abs_diff']:.3g} (relative {a['max_rel_diff']:.2g}): {pairs}")


if __name__ == "__main__":
    main()
