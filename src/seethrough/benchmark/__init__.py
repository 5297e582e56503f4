"""``seethrough.benchmark``: every model × explainer on data whose ground truth is causal.

    results = seethrough.benchmark(models=["fc", "scouter+"], quick=True, out="bench/")

1. **Data**: the synthetic ``benchmark`` difficulty (:mod:`seethrough.data.synthetic`): a class
   is a pair of shapes in colours of a shared palette, so only shape and arrangement decide it,
   and every part can be removed, swapped or re-backgrounded (:mod:`seethrough.data.interventions`).
2. **Models**: run directories as given, or names of the demo's recipes (``fc``, ``scouter+``,
   ``scouter-``, ``intr``, ``castream``, ``protopnet``) trained on the benchmark data at the
   budget's size into ``out/runs/<name>`` — reused by a second call with the same budget.
3. **Evaluation**: the ``benchmark`` protocol (``seethrough protocols``) through
   :func:`seethrough.evaluate` — part interventions (FunnyBirds' completeness, correctness,
   contrastivity, background independence), insertion/deletion with the "absent" substrate,
   localization — for the models' own maps, Grad-CAM, any registered explainer and the sanity
   baselines ``random``, ``center`` and ``edges``.
4. **Prototypes**: for every prototype model (a pushed ProtoPNet / LVW with a gallery), the
   share of its prototypes whose pushed patch lies on an evidence part, beside the share that
   boxes thrown at the same images would get (:mod:`seethrough.prototypes.part_check`).
5. **Validity**: for each metric, whether it separates the real explainers from the baselines
   with non-overlapping 95 % bootstrap intervals (:mod:`.validity`).
6. **Files** in ``out``: ``results.json`` (the evaluate schema, plus ``"benchmark"``: leaderboard,
   validity, budget), ``samples.csv``, ``report.html``, ``leaderboard.md`` and
   ``figures/radar_<model>.png``.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

from ..config import TrainConfig, resolve_config
from ..demo import DEMO_MODELS
from ..engine.trainer import train
from ..models.heads.scouter import SCOUTER_LAMBDA_VALUE, SCOUTER_LR, SCOUTER_POWER, SCOUTER_SLOTS_PER_CLASS
from ..protocol import load_protocol
from ..prototypes.part_check import is_prototype_model, prototypes_on_parts
from ..suite import evaluate
from .leaderboard import leaderboard, leaderboard_markdown, radar_figure
from .validity import BASELINES, REAL_EXPLAINERS, bootstrap_interval, can_tell, read_samples

#: The benchmark data (``--data synthetic`` options): 4 shape-pair classes at the demo's 64 px.
BENCHMARK_DATA: dict[str, Any] = {"difficulty": "benchmark", "num_classes": 4}
#: Explainers of every benchmark run: the real ones first, then the sanity baselines.
DEFAULT_EXPLAINERS: tuple[str, ...] = (*REAL_EXPLAINERS, *BASELINES)
#: Recipe changes for the benchmark data (on top of the demo's). INTR trains its backbone at
#: INTR's own backbone rate (``lr_backbone`` 1e-5, the ``intr`` preset): at the demo's 1e-3 the FC
#: features it starts from are wrecked within the first epoch on shape pairs and every class
#: query collapses to the same output (loss ln C, measured). SCOUTER runs with the original
#: train.py's hyperparameters (``slots_per_class`` 3, ``power`` 2, ``lambda_value`` 1, ``lr`` 1e-4),
#: measured against the demo's (1 slot, power 1, lr 1e-3): at lr 1e-3 the shape pairs are either
#: not learned (3 slots, λ 0.1: 45 % on 4 classes; λ 1: the attention collapses to zero, loss ln C) or
#: learned with the slots on the background (1 slot, λ 0.1: correctness below random).
SCOUTER_BENCHMARK_RECIPE: dict[str, Any] = {
    "lr": SCOUTER_LR, "model_options": {"slots_per_class": SCOUTER_SLOTS_PER_CLASS, "power": SCOUTER_POWER,
                                        "lambda_value": SCOUTER_LAMBDA_VALUE}}
BENCHMARK_RECIPES: dict[str, dict[str, Any]] = {
    "scouter+": SCOUTER_BENCHMARK_RECIPE,
    "scouter-": SCOUTER_BENCHMARK_RECIPE,
    "intr": {"lr_backbone": 1e-5},
}
#: Validation images of every trained run (its best/ selection), apart from the evaluated ones.
VALIDATION_SAMPLES = 256
#: Where the trained runs go inside ``out``.
RUNS_DIR = "runs"


@dataclass(frozen=True)
class Budget:
    """How much a benchmark trains and evaluates."""

    #: Demo recipes trained when no models are given.
    models: tuple[str, ...]
    #: Synthetic training images and epochs of every trained model.
    train_samples: int
    epochs: int
    #: Validation images evaluated (every metric, every explainer).
    eval_samples: int


#: ``--quick``: the FC baseline and three attention models, a small evaluation (≤ 10 min on 2 CPU
#: cores, BENCHMARKS.md).
QUICK = Budget(models=("fc", "scouter+", "intr", "castream"), train_samples=1024, epochs=4, eval_samples=48)
#: The default: every demo recipe, more images.
FULL = Budget(models=tuple(DEMO_MODELS), train_samples=2048, epochs=4, eval_samples=200)


def benchmark(models: Sequence[str | Path] | None = None, *, explainers: Sequence[str] | None = None,
              quick: bool = False, out: str | Path = "benchmark", accelerator: str = "auto",
              progress: bool = True, budget: Budget | None = None) -> dict[str, Any]:
    """Train (or reuse) the models, evaluate every explainer with the benchmark protocol, and
    write the leaderboard; returns the ``results.json`` dictionary (see the module docstring).

    Args:
        models: run / model directories, or demo recipe names; ``None``: the budget's recipes.
        explainers: registered explainer names (``seethrough.register_explainer`` ones too);
            ``None``: native, gradcam and the three sanity baselines. Baselines are always added.
        quick: the :data:`QUICK` budget instead of :data:`FULL`.
        budget: any other :class:`Budget` (overrides ``quick``).
    """
    budget = budget or (QUICK if quick else FULL)
    out = Path(out)
    started = time.time()
    chosen = list(explainers or DEFAULT_EXPLAINERS)
    chosen += [baseline for baseline in BASELINES if baseline not in chosen]
    runs = resolve_models(models or budget.models, budget, out / RUNS_DIR, accelerator=accelerator)
    data_options = {**BENCHMARK_DATA, "num_samples": budget.eval_samples}
    summary = evaluate(list(runs.values()), data="synthetic", data_options=data_options,
                       protocol=load_protocol("benchmark", explainers=chosen), out=out, labels=list(runs),
                       accelerator=accelerator, progress=progress)
    samples = read_samples(out / "samples.csv")
    intervals = {key: bootstrap_interval(values.values()) for key, values in samples.items()}
    validity = can_tell(intervals, real=[e for e in chosen if e not in BASELINES])
    rows = leaderboard(samples)
    accuracy = {label: model["accuracy"]["top1"] for label, model in summary["models"].items()}
    prototypes = prototype_checks(runs)
    (out / "leaderboard.md").write_text(leaderboard_markdown(rows, validity, accuracy, prototypes))
    figures = [str(radar_figure(rows, label, out / "figures" / f"radar_{label}.png")) for label in runs]
    summary["benchmark"] = {
        "budget": asdict(budget), "quick": quick, "runs": {k: str(v) for k, v in runs.items()},
        "intervals": {"/".join(key): value.to_dict() for key, value in intervals.items()},
        "validity": validity, "accuracy": accuracy, "radar": figures,
        "prototypes": {label: {**check, "interval": check["interval"].to_dict()}
                       for label, check in prototypes.items()},
        "seconds": time.time() - started,
        "leaderboard": [{"model": row["model"], "explainer": row["explainer"], "score": row["score"],
                         "families": {k: v.to_dict() for k, v in row["families"].items()}} for row in rows],
    }
    (out / "results.json").write_text(json.dumps(summary, indent=2))
    return summary


def prototype_checks(runs: dict[str, Path]) -> dict[str, dict[str, Any]]:
    """label → the prototype check of every pushed prototype model among ``runs``, with the 95 %
    bootstrap interval of its share on evidence over prototypes."""
    checks: dict[str, dict[str, Any]] = {}
    for label, run in runs.items():
        if is_prototype_model(run):
            check = prototypes_on_parts(run)
            on = [float(row["on_evidence"]) for row in check["per_prototype"]]
            checks[label] = {**check, "interval": bootstrap_interval(on)}
    return checks


def resolve_models(models: Sequence[str | Path], budget: Budget, runs_dir: Path, *,
                   accelerator: str = "auto") -> dict[str, Path]:
    """label → run directory: an existing directory as is, a demo recipe name trained (or reused)."""
    runs: dict[str, Path] = {}
    for model in models:
        path = Path(model)
        if path.exists():
            runs[path.name if path.name not in ("best", "last.ckpt") else path.parent.name] = path
            continue
        name = str(model)
        if name not in DEMO_MODELS:
            raise ValueError(f"--models {name!r}: neither a run directory nor a recipe; recipes: "
                             f"{', '.join(DEMO_MODELS)}")
        runs[name] = train_recipe(name, budget, runs_dir, accelerator=accelerator, runs=runs)
    return runs


def train_recipe(name: str, budget: Budget, runs_dir: Path, *, accelerator: str = "auto",
                 runs: dict[str, Path] | None = None) -> Path:
    """Train demo recipe ``name`` on the benchmark data into ``runs_dir/name`` unless a finished
    run with the same settings is there; a recipe that starts from another (``use_pre``) trains
    that one first."""
    entry = DEMO_MODELS[name]
    runs = runs if runs is not None else {}
    use_pre = None
    if "use_pre" in entry:
        base = entry["use_pre"]
        if base not in runs:
            runs[base] = train_recipe(base, budget, runs_dir, accelerator=accelerator, runs=runs)
        use_pre = str(runs[base])
    run_dir = runs_dir / name
    cfg = recipe_config(name, budget, run_dir, use_pre=use_pre, accelerator=accelerator)
    stamp = run_dir / "benchmark.json"
    wanted = {"config": cfg.to_dict()}
    if stamp.is_file() and json.loads(stamp.read_text()) == wanted and (run_dir / "best").is_dir():
        return run_dir
    train(cfg)
    stamp.write_text(json.dumps(wanted))
    return run_dir


def recipe_config(name: str, budget: Budget, run_dir: Path, *, use_pre: str | None = None,
                  accelerator: str = "auto") -> TrainConfig:
    """The run config of demo recipe ``name`` on the benchmark data at ``budget`` (the demo preset,
    the recipe's overrides, :data:`BENCHMARK_RECIPES`)."""
    overrides = dict(DEMO_MODELS[name]["overrides"])
    for key, value in BENCHMARK_RECIPES.get(name, {}).items():
        overrides[key] = {**overrides.get(key, {}), **value} if isinstance(value, dict) else value
    return resolve_config(preset="demo", overrides={
        **overrides, "out": str(run_dir), "epochs": budget.epochs, "accelerator": accelerator,
        "use_pre": use_pre, "data_options": {**BENCHMARK_DATA, "num_samples": budget.train_samples,
                                             "val_samples": VALIDATION_SAMPLES},
        "progress": False})


__all__ = ["FULL", "QUICK", "Budget", "benchmark", "prototype_checks", "recipe_config"]
