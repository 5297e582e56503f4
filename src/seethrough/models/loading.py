"""Load a trained model for inference from any of the places training writes one."""
from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import yaml

from ..core.checkpoint import load_checkpoint
from ..data.transforms import IMAGENET_MEAN, IMAGENET_STD
from .backbone import backbone_architecture
from .base import SeeThroughModel
from .hub import CONFIG_NAME, from_pretrained, load_state_dict_checked
from .registry import create_model_from_config

#: Input size assumed for a model whose card does not record one (timm's usual default).
DEFAULT_IMG_SIZE = 224
#: Where ``seethrough train`` puts the best model inside a run directory.
RUN_BEST_DIR = "best"
#: ``RUN/last`` names the run's last training checkpoint, ``RUN/last.ckpt``.
RUN_LAST, RUN_LAST_CHECKPOINT = "last", "last.ckpt"
#: The run's config file (written by ``seethrough train``), which names its data.
RUN_CONFIG = "config.yaml"


@dataclass
class InferenceModel:
    """A model in eval mode plus what preprocessing and labelling need."""

    model: SeeThroughModel
    classes: list[str]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    img_size: int
    #: How training resized for evaluation: "square" (to ``img_size``) or "detr" (aspect kept).
    resize: str = "square"
    resize_options: dict = field(default_factory=dict)

    @property
    def in_chans(self) -> int:
        return len(self.mean)

    def unused_outputs(self, data_classes: Sequence[str], *, source: str, spec: str) -> list[int]:
        """The model's outputs that no class of the data uses (audit B5: the original Con-Text
        command trains ``--num_classes 30`` for 28 classes), checked: the data's classes must be
        the model's first outputs (same names, or a converted model's numbered outputs). A model
        with fewer outputs, or other class names, is refused naming both counts."""
        ours, theirs = list(self.classes), list(data_classes)
        if len(ours) == len(theirs):
            return []
        numbered = ours == [str(i) for i in range(len(ours))]
        if len(ours) > len(theirs) and (numbered or ours[:len(theirs)] == theirs):
            return list(range(len(theirs), len(ours)))
        raise ValueError(f"{source} was trained on {len(ours)} classes but --data {spec} has {len(theirs)}; "
                         "evaluate on the same classes (dataset option num_classes)")

    def transform(self, *, square: bool = False):
        """The evaluation preprocessing the model was trained with. ``square=True`` forces a
        square resize to ``img_size`` (what pixel-aligned batches of explanations need)."""
        from ..data import build_transform

        geometry: dict[str, Any]
        if self.resize == "detr" and not square:
            geometry = {"resize": self.resize, "resize_options": self.resize_options}
        else:   # a square resize: torchvision's, or PIL's bilinear filter as the originals ("pil-bilinear")
            geometry = {"resize": "pil-bilinear" if self.resize == "pil-bilinear" else "square"}
        return build_transform(self.img_size, train=False, mean=self.mean, std=self.std, **geometry)


def load_for_inference(source: str | Path, *, img_size: int | None = None, mean: Sequence[float] | None = None,
                       std: Sequence[float] | None = None) -> InferenceModel:
    """``source``: a run directory (uses ``best/``), a ``save_pretrained`` directory, a
    ``last.ckpt`` file, or a Hugging Face Hub id.

    The input geometry is the one recorded with the model (training's, or the original's for a
    converted checkpoint, see :mod:`.official_geometry`); ``img_size``, ``mean`` and ``std``
    override it (``--img-size``, ``--mean``, ``--std``)."""
    loaded = _load(source)
    return with_geometry(loaded, img_size=img_size, mean=mean, std=std, source=str(source))


def with_geometry(loaded: InferenceModel, *, img_size: int | None = None, mean: Sequence[float] | None = None,
                  std: Sequence[float] | None = None, source: str = "the model") -> InferenceModel:
    """``loaded`` with its input size and normalization overridden where given (checked: one
    value per input channel of the model, positive std and size)."""
    channels = int(loaded.model.config.get("in_chans", loaded.in_chans))
    for flag, values in (("--mean", mean), ("--std", std)):
        if values is not None and len(values) != channels:
            raise ValueError(f"{flag} needs one value per input channel of {source} ({channels}), got "
                             f"{len(values)}: {list(values)}")
    if std is not None and any(v <= 0 for v in std):
        raise ValueError(f"--std values must be positive, got {list(std)}")
    if img_size is not None and img_size < 1:
        raise ValueError(f"--img-size must be a positive number of pixels, got {img_size}")
    return dataclasses.replace(
        loaded,
        img_size=int(img_size) if img_size is not None else loaded.img_size,
        mean=tuple(float(v) for v in mean) if mean is not None else loaded.mean,
        std=tuple(float(v) for v in std) if std is not None else loaded.std,
    )


def _load(source: str | Path) -> InferenceModel:
    path = resolve_run_path(source)
    if path.is_dir() and not (path / CONFIG_NAME).exists() and (path / RUN_BEST_DIR / CONFIG_NAME).exists():
        path = path / RUN_BEST_DIR
    if path.is_file():
        return _from_training_checkpoint(path)
    if path.is_dir() and not (path / CONFIG_NAME).exists():
        raise FileNotFoundError(
            f"{path} holds no model: expected a run directory (with best/), a directory with "
            f"{CONFIG_NAME} and model.safetensors, or a last.ckpt file"
        )
    model = cast(SeeThroughModel, from_pretrained(str(path) if path.exists() else str(source)))
    card = _card(path) if path.exists() else {}
    num_classes, in_chans = model.config["num_classes"], model.config.get("in_chans", 3)
    mean = tuple(card.get("mean") or IMAGENET_MEAN[:in_chans])
    std = tuple(card.get("std") or IMAGENET_STD[:in_chans])
    return InferenceModel(
        model.eval(), list(card.get("classes") or [str(i) for i in range(num_classes)]),
        mean, std, int(card.get("img_size") or DEFAULT_IMG_SIZE),
        str(card.get("resize") or "square"), dict(card.get("resize_options") or {}),
    )


def resolve_run_path(source: str | Path) -> Path:
    """``RUN/last`` → ``RUN/last.ckpt`` (the last epoch's weights); ``RUN`` and ``RUN/best`` stay
    (``RUN`` means ``RUN/best``: the model ``--select`` chose). Anything else is returned as is."""
    path = Path(source)
    if path.name == RUN_LAST and not path.exists() and path.parent.is_dir():
        checkpoint = path.parent / RUN_LAST_CHECKPOINT
        if not checkpoint.is_file():
            raise FileNotFoundError(f"{source}: {checkpoint} not found; RUN/last reads the run's last.ckpt "
                                    f"(use RUN or RUN/best for the selected model)")
        return checkpoint
    return path


def _card(directory: Path) -> dict:
    return json.loads((directory / CONFIG_NAME).read_text()).get("card", {})


def _from_training_checkpoint(path: Path) -> InferenceModel:
    ckpt = load_checkpoint(path)
    if "config" not in ckpt or "model" not in ckpt:
        raise ValueError(f"{path} is not a seethrough training checkpoint (no config/model entries)")
    cfg, info = ckpt["config"], ckpt.get("data", {})
    model = create_model_from_config(cfg, num_classes=len(info["classes"]), pretrained=False)
    load_state_dict_checked(model, ckpt["model"], source=str(path))
    return InferenceModel(cast(SeeThroughModel, model.eval()), list(info["classes"]), tuple(info["mean"]),
                          tuple(info["std"]),
                          int(info["img_size"]), str(info.get("resize", "square")),
                          dict(info.get("resize_options") or {}))


def init_backbone_from(model: SeeThroughModel, source: str | Path, *, classes: list[str]) -> None:
    """SCOUTER's ``use_pre``: copy the backbone of a model trained on the same data (usually the
    FC baseline) into ``model``'s backbone (and, for a head that reuses the baseline's
    classifier such as CA-Stream, its classifier through ``model.init_classifier_from``). Refuses another
    backbone, stem, input channels or
    class list, naming what differs."""
    if not resolve_run_path(source).exists():
        raise FileNotFoundError(
            f"use_pre {source} not found: give the run directory (or its best/ or last.ckpt) of the FC "
            "baseline trained first on the same data (seethrough train --model fc ... --out DIR)"
        )
    pre = load_for_inference(source)
    keys = ("backbone", "in_chans", "stem")
    ours, theirs = model.config, pre.model.config
    diffs = [f"{k}: {theirs.get(k)!r} there vs {ours.get(k)!r} here" for k in keys if _differs(k, theirs, ours)]
    if list(pre.classes) != list(classes):
        diffs.append(f"classes: {len(pre.classes)} there vs {len(classes)} here (same dataset and classes needed)")
    if diffs:
        raise ValueError(f"use_pre {source} does not match this run: " + "; ".join(diffs))
    model.backbone.load_state_dict(pre.model.backbone.state_dict())
    init_classifier = getattr(model, "init_classifier_from", None)
    if init_classifier is not None:   # heads that reuse the baseline's classifier (CA-Stream)
        init_classifier(pre.model, source=str(source))


def init_model_from(model: SeeThroughModel, source: str | Path) -> None:
    """``init_from``: start training from every weight of another seethrough model of the same
    architecture — e.g. a DETR checkpoint converted for INTR (``seethrough convert detr ...``).

    Refuses a model of another name, backbone or class count, naming what differs; the weights
    must then match key for key and shape for shape.
    """
    if not resolve_run_path(source).exists():
        raise FileNotFoundError(f"init_from {source} not found: give a model directory (seethrough convert ... "
                                "--out DIR, or save_pretrained), a run directory or a last.ckpt")
    pre = load_for_inference(source).model
    keys = ("name", "backbone", "num_classes", "in_chans", "stem", "taps")
    ours, theirs = model.config, pre.config
    diffs = [f"{k}: {theirs.get(k)!r} there vs {ours.get(k)!r} here" for k in keys if _differs(k, theirs, ours)]
    if diffs:
        raise ValueError(f"init_from {source} does not match this run's model: " + "; ".join(diffs))
    load_state_dict_checked(model, pre.state_dict(), source=str(source))


def _differs(key: str, theirs: dict, ours: dict) -> bool:
    """Whether config entry ``key`` differs; backbones compare by architecture, since a pretrained
    tag (``resnet50.tv_in1k`` vs ``resnet50``) names the starting weights, not the shapes."""
    if key == "backbone" and theirs.get(key) and ours.get(key):
        return backbone_architecture(theirs[key]) != backbone_architecture(ours[key])
    return theirs.get(key) != ours.get(key)


def data_for_run(source: str, data: str | None, data_options: dict[str, Any] | None) -> tuple[str, dict[str, Any]]:
    """The dataset to evaluate on: ``--data`` if given, else the run's own (``config.yaml``)."""
    if data is not None:
        return data, dict(data_options or {})
    for directory in (Path(source), Path(source).parent):
        config = directory / RUN_CONFIG
        if config.is_file():
            run = yaml.safe_load(config.read_text()) or {}
            if run.get("data"):
                return str(run["data"]), {**(run.get("data_options") or {}), **(data_options or {})}
    raise ValueError(f"{source} does not say which data it was trained on (no {RUN_CONFIG} beside it); "
                     "pass --data KIND:PATH")
