#!/usr/bin/env python
"""Each benchmark protocol's cost against its forward-pass limit (issue #14; target >= 0.8).

For every metric of the ``benchmark`` protocol (the part interventions of
:mod:`seethrough.metrics.parts` and insertion/deletion with the ``absent`` substrate), on the
same ``--images`` validation images of the benchmark data and the same model:

  metric   the metric function, from a fresh :class:`PartInterventions` (empty logits cache), so
           it renders every intervened image and forwards it itself;
  forward  the physical limit: exactly the forward passes the metric made — the same number of
           calls with the same batch sizes, recorded from the metric's own run — on a fixed
           pre-built batch, and nothing else;
  render   the intervened images alone (``PartInterventions.images`` of the same scenes the
           metric renders): the CPU drawing the metric cannot avoid on top of the forward passes.

A last row, ``all (shared cache)``, runs every part metric on ONE PartInterventions, as
``seethrough evaluate`` / ``seethrough benchmark`` do: interventions the metrics share are
rendered and forwarded once; its limit is the union of their forward passes.

Ratios are forward / metric (the efficiency, target >= ``--target``), medians over
``--repeats`` interleaved rounds (metric and limit alternate, so machine load hits both).

Example (CPU, a few minutes on 2 shared vCPUs)::

    python benchmarks/part_protocols.py --run bench/runs/fc --images 32 --repeats 3 --threads 2
"""
from __future__ import annotations

import argparse
import statistics
import time
from typing import Any, Callable

import torch
from torch import nn

import seethrough
from seethrough.benchmark import BENCHMARK_DATA
from seethrough.data.interventions import PartInterventions
from seethrough.data.synthetic import SyntheticDataset
from seethrough.data.transforms import build_transform
from seethrough.metrics import get_metric
from seethrough.models.loading import load_for_inference

#: The benchmark protocol's part metrics and faithfulness metrics (``protocols/benchmark.yaml``).
METRICS: dict[str, dict[str, Any]] = {
    "controlled_synthetic_data_check": {}, "preservation_check": {}, "deletion_check": {}, "distractibility": {},
    "single_deletion": {}, "target_sensitivity": {}, "background_independence": {},
    "insertion": {"substrate": "absent", "steps": 16}, "deletion": {"substrate": "absent", "steps": 16},
}
#: Metrics that share the batch's logits cache in a benchmark run.
SHARED = [name for name in METRICS if name not in ("insertion", "deletion")]


class Recorder(nn.Module):
    """The model, recording the batch size of every forward call."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.sizes: list[int] = []

    def forward(self, images: torch.Tensor):
        self.sizes.append(int(images.shape[0]))
        return self.model(images)


class RenderRecorder:
    """Wraps ``PartInterventions.images`` to count the scenes a metric renders."""

    def __init__(self) -> None:
        self.scenes = 0
        self._original = PartInterventions.images

    def __enter__(self) -> "RenderRecorder":
        recorder, original = self, self._original

        def images(parts, scenes):
            recorder.scenes += len(scenes)
            return original(parts, scenes)

        PartInterventions.images = images  # type: ignore[method-assign]
        return self

    def __exit__(self, *exc) -> None:
        PartInterventions.images = self._original  # type: ignore[method-assign]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--run", default=None, help="a trained run (default: an untrained fc/resnet18 at 64 px)")
    p.add_argument("--images", type=int, default=32)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--target", type=float, default=0.8)
    p.add_argument("--metrics", default=",".join(METRICS), help="comma-separated subset")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.run:
        loaded = load_for_inference(args.run)
        model, transform, size = loaded.model.eval(), loaded.transform(square=True), loaded.img_size
    else:
        size = 64
        model = seethrough.create_model("fc", num_classes=BENCHMARK_DATA["num_classes"], backbone="resnet18",
                                        pretrained=False).eval()
        transform = build_transform(size, train=False)
    data = SyntheticDataset(split="val", **BENCHMARK_DATA, img_size=size, num_samples=args.images)
    data.transform = transform
    ids = list(range(args.images))
    images = torch.stack([data[i]["image"] for i in ids])
    targets = torch.tensor([data[i]["label"] for i in ids])
    with torch.no_grad():
        maps = seethrough.explain(model, images, targets=targets, normalize="minmax")
    maps = maps if torch.is_tensor(maps) else maps.maps
    maps = maps[:, 0] if maps.dim() == 4 else maps
    fixed = images.repeat((8, 1, 1, 1))

    def fresh_parts() -> PartInterventions:
        return PartInterventions.for_samples(data, ids, transform, (size, size))

    def run_metrics(names: list[str], recorder: Recorder) -> None:
        parts = fresh_parts()
        for name in names:
            get_metric(name)(recorder, images, maps, targets, parts=parts, **METRICS[name])

    def limit(sizes: list[int]) -> Callable[[], None]:
        def forward() -> None:
            with torch.no_grad():
                for n in sizes:
                    batch = fixed[:n] if n <= fixed.shape[0] else fixed.repeat((n // fixed.shape[0] + 1, 1, 1, 1))[:n]
                    model(batch)
        return forward

    chosen = [m for m in args.metrics.split(",") if m]
    rows = [(name, [name]) for name in chosen] + [("all (shared cache)", [m for m in chosen if m in SHARED])]
    print(f"{args.images} images of the benchmark data at {size} px, model {args.run or 'fc/resnet18 (untrained)'}, "
          f"{torch.get_num_threads()} threads, median of {args.repeats} interleaved rounds")
    print(f"{'metric':34s} {'passes':>6s} {'images':>7s} {'rendered':>8s} {'metric s':>9s} {'forward s':>9s} "
          f"{'render s':>8s} {'fwd/metric':>10s} {'(fwd+render)/metric':>19s}")
    summary = {}
    for label, names in rows:
        recorder = Recorder(model).eval()
        with RenderRecorder() as rendered:
            run_metrics(names, recorder)             # records the passes; also a warm-up
        forward = limit(recorder.sizes)
        scenes_parts = fresh_parts()
        render_count = rendered.scenes
        times: dict[str, list[float]] = {"metric": [], "forward": [], "render": []}
        for _ in range(args.repeats):
            start = time.perf_counter()
            run_metrics(names, Recorder(model).eval())
            times["metric"].append(time.perf_counter() - start)
            start = time.perf_counter()
            forward()
            times["forward"].append(time.perf_counter() - start)
            start = time.perf_counter()
            for begin in range(0, render_count, len(ids)):
                scenes_parts.images(scenes_parts.scenes[:min(len(ids), render_count - begin)])
            times["render"].append(time.perf_counter() - start)
        median = {k: statistics.median(v) for k, v in times.items()}
        ratio = median["forward"] / median["metric"]
        with_render = (median["forward"] + median["render"]) / median["metric"]
        summary[label] = {"passes": len(recorder.sizes), "images": sum(recorder.sizes), "rendered": render_count,
                          **median, "ratio": ratio, "ratio_with_render": with_render}
        print(f"{label:34s} {len(recorder.sizes):6d} {sum(recorder.sizes):7d} {render_count:8d} "
              f"{median['metric']:9.2f} {median['forward']:9.2f} {median['render']:8.2f} {ratio:10.2f} "
              f"{with_render:19.2f}")
    below = [label for label, row in summary.items() if row["ratio"] < args.target]
    print(f"target fwd/metric >= {args.target}: " + ("met by every metric" if not below else
                                                    "not met by " + ", ".join(below)))


if __name__ == "__main__":
    main()
