"""Name → constructor registry, in the spirit of ``timm.create_model``."""
from __future__ import annotations

from typing import Any, Callable, Mapping

from torch import nn

_MODELS: dict[str, Callable[..., nn.Module]] = {}


def register_model(name: str) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator registering ``fn(num_classes=..., backbone=..., pretrained=..., **options)``."""

    def wrap(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _MODELS:
            raise ValueError(f"model name {name!r} is registered twice")
        _MODELS[name] = fn
        return fn

    return wrap


def list_models() -> list[str]:
    """Names accepted by :func:`create_model`."""
    return sorted(_MODELS)


def create_model(
    name: str,
    *,
    num_classes: int,
    backbone: str = "resnet18",
    pretrained: bool = False,
    **options,
) -> nn.Module:
    """Build a registered model.

    Args:
        name: a registered model name (see :func:`list_models`), e.g. ``"fc"``.
        num_classes: number of classes C; ``maps`` will be ``B×C×h×w``.
        backbone: any timm model name (``timm.list_models()``), optionally with a pretrained tag
            (``"resnet50.tv_in1k"``: torchvision's weights; without one, timm's default tag).
        pretrained: load timm's pretrained weights (needs network access the first time).
        **options: model-specific options (``freeze_layers``, ``in_chans``, ``output_stride``...).
    """
    if name not in _MODELS:
        raise ValueError(
            f"unknown model {name!r}; choose one of {', '.join(list_models())}"
        )
    if not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")
    return _MODELS[name](num_classes=num_classes, backbone=backbone, pretrained=pretrained, **options)


#: Run-config keys that build the model (besides ``model``, ``backbone`` and ``model_options``).
MODEL_CONFIG_KEYS: tuple[str, ...] = ("in_chans", "freeze_layers", "output_stride", "stem")


def create_model_from_config(config: Mapping[str, Any], *, num_classes: int,
                             pretrained: bool | None = None) -> nn.Module:
    """The model a run config describes: ``TrainConfig.to_dict()`` or the ``config`` stored in a
    training checkpoint. ``pretrained`` overrides the config's (``False`` when weights are loaded
    right after)."""
    options = {key: config[key] for key in MODEL_CONFIG_KEYS if key in config}
    return create_model(config["model"], num_classes=num_classes, backbone=config["backbone"],
                        pretrained=bool(config.get("pretrained", False)) if pretrained is None else pretrained,
                        **options, **dict(config.get("model_options") or {}))
