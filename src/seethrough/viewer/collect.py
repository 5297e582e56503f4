"""Run models on the viewed images and put their evidence into a view (:mod:`.format`).

Per model, one forward pass per batch gives the logits, the native maps of every stored class
and the model's own extras; post-hoc explainers run as :func:`seethrough.explain` runs them.
Stored classes per image: every class of a data set with at most ten, else the top-k
predictions, the ground truth, and for a negative ("why not") model the least likely class —
the classes a user switches between. Per model kind:

- INTR: the last decoder layer's cross-attention of each head, per stored class;
- CA-Stream: each tap's attention (head mean, class-agnostic);
- prototype models: the predicted class's top prototypes by similarity × last-layer weight
  ("this looks like that"), each with its similarity map on the image and its gallery crop;
- SCOUTER: its sign (``+`` "why c", ``−`` "why not c"), so the viewer labels the panels.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence, cast

import torch

from ..data import build_dataset
from ..explanations import denormalize, explain
from ..models.base import SeeThroughModel
from ..models.heads.prototype import PrototypeNet
from ..models.loading import InferenceModel, data_for_run, load_for_inference
from ..prototypes.part_check import gallery_file
from .format import ANY_CLASS, ViewWriter, encode_map, thumbnail

#: Predictions stored per image (and shown as the class switcher's top-k).
TOP_K = 5
#: Up to this many classes, every class's map is stored (the class switcher shows any class);
#: beyond it the top-k, the ground truth and (negative models) the least likely class.
ALL_CLASSES_UP_TO = 10
#: Prototypes shown per image for a prototype model.
TOP_PROTOTYPES = 3
#: Images per forward pass.
BATCH_SIZE = 16
#: Longest side a map is stored at: a larger one (a post-hoc map at the input's resolution) is
#: area-averaged down to it, so 1,000 images × 3 models × 3 explainers × 6 classes stay within the
#: viewer's 50 MB budget; maps that are natively smaller (7×7, 14×14) are kept as they are.
MAX_MAP_SIDE = 24


@dataclass
class ViewedData:
    """The images every model of a view is run on."""

    spec: str
    options: dict[str, Any]
    split: str
    ids: list[int]


def resolve_data(sources: Sequence[str | Path], *, data: str | None, data_options: dict[str, Any] | None,
                 split: str, ids: Sequence[int] | None, limit: int) -> ViewedData:
    """The data of the first model (or ``data``), and which of its samples to view."""
    spec, options = data_for_run(str(sources[0]), data, data_options)
    dataset = build_dataset(spec, split, **options)
    chosen = [int(i) for i in ids] if ids is not None else list(range(len(dataset)))
    bad = [i for i in chosen if not 0 <= i < len(dataset)]
    if bad:
        raise ValueError(f"sample {bad[0]} is not in the {split} split of {spec} ({len(dataset)} samples)")
    return ViewedData(spec, options, split, chosen[:limit])


def collect(writer: ViewWriter, models: Mapping[str, str | Path], viewed: ViewedData, *,
            explainers: Sequence[str] = ("native",), top_k: int = TOP_K, batch_size: int = BATCH_SIZE,
            max_map_side: int = MAX_MAP_SIDE, progress: bool = False) -> None:
    """Run every model on the viewed images and add samples, maps and extras to ``writer``."""
    manifest = writer.manifest
    manifest["explainers"] = list(dict.fromkeys([*manifest["explainers"], *explainers]))
    samples: dict[str, dict[str, Any]] = {}
    for position, (label, source) in enumerate(models.items()):
        loaded = load_for_inference(source)
        dataset = build_dataset(viewed.spec, viewed.split, mode="L" if loaded.in_chans == 1 else "RGB",
                                **viewed.options)
        if not manifest["classes"]:
            manifest["classes"] = list(dataset.classes)
        dataset.transform = loaded.transform(square=True)
        entry = _model_entry(label, loaded)
        manifest["models"].append(entry)
        _prototype_assets(writer, label, source, loaded)
        correct = 0
        for start in range(0, len(viewed.ids), batch_size):
            batch = [item for i in viewed.ids[start:start + batch_size] if (item := dataset[i]) is not None]
            if not batch:
                continue
            images = torch.stack([b["image"] for b in batch])
            labels = torch.tensor([int(b["label"]) for b in batch])
            ids = [str(b["index"]) for b in batch]
            if position == 0:
                pictures = denormalize(images, loaded.mean, loaded.std)
                for sample_id, lab, picture in zip(ids, labels.tolist(), pictures):
                    path = writer.image_path(sample_id)
                    thumbnail(picture, writer.out / path)
                    samples[sample_id] = {"id": sample_id, "label": lab, "thumb": path, "models": {}, "metrics": {}}
            correct += _add_batch(writer, samples, label, entry, loaded, images, labels, ids, explainers, top_k,
                                  max_map_side)
        entry["viewed_accuracy"] = correct / max(1, len(viewed.ids))
        if progress:
            print(f"  view: {label} — {len(viewed.ids)} images")
    manifest["samples"].extend(samples[str(i)] for i in viewed.ids if str(i) in samples)


def _model_entry(label: str, loaded: InferenceModel) -> dict[str, Any]:
    config = loaded.model.config
    return {"name": label, "kind": str(config.get("name", "model")), "sign": int(config.get("sign", 1) or 1),
            "accuracy": None, "map_size": {}, "img_size": loaded.img_size}


def _stored_classes(probs: torch.Tensor, labels: torch.Tensor, top_k: int, sign: int) -> torch.Tensor:
    """``B×K``: every class (up to :data:`ALL_CLASSES_UP_TO`), else the ground truth, the top-k, and
    (negative models) the least likely class."""
    if probs.shape[1] <= ALL_CLASSES_UP_TO:
        return torch.arange(probs.shape[1]).expand(probs.shape[0], -1)
    k = min(top_k, probs.shape[1])
    columns = [labels[:, None], probs.topk(k, dim=1).indices]
    if sign < 0:
        columns.append(probs.argmin(dim=1, keepdim=True))
    return torch.cat(columns, dim=1)


def _add_batch(writer: ViewWriter, samples: dict, label: str, entry: dict, loaded: InferenceModel,
               images: torch.Tensor, labels: torch.Tensor, ids: list[str], explainers: Sequence[str],
               top_k: int, max_map_side: int) -> int:
    model = loaded.model
    with torch.no_grad():
        output = model(images)
    probs = torch.softmax(output.logits.float(), dim=1)
    k = min(top_k, probs.shape[1])
    top = probs.topk(k, dim=1)
    targets = _stored_classes(probs, labels, top_k, entry["sign"])
    for b, sample_id in enumerate(ids):
        samples[sample_id]["models"][label] = {
            "top": [[int(c), round(float(p), 5)] for c, p in zip(top.indices[b], top.values[b])]}
    for method in explainers:
        try:
            maps = explain(model, images, targets=targets, method=method, upsample="none", normalize="minmax",
                           output=output if method == "native" else None)
        except (ValueError, RuntimeError, TypeError, NotImplementedError) as err:
            writer.error(f"{label} / {method}: not shown ({err})")
            continue
        maps = shrink(maps, max_map_side)
        entry["map_size"][method] = list(maps.shape[-2:])
        for b, sample_id in enumerate(ids):
            stored = writer.sample_chunk(sample_id)["maps"].setdefault(label, {}).setdefault(method, {})
            encoded = {str(cls): encode_map(maps[b, column]) for column, cls in enumerate(targets[b].tolist())}
            if len({e["d"] for e in encoded.values()}) == 1:     # a class-independent map (a baseline): once
                stored[ANY_CLASS] = next(iter(encoded.values()))
            else:
                stored.update(encoded)
    _add_extras(writer, label, model, output, targets, ids)
    return int((top.indices[:, 0] == labels).sum())


def shrink(maps: torch.Tensor, side: int) -> torch.Tensor:
    """``…×h×w`` maps area-averaged so that their longer side is at most ``side`` (aspect kept)."""
    if side < 1:
        raise ValueError(f"the longest stored map side must be positive, got {side}")
    h, w = maps.shape[-2:]
    if max(h, w) <= side:
        return maps
    scale = side / max(h, w)
    size = (max(1, round(h * scale)), max(1, round(w * scale)))
    flat = maps.reshape(-1, 1, h, w).float()
    return torch.nn.functional.adaptive_avg_pool2d(flat, size).reshape(*maps.shape[:-2], *size)


def _add_extras(writer: ViewWriter, label: str, model: SeeThroughModel, output: Any, targets: torch.Tensor,
                ids: list[str]) -> None:
    kind = str(model.config.get("name", ""))
    extras = output.extras or {}
    h, w = output.maps.shape[-2:]
    for b, sample_id in enumerate(ids):
        target = writer.sample_chunk(sample_id)["extras"].setdefault(label, {})
        if kind == "intr" and "attention" in extras:
            last = extras["attention"][-1][b]                                     # heads×C×(h·w)
            target["heads"] = {str(c): [encode_map(last[head, c].reshape(h, w)) for head in range(last.shape[0])]
                               for c in dict.fromkeys(targets[b].tolist())}
        taps = {key.split(".", 1)[1]: value for key, value in extras.items() if key.startswith("ca_attention.")}
        if taps:
            target["taps"] = {tap: encode_map(value[b].float().mean(0)) for tap, value in taps.items()}
        if "prototype_similarity" in extras:
            target["prototypes"] = _top_prototypes(model, extras["prototype_similarity"][b],
                                                   int(output.logits[b].argmax()))


def _top_prototypes(model: SeeThroughModel, similarity: torch.Tensor, predicted: int) -> list[dict[str, Any]]:
    """The predicted class's prototypes with the largest similarity × last-layer weight."""
    best = similarity.flatten(1).max(dim=1).values                                # P
    weight = cast(PrototypeNet, model).last_layer.weight[predicted].detach()
    score = best * weight
    order = score.argsort(descending=True)[:TOP_PROTOTYPES]
    return [{"prototype": int(j), "similarity": round(float(best[j]), 5), "weight": round(float(weight[j]), 5),
             "map": encode_map(similarity[j])} for j in order]


def _prototype_assets(writer: ViewWriter, label: str, source: str | Path, loaded: InferenceModel) -> None:
    if "prototype_similarity" not in _extra_keys(loaded):
        return
    try:
        path = gallery_file(source)
    except FileNotFoundError as err:
        writer.error(f"{label}: no prototype pictures ({err})")
        return
    gallery = json.loads(path.read_text())
    rows = []
    for entry in gallery["prototypes"]:
        files = entry.get("files", {})
        row = {"prototype": entry["prototype"], "class": entry.get("prototype_class", entry.get("label"))}
        for kind in ("crop", "source"):
            if kind in files and (path.parent / files[kind]).is_file():
                row[kind] = writer.add_asset(path.parent / files[kind], f"{label}/{files[kind]}")
        rows.append(row)
    writer.manifest["prototypes"][label] = rows


def _extra_keys(loaded: InferenceModel) -> set[str]:
    return {"prototype_similarity"} if hasattr(loaded.model, "prototypes") else set()


__all__ = ["BATCH_SIZE", "MAX_MAP_SIDE", "TOP_K", "shrink", "ViewedData", "collect", "resolve_data"]
