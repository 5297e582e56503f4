"""Calling a classifier: its logits, and eval mode that gives every module its flag back."""
from __future__ import annotations

from typing import Any

import torch
from torch import nn


def logits_of(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """Class scores of ``model`` for ``images``: ``ModelOutput.logits`` or a plain tensor output."""
    output = model(images)
    return output.logits if hasattr(output, "logits") else output


class eval_mode:
    """Context manager: model in eval mode, every submodule's training flag restored on exit
    (so a stage kept in eval mode on purpose, e.g. a frozen backbone, stays so)."""

    def __init__(self, model: nn.Module):
        self.model = model
        self.flags: list[tuple[nn.Module, bool]] = []

    def __enter__(self) -> nn.Module:
        self.flags = [(module, module.training) for module in self.model.modules()]
        self.model.eval()
        return self.model

    def __exit__(self, *exc: Any) -> None:
        for module, training in self.flags:
            module.training = training
