"""What every ``seethrough`` subcommand shares: the Typer app, the console, the error exit and
the parsing of ``KEY=VALUE`` and geometry flags."""
from __future__ import annotations

import typer
import yaml
from rich.console import Console

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Image classifiers that show their evidence: train, explain, evaluate.")
data_app = typer.Typer(no_args_is_help=True, help="Dataset utilities.")
prototypes_app = typer.Typer(no_args_is_help=True, help="Prototype models (protopnet, lvw): prune, LVW targets and IoU.")
console = Console()

#: Exit status of a command refused for bad input (the message says what to fix).
USAGE_ERROR_EXIT = 2


def fail(err: Exception) -> None:
    """Print ``err`` as one red line and exit with :data:`USAGE_ERROR_EXIT`."""
    console.print(f"[bold red]error:[/] {err}")
    raise typer.Exit(code=USAGE_ERROR_EXIT)


#: Classes shown by `explain` (pred/least/topk, prototypes) and by `explain --heads` (INTR's
#: tools/visualization.py top_q = 5: the true class and four look-alikes).
EXPLAIN_DEFAULT_K, HEADS_DEFAULT_K = 3, 5
#: Help texts of the input-geometry overrides shared by eval, evaluate and explain.
IMG_SIZE_HELP = "Input size, overriding the model's recorded one (a converted checkpoint records its original's)."
MEAN_HELP = "Normalization mean per channel, e.g. 0.1307 or 0.485,0.456,0.406 (overrides the model's)."
STD_HELP = "Normalization std per channel (overrides the model's)."


def geometry_overrides(img_size: int | None, mean: str | None, std: str | None) -> dict:
    """``--img-size`` / ``--mean`` / ``--std`` → load_for_inference overrides (only those given)."""
    def floats(text: str, flag: str) -> list[float]:
        try:
            return [float(v) for v in text.split(",") if v.strip()]
        except ValueError:
            raise ValueError(f"{flag} expects comma-separated numbers, e.g. 0.485,0.456,0.406; got {text!r}") from None
    geometry: dict = {}
    if img_size is not None:
        geometry["img_size"] = img_size
    if mean is not None:
        geometry["mean"] = floats(mean, "--mean")
    if std is not None:
        geometry["std"] = floats(std, "--std")
    return geometry


def parse_set(pairs: list[str] | None, flag: str) -> dict:
    """``["k=v", ...]`` → ``{k: yaml(v)}`` (so numbers, booleans and lists get their types)."""
    values = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"{flag} expects KEY=VALUE, got {pair!r}")
        values[key.strip().replace("-", "_")] = yaml.safe_load(value)
    return values


def comma_list(text: str | None) -> list[str] | None:
    """``"a, b"`` → ``["a", "b"]`` (``None`` stays ``None``)."""
    return None if text is None else [part.strip() for part in text.split(",") if part.strip()]
