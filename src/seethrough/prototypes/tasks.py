"""Command-level tasks of prototype models on a dataset: pruning a trained model, and LVW's IoU
evaluation. They read the data the model was trained on (its run's ``config.yaml``) unless told
otherwise, preprocess as the model's evaluation transform, and write JSON next to their output."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, cast

import torch
from torch.utils.data import DataLoader

from ..data import build_dataset
from ..data.base import collate
from ..models.heads.prototype import PrototypeNet
from ..models.loading import data_for_run, load_for_inference
from .prune import PRUNE_K, PRUNE_LAST_LAYER_EPOCHS, PRUNE_TAU, find_prunable, pruned_model, retrain_last_layer

#: What ``prune`` writes beside the pruned model.
PRUNE_REPORT = "prune.json"
#: Seed of the retraining loader's shuffle.
PRUNE_SHUFFLE_SEED = 0


def _loader(source: str, loaded, data: str | None, data_options: dict | None, split: str, batch_size: int):
    spec, options = data_for_run(source, data, data_options)
    dataset = build_dataset(spec, split, mode="L" if loaded.in_chans == 1 else "RGB", **options)
    if dataset.num_classes != len(loaded.classes):
        raise ValueError(f"{source} has {len(loaded.classes)} classes but --data {spec} has {dataset.num_classes}")
    dataset.transform = loaded.transform(square=True)
    return DataLoader(dataset, batch_size=batch_size, collate_fn=collate), spec


def prune_model(source: str, out: str | Path, *, data: str | None = None, data_options: dict | None = None,
                split: str = "train", k: int = PRUNE_K, tau: int = PRUNE_TAU, batch_size: int = 32,
                last_layer_epochs: int = PRUNE_LAST_LAYER_EPOCHS) -> dict[str, Any]:
    """Prune ``source`` (ProtoPNet's k = 6, τ = 3 over its training images), then retrain the last
    layer ``last_layer_epochs`` epochs on the same images (run_pruning.py: 100, Adam 1e-4; 0 =
    prune only), and save the pruned model to ``out`` with ``prune.json`` (kept / pruned
    prototypes, own-class counts, the retraining losses)."""
    if last_layer_epochs < 0:
        raise ValueError(f"--last-layer-epochs must be zero (prune only) or positive, got {last_layer_epochs}")
    loaded = load_for_inference(source)
    if getattr(loaded.model, "stage_recipe", None) != "prototype":
        raise ValueError(f"{source} is a {loaded.model.config.get('name')!r} model; pruning applies to prototype "
                         "models (protopnet, lvw)")
    net = cast(PrototypeNet, loaded.model)   # checked above: a prototype model
    loader, spec = _loader(source, loaded, data, data_options, split, batch_size)
    result = find_prunable(net, loader, k=k, tau=tau)
    model = pruned_model(net, result.keep)
    losses = retrain_last_layer(model, _shuffled(loader), epochs=last_layer_epochs) if last_layer_epochs else []
    out = Path(out)
    model.save_pretrained(out, classes=list(loaded.classes), mean=list(loaded.mean), std=list(loaded.std),
                          img_size=loaded.img_size, pruned_from=str(source), prune_k=k, prune_tau=tau)
    report = {"source": str(source), "data": spec, "split": split, **result.to_json(),
              "last_layer_epochs": last_layer_epochs, "last_layer_losses": losses}
    (out / PRUNE_REPORT).write_text(json.dumps(report, indent=2))
    return report


def _shuffled(loader: DataLoader) -> DataLoader:
    """The same images in a seeded random order per epoch (the original's shuffled train loader)."""
    return DataLoader(loader.dataset, batch_size=loader.batch_size, collate_fn=collate, shuffle=True,
                      generator=torch.Generator().manual_seed(PRUNE_SHUFFLE_SEED))


def lvw_iou_run(source: str, maps: str | Path, *, data: str | None = None, data_options: dict | None = None,
                split: str = "val", percentile: float = 50.0, top_k: int = 10, batch_size: int = 32,
                out: str | Path | None = None) -> dict[str, Any]:
    """LVW's IoU of ``source``'s word maps against the base model's Grad-CAM ``maps`` file (of the
    same split), both conventions with their chance levels; written to ``out`` as JSON if given."""
    from .gradcam_targets import load_gradcam_targets
    from .iou import lvw_iou

    loaded = load_for_inference(source)
    if getattr(loaded.model, "stage_recipe", None) != "prototype":
        raise ValueError(f"{source} is a {loaded.model.config.get('name')!r} model; the IoU evaluation applies to "
                         "prototype models (lvw, protopnet)")
    targets = load_gradcam_targets(maps)
    loader, spec = _loader(source, loaded, data, data_options, split, batch_size)
    result = {"model": str(source), "maps": str(maps), "data": spec, "split": split,
              **lvw_iou(cast(PrototypeNet, loaded.model), loader, lambda ids: targets.get(list(ids)),
                        percentile=percentile, top_k=top_k)}
    if out is not None:
        Path(out).write_text(json.dumps(result, indent=2))
    return result
