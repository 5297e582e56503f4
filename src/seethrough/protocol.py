"""Evaluation protocols: which classes, explainers and metrics, with every parameter written down.

A protocol is a YAML mapping (presets in ``seethrough/protocols/``)::

    targets: gt                    # explained class: gt | pred | least | next | FILE.json
    negative_targets: least        # for "why not" models (negative SCOUTER, sign -1)
    normalize: minmax              # seethrough.explain's normalize (before upsampling)
    upsample: bilinear
    examples: 6                    # overlays per explainer in the report
    explainers: {native: {}, gradcam: {target_layer: backbone.model.layer4}}
    metrics: {insertion: {steps: 28}, pointing_game: {tolerance: 15}}
    variants: {pooling: [gap, ca]}  # evaluate each model once per value of a runtime option
    table: {metrics: [insertion, deletion], scale: {insertion: 100, deletion: 100}}

``variants`` name runtime options of a model (``SeeThroughModel.runtime_options``, e.g.
CA-Stream's ``pooling``): a model that has the option is evaluated once per value, same
weights, labelled ``"<model> [pooling=gap]"``; other models once, as they are. ``table``
asks for a paper-style comparison table (``table.md`` and the report): one row per model and
explainer, one column per listed metric, each cell the variants' means side by side
(``gap / ca``), multiplied by ``scale`` where given.

Precedence: preset (or file) < ``--explainers`` / ``--metrics`` selections < ``--set
metric.param=value`` overrides. Unknown metric names, explainers and parameters are errors
that list the valid ones, before any model runs.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from .explanations.api import NORMALIZE_MODES, TARGET_POLICIES, UPSAMPLE_MODES, list_explainers
from .explanations.targets import is_class_map_file, load_class_map
from .metrics import METRIC_NAMES, Metric

#: Package folder holding the protocol presets.
PRESET_PACKAGE = "seethrough.protocols"
#: Protocol used when none is named.
DEFAULT_PROTOCOL = "default"
#: Overlays per explainer in the report unless the protocol says otherwise.
DEFAULT_EXAMPLES = 6
#: Class explained for negative ("why not") models unless the protocol says otherwise: the least
#: likely class (argmin of the logits), as the FACT reproduction (``engine.py:111``) and our demo
#: do. The official test.py used ``label + 1`` (policy ``next``); the ReScience reproduction a
#: fixed WordNet least-similar class per label (its ``lsc_label_id.json``: give the file as the
#: policy, ``--negative-targets lsc_label_id.json``).
DEFAULT_NEGATIVE_TARGETS = "least"
#: ``--metrics all``: every registered metric.
ALL_METRICS = "all"
_KEYS = {"description", "targets", "negative_targets", "normalize", "upsample", "examples", "explainers", "metrics",
         "variants", "table"}
#: Keys of a protocol's ``table`` entry.
_TABLE_KEYS = {"metrics", "scale"}


@dataclass
class Protocol:
    """A validated evaluation protocol (see the module docstring)."""

    name: str
    description: str = ""
    targets: str = "gt"
    negative_targets: str = DEFAULT_NEGATIVE_TARGETS
    normalize: str = "minmax"
    upsample: str = "bilinear"
    examples: int = DEFAULT_EXAMPLES
    explainers: dict[str, dict[str, Any]] = field(default_factory=dict)
    metrics: dict[str, dict[str, Any]] = field(default_factory=dict)
    variants: dict[str, list[Any]] = field(default_factory=dict)
    table: dict[str, Any] = field(default_factory=dict)

    def build_metrics(self) -> dict[str, Metric]:
        """One stateful :class:`~seethrough.metrics.Metric` per metric (fresh state)."""
        return {name: Metric(name, **params) for name, params in self.metrics.items()}

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready, with every metric's full parameter set (defaults filled in)."""
        return {
            "name": self.name, "description": self.description, "targets": self.targets,
            "negative_targets": self.negative_targets,
            "normalize": self.normalize, "upsample": self.upsample, "examples": self.examples,
            "explainers": {name: dict(options) for name, options in self.explainers.items()},
            "metrics": {name: metric.full_protocol for name, metric in self.build_metrics().items()},
            "variants": {name: list(values) for name, values in self.variants.items()},
            "table": dict(self.table),
        }


def list_protocols() -> list[str]:
    """Names of the bundled protocol presets."""
    return sorted(p.name[:-5] for p in resources.files(PRESET_PACKAGE).iterdir() if p.name.endswith(".yaml"))


def load_protocol(
    source: str | Path = DEFAULT_PROTOCOL,
    *,
    explainers: list[str] | None = None,
    metrics: list[str] | None = None,
    overrides: list[str] | None = None,
    targets: str | None = None,
    negative_targets: str | None = None,
) -> Protocol:
    """Load a preset name or a YAML file, then apply the command-line selections.

    Args:
        source: a preset (:func:`list_protocols`) or a path to a YAML file.
        explainers, metrics: keep only these (in this order); names missing from the protocol
            are added with default parameters. ``metrics=["all"]`` selects every registered
            metric (:data:`~seethrough.metrics.METRIC_NAMES`), the protocol's parameters kept
            for those it lists.
        overrides: ``"metric.param=value"`` or ``"explainer.option=value"`` strings (YAML values).
        targets, negative_targets: override the protocol's target policies (for ordinary and for
            negative, "why not", models).
    """
    name, raw = _read(source)
    unknown = set(raw) - _KEYS
    if unknown:
        raise ValueError(f"protocol {name}: unknown key(s) {', '.join(sorted(unknown))}; "
                         f"valid: {', '.join(sorted(_KEYS))}")
    protocol = Protocol(
        name=name, description=str(raw.get("description", "")), targets=str(raw.get("targets", "gt")),
        negative_targets=str(raw.get("negative_targets", DEFAULT_NEGATIVE_TARGETS)),
        normalize=str(raw.get("normalize", "minmax")), upsample=str(raw.get("upsample", "bilinear")),
        examples=int(raw.get("examples", DEFAULT_EXAMPLES)),
        explainers={str(k): dict(v or {}) for k, v in (raw.get("explainers") or {}).items()},
        metrics={str(k): dict(v or {}) for k, v in (raw.get("metrics") or {}).items()},
        variants={str(k): list(v) if isinstance(v, (list, tuple)) else v
                  for k, v in (raw.get("variants") or {}).items()},
        table=dict(raw.get("table") or {}),
    )
    if explainers is not None:
        protocol.explainers = {name: protocol.explainers.get(name, {}) for name in explainers}
    if metrics is not None:
        if ALL_METRICS in metrics:
            if len(metrics) != 1:
                raise ValueError(f"--metrics {','.join(metrics)}: '{ALL_METRICS}' selects every metric; give it alone")
            metrics = list(METRIC_NAMES)
        protocol.metrics = {name: protocol.metrics.get(name, {}) for name in metrics}
        protocol.table = _narrowed_table(protocol.table, protocol.metrics)
    if targets is not None:
        protocol.targets = targets
    if negative_targets is not None:
        protocol.negative_targets = negative_targets
    for item in overrides or []:
        _apply_override(protocol, item)
    validate(protocol)
    return protocol


def validate(protocol: Protocol) -> None:
    """Raise a ValueError naming the first bad choice (and the valid ones)."""
    where = f"protocol {protocol.name}"
    for key in ("targets", "negative_targets"):
        policy = getattr(protocol, key)
        if is_class_map_file(policy):
            load_class_map(policy)  # a missing or malformed file is an error before any model runs
        elif policy not in TARGET_POLICIES:
            raise ValueError(f"{where}: {key} {policy!r} is not valid; valid: {', '.join(TARGET_POLICIES)}, or a "
                             "class-map FILE.json (label → class, e.g. ReScience's lsc_label_id.json)")
    _one_of(protocol.normalize, NORMALIZE_MODES, f"{where}: normalize")
    _one_of(protocol.upsample, UPSAMPLE_MODES, f"{where}: upsample")
    if protocol.examples < 0:
        raise ValueError(f"{where}: examples must be >= 0, got {protocol.examples}")
    if not protocol.explainers:
        raise ValueError(f"{where}: no explainers; valid: {', '.join(list_explainers())}")
    if not protocol.metrics:
        raise ValueError(f"{where}: no metrics; valid: {', '.join(METRIC_NAMES)}")
    for name in protocol.explainers:
        _one_of(name.lower(), tuple(list_explainers()), f"{where}: explainer")
        if protocol.normalize == "joint" and name.lower() != "native":
            raise ValueError(f"{where}: normalize: joint applies to native maps only, not to {name}; use minmax")
    for name in protocol.metrics:
        _one_of(name, METRIC_NAMES, f"{where}: metric")
    protocol.build_metrics()  # unknown parameters raise here, naming the valid ones
    for option, values in protocol.variants.items():
        if not isinstance(values, list) or not values:
            raise ValueError(f"{where}: variants.{option} must be a non-empty list of values, got {values!r}")
    _validate_table(protocol, where)


def _narrowed_table(table: dict[str, Any], metrics: dict[str, Any]) -> dict[str, Any]:
    """A preset's ``table`` after ``--metrics`` chose a subset: only the columns still computed
    (no table when none is left)."""
    if not table or not table.get("metrics"):
        return table
    columns = [name for name in table["metrics"] if name in metrics]
    if not columns:
        return {}
    scale = {name: factor for name, factor in (table.get("scale") or {}).items() if name in columns}
    return {**table, "metrics": columns, **({"scale": scale} if "scale" in table else {})}


def _validate_table(protocol: Protocol, where: str) -> None:
    table = protocol.table
    if not table:
        return
    unknown = set(table) - _TABLE_KEYS
    if unknown:
        raise ValueError(f"{where}: table: unknown key(s) {', '.join(sorted(unknown))}; "
                         f"valid: {', '.join(sorted(_TABLE_KEYS))}")
    columns = table.get("metrics") or list(protocol.metrics)
    missing = [name for name in [*columns, *(table.get("scale") or {})] if name not in protocol.metrics]
    if missing:
        raise ValueError(f"{where}: table names metrics {missing} that the protocol does not compute "
                         f"(its metrics: {', '.join(protocol.metrics)})")


def _read(source: str | Path) -> tuple[str, dict[str, Any]]:
    path = Path(source)
    if path.suffix in (".yaml", ".yml") or path.exists():
        if not path.is_file():
            raise FileNotFoundError(f"protocol file {path} does not exist")
        data = yaml.safe_load(path.read_text()) or {}
        label = str(path)
    else:
        if str(source) not in list_protocols():
            raise ValueError(f"unknown protocol {source!r}; presets: {', '.join(list_protocols())}, "
                             "or a YAML file path")
        data = yaml.safe_load(resources.files(PRESET_PACKAGE).joinpath(f"{source}.yaml").read_text()) or {}
        label = str(source)
    if not isinstance(data, dict):
        raise ValueError(f"protocol {label} must be a YAML mapping, got {type(data).__name__}")
    return label, data


def _apply_override(protocol: Protocol, item: str) -> None:
    key, sep, value = item.partition("=")
    owner, dot, param = key.strip().partition(".")
    if not sep or not dot or not param:
        raise ValueError(f"--set {item!r}: expected metric.param=value or explainer.option=value "
                         "(e.g. insertion.steps=28)")
    parsed = yaml.safe_load(value)
    if owner in protocol.metrics:
        protocol.metrics[owner][param] = parsed
    elif owner in protocol.explainers:
        protocol.explainers[owner][param] = parsed
    else:
        raise ValueError(f"--set {item!r}: {owner!r} is not a metric or explainer of this protocol "
                         f"(metrics: {', '.join(protocol.metrics)}; explainers: {', '.join(protocol.explainers)})")


def _one_of(value: str, valid: tuple[str, ...], what: str) -> None:
    if value not in valid:
        raise ValueError(f"{what} {value!r} is not valid; valid: {', '.join(valid)}")
