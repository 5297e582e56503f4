"""``seethrough evaluate``: explanation metrics of models × explainers, with a report."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer
from lightning.fabric.utilities.rank_zero import rank_zero_only

from ._common import IMG_SIZE_HELP, MEAN_HELP, STD_HELP, app, comma_list, console, fail, geometry_overrides, parse_set


@app.command("evaluate")
def evaluate_explanations(
    models: List[str] = typer.Argument(..., help="Models: run dirs, model dirs, last.ckpt files or Hub ids."),
    data: Optional[str] = typer.Option(None, help="KIND:PATH (default: the data each run was trained on)."),
    split: str = typer.Option("val", help="train | val."),
    data_opt: Optional[List[str]] = typer.Option(None, "--data-opt", help="Dataset option KEY=VALUE."),
    protocol: str = typer.Option("default", help="Protocol preset (see `seethrough protocols`) or YAML file."),
    explainers: Optional[str] = typer.Option(None, help="Comma list, e.g. native,gradcam,scorecam (see `seethrough explainers`)."),
    metrics: Optional[str] = typer.Option(None, help="Comma list, e.g. insertion,deletion,pointing_game; "
                                          "'all' = every registered metric."),
    targets: Optional[str] = typer.Option(None, help="Explained class: gt | pred | least | next | FILE.json "
                                          "(label → class map, ReScience's lsc_label_id.json format)."),
    negative_targets: Optional[str] = typer.Option(None, "--negative-targets",
                                                   help="Explained class of negative (sign -1) models: same "
                                                        "choices as --targets."),
    set_: Optional[List[str]] = typer.Option(None, "--set", help="metric.param=VALUE or explainer.option=VALUE (repeatable)."),
    label: Optional[List[str]] = typer.Option(None, "--label", help="Display name per model (repeat, in order)."),
    limit: Optional[int] = typer.Option(None, help="Evaluate the first N samples only."),
    batch_size: int = typer.Option(16),
    workers: int = typer.Option(0),
    accelerator: str = typer.Option("auto"),
    on_bad_image: str = typer.Option("skip", help="error | skip (skipped files are counted in the report)."),
    out: Path = typer.Option(Path("evaluation"), help="Folder for results.json, samples.csv, report.html, figures/."),
    progress: bool = typer.Option(True, "--progress/--no-progress"),
    img_size: Optional[int] = typer.Option(None, help=IMG_SIZE_HELP),
    mean: Optional[str] = typer.Option(None, help=MEAN_HELP),
    std: Optional[str] = typer.Option(None, help=STD_HELP),
    view: bool = typer.Option(True, "--view/--no-view", help="Write the HTML viewer of the evaluated images into OUT/view."),
) -> None:
    """Evaluate explanations: every model x explainer x metric, with a JSON/CSV/HTML report and a viewer."""
    from ..protocol import load_protocol
    from ..suite import evaluate

    try:
        chosen = load_protocol(protocol, explainers=comma_list(explainers), metrics=comma_list(metrics),
                               overrides=set_, targets=targets, negative_targets=negative_targets)
        summary = evaluate(models, data=data, split=split, data_options=parse_set(data_opt, "--data-opt"),
                           protocol=chosen, out=out, limit=limit, batch_size=batch_size, workers=workers,
                           accelerator=accelerator, on_bad_image=on_bad_image, labels=label or None,
                           progress=progress, geometry=geometry_overrides(img_size, mean, std))
    except (ValueError, FileNotFoundError, TypeError) as err:
        fail(err)
    _print_summary(summary)
    rank_zero_only(console.print)(f"report: {out / 'report.html'}  results: {out / 'results.json'}")
    if view:
        _view(out, overridden=any(v is not None for v in (img_size, mean, std)))


@rank_zero_only
def _view(out: Path, *, overridden: bool) -> None:
    if overridden:
        console.print(f"viewer not written: --img-size/--mean/--std are not passed on to it; run seethrough "
                      f"view {out} --out {out / 'view'} (it uses each model's own preprocessing)")
        return
    from .view import write_default_view

    write_default_view(out)


@rank_zero_only
def _print_summary(summary: dict) -> None:
    """One table per model: a row per metric, a column per explainer (mean ± std, NaN count)."""
    from rich.table import Table

    for label, model in summary["models"].items():
        explainers = list(model["explainers"])
        names: list[str] = []
        for metrics in model["explainers"].values():
            names += [name for name in metrics if name not in names]
        table = Table(title=f"{label}: explained class {model['data']['explained_class']}, "
                            f"top-1 {model['accuracy']['top1']:.3f}, {model['data']['evaluated']} samples")
        table.add_column("metric")
        for explainer in explainers:
            table.add_column(explainer, justify="right")
        for name in names:
            cells = []
            for explainer in explainers:
                entry = model["explainers"][explainer].get(name)
                if entry is None or entry["mean"] is None:
                    cells.append("—")
                    continue
                std = "" if entry["std"] is None else f" ± {entry['std']:.3g}"
                cells.append(f"{entry['mean']:.4g}{std}" + (f" [NaN {entry['nan_count']}]" if entry["nan_count"] else ""))
            table.add_row(name, *cells)
        console.print(table)
