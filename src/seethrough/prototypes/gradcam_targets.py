"""LVW's alignment targets: the base model's Grad-CAM map of every training image, keyed by sample id.

Learnable Visual Words (Xiao, Ding, Liu 2022), "dual fidelity preservation": besides predicting
through its words, LVW's attention-guided semantic alignment asks the fused map of its top-K
words to match the *base model's* attention, MSE(Â, G) with G the Grad-CAM map of a fine-tuned
base network (see :mod:`seethrough.models.prototype_losses`). G is computed once, before
training, without augmentation:

    G = upsample_bilinear( minmax( Grad-CAM_c(base, x) ) )   at the base model's input size,

with the target layer the base model's feature map (``"backbone"``: ResNet's layer4, as LVW) and
``c`` the class named by the target policy (:data:`TARGET_POLICIES`, default ``"gt"``). This is
``seethrough.explain(..., method="gradcam", normalize="minmax", upsample="bilinear")``, the
evaluation suite's explainer, in the order of pytorch-grad-cam's ``scale_cam_image`` (min-max,
then resize) that the original relied on.

The original stored the maps as one ``.npy`` array in ImageFolder sort order and paired map i
with image i of the dataset, and flipped the map independently of the image. Here:

* the file is keyed by the dataset's stable ``sample_id`` (never position), so any order,
  subset or shuffling of the data finds each image's own map, and a missing one is named;
* :class:`WithAttentionTargets` puts the map into the raw sample, where
  :class:`~seethrough.data.transforms.JointTransform` resizes it to the raw image's size and
  applies the *same* geometric draw as to the image (crop, flip, resize).

File format (``.safetensors``, no pickle): tensor ``maps`` (N×S×S float16, S the base model's
``img_size``), tensor ``sample_ids`` (the ids as UTF-8, newline-separated, in a uint8 tensor:
no header-size limit for large datasets), tensor ``explained_class`` (N int64) and string
metadata (:data:`FORMAT`, the base model, data spec, split, data options, ``img_size``, target
policy, target layer, explainer settings).
"""
from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path
from typing import Any, Sequence

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from ..data.base import ImageDataset, OnBadImage, RawSample

#: Format tag and version written in the file's metadata.
FORMAT, FORMAT_VERSION = "seethrough-gradcam-targets", "1"
#: Tensor names inside the file.
MAPS_KEY, IDS_KEY, CLASS_KEY = "maps", "sample_ids", "explained_class"
#: Separator of the ids in the ``sample_ids`` byte tensor (refused inside an id).
ID_SEPARATOR = "\n"
#: File suffix of a targets file.
SUFFIX = ".safetensors"
#: Storage precision of the maps (values in [0, 1]: ~1e-3 resolution, half the disk of float32).
STORE_DTYPE = torch.float16
#: Which class the base model's Grad-CAM explains: the ground-truth label, or its own prediction
#: (pytorch-grad-cam's default when no target is given).
TARGET_POLICIES = ("gt", "pred")
DEFAULT_TARGET = "gt"
#: The explainer settings (LVW: Grad-CAM, min-max to [0, 1], bilinear resize to the input).
EXPLAINER: dict[str, Any] = {"method": "gradcam", "normalize": "minmax", "upsample": "bilinear"}
#: How many missing ids an error lists by name (the count is always given).
MAX_NAMED_MISSING = 10
#: The command that writes a targets file (named in errors).
COMMAND = "seethrough attention-maps BASE_RUN --data DATA --out FILE.safetensors"


class MissingAttentionMapError(LookupError):
    """Sample ids that have no map in a targets file."""


def compute_gradcam_targets(
    base: str | Path,
    data: str,
    *,
    split: str = "train",
    data_options: dict[str, Any] | None = None,
    out: str | Path,
    batch_size: int = 16,
    target_layer: str | None = None,
    accelerator: str = "cpu",
    target: str = DEFAULT_TARGET,
    workers: int = 0,
) -> Path:
    """Write the Grad-CAM map of ``base`` for every sample of ``split`` of ``data`` to ``out``.

    Args:
        base: any seethrough model :func:`~seethrough.models.loading.load_for_inference`
            reads (usually the FC run fine-tuned on the same data: a run directory, its
            ``best/``, a ``save_pretrained`` directory or ``last.ckpt``).
        data: dataset spec (``pets:/data/pets``, ``synthetic``, ...); ``data_options`` as in training.
        split: ``"train"`` (the alignment trains on it) or ``"val"``.
        out: the ``.safetensors`` file to write (replaced atomically).
        batch_size: images per Grad-CAM pass.
        target_layer: dotted module name; ``None`` is the base model's feature map (``backbone``).
        accelerator: ``"cpu"``, ``"cuda"``, ``"auto"``, ... (Lightning Fabric's names).
        target: the class explained, one of :data:`TARGET_POLICIES`.
        workers: data-loading processes.

    The images are read without augmentation, square-resized to the base model's ``img_size``
    with its normalization (``loaded.transform(square=True)``), so the maps are
    ``img_size``×``img_size``; the training transform resizes each to its raw image.
    """
    from lightning.fabric import Fabric
    from torch.utils.data import DataLoader

    from ..data import build_dataset, collate
    from ..explanations.api import explain, resolve_targets
    from ..explanations.posthoc import resolve_target_layer
    from ..models.loading import load_for_inference

    out = Path(out)
    if out.suffix != SUFFIX:
        raise ValueError(f"--out {out}: the Grad-CAM targets are written as safetensors; name the file *{SUFFIX}")
    if target not in TARGET_POLICIES:
        raise ValueError(f"target {target!r} is not a class policy for the Grad-CAM targets; use one of "
                         f"{', '.join(TARGET_POLICIES)}")
    if batch_size < 1:
        raise ValueError(f"--batch-size must be at least 1, got {batch_size}")
    loaded = load_for_inference(base)
    options = dict(data_options or {})
    dataset = build_dataset(data, split, mode="L" if loaded.in_chans == 1 else "RGB", **options)
    if dataset.num_classes != len(loaded.classes):
        raise ValueError(f"base model {base} was trained on {len(loaded.classes)} classes but --data {data} has "
                         f"{dataset.num_classes}; use the data the base model was trained on "
                         "(dataset option num_classes)")
    dataset.transform = loaded.transform(square=True)
    device = Fabric(accelerator=accelerator, devices=1).device
    model = loaded.model.to(device).eval()
    layer_name, _ = resolve_target_layer(model, target_layer)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=collate, num_workers=workers)
    maps: list[torch.Tensor] = []
    ids: list[str] = []
    classes: list[torch.Tensor] = []
    for batch in loader:
        images, labels = batch["image"].to(device), batch["label"].to(device)
        chosen = labels if target == "gt" else resolve_targets(model, images, target)
        batch_maps = explain(model, images, chosen, target_layer=layer_name, **EXPLAINER)
        maps.append(batch_maps.detach().to("cpu", STORE_DTYPE))
        classes.append(chosen.detach().cpu())
        ids.extend(str(i) for i in batch["id"])
    if not ids:
        raise ValueError(f"--data {data} split {split} has no samples; nothing to explain")
    _check_ids(ids, f"--data {data} split {split}")
    metadata = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "base": str(base), "data": data, "split": split,
        "data_options": json.dumps(options, sort_keys=True), "img_size": str(loaded.img_size),
        "num_classes": str(len(loaded.classes)), "target": target, "target_layer": layer_name,
        "count": str(len(ids)), **EXPLAINER,
    }
    tensors = {MAPS_KEY: torch.cat(maps).contiguous(), CLASS_KEY: torch.cat(classes).long(),
               IDS_KEY: torch.frombuffer(bytearray(ID_SEPARATOR.join(ids).encode("utf-8")), dtype=torch.uint8)}
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    save_file(tensors, str(partial), metadata=metadata)
    os.replace(partial, out)
    return out


def _check_ids(ids: Sequence[str], source: str) -> None:
    """Ids must be non-empty, free of the separator and unique to key the maps."""
    bad = [i for i in ids if not i or ID_SEPARATOR in i]
    if bad:
        raise ValueError(f"{source}: sample ids {bad[:MAX_NAMED_MISSING]!r} are empty or contain a newline; "
                         "they cannot key the maps")
    duplicates = sorted(i for i, n in Counter(ids).items() if n > 1)
    if duplicates:
        raise ValueError(f"{source}: sample ids are not unique ({len(duplicates)} repeated, e.g. "
                         f"{duplicates[:MAX_NAMED_MISSING]}); maps cannot be keyed by them")


class GradcamTargets:
    """The maps of a targets file (:func:`load_gradcam_targets`), looked up by sample id.

    Attributes:
        maps: ``N×S×S`` float16, row i the map of ``sample_ids[i]``.
        sample_ids: the ids, in file order.
        metadata: the file's string metadata (base model, data, split, img_size, target, ...).
        path: the file.
    """

    def __init__(self, maps: torch.Tensor, sample_ids: Sequence[str], metadata: dict[str, str], path: Path) -> None:
        self.maps, self.sample_ids, self.metadata, self.path = maps, tuple(sample_ids), dict(metadata), Path(path)
        self._rows = {sample_id: row for row, sample_id in enumerate(self.sample_ids)}

    @property
    def img_size(self) -> int:
        """The base model's input size, the side of every map."""
        return int(self.metadata["img_size"])

    @property
    def target(self) -> str:
        """The class policy the maps explain (:data:`TARGET_POLICIES`)."""
        return self.metadata["target"]

    def __len__(self) -> int:
        return len(self.sample_ids)

    def __contains__(self, sample_id: object) -> bool:
        return sample_id in self._rows

    def missing(self, sample_ids: Sequence[str]) -> list[str]:
        """The ids among ``sample_ids`` without a map, in order, each once."""
        return list(dict.fromkeys(i for i in sample_ids if i not in self._rows))

    def get(self, sample_id: str | Sequence[str]) -> torch.Tensor:
        """The ``S×S`` float32 map of one id, or the ``B×S×S`` maps of a sequence of ids.

        Raises:
            MissingAttentionMapError: naming the missing ids (all of them are collected first;
                up to :data:`MAX_NAMED_MISSING` are listed, with their count).
        """
        single = isinstance(sample_id, str)
        ids = [str(sample_id)] if isinstance(sample_id, str) else [str(i) for i in sample_id]
        absent = self.missing(ids)
        if absent:
            raise MissingAttentionMapError(self._missing_message(absent))
        rows = torch.tensor([self._rows[i] for i in ids], dtype=torch.long)
        maps = self.maps.index_select(0, rows).float()
        return maps[0] if single else maps

    def _missing_message(self, absent: list[str]) -> str:
        named = ", ".join(repr(i) for i in absent[:MAX_NAMED_MISSING])
        more = f" and {len(absent) - MAX_NAMED_MISSING} more" if len(absent) > MAX_NAMED_MISSING else ""
        meta = self.metadata
        return (f"attention maps {self.path} have no map for {len(absent)} sample id(s): {named}{more}. The file holds "
                f"{len(self)} maps of --data {meta.get('data')} split {meta.get('split')} (data options "
                f"{meta.get('data_options')}); compute it for the data you train on: {COMMAND}")


def load_gradcam_targets(path: str | Path) -> GradcamTargets:
    """Read a file written by :func:`compute_gradcam_targets`, checking that it is one: format tag,
    ``N×S×S`` maps with ``S`` the base model's recorded ``img_size``, one unique id per map."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"attention maps {path} not found; compute the base model's Grad-CAM maps first: "
                                f"{COMMAND}")
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = dict(handle.metadata() or {})
            names = set(handle.keys())
            tensors = {name: handle.get_tensor(name) for name in names & {MAPS_KEY, IDS_KEY, CLASS_KEY}}
    except Exception as err:  # safetensors raises its own error types for a damaged header
        raise ValueError(f"attention maps {path} are not a readable safetensors file ({err}); recompute it: "
                         f"{COMMAND}") from err
    if metadata.get("format") != FORMAT or not {MAPS_KEY, IDS_KEY} <= names:
        raise ValueError(f"{path} is not a Grad-CAM targets file (format {metadata.get('format')!r}, tensors "
                         f"{sorted(names)}); write one with: {COMMAND}")
    maps = tensors[MAPS_KEY]
    img_size = int(metadata.get("img_size", -1))
    if maps.ndim != 3 or tuple(maps.shape[1:]) != (img_size, img_size):
        raise ValueError(f"attention maps {path}: maps of shape {tuple(maps.shape)} do not match the base model's "
                         f"img_size {img_size} recorded in the file (expected N×{img_size}×{img_size}); recompute it")
    raw_ids = tensors[IDS_KEY].numpy().tobytes().decode("utf-8")
    ids = raw_ids.split(ID_SEPARATOR) if raw_ids else []
    if len(ids) != maps.shape[0]:
        raise ValueError(f"attention maps {path}: {len(ids)} sample ids for {maps.shape[0]} maps; recompute it")
    _check_ids(ids, f"attention maps {path}")
    return GradcamTargets(maps, ids, metadata, path)


class WithAttentionTargets(ImageDataset):
    """``dataset`` whose raw samples carry their base model's Grad-CAM map (looked up by
    ``sample_id`` in ``targets``), so the transform moves it with the image.

    Everything else — classes, normalization, ``transform`` (get and set), length, any
    format-specific attribute — is the wrapped dataset's.
    """

    def __init__(self, dataset: ImageDataset, targets: GradcamTargets) -> None:
        # no ImageDataset.__init__: its transform/mode/classes are the wrapped dataset's
        self.dataset, self.targets = dataset, targets
        if len(targets) < len(dataset):
            raise MissingAttentionMapError(
                f"attention maps {targets.path} hold {len(targets)} maps but the data has {len(dataset)} samples, so "
                f"at least {len(dataset) - len(targets)} have no map (the file is of --data "
                f"{targets.metadata.get('data')} split {targets.metadata.get('split')}); compute it for the data you "
                f"train on: {COMMAND}")

    @property
    def transform(self):
        return self.dataset.transform

    @transform.setter
    def transform(self, value) -> None:
        self.dataset.transform = value

    @property
    def classes(self) -> list[str]:  # type: ignore[override]  # read-only view of the wrapped dataset's list
        return self.dataset.classes

    @property
    def normalization(self):
        return self.dataset.normalization

    @property
    def mode(self) -> str:  # type: ignore[override]  # read-only view of the wrapped dataset's mode
        return self.dataset.mode

    @property
    def on_bad_image(self) -> OnBadImage:  # type: ignore[override]  # read-only view of the wrapped dataset's setting
        return self.dataset.on_bad_image

    def __len__(self) -> int:
        return len(self.dataset)

    def load(self, index: int) -> RawSample:
        raw = self.dataset.load(index)
        raw.attention_map = self.targets.get(raw.sample_id)
        return raw

    def __getattr__(self, name: str):
        # only reached for names not found normally; never for the wrapper's own state (unpickling)
        if name.startswith("__") or name in ("dataset", "targets"):
            raise AttributeError(name)
        return getattr(self.dataset, name)
