#!/usr/bin/env python
"""Push time of the batched tensor search (``seethrough.prototypes.push_prototypes``) against a
per-prototype Python loop written the way the original ProtoPNet's ``push.py`` does it.

The loop variant (``loop_push`` below, written for this comparison): for every batch, the
latent map and the distance tensor are copied to numpy; with a class-specific push, a
dictionary lists the batch's images per class; then for every prototype j its class is read
(``torch.argmax`` of its row of the class identity, as the original does), the images of that
class are selected from the WHOLE distance tensor (``dist[members][:, j]``, a copy of every
prototype's maps of those images, as the original indexes), and ``np.amin`` / ``np.argmin`` /
``np.unravel_index`` give the batch's best patch, kept when it beats the running best. The
original also computes a receptive-field box, a cv2 bicubic upsampling and a high-activation
crop on every improvement, and writes up to five PNGs; none of that is done here, so the loop
is timed at its most favourable (the batched version renders once at the end, outside the push).

Both variants see the same in-memory batches (random images ``--images``×3×``--img-size``², dataset
index ``i``; labels in class order, ``i·C // N``, as the original's unshuffled ImageFolder push
loader gives them, or interleaved ``i % C`` with ``--label-order interleaved``) and the same
model (ProtoPNet, ``--prototypes`` P, random weights, eval mode); the prototypes are reset to the
same initial values before every push. Three pairs are timed, interleaved in rotating order over ``--repeats`` rounds
(``_timing.interleaved_rounds``):

- ``push``: the whole push, forward passes included (what a training run pays);
- ``search``: the push minus the backbone, on latent maps computed once beforehand: the
  B×P×h×w distance tensor (the model's ``squared_distances``, one matrix product, the same call
  in both variants) plus the minimum search and bookkeeping;
- ``select``: only what the two implementations do differently, on distance tensors computed
  once beforehand: the per-prototype loop with its numpy copies against the tensor reduction.

The figures are seconds per 1000 images (median over rounds) and the speed-up batched/loop
(median of the per-round ratios over the rounds whose blocks all had cpu use >= ``--clean-cpu-use``,
when at least 3 did). Target: >= 10×. On a CPU the forward pass and the distance tensor, which
both variants compute, bound the ``push`` and ``search`` ratios; on a GPU they are cheap and the
loop's host copies and Python iterations dominate. Before timing, the two variants are checked
to pick the same patches.

Example (about 2 minutes on 2 shared vCPUs)::

    python benchmarks/push_throughput.py --backbone test_resnet --img-size 64 --images 400 \\
        --classes 200 --prototypes 2000 --batch-size 50 --threads 1
"""
from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import numpy as np
import torch

import seethrough
from seethrough.models.heads.prototype import squared_distances
from seethrough.prototypes import NearestPatchSearch, push_prototypes

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import clean_rounds, interleaved_rounds, machine, rounds_for_verdict, setup_torch, write_json  # noqa: E402

#: The speed-up the batched search should reach over the per-prototype loop.
TARGET_SPEEDUP = 10.0
IMAGES_PER_FIGURE = 1000
PAIRS = ("push", "search", "select")
VARIANTS = tuple(f"{pair}-{kind}" for pair in PAIRS for kind in ("batched", "loop"))


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backbone", default="test_resnet", help="timm model name")
    p.add_argument("--img-size", type=int, default=64)
    p.add_argument("--output-stride", type=int, default=None, help="backbone output stride (dilation)")
    p.add_argument("--images", type=int, default=400, help="push set size")
    p.add_argument("--batch-size", type=int, default=50, help="push batch size (ProtoPNet / LVW: 75)")
    p.add_argument("--classes", type=int, default=200, help="class count C (CUB: 200)")
    p.add_argument("--prototypes", type=int, default=2000, help="prototype count P (CUB ProtoPNet: 2000)")
    p.add_argument("--prototype-dim", type=int, default=128)
    p.add_argument("--label-order", choices=("sorted", "interleaved"), default="sorted",
                   help="sorted: class-contiguous like an unshuffled ImageFolder (the original's push loader)")
    p.add_argument("--class-agnostic", action="store_true", help="LVW's push over every image (default: ProtoPNet's "
                                                                 "class-specific push)")
    p.add_argument("--warmup", type=int, default=1, help="untimed pushes per variant before the rounds")
    p.add_argument("--repeats", type=int, default=5, help="interleaved rounds")
    p.add_argument("--clean-cpu-use", type=float, default=0.9,
                   help="CPU only: rounds whose blocks all had cpu use >= this are preferred (0 disables)")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--loop-renders", action="store_true",
                   help="the loop also upsamples and crops on every improvement, as the original's push.py does "
                        "(its PNG writes still left out); the batched push renders once at the end, outside the timing")
    p.add_argument("--json", type=Path, default=None, help="also write the results to this JSON file")
    args = p.parse_args(argv)
    if args.prototypes % args.classes:
        p.error(f"--prototypes {args.prototypes} must be a multiple of --classes {args.classes}")
    if args.images < args.classes and not args.class_agnostic:
        p.error(f"--images {args.images} < --classes {args.classes}: a class-specific push needs an image of "
                "every class")
    if args.device == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda: no CUDA device is available")
    return args


def render_on_improvement(image: np.ndarray, distance_map: np.ndarray, percentile: float = 95.0) -> np.ndarray:
    """What the original's push does on every improvement besides writing PNGs: the similarity
    map upsampled (bicubic) to the image size and the crop of its pixels >= the 95th percentile."""
    similarity = np.log((distance_map + 1) / (distance_map + 1e-4))
    upsampled = torch.nn.functional.interpolate(torch.from_numpy(similarity)[None, None], size=image.shape[-2:],
                                                mode="bicubic", align_corners=False)[0, 0].numpy()
    rows, cols = np.nonzero(upsampled >= np.percentile(upsampled, percentile))
    return np.copy(image[:, rows.min():rows.max() + 1, cols.min():cols.max() + 1])


def loop_push(model, batches: list[dict], *, class_specific: bool, latents: list[torch.Tensor] | None = None,
              distances: list[torch.Tensor] | None = None, renders: bool = False) -> dict[str, np.ndarray]:
    """The original's per-prototype Python loop (see the module docstring); sets the prototypes.
    ``latents`` / ``distances``: precomputed per batch (the ``search`` / ``select`` pairs), else
    computed here. ``renders``: also the original's per-improvement upsampling and crop
    (:func:`render_on_improvement`; its PNG writes still left out)."""
    p, d = model.prototypes.shape[:2]
    num_classes = model.prototype_class_identity.shape[1]
    best_distance = np.full(p, np.inf)
    best_patch = np.zeros((p, d), dtype=np.float32)
    best_where = np.full((p, 3), -1, dtype=np.int64)  # dataset index, y, x
    for b, batch in enumerate(batches):
        with torch.no_grad():
            latent = latents[b] if latents is not None else model.latent(batch["image"])
            batch_distances = distances[b] if distances is not None else squared_distances(latent, model.prototypes)
        latent_np = np.copy(latent.cpu().numpy())
        distances_np = np.copy(batch_distances.cpu().numpy())
        labels = batch["label"].tolist()
        indices = batch["index"].tolist()
        if class_specific:
            members_of = {c: [] for c in range(num_classes)}
            for i, label in enumerate(labels):
                members_of[label].append(i)
        for j in range(p):
            if class_specific:
                members = members_of[int(torch.argmax(model.prototype_class_identity[j]))]  # per prototype, as there
                if not members:
                    continue
                distances_j = distances_np[members][:, j]
            else:
                distances_j = distances_np[:, j]
            smallest = np.amin(distances_j)
            if smallest < best_distance[j]:
                i, y, x = np.unravel_index(np.argmin(distances_j, axis=None), distances_j.shape)
                if class_specific:
                    i = members[i]
                best_distance[j] = smallest
                best_patch[j] = latent_np[i, :, y, x]
                best_where[j] = (indices[i], y, x)
                if renders:
                    render_on_improvement(batch["image"][i].cpu().numpy(), distances_np[i, j])
    with torch.no_grad():
        model.prototypes.data.copy_(torch.from_numpy(best_patch).reshape(model.prototypes.shape))
    return {"distance": best_distance, "where": best_where}


def batched_search(model, batches: list[dict], latents: list[torch.Tensor], *, class_specific: bool,
                   distances: list[torch.Tensor] | None = None) -> None:
    """The push's own work on precomputed latents (and distances): :class:`NearestPatchSearch`."""
    search = NearestPatchSearch(model.prototypes, model.prototype_class_identity if class_specific else None)
    with torch.no_grad():
        for b, (batch, latent) in enumerate(zip(batches, latents)):
            if distances is None:
                search.update(latent, batch["label"], batch["index"])
            else:
                search.update_with_distances(distances[b], latent, batch["label"], batch["index"])
        model.prototypes.data.copy_(search.vector.reshape(model.prototypes.shape))
    int(search.count)  # wait for the device


def make_batches(args, device: torch.device) -> list[dict]:
    g = torch.Generator().manual_seed(args.seed)
    batches = []
    for start in range(0, args.images, args.batch_size):
        n = min(args.batch_size, args.images - start)
        index = torch.arange(start, start + n)
        labels = index % args.classes if args.label_order == "interleaved" else index * args.classes // args.images
        batches.append({"image": torch.randn(n, 3, args.img_size, args.img_size, generator=g).to(device),
                        "label": labels.to(device), "index": index.to(device)})
    return batches


def main(argv=None) -> dict:
    args = parse_args(argv)
    device = setup_torch(args)
    torch.manual_seed(args.seed)
    options = {} if args.output_stride is None else {"output_stride": args.output_stride}
    model = seethrough.create_model("protopnet", num_classes=args.classes, backbone=args.backbone,
                                    num_prototypes=args.prototypes, prototype_dim=args.prototype_dim,
                                    class_specific=not args.class_agnostic, **options).to(device).eval()
    class_specific = not args.class_agnostic
    initial = model.prototypes.detach().clone()
    batches = make_batches(args, device)
    with torch.no_grad():
        latents = [model.latent(b["image"]) for b in batches]
        distances = [squared_distances(z, model.prototypes) for z in latents]  # the initial prototypes'
    grid = tuple(latents[0].shape[-2:])

    def reset() -> None:
        model.prototypes.data.copy_(initial)

    # The two implementations pick the same patches (ties aside) before anything is timed.
    reset()
    ours = push_prototypes(model, batches, class_specific=class_specific)
    reset()
    theirs = loop_push(model, batches, class_specific=class_specific)
    same_where = np.array_equal(torch.stack([ours.index, ours.y, ours.x], 1).numpy(), theirs["where"])
    same_distance = np.allclose(ours.distance.numpy(), theirs["distance"], rtol=1e-5, atol=1e-6)
    print(f"same patches as the loop: {'yes' if same_where else 'NO'}; same distances: "
          f"{'yes' if same_distance else 'NO'}", flush=True)

    def pushes(fn):
        def run(n: int) -> None:
            for _ in range(n):
                reset()
                fn()
        return run

    run = {
        "push-batched": pushes(lambda: push_prototypes(model, batches, class_specific=class_specific)),
        "push-loop": pushes(lambda: loop_push(model, batches, class_specific=class_specific, renders=args.loop_renders)),
        "search-batched": pushes(lambda: batched_search(model, batches, latents, class_specific=class_specific)),
        "search-loop": pushes(lambda: loop_push(model, batches, class_specific=class_specific, latents=latents)),
        "select-batched": pushes(lambda: batched_search(model, batches, latents, class_specific=class_specific,
                                                        distances=distances)),
        "select-loop": pushes(lambda: loop_push(model, batches, class_specific=class_specific, latents=latents,
                                                distances=distances)),
    }
    per_round, cpu_use = interleaved_rounds(run, list(VARIANTS), warmup=args.warmup, repeats=args.repeats, steps=1,
                                            images_per_step=args.images, device=device)

    on_cpu = device.type == "cpu" and args.clean_cpu_use > 0
    results, ratios = {}, {}
    for v in VARIANTS:
        seconds = [IMAGES_PER_FIGURE / ips for ips in per_round[v]]
        results[v] = {"s_per_1000_images_median": statistics.median(seconds), "s_per_1000_images_rounds": seconds,
                      "cpu_use_rounds": cpu_use[v]}
    for pair in PAIRS:
        fast, slow = f"{pair}-batched", f"{pair}-loop"
        clean = (clean_rounds({k: cpu_use[k] for k in (fast, slow)}, args.repeats, args.clean_cpu_use) if on_cpu
                 else list(range(args.repeats)))
        used, _ = rounds_for_verdict(clean, args.repeats)
        speedups = [f / s for f, s in zip(per_round[fast], per_round[slow])]
        ratios[pair] = {"speedup": statistics.median([speedups[r] for r in used]), "round_speedups": speedups,
                        "rounds_used": used, "clean_rounds": clean}

    print(f"\nPush over {args.images} images ({len(batches)} batches of {args.batch_size}), {args.backbone} at "
          f"{args.img_size}² → latent {grid[0]}×{grid[1]}×{args.prototype_dim}, P = {args.prototypes}, "
          f"C = {args.classes} ({args.label_order} labels), "
          f"{'class-specific' if class_specific else 'class-agnostic'}, {args.device}, "
          f"{torch.get_num_threads()} thread(s), {args.repeats} rounds"
          + ("; push-loop also upsamples and crops on every improvement, as the original" if args.loop_renders
             else "") + "\n")
    print("| variant | s / 1000 images (median) | min | max | cpu use |")
    print("|---|---:|---:|---:|---:|")
    for v in VARIANTS:
        s = results[v]["s_per_1000_images_rounds"]
        print(f"| {v} | {statistics.median(s):.3f} | {min(s):.3f} | {max(s):.3f} | "
              f"{statistics.median(cpu_use[v]):.2f} |")
    print()
    for pair, q in ratios.items():
        verdict = "PASS" if q["speedup"] >= TARGET_SPEEDUP else "below"
        rounds = " ".join(f"{x:.1f}" for x in q["round_speedups"])
        print(f"{pair}: batched is {q['speedup']:.1f}× faster than the loop (target ≥ {TARGET_SPEEDUP:.0f}×: "
              f"{verdict}); per round {rounds}; rounds used {len(q['rounds_used'])}/{args.repeats}")
    summary = {"benchmark": "push_throughput", "args": {k: str(v) if isinstance(v, Path) else v
                                                        for k, v in vars(args).items()},
               "latent_grid": list(grid), "same_patches": bool(same_where), "same_distances": bool(same_distance),
               "results": results, "speedups": ratios, "machine": machine()}
    write_json(args.json, summary)
    return summary


if __name__ == "__main__":
    main()
