"""``seethrough view``: one self-contained HTML viewer for runs, evaluations and benchmarks.

    index = seethrough.viewer.write_view(["bench/"], out="bench/view")     # open index.html in any browser

The folder opens from ``file://`` with no server and no network request (the data are
JavaScript files, :mod:`.format`); :func:`serve` serves it over HTTP for large sets (the
samples' maps are loaded in chunks either way). What each kind of PATH contributes is in
:mod:`.sources`; what is computed per model in :mod:`.collect`.
"""
from __future__ import annotations

import functools
import http.server
from pathlib import Path
from typing import Any, Sequence

from .collect import MAX_MAP_SIDE, TOP_K, collect, resolve_data
from .format import FORMAT_VERSION, ViewWriter
from .interventions import add_part_removals
from .sources import (
    Source,
    evaluated_data,
    evaluated_ids,
    inspect,
    lower_is_better,
    metric_names,
    metric_values,
    protocol_explainers,
    sample_curves,
)

#: Images viewed when a PATH does not say which (a run, the demo folder).
DEFAULT_LIMIT = 64
#: The most images a view holds unless told otherwise.
MAX_IMAGES = 1000
#: Where ``demo``, ``evaluate`` and ``benchmark`` put their viewer inside their output.
VIEW_DIR = "view"


def write_view(paths: Sequence[str | Path], out: str | Path, *, limit: int | None = None,
               explainers: Sequence[str] | None = None, top_k: int = TOP_K, data: str | None = None,
               data_options: dict[str, Any] | None = None, split: str = "val", title: str | None = None,
               max_map_side: int = MAX_MAP_SIDE, progress: bool = False) -> Path:
    """Write the viewer of ``paths`` into ``out``; returns ``out/index.html``.

    Args:
        paths: runs, model dirs, the demo folder, evaluate or benchmark outputs (at most one of
            the last two: its images, explainers and metrics decide what is shown).
        limit: images shown (default: the evaluated ones, at most :data:`MAX_IMAGES`; else
            :data:`DEFAULT_LIMIT` validation images).
        explainers: explainers shown (default: the evaluation's, else ``native``).
        top_k: predictions stored per image (the class switcher).
        data, data_options, split: the images for runs (default: each run's own validation data).
        max_map_side: maps with a longer side are stored area-averaged down to it (see
            :data:`~.collect.MAX_MAP_SIDE`).
    """
    sources = [inspect(path) for path in paths]
    evaluations = [s for s in sources if s.kind in ("evaluate", "benchmark")]
    if len(evaluations) > 1:
        raise ValueError("view one evaluate/benchmark output at a time (given: "
                         + ", ".join(str(s.path) for s in evaluations) + ")")
    models: dict[str, str] = {}
    for source in sources:
        for label, model in source.models.items():
            models[_unique(label, models)] = model
    if not models:
        raise ValueError("nothing to view: no model found in " + ", ".join(str(p) for p in paths))
    evaluation = evaluations[0] if evaluations else None
    writer = ViewWriter(out, title=title or " + ".join(Path(p).name or str(p) for p in paths))
    if evaluation is not None and evaluation.results is not None:
        for label, entry in evaluation.results.get("models", {}).items():
            if entry.get("variant"):
                writer.error(f"{label}: a runtime variant of {entry.get('base')} ({entry['variant']}) is not shown; "
                             "the viewer shows each model as saved")
    if evaluation is not None:
        spec, options, eval_split = evaluated_data(evaluation)
        ids = evaluated_ids(evaluation)
        viewed = resolve_data([next(iter(models.values()))], data=spec, data_options=options, split=eval_split,
                              ids=ids, limit=limit or MAX_IMAGES)
        shown = list(explainers or protocol_explainers(evaluation))
    else:
        viewed = resolve_data(list(models.values()), data=data, data_options=data_options, split=split, ids=None,
                              limit=limit or DEFAULT_LIMIT)
        shown = list(explainers or ["native"])
    collect(writer, models, viewed, explainers=shown, top_k=top_k, max_map_side=max_map_side, progress=progress)
    if evaluation is not None:
        _add_evaluation(writer, evaluation)
        if evaluation.kind == "benchmark":
            _add_benchmark(writer, evaluation)
            add_part_removals(writer, models, viewed)
    return writer.write()


def _add_evaluation(writer: ViewWriter, source: Source) -> None:
    assert source.results is not None
    manifest = writer.manifest
    names = metric_names(source)
    manifest["metrics"] = names
    manifest["lower_is_better"] = lower_is_better(names)
    values = metric_values(source)
    for sample in manifest["samples"]:
        sample["metrics"] = values.get(str(sample["id"]), {})
    for model in manifest["models"]:
        entry = source.results["models"].get(model["name"], {})
        model["accuracy"] = (entry.get("accuracy") or {}).get("top1")
    for model, per_explainer in sample_curves(source).items():
        for explainer, per_metric in per_explainer.items():
            for key, per_sample in per_metric.items():
                metric = key.split("/")[0]
                for sample_id, curve in per_sample.items():
                    if sample_id in writer.chunks:
                        writer.chunks[sample_id]["curves"].setdefault(model, {}).setdefault(explainer, {})[
                            metric] = curve


def _add_benchmark(writer: ViewWriter, source: Source) -> None:
    assert source.results is not None
    bench = source.results["benchmark"]
    radar = {}
    for path in bench.get("radar", []):
        figure = Path(path)
        if not figure.is_file():
            figure = source.path / "figures" / figure.name
        if figure.is_file():
            radar[figure.stem.removeprefix("radar_")] = writer.add_asset(figure, f"radar/{figure.name}")
    writer.manifest["benchmark"] = {
        "leaderboard": bench.get("leaderboard", []), "validity": bench.get("validity", {}), "radar": radar,
        "accuracy": bench.get("accuracy", {}),
        "prototypes": {label: {k: check[k] for k in ("on_evidence", "chance", "prototypes") if k in check}
                       for label, check in (bench.get("prototypes") or {}).items()}}


def _unique(label: str, taken: dict[str, str]) -> str:
    candidate, n = label, 2
    while candidate in taken:
        candidate, n = f"{label}-{n}", n + 1
    return candidate


def make_server(directory: str | Path, *, port: int = 8000, host: str = "127.0.0.1") -> http.server.ThreadingHTTPServer:
    """An HTTP server of a written view (``port=0``: any free port); start it with ``serve_forever``."""
    directory = Path(directory)
    if not (directory / "index.html").is_file():
        raise FileNotFoundError(f"{directory} holds no view (no index.html); write one with seethrough view PATH --out "
                                f"{directory}")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(directory))
    return http.server.ThreadingHTTPServer((host, port), handler)


def serve(directory: str | Path, *, port: int = 8000, host: str = "127.0.0.1") -> None:
    """Serve a written view with the standard library's HTTP server until interrupted."""
    with make_server(directory, port=port, host=host) as server:
        print(f"serving {directory} at http://{host}:{server.server_address[1]}/ (Ctrl-C to stop)")
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass


__all__ = ["DEFAULT_LIMIT", "FORMAT_VERSION", "MAX_IMAGES", "VIEW_DIR", "make_server", "serve", "write_view"]
