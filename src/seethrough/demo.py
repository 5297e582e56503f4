"""``seethrough demo``: train on the built-in synthetic data, show and score the evidence.

Each entry of :data:`DEMO_MODELS` is trained briefly from the ``demo`` preset, then its own
maps are rendered for a few validation images and scored against the synthetic data's exact
evidence masks: the share of map mass on the evidence, next to what a uniform map would get.
A positive model is explained for the ground-truth class ("why c"); a negative SCOUTER for
the least likely class ("why not c": its evidence against that class is the true object).
Later models add themselves to :data:`DEMO_MODELS`.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from .config import resolve_config
from .data import build_dataset, collate
from .engine import train
from .explanations import denormalize, explain_batch, render_batch
from .models.loading import RUN_BEST_DIR, load_for_inference
from .prototypes.gallery import GALLERY_DIR, this_looks_like_that

#: demo name → config overrides on top of the ``demo`` preset, the class policy its pictures
#: and score use, and (``use_pre``) the demo model whose backbone initializes it.
DEMO_MODELS: dict[str, dict[str, Any]] = {
    "fc": {"overrides": {"model": "fc"}, "policy": "gt"},
    "scouter+": {"overrides": {"model": "scouter", "model_options": {"sign": 1, "slots_per_class": 1, "power": 1}},
                 "policy": "gt", "use_pre": "fc"},
    "scouter-": {"overrides": {"model": "scouter", "model_options": {"sign": -1, "slots_per_class": 1, "power": 1}},
                 "policy": "least", "use_pre": "fc"},
    # INTR at a CPU size (d 32, 4 heads, 1 + 1 layers); like INTR from DETR it starts from a
    # trained backbone (the FC's) and keeps its BatchNorm frozen
    "intr": {"overrides": {"model": "intr", "model_options": {
        "d_model": 32, "nheads": 4, "num_encoder_layers": 1, "num_decoder_layers": 1, "dim_feedforward": 64,
        "frozen_bn": True}}, "policy": "gt", "use_pre": "fc"},
    # CA-Stream on the FC run: its backbone and classifier frozen, only the stream trains (the
    # paper's SGD 0.1); "compare" also scores the same weights with GAP pooling — which is the
    # FC network itself, so its accuracy is the FC run's
    "castream": {"overrides": {"model": "castream", "optimizer": "sgd", "lr": 0.1, "weight_decay": 1e-4},
                 "policy": "gt", "use_pre": "fc", "compare": {"pooling": "gap"}},
    # ProtoPNet on the FC backbone (trained already, so no warm-up), 10 prototypes per class:
    # the joint epochs, then the push and two last-layer epochs, so the run ends on the pushed
    # model whose gallery and "this looks like that" pictures are shown
    "protopnet": {"overrides": {"model": "protopnet", "model_options": {"prototype_dim": 32, "add_on": "regular"},
                                "stage_options": {"warm_epochs": 0, "push_start": 1, "push_every": 1,
                                                  "last_layer_epochs": 2}},
                  "policy": "gt", "use_pre": "fc", "gallery": True},
}
#: Validation images explained by "this looks like that" per prototype model.
NUM_PROTOTYPE_PICTURES = 2
#: Validation images rendered per model.
NUM_PICTURES = 8
#: Validation images scored against the evidence masks per model.
NUM_SCORED = 128


def evidence_mass(maps: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Relevance mass accuracy: Σ map inside the evidence mask / Σ map, per image (maps ≥ 0)."""
    total = maps.flatten(1).sum(1).clamp_min(torch.finfo(maps.dtype).tiny)
    return (maps * masks).flatten(1).sum(1) / total


def score_and_render(run_dir: Path, out: Path, data_options: dict[str, Any], policy: str = "gt",
                     runtime_options: dict[str, Any] | None = None) -> dict[str, Any]:
    """Render a few validation explanations of the run's best model and score its maps;
    ``runtime_options`` switch the model first (e.g. CA-Stream's ``pooling``)."""
    loaded = load_for_inference(run_dir)
    for option, value in (runtime_options or {}).items():
        loaded.model.set_runtime_option(option, value)
    val = build_dataset("synthetic", "val", **data_options)
    val.transform = loaded.transform(square=True)   # one batch of pixel-aligned maps
    batch = collate([val[i] for i in range(min(NUM_SCORED, len(val)))])
    result = explain_batch(loaded.model, batch["image"], policy=policy, k=1, labels=batch["label"],
                           normalize="minmax")
    mass = evidence_mass(result["maps"][:, 0], batch["mask"].float())
    shown = slice(0, NUM_PICTURES)
    pictures = denormalize(batch["image"][shown], loaded.mean, loaded.std)
    picked = {key: value[shown] for key, value in result.items() if torch.is_tensor(value)}
    render_batch({**result, **picked}, pictures, loaded.classes, out / "pictures",
                 [f"val{i:03d}" for i in range(pictures.shape[0])])
    return {"evidence_mass": mass.mean().item(), "evidence_mass_uniform": batch["mask"].float().mean().item(),
            "explained_class": policy}


def render_prototype_views(run_dir: Path, data_options: dict[str, Any]) -> dict[str, Any]:
    """'This looks like that' for a few validation images, from the run's prototype gallery."""
    gallery = run_dir / RUN_BEST_DIR / GALLERY_DIR
    if not (gallery / "gallery.json").is_file():   # no push ran (e.g. --epochs 1)
        return {"gallery": None}
    loaded = load_for_inference(run_dir)
    val = build_dataset("synthetic", "val", **data_options)
    val.transform = loaded.transform(square=True)
    pictures = []
    for i in range(NUM_PROTOTYPE_PICTURES):
        path = run_dir / "pictures" / f"val{i:03d}_this_looks_like_that.png"
        sample = val[i]
        assert sample is not None, "the synthetic data has no unreadable images"
        this_looks_like_that(loaded.model, sample["image"], gallery, path, k=3, mean=loaded.mean, std=loaded.std,
                             classes=loaded.classes)
        pictures.append(str(path))
    return {"gallery": str(gallery), "this_looks_like_that": pictures}


def run_demo(out: str | Path = "seethrough-demo", *, epochs: int | None = None, backbone: str | None = None,
             samples: int | None = None, accelerator: str = "auto") -> dict[str, Any]:
    """Train every demo model and write ``out/<model>/`` (run, pictures) and ``out/summary.json``.

    ``epochs``, ``backbone`` and ``samples`` (synthetic images per split) override the preset.
    """
    out = Path(out)
    summary: dict[str, Any] = {"dataset": "synthetic", "models": {}}
    for name, entry in DEMO_MODELS.items():
        run_dir = out / name
        use_pre = str(out / entry["use_pre"]) if "use_pre" in entry else None
        cfg = resolve_config(preset="demo", overrides={**entry["overrides"], "out": str(run_dir), "epochs": epochs,
                                                      "backbone": backbone, "accelerator": accelerator,
                                                      "use_pre": use_pre})
        if samples is not None:
            cfg.data_options = {**cfg.data_options, "num_samples": samples}
        trained = train(cfg)
        scores = score_and_render(run_dir, run_dir, cfg.data_options, entry["policy"])
        summary["models"][name] = {
            "val_acc1": trained["val_acc1"], "best_val_acc1": trained["best_val_acc1"],
            "images_per_s": trained["images_per_s"], **scores,
            "pictures": str(run_dir / "pictures"), "run": str(run_dir),
        }
        if entry.get("gallery"):
            summary["models"][name].update(render_prototype_views(run_dir, cfg.data_options))
        if "compare" in entry:
            variant = "-".join(f"{k}-{v}" for k, v in entry["compare"].items())
            same_as = summary["models"][entry["use_pre"]]
            summary["models"][name][variant] = {
                "val_acc1": same_as["best_val_acc1"],
                **score_and_render(run_dir, run_dir / variant, cfg.data_options, entry["policy"], entry["compare"]),
                "pictures": str(run_dir / variant / "pictures"),
            }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary
