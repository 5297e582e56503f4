"""The self-contained HTML report: metric tables, curves, example overlays, the protocol."""
from __future__ import annotations

import base64
import html
import json
from typing import Any

from .table import CELL_SEPARATOR, format_cell

#: Whether a higher value is better (↑), lower is better (↓), for the table headers. Complexity
#: metrics describe the map rather than judge it; they are marked "·".
DIRECTIONS: dict[str, str] = {
    "area_size": "↓", "precision": "↑", "pointing_game": "↑", "iou_at_percentile": "↑", "relevance_mass": "↑",
    "relevance_rank": "↑", "insertion": "↑", "deletion": "↓", "average_drop": "↓", "increase_in_confidence": "↑",
    "average_gain": "↑", "infidelity": "↓", "max_sensitivity": "↓", "avg_sensitivity": "↓",
    "randomization_check": "↓", "sparseness": "·", "entropy": "·",
}
#: Significant digits in the tables.
DIGITS = 4

_STYLE = """
body{font-family:system-ui,sans-serif;margin:2em;max-width:1200px;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:0.9em}
th,td{border:1px solid #ccc;padding:4px 8px;text-align:right}
th:first-child,td:first-child{text-align:left}
th{background:#f3f3f3}
.nan{color:#b00}
img{max-width:100%}
pre{background:#f7f7f7;padding:1em;overflow-x:auto;font-size:0.85em}
"""


def render_html(summary: dict[str, Any], figures: dict[str, bytes]) -> str:
    """The report as one HTML string (figures embedded as base64 PNG)."""
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>seethrough evaluation</title>"
             f"<style>{_STYLE}</style></head><body>",
             "<h1>seethrough evaluation</h1>",
             f"<p>seethrough {_e(summary['seethrough_version'])} · {_e(summary['created'])} · "
             f"device {_e(summary['environment']['device'])} × {summary['environment']['world_size']} · "
             f"protocol <b>{_e(summary['protocol']['name'])}</b> (explained class: "
             f"{_e(summary['protocol']['targets'])}, maps normalized {_e(summary['protocol']['normalize'])} then "
             f"upsampled {_e(summary['protocol']['upsample'])})</p>"]
    if "table" in summary:
        parts.append(_table_section(summary["table"]))
    for label, model in summary["models"].items():
        parts.append(_model_section(label, model, figures))
    curves = [name for name in figures if name.startswith("curve_")]
    if curves:
        parts.append("<h2>Curves (mean over samples)</h2>")
        parts += [_img(figures[name], name) for name in curves]
    parts.append("<h2>Protocol (every parameter)</h2>")
    parts.append(f"<pre>{_e(json.dumps(summary['protocol'], indent=2))}</pre>")
    parts.append(f"<h2>Environment</h2><pre>{_e(json.dumps(summary['environment'], indent=2))}</pre>")
    parts.append("</body></html>")
    return "\n".join(parts)


def _table_section(table: dict[str, Any]) -> str:
    head = "".join(f"<th>{_e(name)} {DIRECTIONS.get(name, '')}</th>" for name in table["metrics"])
    out = ["<h2>Comparison table</h2>", f"<table><tr><th>model</th><th>explainer</th><th>variants</th>{head}</tr>"]
    for row in table["rows"]:
        cells = "".join(f"<td>{_e(CELL_SEPARATOR.join(format_cell(v) for v in row['values'][name]))}</td>"
                        for name in table["metrics"])
        out.append(f"<tr><td>{_e(row['model'])}</td><td>{_e(row['explainer'])}</td>"
                   f"<td>{_e(CELL_SEPARATOR.join(row['variants']))}</td>{cells}</tr>")
    scaled = ", ".join(f"{name} ×{factor:g}" for name, factor in table["scale"].items())
    out.append("</table>" + (f"<p>Scaled: {_e(scaled)}.</p>" if scaled else ""))
    return "\n".join(out)


def _model_section(label: str, model: dict[str, Any], figures: dict[str, bytes]) -> str:
    data = model["data"]
    out = [f"<h2>{_e(label)}</h2>",
           f"<p>{_e(model['source'])} on {_e(data['spec'])} ({_e(data['split'])}), {data['evaluated']} samples"
           f"{', ' + str(data['bad_images']) + ' unreadable skipped' if data.get('bad_images') else ''}; "
           f"ground truth: {_e(', '.join(data.get('ground_truth') or ['none']))}; "
           f"top-1 {model['accuracy']['top1']:.3f}</p>"]
    metrics: list[str] = []
    for summaries in model["explainers"].values():
        metrics += [name for name in summaries if name not in metrics]
    head = "".join(f"<th>{_e(name)} {DIRECTIONS.get(name, '')}</th>" for name in metrics)
    out.append(f"<table><tr><th>explainer</th><th>s / image</th>{head}</tr>")
    for explainer, summaries in model["explainers"].items():
        cells = "".join(_cell(summaries.get(name)) for name in metrics)
        seconds = model["seconds_per_image"].get(explainer)
        out.append(f"<tr><td>{_e(explainer)}</td><td>{_num(seconds)}</td>{cells}</tr>")
    out.append("</table><p>mean ± std (n); <span class='nan'>NaN k</span>: samples whose value is undefined "
               "(a non-finite map, no ground truth, or a sample the protocol does not score: a misclassified one in "
               "the controlled check, one whose model fails the target-sensitivity assumption), excluded from the mean "
               "and counted.</p>")
    if model["skipped"]:
        items = "".join(f"<li>{_e(s['metric'])} for {_e(s['explainer'])}: {_e(s['reason'])}</li>"
                        for s in model["skipped"])
        out.append(f"<p>Not computed:</p><ul>{items}</ul>")
    key = f"examples_{label}"
    if key in figures:
        out.append(_img(figures[key], key))
    return "\n".join(out)


def _cell(entry: dict[str, Any] | None) -> str:
    if entry is None:
        return "<td>—</td>"
    text = f"{_num(entry['mean'])} ± {_num(entry['std'])} ({entry['count']})"
    if entry["nan_count"]:
        text += f" <span class='nan'>NaN {entry['nan_count']}</span>"
    return f"<td>{text}</td>"


def _num(value: float | None) -> str:
    return "—" if value is None else f"{value:.{DIGITS}g}"


def _img(png: bytes, alt: str) -> str:
    return f"<p><img alt='{_e(alt)}' src='data:image/png;base64,{base64.b64encode(png).decode()}'></p>"


def _e(text: Any) -> str:
    return html.escape(str(text))
