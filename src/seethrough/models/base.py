"""Common base of seethrough models: a backbone, a head, a config that rebuilds them."""
from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import torch
from torch import nn
from torch.nn import functional as F

from .backbone import Backbone
from .output import ModelOutput


class SeeThroughModel(nn.Module):
    """Backbone + head. Subclasses set ``self.head`` and implement :meth:`head_forward`.

    ``self.config`` holds exactly the keyword arguments of :func:`seethrough.create_model`
    that rebuild this architecture, so ``save_pretrained`` / ``from_pretrained`` round-trip.
    """

    #: Added to the engine's NaN/Inf-loss message: what to try for this architecture.
    non_finite_hint: str = ""
    #: Options that change how the same weights compute, with their valid values (evaluated as
    #: variants by ``seethrough evaluate``, e.g. CA-Stream's ``pooling``: ``ca`` / ``gap``).
    runtime_options: dict[str, tuple] = {}
    #: Multi-stage training recipe (``seethrough.engine.stages.RECIPES``), or ``None``: one stage.
    stage_recipe: str | None = None

    def __init__(self, config: dict, backbone: Backbone) -> None:
        super().__init__()
        self.config: dict[str, Any] = dict(config)
        self.backbone = backbone

    @property
    def num_classes(self) -> int:
        return int(self.config["num_classes"])

    def head_forward(self, features: torch.Tensor) -> ModelOutput:  # pragma: no cover - abstract
        raise NotImplementedError

    def set_runtime_option(self, name: str, value) -> None:
        """Switch a :attr:`runtime_options` entry in place (recorded in ``config``)."""
        if name not in self.runtime_options:
            valid = ", ".join(self.runtime_options) or "none"
            raise ValueError(f"model {self.config.get('name')!r} has no runtime option {name!r} (it has: {valid})")
        if value not in self.runtime_options[name]:
            raise ValueError(f"{name} must be one of {', '.join(map(str, self.runtime_options[name]))}, got {value!r}")
        self.config[name] = value

    def compute_loss(self, output: ModelOutput, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        """Training loss terms; ``"loss"`` is what is optimized, every term is logged.

        Default: cross-entropy on the logits. Heads with extra terms (SCOUTER's area loss,
        prototype costs) override this.
        """
        ce = F.cross_entropy(output.logits.float(), labels)
        return {"loss": ce, "ce": ce}

    def forward(self, images: torch.Tensor) -> ModelOutput:
        if images.ndim != 4:
            raise ValueError(f"expected images of shape B×C×H×W, got {tuple(images.shape)}")
        return self.head_forward(self.backbone(images))

    def save_pretrained(self, directory: str | Path, **card) -> Path:
        """Write ``config.json``, ``model.safetensors`` and a ``README.md`` model card."""
        from .hub import save_pretrained

        return save_pretrained(self, directory, **card)


#: A head class built by :func:`build_model`.
ModelT = TypeVar("ModelT", bound=SeeThroughModel)

#: Options every head passes to its :class:`Backbone`, with their defaults (recorded in ``config``).
BACKBONE_DEFAULTS = {"in_chans": 3, "output_stride": None, "freeze_layers": 0, "stem": None, "frozen_bn": False,
                     "drop_path_rate": 0.0}


def build_model(cls: type[ModelT], name: str, *, num_classes: int, backbone: str, pretrained: bool,
                backbone_options: dict, backbone_head_classes: int = 0, **head_config) -> ModelT:
    """Construct ``cls(config, Backbone(...))`` with a ``config`` that rebuilds it exactly.

    ``backbone_options`` are the keyword arguments a registered constructor did not name
    itself; anything that is not a backbone option is refused, naming the valid ones.
    ``backbone_head_classes`` keeps timm's classifier for a head that reuses it (not recorded:
    the head's own config rebuilds it).
    """
    unknown = sorted(set(backbone_options) - set(BACKBONE_DEFAULTS))
    if unknown:
        raise ValueError(f"model {name!r} got unknown options {unknown}; backbone options are "
                         f"{', '.join(BACKBONE_DEFAULTS)}; the model's own options are listed in its docstring")
    options = {**BACKBONE_DEFAULTS, **backbone_options}
    config = dict(name=name, num_classes=num_classes, backbone=backbone, **options, **head_config)
    return cls(config, Backbone(backbone, pretrained=pretrained, head_classes=backbone_head_classes, **options))
