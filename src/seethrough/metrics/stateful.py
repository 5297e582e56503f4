"""Stateful metrics: ``update`` per batch, ``compute`` once, the same on one process or many.

    metric = Metric("insertion", steps=28)
    for batch in loader:
        metric.update(model, images, maps, targets, sample_ids=batch["index"])
    summary = metric.compute()      # all ranks gathered, duplicates removed
    summary.mean, summary.std, summary.count, summary.nan_count

The state is every sample's value keyed by its sample id (not running sums), so:

- under DDP the per-rank states are all-gathered (``torch.distributed``, any backend) and a
  sample that a distributed sampler padded in twice counts once;
- the report can write a per-sample CSV and mean curves, and percentiles later;
- NaN values (degenerate maps, see :mod:`seethrough.core.inputs`) are kept, counted in
  ``nan_count`` and excluded from mean and std — never silently averaged in.
"""
from __future__ import annotations

import inspect
import math
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
import torch.distributed as dist

from .registry import get_metric

#: Keyword arguments a metric function may take from the batch's ground truth.
GROUND_TRUTH_KEYS: tuple[str, ...] = ("masks", "boxes", "parts")
#: Keyword arguments a metric function may take from the explainer besides ``maps``: the maps
#: before upsampling (area_size at the map's resolution).
MAP_KEYS: tuple[str, ...] = ("low_res_maps",)


@dataclass
class MetricSummary:
    """Result of :meth:`Metric.compute`.

    Attributes:
        name: metric name.
        mean, std: over the finite per-sample values (std with Bessel's correction; NaN when
            fewer than two values).
        count: finite values; nan_count: samples whose value is NaN; total = count + nan_count.
        protocol: every parameter the metric ran with (defaults included).
        sample_ids, values: per-sample, sorted by sample id.
        details: per-sample extra tensors (e.g. ``curve`` ``N×(steps+1)``), same order.
    """

    name: str
    mean: float
    std: float
    count: int
    nan_count: int
    protocol: dict[str, Any]
    sample_ids: torch.Tensor
    values: torch.Tensor
    details: dict[str, torch.Tensor] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return self.count + self.nan_count

    def mean_details(self) -> dict[str, torch.Tensor]:
        """Mean over finite-valued samples of each floating-point detail (e.g. the mean curve);
        integer details (target classes, positions) are per-sample facts, not averaged."""
        keep = torch.isfinite(self.values)
        return {key: value[keep].float().nanmean(dim=0) for key, value in self.details.items()
                if keep.any() and value.is_floating_point()}

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: name, mean, std, count, nan_count, total, protocol (and ``extra``
        summaries such as the pointing game's per-class mean)."""
        return {"name": self.name, "mean": _json_float(self.mean), "std": _json_float(self.std),
                "count": self.count, "nan_count": self.nan_count, "total": self.total,
                **{key: _plain(value) for key, value in self.extra.items()},
                "protocol": dict(self.protocol)}


class Metric:
    """Stateful wrapper of a metric function (see :mod:`seethrough.metrics`).

    Args:
        metric: a metric name (``"insertion"``, ``"pointing_game"``, ...) or a metric function
            ``fn(model, images, maps, targets, **protocol) -> B`` values.
        **protocol: the metric's protocol parameters; unknown names are an error.
    """

    def __init__(self, metric: str | Callable[..., Any], **protocol: Any):
        if isinstance(metric, str):
            self.fn = get_metric(metric)
            self.name = metric
        else:
            self.fn = metric
            self.name = getattr(metric, "__name__", "metric")
        self.parameters = inspect.signature(self.fn).parameters
        accepts_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in self.parameters.values())
        unknown = [key for key in protocol if key not in self.parameters and not accepts_any]
        if unknown:
            valid = [name for name, p in self.parameters.items()
                     if p.kind is inspect.Parameter.KEYWORD_ONLY
                     and name not in GROUND_TRUTH_KEYS + MAP_KEYS + ("return_details",)]
            raise ValueError(f"unknown protocol parameter(s) {', '.join(unknown)} for metric {self.name!r}; "
                             f"valid: {', '.join(valid)}")
        self.protocol = dict(protocol)
        self.reset()

    @property
    def full_protocol(self) -> dict[str, Any]:
        """The protocol with the function's defaults filled in (what results files record)."""
        full = {name: p.default for name, p in self.parameters.items()
                if p.kind is inspect.Parameter.KEYWORD_ONLY and p.default is not inspect.Parameter.empty
                and name not in GROUND_TRUTH_KEYS + MAP_KEYS + ("return_details", "sample_ids")}
        full.update(self.protocol)
        return {key: _plain(value) for key, value in full.items()}

    def reset(self) -> None:
        self._ids: list[torch.Tensor] = []
        self._values: list[torch.Tensor] = []
        self._details: dict[str, list[torch.Tensor]] = {}

    def update(self, model, images: torch.Tensor, maps: torch.Tensor, targets: torch.Tensor, *,
               sample_ids: torch.Tensor, **ground_truth: Any) -> torch.Tensor:
        """Score one batch; returns its ``B`` values. ``sample_ids`` are dataset indices (they
        seed per-sample noise and identify samples across ranks); ground truth (``masks``,
        ``boxes``) is passed to metrics that take it and ignored by the others."""
        kwargs = dict(self.protocol)
        for key in GROUND_TRUTH_KEYS + MAP_KEYS:
            if key in self.parameters and ground_truth.get(key) is not None:
                kwargs[key] = ground_truth[key]
        if "sample_ids" in self.parameters:
            kwargs["sample_ids"] = sample_ids
        details: dict[str, torch.Tensor] = {}
        if "return_details" in self.parameters:
            values, details = self.fn(model, images, maps, targets, return_details=True, **kwargs)
        else:
            values = self.fn(model, images, maps, targets, **kwargs)
        values = torch.as_tensor(values).detach().float().reshape(-1).cpu()
        ids = torch.as_tensor(sample_ids, dtype=torch.long).reshape(-1).cpu()
        if values.numel() != ids.numel():
            raise RuntimeError(f"metric {self.name!r} returned {values.numel()} values for {ids.numel()} samples")
        self._ids.append(ids)
        self._values.append(values)
        for key, value in details.items():
            self._details.setdefault(key, []).append(torch.as_tensor(value).detach().cpu())
        return values

    def compute(self) -> MetricSummary:
        """Gather every rank's samples, drop duplicate ids, and summarise."""
        ids = torch.cat(self._ids) if self._ids else torch.zeros(0, dtype=torch.long)
        values = torch.cat(self._values) if self._values else torch.zeros(0)
        details = {key: torch.cat(parts) for key, parts in self._details.items()}
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            ids, values, details = _all_gather(ids, values, details)
        ids, values, details = _unique_by_id(ids, values, details)
        finite = torch.isfinite(values)
        kept = values[finite].double()
        count = int(kept.numel())
        mean = float(kept.mean()) if count else math.nan
        std = float(kept.std(unbiased=True)) if count > 1 else math.nan
        return MetricSummary(self.name, mean, std, count, int((~finite).sum()), self.full_protocol,
                             ids, values, details)


def _all_gather(ids, values, details):
    """Concatenate every rank's (ids, values, details)."""
    gathered: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, (ids, values, details))
    ids = torch.cat([g[0] for g in gathered])
    values = torch.cat([g[1] for g in gathered])
    keys = gathered[0][2].keys()
    details = {key: torch.cat([g[2][key] for g in gathered]) for key in keys}
    return ids, values, details


def _unique_by_id(ids, values, details):
    """Sort by sample id, keep the first occurrence of each id."""
    if ids.numel() == 0:
        return ids, values, details
    order = torch.argsort(ids, stable=True)
    ids = ids[order]
    keep = torch.ones_like(ids, dtype=torch.bool)
    keep[1:] = ids[1:] != ids[:-1]
    index = order[keep]
    return ids[keep], values[index], {key: value[index] for key, value in details.items()}


def _json_float(value: float) -> float | None:
    return None if math.isnan(value) or math.isinf(value) else value


def _plain(value: Any) -> Any:
    """Protocol values as JSON-friendly Python objects (NaN → None)."""
    if isinstance(value, float):
        return _json_float(value)
    if isinstance(value, torch.Tensor):
        return [_plain(v) for v in value.tolist()] if value.ndim else _plain(value.item())
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if callable(value):
        return getattr(value, "__name__", repr(value))
    return value
