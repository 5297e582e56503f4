"""``seethrough evaluate``: every model × explainer × metric on one dataset, one report.

    results = seethrough.evaluate(["runs/demo/fc", "runs/demo/scouter+"], data="synthetic",
                                  protocol="quick", out="eval/")

For every model the data are read once; each batch runs one forward pass (accuracy and the
explained classes), then every explainer of the protocol, then every metric on each
explainer's maps. Metrics are stateful (:class:`~seethrough.metrics.Metric`) and keyed by
dataset index, so under ``torchrun`` each rank evaluates its own shard (every sample exactly
once) and rank 0 gathers and writes ``results.json``, ``samples.csv``, ``report.html`` and
the figures (see :mod:`seethrough.report`).
"""
from __future__ import annotations

import inspect
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence, cast

import torch
from lightning.fabric import Fabric
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from torch.utils.data import DataLoader

from ._version import __version__
from .data import build_dataset
from .data.base import collate
from .data.interventions import PartInterventions
from .data.synthetic import SyntheticDataset
from .explanations.api import explain, get_explainer
from .explanations.render import denormalize
from .explanations.targets import is_class_map_file, load_class_map, select_classes
from .metrics import Metric
from .metrics.substrates import ABSENT_SUBSTRATE
from .models.loading import InferenceModel, data_for_run, load_for_inference
from .protocol import Protocol, load_protocol

#: Run configuration file a training run writes; read for the model's default dataset.
#: Keyword a metric function uses for each piece of ground truth.
GROUND_TRUTH_PARAMS: tuple[str, ...] = ("masks", "boxes")
#: The ground truth of the part metrics: a dataset's part interventions (the synthetic data's).
PARTS_PARAM = "parts"

logger = logging.getLogger(__name__)


@dataclass
class ModelResult:
    """Everything measured for one model (gathered over ranks)."""

    label: str
    source: str
    data: dict[str, Any]
    accuracy: dict[str, float]
    summaries: dict[str, dict[str, Any]]               # explainer → metric → MetricSummary
    timing: dict[str, float]                            # seconds per image, per explainer and forward
    skipped: list[dict[str, str]] = field(default_factory=list)
    examples: dict[str, Any] = field(default_factory=dict)   # explainer → first samples' images and maps
    classes: list[str] = field(default_factory=list)
    base: str = ""                                      # the model's label without its variant
    variant: dict[str, Any] = field(default_factory=dict)   # runtime options set (protocol variants)


def evaluate(
    models: Sequence[str | Path],
    *,
    data: str | None = None,
    split: str = "val",
    data_options: dict[str, Any] | None = None,
    protocol: Protocol | str | Path = "default",
    out: str | Path | None = None,
    limit: int | None = None,
    batch_size: int = 16,
    workers: int = 0,
    accelerator: str = "auto",
    on_bad_image: str = "skip",
    labels: Sequence[str] | None = None,
    progress: bool = True,
    geometry: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Evaluate ``models`` (run directories, ``save_pretrained`` directories, ``last.ckpt``
    files or Hub ids) under ``protocol`` and return the results dictionary (also written to
    ``out/results.json`` with the CSV, HTML report and figures when ``out`` is given).

    Args:
        data: dataset spec (``KIND:PATH``); default: the one each run was trained on
            (its ``config.yaml``).
        split: dataset split; data_options: dataset options (default: the run's).
        protocol: a :class:`~seethrough.protocol.Protocol`, a preset name or a YAML path.
        limit: evaluate the first ``limit`` samples of the split only.
        labels: display names of the models (default: the directory names).
        geometry: ``img_size`` / ``mean`` / ``std`` overriding what each model records
            (``--img-size``, ``--mean``, ``--std``).
    """
    if not models:
        raise ValueError("give at least one model to evaluate (a run directory, a save_pretrained directory, "
                         "a last.ckpt or a Hub id)")
    if labels is not None and len(labels) != len(models):
        raise ValueError(f"got {len(labels)} labels for {len(models)} models")
    if limit is not None and limit < 1:
        raise ValueError(f"--limit must be >= 1, got {limit}")
    if batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {batch_size}")
    protocol = protocol if isinstance(protocol, Protocol) else load_protocol(protocol)
    fabric = _fabric(accelerator)
    names = list(labels) if labels is not None else _unique_labels(models)
    results = []
    for base, source in zip(names, models):
        loaded = load_for_inference(source, **(geometry or {}))
        for variant in _variants(loaded.model, protocol):
            for option, value in variant.items():
                loaded.model.set_runtime_option(option, value)
            label = base + "".join(f" [{option}={value}]" for option, value in variant.items())
            result = _evaluate_model(
                fabric, label, str(source), loaded, protocol, data=data, split=split, data_options=data_options,
                limit=limit, batch_size=batch_size, workers=workers, on_bad_image=on_bad_image, progress=progress,
            )
            result.base, result.variant = base, variant
            results.append(result)
    from .report import build_results, write_report

    summary = build_results(results, protocol, device=str(fabric.device), world_size=fabric.world_size,
                            version=__version__)
    if out is not None and fabric.global_rank == 0:
        write_report(summary, results, Path(out))
    fabric.barrier()
    return summary


def _variants(model, protocol: Protocol) -> list[dict[str, Any]]:
    """Every combination of the protocol's ``variants`` that ``model`` has as runtime options
    (``[{}]``: evaluate it once, as it is)."""
    combos: list[dict[str, Any]] = [{}]
    options = getattr(model, "runtime_options", {})
    for option, values in protocol.variants.items():
        if option in options:
            combos = [{**combo, option: value} for combo in combos for value in values]
    return combos


def _evaluate_model(fabric: Fabric, label: str, source: str, loaded: InferenceModel, protocol: Protocol, *, data,
                    split, data_options, limit, batch_size, workers, on_bad_image, progress) -> ModelResult:
    spec, options = data_for_run(source, data, data_options)
    dataset = build_dataset(spec, split, mode="L" if loaded.in_chans == 1 else "RGB", on_bad_image=on_bad_image,
                            **options)
    unused = loaded.unused_outputs(dataset.classes, source=str(source), spec=spec)
    if unused:
        logger.warning("%s: outputs %s have no class in --data %s (%d classes); they compete in the softmax and a "
                       "prediction there counts as wrong", source, unused, spec, dataset.num_classes)
    dataset.transform = loaded.transform(square=True)   # metrics compare pixel-aligned B×H×W maps
    size = len(dataset) if limit is None else min(limit, len(dataset))
    shard = list(range(size))[fabric.global_rank::fabric.world_size]
    loader = DataLoader(dataset, batch_size=batch_size, sampler=shard, collate_fn=collate, num_workers=workers)
    model = loaded.model.to(fabric.device).eval()
    options_of = {name: _explainer_options(name, options, loaded) for name, options in protocol.explainers.items()}
    metrics = {name: _metrics_for(protocol, loaded, name, options) for name, options in options_of.items()}
    state = _State(protocol, loaded)
    state.explainer_options = options_of
    with _progress(f"{label}", len(loader), enabled=progress and fabric.global_rank == 0) as (bar, task):
        for batch in loader:
            if "image" in batch:
                _evaluate_batch(model, batch, fabric.device, protocol, metrics, state, dataset)
            state.bad_images += batch["skipped"]
            bar.advance(task)
    return state.finish(fabric, label, source, metrics, {"spec": spec, "split": split, "options": options,
                                                       "num_samples": size})


class _State:
    """Per-model accumulators of one rank."""

    def __init__(self, protocol: Protocol, loaded: InferenceModel):
        self.protocol, self.loaded = protocol, loaded
        self.correct = 0
        self.seen = 0
        self.bad_images = 0
        # every key exists on every rank (all-reduced in the same order)
        self.seconds: dict[str, float] = {"forward": 0.0}
        for explainer in protocol.explainers:
            self.seconds[explainer] = 0.0
            self.seconds.update({f"{explainer}/{name}": 0.0 for name in protocol.metrics})
        self.skipped: dict[tuple[str, str], str] = {}
        self.examples: dict[str, Any] = {}
        self.ground_truth: set[str] = set()
        #: Each explainer's options, the model's normalization filled in (see _explainer_options).
        self.explainer_options: dict[str, dict[str, Any]] = dict(protocol.explainers)
        self.sign = int(getattr(loaded.model, "config", {}).get("sign", 1))
        #: The explained class: negative ("why not") models use the protocol's negative_targets.
        self.policy = protocol.negative_targets if self.sign < 0 else protocol.targets
        #: A class-map file (``--targets FILE.json``): label → class, ReScience's lsc_label_id.json format.
        self.class_map = (load_class_map(self.policy, len(loaded.classes)) if is_class_map_file(self.policy)
                          else None)

    def finish(self, fabric: Fabric, label: str, source: str, metrics: dict[str, dict[str, Metric]],
               data: dict[str, Any]) -> ModelResult:
        counts = _summed(fabric, torch.tensor([self.correct, self.seen, self.bad_images], dtype=torch.float64,
                                              device=fabric.device)).cpu()
        seconds = {key: float(_summed(fabric, torch.tensor(value, device=fabric.device)))
                   for key, value in self.seconds.items()}
        seen = max(float(counts[1]), 1.0)
        # every rank computes (gathers) every metric, then empty ones are reported as skipped
        computed = {explainer: {name: metric.compute() for name, metric in tracked.items()}
                    for explainer, tracked in metrics.items()}
        summaries = {explainer: {name: summary for name, summary in tracked.items() if summary.total}
                     for explainer, tracked in computed.items()}
        for tracked in summaries.values():
            _add_per_class_mean(tracked, len(self.loaded.classes))
        for explainer, tracked in computed.items():
            for name, summary in tracked.items():
                if not summary.total:
                    self.skipped.setdefault((explainer, name), "no sample had the ground truth this metric needs")
        data = {**data, "evaluated": int(counts[1]), "bad_images": int(counts[2]),
                "ground_truth": sorted(self.ground_truth), "explained_class": self.policy, "sign": self.sign}
        return ModelResult(
            label=label, source=source, data=data,
            accuracy={"top1": float(counts[0]) / seen, "count": int(counts[1])},
            summaries=summaries, timing={key: value / seen for key, value in seconds.items()},
            skipped=[{"explainer": e, "metric": m, "reason": r} for (e, m), r in sorted(self.skipped.items())],
            examples=self.examples, classes=list(self.loaded.classes),
        )


def _evaluate_batch(model, batch: dict, device: torch.device, protocol: Protocol,
                    metrics: dict[str, dict[str, Metric]], state: _State, dataset: Any = None) -> None:
    images = batch["image"].to(device)
    labels = batch["label"].to(device)
    ids = batch["index"]
    start = time.perf_counter()
    with torch.no_grad():
        logits = model(images).logits.float()
    state.seconds["forward"] += time.perf_counter() - start
    state.correct += int((logits.argmax(1) == labels).sum())
    state.seen += images.shape[0]
    targets = select_classes(logits, state.policy, labels=labels, class_map=state.class_map)[:, 0]
    ground_truth = _ground_truth(batch, device)
    if (isinstance(dataset, SyntheticDataset) and dataset.transform is not None
            and any(_uses_parts(m) for ms in metrics.values() for m in ms.values())):
        ground_truth[PARTS_PARAM] = PartInterventions.for_samples(dataset, ids.tolist(), dataset.transform,
                                                                  (images.shape[-2], images.shape[-1]))
    state.ground_truth.update(ground_truth)
    for explainer, options in state.explainer_options.items():
        if "sample_ids" in inspect.signature(get_explainer(explainer)).parameters and "sample_ids" not in options:
            options = {**options, "sample_ids": ids}   # per-sample randomness (RISE, random) follows the sample
        start = time.perf_counter()
        maps = explain(model, images, targets, method=explainer, normalize=protocol.normalize,
                       upsample=protocol.upsample, **options)
        state.seconds[explainer] = state.seconds.get(explainer, 0.0) + time.perf_counter() - start
        extra = {}
        if any(metric.protocol.get("resolution") == "map" for metric in metrics[explainer].values()):
            # the same maps before upsampling (area_size at the map's resolution, SCOUTER's 9×9 PNG)
            extra["low_res_maps"] = explain(model, images, targets, method=explainer, normalize=protocol.normalize,
                                            upsample="none", **options)
        for name, metric in metrics[explainer].items():
            needs = [key for key in GROUND_TRUTH_PARAMS if key in metric.parameters]
            if needs and not ground_truth and "reference" not in metric.protocol:
                state.skipped[(explainer, name)] = "the dataset has no ground-truth masks or boxes"
                continue
            if _uses_parts(metric) and PARTS_PARAM not in ground_truth:
                state.skipped[(explainer, name)] = "the dataset has no part interventions (the synthetic data has)"
                continue
            start = time.perf_counter()
            metric.update(model, images, maps, targets, sample_ids=ids, **ground_truth, **extra)
            key = f"{explainer}/{name}"
            state.seconds[key] = state.seconds.get(key, 0.0) + time.perf_counter() - start
        _keep_examples(state, explainer, images, maps, targets, labels, logits, ids)


def _add_per_class_mean(summaries: dict[str, Any], num_classes: int) -> None:
    """The pointing game is reported as the mean of per-class accuracies (Zhang et al.), beside
    the per-sample mean."""
    summary = summaries.get("pointing_game")
    if summary is not None and "target" in summary.details:
        from .metrics.localization import per_class_mean

        mean, per_class = per_class_mean(summary.values, summary.details["target"], num_classes)
        summary.extra["per_class_mean"] = mean
        summary.extra["per_class"] = per_class


def _uses_parts(metric: Metric) -> bool:
    """Whether ``metric`` needs the batch's part interventions: a part metric, or insertion /
    deletion with the ``absent`` substrate."""
    parameter = metric.parameters.get(PARTS_PARAM)
    if parameter is None:
        return False
    return parameter.default is inspect.Parameter.empty or metric.protocol.get("substrate") == ABSENT_SUBSTRATE


def _ground_truth(batch: dict, device: torch.device) -> dict[str, Any]:
    """``masks`` when the dataset has them (they win), else ``boxes`` when any image has one."""
    if "mask" in batch:
        return {"masks": batch["mask"].to(device)}
    boxes = [torch.as_tensor(b, dtype=torch.float32, device=device).reshape(-1, 4) for b in batch["boxes"]]
    return {"boxes": boxes} if any(b.numel() for b in boxes) else {}


def _keep_examples(state: _State, explainer: str, images, maps, targets, labels, logits, ids) -> None:
    """The first ``protocol.examples`` samples of this rank, for the report's overlays."""
    wanted = state.protocol.examples - len(state.examples.get(explainer, {}).get("ids", []))
    if wanted <= 0:
        return
    take = slice(0, min(wanted, images.shape[0]))
    store = state.examples.setdefault(explainer, {"ids": [], "images": [], "maps": [], "targets": [],
                                                  "labels": [], "probs": []})
    probs = torch.softmax(logits[take], dim=1).gather(1, targets[take, None])[:, 0]
    store["ids"] += ids[take].tolist()
    store["images"].append(denormalize(images[take].cpu(), state.loaded.mean, state.loaded.std))
    store["maps"].append(maps[take].detach().float().cpu())
    store["targets"] += targets[take].tolist()
    store["labels"] += labels[take].tolist()
    store["probs"] += probs.tolist()


def _explainer_options(explainer: str, options: dict[str, Any], loaded: InferenceModel) -> dict[str, Any]:
    """The protocol's options of ``explainer``, plus the model's normalization ``mean``/``std``
    for an explainer that masks in pixel space (``scorecam-original``) when not given."""
    options = dict(options)
    parameters = inspect.signature(get_explainer(explainer.lower())).parameters
    if "mean" in parameters and "mean" not in options:
        options["mean"], options["std"] = tuple(loaded.mean), tuple(loaded.std)
    return options


def _metrics_for(protocol: Protocol, loaded: InferenceModel, explainer: str,
                 explainer_options: dict[str, Any]) -> dict[str, Metric]:
    """Fresh metrics for one explainer. Parameters the protocol leaves open but the model
    determines are filled in: the normalization ``mean``/``std`` (pixel-space masking) and, for
    metrics that re-explain (sensitivity, randomization), the explainer and its options."""
    built = {}
    for name, params in protocol.metrics.items():
        params = dict(params)
        probe = Metric(name, **params)
        if "mean" in probe.parameters and "mean" not in params:
            params["mean"], params["std"] = tuple(loaded.mean), tuple(loaded.std)
        if "norm_mean" in probe.parameters and "norm_mean" not in params:   # robustness metrics' pixel space
            params["norm_mean"], params["norm_std"] = tuple(loaded.mean), tuple(loaded.std)
        if "explainer" in probe.parameters and "explainer" not in params:
            params["explainer"] = explainer
            params["explain_options"] = {"normalize": protocol.normalize, "upsample": protocol.upsample,
                                         **explainer_options}
        built[name] = Metric(name, **params)
    return built


def _unique_labels(models: Sequence[str | Path]) -> list[str]:
    labels = []
    for source in models:
        path = Path(source)
        label = path.parent.name if path.name in ("best", "last.ckpt") else path.name
        base, n = label or str(source), 2
        while label in labels:
            label, n = f"{base}-{n}", n + 1
        labels.append(label or str(source))
    return labels


def _fabric(accelerator: str) -> Fabric:
    """One process, or the ``torchrun`` world when launched by it (``WORLD_SIZE`` > 1)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1:
        fabric = Fabric(accelerator=accelerator, devices=int(os.environ.get("LOCAL_WORLD_SIZE", world)),
                        num_nodes=max(1, world // int(os.environ.get("LOCAL_WORLD_SIZE", world))), strategy="ddp")
    else:
        fabric = Fabric(accelerator=accelerator, devices=1)
    fabric.launch()
    return fabric


class _progress:
    """Rich progress bar over batches (rank 0), yielding ``(progress, task)``."""

    def __init__(self, description: str, total: int, *, enabled: bool):
        self.bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                            TimeElapsedColumn(), TimeRemainingColumn(), disable=not enabled)
        self.task = self.bar.add_task(description, total=total)

    def __enter__(self):
        self.bar.__enter__()
        return self.bar, self.task

    def __exit__(self, *exc) -> None:
        self.bar.__exit__(*exc)


def _summed(fabric: Fabric, tensor: torch.Tensor) -> torch.Tensor:
    """``tensor`` summed over every rank."""
    return cast(torch.Tensor, fabric.all_reduce(tensor, reduce_op="sum"))
