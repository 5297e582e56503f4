#!/usr/bin/env python
"""The viewer's budgets, measured in Chromium (issue #15).

1. **Size**: a view of ``--images`` images × ``--models`` models × ``--explainers`` explainers ×
   (top-5 + ground truth) classes, written with the real writer (:class:`ViewWriter`,
   :func:`encode_map`): rendered synthetic images as thumbnails, smooth random maps at
   ``--map-side``² (default 24²: the largest side a view stores, e.g. Grad-CAM or RISE at the input
   size after area-averaging; natively smaller maps, 7×7 or 14×14, take less; nothing is deduplicated).
   Target: ≤ 50 MB.
2. **First paint**: ``file://…/index.html`` opened in headless Chromium (Playwright, Debian's
   package): first-contentful-paint and the time the grid is built (``SEETHROUGH.readyMs``), over
   ``--repeats`` fresh pages. Target: ≤ 2 s.
3. **Repaint**: one image opened, then switching the focused model, the explainer, the class and
   the opacity and threshold sliders, each ``--repeats`` times; the time the viewer reports for
   the repaint it triggers (``SEETHROUGH.lastPaintMs``: every canvas of the image for class and
   sliders, the focus canvas for model and explainer). Target: ≤ 50 ms (median).

Example (about a minute on 2 vCPUs)::

    python benchmarks/viewer_budget.py --out /tmp/viewer-budget
"""
from __future__ import annotations

import argparse
import shutil
import statistics
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from seethrough.data.synthetic import SyntheticDataset
from seethrough.viewer.format import THUMBNAIL_SIDE, ViewWriter, encode_map, thumbnail

TOP_K = 5


def write_synthetic_view(out: Path, *, images: int, models: int, explainers: int, classes: int,
                         map_side: int) -> float:
    """Write the view; its size in MB."""
    if out.exists():
        shutil.rmtree(out)
    writer = ViewWriter(out, title=f"budget: {images} images × {models} models × {explainers} explainers")
    names = [f"model-{m}" for m in range(models)]
    methods = ["native", "gradcam", "scorecam"][:explainers] + [f"explainer-{e}" for e in range(3, explainers)]
    writer.manifest["classes"] = [f"class-{c}" for c in range(classes)]
    writer.manifest["explainers"] = methods
    writer.manifest["models"] = [{"name": n, "kind": "fc", "sign": 1, "accuracy": None,
                                  "map_size": {e: [map_side, map_side] for e in methods}} for n in names]
    data = SyntheticDataset(split="val", difficulty="benchmark", num_classes=4, img_size=THUMBNAIL_SIDE,
                            num_samples=images)
    generator = torch.Generator().manual_seed(0)
    for i in range(images):
        picture = np.asarray(data.render(data.scene(i)).image.convert("RGB"))
        path = writer.image_path(str(i))
        thumbnail(picture, out / path)
        label = i % classes
        top = torch.randperm(classes, generator=generator)[:TOP_K].tolist()
        stored = [label, *[c for c in top if c != label]]
        probs = torch.softmax(torch.randn(TOP_K, generator=generator), 0).sort(descending=True).values.tolist()
        writer.manifest["samples"].append({"id": str(i), "label": label, "thumb": path, "metrics": {},
                                           "models": {n: {"top": [[c, round(p, 5)] for c, p in zip(top, probs)]}
                                                      for n in names}})
        chunk = writer.sample_chunk(str(i))
        for n in names:
            for e in methods:
                noise = torch.rand(len(stored), 1, max(2, map_side // 3), max(2, map_side // 3), generator=generator)
                smooth = F.interpolate(noise, size=(map_side, map_side), mode="bilinear", align_corners=False)[:, 0]
                chunk["maps"].setdefault(n, {})[e] = {str(c): encode_map(m) for c, m in zip(stored, smooth)}
    writer.write()
    return sum(f.stat().st_size for f in out.rglob("*") if f.is_file()) / 2**20


def measure_browser(out: Path, chromium: str, repeats: int) -> dict[str, list[float]]:
    from playwright.sync_api import sync_playwright

    times: dict[str, list[float]] = {k: [] for k in ("first_contentful_paint", "grid_built", "model", "explainer",
                                                      "class", "opacity", "threshold")}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        for _ in range(repeats):
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto((out / "index.html").as_uri())
            page.wait_for_function("window.SEETHROUGH && window.SEETHROUGH.readyMs !== undefined")
            page.wait_for_function("performance.getEntriesByName('first-contentful-paint').length > 0")
            times["first_contentful_paint"].append(
                page.evaluate("performance.getEntriesByName('first-contentful-paint')[0].startTime"))
            times["grid_built"].append(page.evaluate("window.SEETHROUGH.readyMs"))
            page.close()
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto((out / "index.html").as_uri())
        page.wait_for_function("window.SEETHROUGH && window.SEETHROUGH.readyMs !== undefined")
        page.locator(".cell").first.click()
        page.wait_for_function("window.SEETHROUGH.shown !== undefined")
        models = page.evaluate("Array.from(document.querySelectorAll('#focus-model option')).map(o => o.value)")
        methods = page.evaluate("Array.from(document.querySelectorAll('#focus-explainer option')).map(o => o.value)")
        classes = page.evaluate("Array.from(document.querySelectorAll('#class-select option'))"
                                ".filter(o => !o.text.includes('not stored')).map(o => o.value)")

        def timed(kind: str, action) -> None:
            before = page.evaluate("window.SEETHROUGH.paints || 0")
            action()
            page.wait_for_function(f"(window.SEETHROUGH.paints || 0) > {before}")
            times[kind].append(page.evaluate("window.SEETHROUGH.lastPaintMs"))

        for r in range(repeats):
            timed("model", lambda r=r: page.select_option("#focus-model", models[(r + 1) % len(models)]))
            timed("explainer", lambda r=r: page.select_option("#focus-explainer", methods[(r + 1) % len(methods)]))
            timed("class", lambda r=r: page.select_option("#class-select", classes[(r + 1) % len(classes)]))
            timed("opacity", lambda r=r: page.locator("#opacity").fill(str(30 + 10 * (r % 5))))
            timed("threshold", lambda r=r: page.locator("#threshold").fill(str(10 * (r % 9))))
        browser.close()
    return times


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, default=Path("/tmp/viewer-budget"))
    p.add_argument("--images", type=int, default=1000)
    p.add_argument("--models", type=int, default=3)
    p.add_argument("--explainers", type=int, default=3)
    p.add_argument("--classes", type=int, default=200)
    p.add_argument("--map-side", type=int, default=24, help="24: the largest a view stores (--max-map-side)")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    args = p.parse_args()
    started = time.perf_counter()
    size = write_synthetic_view(args.out, images=args.images, models=args.models, explainers=args.explainers,
                                classes=args.classes, map_side=args.map_side)
    print(f"view of {args.images} images × {args.models} models × {args.explainers} explainers × top-{TOP_K} "
          f"(+ ground truth) classes, {args.map_side}×{args.map_side} maps: {size:.1f} MB (target ≤ 50 MB); "
          f"written in {time.perf_counter() - started:.0f} s")
    times = measure_browser(args.out, args.chromium, args.repeats)
    targets = {"first_contentful_paint": 2000, "grid_built": 2000}
    for kind, values in times.items():
        median = statistics.median(values)
        target = targets.get(kind, 50)
        print(f"  {kind:24s} median {median:8.1f} ms  (min {min(values):.1f}, max {max(values):.1f}; "
              f"target ≤ {target} ms: {'met' if median <= target else 'NOT met'})")


if __name__ == "__main__":
    main()
