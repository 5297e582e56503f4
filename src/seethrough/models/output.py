"""The one output every seethrough model returns from a single forward pass."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class ModelOutput:
    """Logits and per-class evidence maps computed in the same forward pass.

    Attributes:
        logits: ``B×C`` class scores (before softmax).
        maps: ``B×C×h×w`` per-class evidence — the model's own explanation.
        extras: model-specific tensors (per-head attention, prototype distances, ...).
    """

    logits: torch.Tensor
    maps: torch.Tensor
    extras: dict[str, torch.Tensor] = field(default_factory=dict)
