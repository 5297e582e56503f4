"""A paper-style comparison table: rows = model × explainer, columns = metrics, each cell the
means of a model's variants side by side (CA-Stream's "GAP / CA" layout).

Built from the ``results.json`` dictionary when the protocol has a ``table`` entry (see
:mod:`seethrough.protocol`), stored in it under ``"table"`` and written as ``table.md``.
"""
from __future__ import annotations

from typing import Any

#: Decimal places of the table's numbers (the papers print two).
TABLE_DECIMALS = 2
#: Separator between the variants' values in a cell.
CELL_SEPARATOR = " / "


def comparison_table(summary: dict[str, Any]) -> dict[str, Any] | None:
    """``{"metrics", "scale", "variants", "rows": [{"model", "explainer", "values": {metric: [..]}}]}``
    or ``None`` when the protocol asks for no table."""
    protocol = summary["protocol"]
    spec = protocol.get("table") or {}
    if not spec:
        return None
    metrics = list(spec.get("metrics") or protocol["metrics"])
    scale = {name: float(factor) for name, factor in (spec.get("scale") or {}).items()}
    groups: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for label, model in summary["models"].items():
        groups.setdefault(model.get("base") or label, []).append((label, model))
    rows = []
    for base, members in groups.items():
        variants = [_variant_name(model.get("variant") or {}) for _, model in members]
        explainers = list(dict.fromkeys(e for _, model in members for e in model["explainers"]))
        for explainer in explainers:
            values = {}
            for metric in metrics:
                cells = []
                for _, model in members:
                    entry = model["explainers"].get(explainer, {}).get(metric)
                    mean = None if entry is None else entry["mean"]
                    cells.append(None if mean is None else mean * scale.get(metric, 1.0))
                values[metric] = cells
            rows.append({"model": base, "variants": variants, "explainer": explainer, "values": values})
    return {"metrics": metrics, "scale": scale, "rows": rows}


def table_markdown(table: dict[str, Any], directions: dict[str, str]) -> str:
    """The table as GitHub markdown (``—``: not computed)."""
    metrics = table["metrics"]
    head = ["model", "explainer", "variants", *[f"{name} {directions.get(name, '')}".strip() for name in metrics]]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in table["rows"]:
        cells = [CELL_SEPARATOR.join(format_cell(v) for v in row["values"][name]) for name in metrics]
        lines.append("| " + " | ".join([row["model"], row["explainer"], CELL_SEPARATOR.join(row["variants"]),
                                        *cells]) + " |")
    scaled = ", ".join(f"{name} ×{factor:g}" for name, factor in table["scale"].items())
    if scaled:
        lines += ["", f"Scaled: {scaled}."]
    return "\n".join(lines) + "\n"


def _variant_name(variant: dict[str, Any]) -> str:
    return ",".join(str(value) for value in variant.values()) or "as is"


def format_cell(value: float | None) -> str:
    return "—" if value is None else f"{value:.{TABLE_DECIMALS}f}"
