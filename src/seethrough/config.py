"""Typed run configuration: defaults < preset < YAML file < command-line flags."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, fields
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

#: SCOUTER's official optimizer settings (train.py): AdamW 1e-4, StepLR(70, 0.1); the
#: official code ignores its --weight_decay flag, so the effective decay is AdamW's 0.01, on every
#: parameter (seethrough decays weights only unless weight_decay_on is "all", as the presets set).
SCOUTER_LR, SCOUTER_STEP, SCOUTER_GAMMA, ADAMW_DEFAULT_DECAY = 1e-4, 70, 0.1, 0.01

OPTIMIZERS = ("adamw", "sgd")
SCHEDULERS = ("step", "multistep", "cosine", "none")
PRECISIONS = ("32-true", "16-mixed", "bf16-mixed", "64-true")
#: Image geometries (seethrough.data.transforms.RESIZES; repeated so the config needs no torch):
#: "square" resizes to img_size² with torchvision, "pil-bilinear" with PIL's bilinear filter (the
#: originals' Resize on a PIL image: SCOUTER, ProtoPNet, LVW, CA-Stream), "detr" keeps the aspect
#: ratio (DETR / INTR).
RESIZES = ("square", "pil-bilinear", "detr")
#: What ``OUT/best/`` holds (engine/selection.py): the highest val top-1, the last epoch
#: (SCOUTER's and INTR's train.py/main.py overwrite their checkpoint every epoch), or the
#: lowest val loss (CA-Stream's main_INets.py).
SELECTS = ("best", "last", "best-loss")
#: Augments that keep the "detr" geometry (the others crop or warp a square image).
DETR_RESIZE_AUGMENTS = ("none", "flip", "detr")


@dataclass
class TrainConfig:
    """Everything a training run needs; written into checkpoints and ``config.yaml``."""

    # data
    data: str = "synthetic"
    val_data: str | None = None
    data_options: dict[str, Any] = field(default_factory=dict)
    img_size: int = 224
    augment: str = "none"
    resize: str = "square"
    resize_options: dict[str, Any] = field(default_factory=dict)
    mean: list[float] | None = None
    std: list[float] | None = None
    workers: int = 2
    on_bad_image: str = "error"
    #: LVW's Grad-CAM targets file (``seethrough attention-maps``): the base model's map of every
    #: training sample, keyed by sample id, for the attention-guided semantic alignment.
    attention_maps: str | None = None
    #: Prototype models: the data whose train split the push reads (ProtoPNet pushes onto the
    #: unaugmented train_cropped while training on train_cropped_augmented); default: ``data``.
    push_data: str | None = None
    # model
    model: str = "fc"
    backbone: str = "resnet18"
    pretrained: bool = False
    num_classes: int | None = None
    in_chans: int = 3
    freeze_layers: int = 0
    output_stride: int | None = None
    stem: str | None = None
    use_pre: str | None = None
    init_from: str | None = None
    model_options: dict[str, Any] = field(default_factory=dict)
    # optimization (stage_options: a multi-stage model's recipe, e.g. ProtoPNet's push schedule)
    stage_options: dict[str, Any] = field(default_factory=dict)
    epochs: int = 10
    batch_size: int = 64
    optimizer: str = "adamw"
    lr: float = SCOUTER_LR
    lr_backbone: float | None = None
    weight_decay: float = ADAMW_DEFAULT_DECAY
    #: "weights" (ndim ≥ 2: not biases and norms) or "all" parameters, as the originals' optimizers
    weight_decay_on: str = "weights"
    #: the cosine schedule's floor (torch CosineAnnealingLR eta_min; INTR's --min_lr 1e-6)
    min_lr: float = 0.0
    momentum: float = 0.9
    scheduler: str = "step"
    step_size: int = SCOUTER_STEP
    gamma: float = SCOUTER_GAMMA
    milestones: list[int] = field(default_factory=list)
    warmup_epochs: int = 0
    clip_grad: float | None = None
    drop_last: bool = True
    seed: int = 0
    # hardware
    accelerator: str = "auto"
    devices: int | str = 1
    num_nodes: int = 1
    strategy: str = "auto"
    precision: str = "32-true"
    # run
    out: str = "runs/default"
    resume: bool = False
    select: str = "best"
    checkpoint_every: int = 0
    max_batches: int | None = None
    log_every: int = 10
    progress: bool = True

    def validate(self) -> "TrainConfig":
        """Raise ``ValueError`` naming the flag and the fix for any impossible value."""
        checks = [
            (self.optimizer in OPTIMIZERS, "--optimizer", f"one of {', '.join(OPTIMIZERS)}"),
            (self.scheduler in SCHEDULERS, "--scheduler", f"one of {', '.join(SCHEDULERS)}"),
            (self.precision in PRECISIONS, "--precision", f"one of {', '.join(PRECISIONS)}"),
            (self.on_bad_image in ("error", "skip"), "--on-bad-image", "'error' or 'skip'"),
            (self.resize in RESIZES, "--resize", f"one of {', '.join(RESIZES)}"),
            (self.select in SELECTS, "--select", f"one of {', '.join(SELECTS)}"),
            (self.epochs >= 1, "--epochs", "at least 1"),
            (self.batch_size >= 1, "--batch-size", "at least 1"),
            (self.lr > 0, "--lr", "positive"),
            (self.lr_backbone is None or self.lr_backbone > 0, "--lr-backbone", "positive (or omitted: same as --lr)"),
            (self.weight_decay >= 0, "--weight-decay", "zero or positive"),
            (self.weight_decay_on in ("weights", "all"), "--weight-decay-on", "'weights' or 'all'"),
            (0 <= self.min_lr < self.lr, "--min-lr", "zero or positive and below --lr"),
            (self.img_size >= 8, "--img-size", "at least 8 pixels"),
            (self.in_chans in (1, 3), "--in-chans", "1 (grayscale) or 3 (RGB)"),
            (self.workers >= 0, "--workers", "zero or positive"),
            (self.clip_grad is None or self.clip_grad > 0, "--clip-grad", "positive (or omitted)"),
            (self.num_classes is None or self.num_classes >= 1, "--num-classes", "a positive integer"),
            (self.checkpoint_every >= 0, "--checkpoint-every", "zero (epoch ends only) or a step count"),
            (self.max_batches is None or self.max_batches >= 1, "--max-batches", "a positive integer"),
            (self.warmup_epochs >= 0, "--warmup-epochs", "zero or positive"),
        ]
        for ok, flag, what in checks:
            if not ok:
                name = flag.lstrip("-").replace("-", "_")
                raise ValueError(f"{flag} must be {what}, got {getattr(self, name)!r}")
        if not isinstance(self.pretrained, bool):
            raise ValueError(f"pretrained must be true or false, got {self.pretrained!r}; "
                             "to choose timm's weights give "
                             f"their tag in the backbone name, e.g. --backbone {self.backbone.split('.')[0]}."
                             f"{self.pretrained if isinstance(self.pretrained, str) else 'tv_in1k'} --pretrained")
        if self.scheduler == "multistep" and not self.milestones:
            raise ValueError("--scheduler multistep needs --milestones (e.g. 30,60,90)")
        self._validate_geometry()
        return self

    def _validate_geometry(self) -> None:
        """``augment`` and ``resize`` must agree; ``resize_options`` belong to ``resize: detr``."""
        if self.augment == "detr" and self.resize != "detr":
            raise ValueError(f"--augment detr (DETR's multiscale recipe) keeps the aspect ratio and needs "
                             f"resize: detr, got resize {self.resize!r}; set resize: detr (the intr presets do)")
        if self.resize == "detr" and self.augment not in DETR_RESIZE_AUGMENTS:
            raise ValueError(f"--augment {self.augment} is defined on a square image; with resize: detr use one of "
                             f"{', '.join(DETR_RESIZE_AUGMENTS)}, or resize: square")
        if self.resize_options and self.resize != "detr":
            raise ValueError(f"resize_options {sorted(self.resize_options)} apply only to resize: detr, "
                             f"got resize {self.resize!r}")

    # -- serialization -------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(yaml.safe_dump(self.to_dict(), sort_keys=False))

    @classmethod
    def from_dict(cls, values: dict[str, Any], *, source: str = "config") -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(
                f"{source}: unknown keys {unknown}; valid keys are {', '.join(sorted(known))}"
            )
        return cls(**values)


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping, with an error naming the file when it is missing or malformed."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file {path} not found")
    try:
        values = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ValueError(f"{path} is not valid YAML: {err}") from err
    if not isinstance(values, dict):
        raise ValueError(f"{path} must hold a mapping of config keys, got {type(values).__name__}")
    return values


def list_presets() -> list[str]:
    """Names accepted by ``--preset`` (YAML files shipped in ``seethrough/presets``)."""
    folder = resources.files("seethrough") / "presets"
    return sorted(p.name[: -len(".yaml")] for p in folder.iterdir() if p.name.endswith(".yaml"))


#: Preset key naming another preset whose values this one starts from (one recipe, many datasets).
PRESET_EXTENDS = "extends"


def load_preset(name: str) -> dict[str, Any]:
    """The config values of a shipped preset (see ``seethrough presets``)."""
    if name not in list_presets():
        raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(list_presets())}")
    text = (resources.files("seethrough") / "presets" / f"{name}.yaml").read_text()
    values = yaml.safe_load(text) or {}
    values.pop("description", None)
    parent = values.pop(PRESET_EXTENDS, None)
    if parent is None:
        return values
    if parent == name:
        raise ValueError(f"preset {name} extends itself")
    merged = load_preset(parent)
    for key, value in values.items():   # dict options merge, as everywhere in the config
        both_mappings = isinstance(value, dict) and isinstance(merged.get(key), dict)
        merged[key] = {**merged[key], **value} if both_mappings else value
    return merged


def preset_description(name: str) -> str:
    text = (resources.files("seethrough") / "presets" / f"{name}.yaml").read_text()
    return str((yaml.safe_load(text) or {}).get("description", ""))


def resolve_config(
    *, preset: str | None = None, config_file: str | Path | None = None, overrides: dict[str, Any] | None = None
) -> TrainConfig:
    """Merge defaults < preset < YAML file < overrides (flags; ``None`` means "not given")."""
    values: dict[str, Any] = {}
    layers = [load_preset(preset) if preset else {}, load_yaml(config_file) if config_file else {},
              {k: v for k, v in (overrides or {}).items() if v is not None}]
    for layer in layers:
        for key, value in layer.items():
            # option mappings merge key by key (--data-opt val_dir=... keeps a preset's num_classes)
            if isinstance(value, dict) and isinstance(values.get(key), dict):
                value = {**values[key], **value}
            values[key] = value
    source = str(config_file or (f"preset {preset}" if preset else "flags"))
    return TrainConfig.from_dict(values, source=source).validate()
