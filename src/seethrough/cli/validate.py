"""``seethrough validate`` (accuracy; ``eval`` is its former name, kept as an alias)."""
from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any, List, Optional

import typer

from ._common import IMG_SIZE_HELP, MEAN_HELP, STD_HELP, app, console, fail, geometry_overrides, parse_set


@app.command("validate")
def validate(
    checkpoint: str = typer.Argument(..., help="RUN (= RUN/best), RUN/last, a model dir, a last.ckpt or a Hub id."),
    data: str = typer.Option(..., help="KIND:PATH of the data to score."),
    split: str = typer.Option("val", help="train | val."),
    data_opt: Optional[List[str]] = typer.Option(None, "--data-opt", help="Dataset option KEY=VALUE."),
    batch_size: int = typer.Option(64),
    workers: int = typer.Option(2),
    accelerator: str = typer.Option("auto"),
    on_bad_image: str = typer.Option("error"),
    out: Optional[Path] = typer.Option(None, help="Write the result as JSON here."),
    predictions: Optional[Path] = typer.Option(None, help="Also write one CSV row per sample (sample_id, label, pred, pred_name, prob, top5, top5_prob)."),
    img_size: Optional[int] = typer.Option(None, help=IMG_SIZE_HELP),
    mean: Optional[str] = typer.Option(None, help=MEAN_HELP),
    std: Optional[str] = typer.Option(None, help=STD_HELP),
) -> None:
    """Accuracy (top-1, top-5, loss) of a trained model on a dataset split (`eval` is the old name)."""
    from ..validation import validate as run_validation

    try:
        result = run_validation(checkpoint, data, split=split, data_options=parse_set(data_opt, "--data-opt"),
                                batch_size=batch_size, workers=workers, accelerator=accelerator,
                                on_bad_image=on_bad_image, predictions=predictions,
                                **geometry_overrides(img_size, mean, std))
    except (ValueError, FileNotFoundError) as err:
        fail(err)
    console.print_json(json.dumps(result))
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2))


@app.command("eval", help="Accuracy of a trained model: the old name of `seethrough validate` (same flags).")
@functools.wraps(validate)
def eval_alias(**flags: Any) -> None:
    """``seethrough eval``: says it is now ``validate``, then runs it."""
    console.print("note: `seethrough eval` is now called `seethrough validate` (accuracy); "
                  "`seethrough evaluate` scores explanations", style="yellow")
    validate(**flags)
