"""Load a trained model for inference from any of the places training writes one."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from torch import nn

from ..data.transforms import IMAGENET_MEAN, IMAGENET_STD
from .backbone import backbone_architecture
from .hub import CONFIG_NAME, from_pretrained, load_state_dict_checked
from .registry import create_model

#: Input size assumed for a model whose card does not record one (timm's usual default).
DEFAULT_IMG_SIZE = 224
#: Where ``seethrough train`` puts the best model inside a run directory.
RUN_BEST_DIR = "best"


@dataclass
class InferenceModel:
    """A model in eval mode plus what preprocessing and labelling need."""

    model: nn.Module
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

    def transform(self, *, square: bool = False):
        """The evaluation preprocessing the model was trained with. ``square=True`` forces a
        square resize to ``img_size`` (what pixel-aligned batches of explanations need)."""
        from ..data import build_transform

        geometry = {} if square or self.resize == "square" else {"resize": self.resize,
                                                                 "resize_options": self.resize_options}
        return build_transform(self.img_size, train=False, mean=self.mean, std=self.std, **geometry)


def load_for_inference(source: str | Path) -> InferenceModel:
    """``source``: a run directory (uses ``best/``), a ``save_pretrained`` directory, a
    ``last.ckpt`` file, or a Hugging Face Hub id."""
    path = Path(source)
    if path.is_dir() and not (path / CONFIG_NAME).exists() and (path / RUN_BEST_DIR / CONFIG_NAME).exists():
        path = path / RUN_BEST_DIR
    if path.is_file():
        return _from_training_checkpoint(path)
    if path.is_dir() and not (path / CONFIG_NAME).exists():
        raise FileNotFoundError(
            f"{path} holds no model: expected a run directory (with best/), a directory with "
            f"{CONFIG_NAME} and model.safetensors, or a last.ckpt file"
        )
    model = from_pretrained(str(path) if path.exists() else str(source))
    card = _card(path) if path.exists() else {}
    num_classes, in_chans = model.config["num_classes"], model.config.get("in_chans", 3)
    mean = tuple(card.get("mean") or IMAGENET_MEAN[:in_chans])
    std = tuple(card.get("std") or IMAGENET_STD[:in_chans])
    return InferenceModel(
        model.eval(), list(card.get("classes") or [str(i) for i in range(num_classes)]),
        mean, std, int(card.get("img_size") or DEFAULT_IMG_SIZE),
        str(card.get("resize") or "square"), dict(card.get("resize_options") or {}),
    )


def _card(directory: Path) -> dict:
    return json.loads((directory / CONFIG_NAME).read_text()).get("card", {})


def _from_training_checkpoint(path: Path) -> InferenceModel:
    from ..engine.checkpoint import load_checkpoint

    ckpt = load_checkpoint(path)
    if "config" not in ckpt or "model" not in ckpt:
        raise ValueError(f"{path} is not a seethrough training checkpoint (no config/model entries)")
    cfg, info = ckpt["config"], ckpt.get("data", {})
    model = create_model(cfg["model"], num_classes=len(info["classes"]), backbone=cfg["backbone"],
                         pretrained=False, in_chans=cfg["in_chans"], freeze_layers=cfg["freeze_layers"],
                         output_stride=cfg["output_stride"], stem=cfg.get("stem"),
                         **cfg.get("model_options", {}))
    load_state_dict_checked(model, ckpt["model"], source=str(path))
    return InferenceModel(model.eval(), list(info["classes"]), tuple(info["mean"]), tuple(info["std"]),
                          int(info["img_size"]), str(info.get("resize", "square")),
                          dict(info.get("resize_options") or {}))


def init_backbone_from(model: nn.Module, source: str | Path, *, classes: list[str]) -> None:
    """SCOUTER's ``use_pre``: copy the backbone of a model trained on the same data (usually the
    FC baseline) into ``model``'s backbone (and, for a head that reuses the baseline's
    classifier such as CA-Stream, its classifier through ``model.init_classifier_from``). Refuses another backbone, stem, input channels or
    class list, naming what differs."""
    if not Path(source).exists():
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
    if hasattr(model, "init_classifier_from"):   # heads that reuse the baseline's classifier (CA-Stream)
        model.init_classifier_from(pre.model, source=str(source))


def init_model_from(model: nn.Module, source: str | Path) -> None:
    """``init_from``: start training from every weight of another seethrough model of the same
    architecture — e.g. a DETR checkpoint converted for INTR (``seethrough convert detr ...``).

    Refuses a model of another name, backbone or class count, naming what differs; the weights
    must then match key for key and shape for shape.
    """
    if not Path(source).exists():
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
