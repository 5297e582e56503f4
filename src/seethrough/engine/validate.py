"""Validation: accuracy of a model over a loader, summed per sample and all-reduced across ranks; and
:func:`forward_batch`, the one place a batch meets a model (with its padding mask if any)."""
from __future__ import annotations

import inspect
from typing import Callable

import torch
from lightning.fabric import Fabric
from torch import nn
from torch.utils.data import DataLoader

from ..data.base import PADDING_MASK
from ..models.output import ModelOutput
from .accuracy import EpochSums


def accepts_padding_mask(model: nn.Module) -> bool:
    """Whether ``model``'s forward takes ``padding_mask`` (B×H×W bool, True = padded, DETR's
    convention) and so can ignore the padding of a batch of differently sized images.
    Looks through Fabric's / DDP's wrapper (``.module``)."""
    module = getattr(model, "module", model)
    return PADDING_MASK in inspect.signature(module.forward).parameters


def forward_batch(model: nn.Module, batch: dict) -> ModelOutput:
    """``model(batch["image"])``, with ``padding_mask=`` when the batch was padded (see
    :func:`~seethrough.data.base.collate`); a model that cannot take the mask is refused, since
    it would read the zero padding as image content."""
    padding_mask = batch.get(PADDING_MASK)
    if padding_mask is None:
        return model(batch["image"])
    if not accepts_padding_mask(model):
        name = getattr(getattr(model, "module", model), "config", {}).get("name", type(model).__name__)
        raise ValueError(
            f"model {name!r} cannot ignore padding: this batch holds images of different sizes (resize: detr) "
            "padded at the bottom/right, and its forward takes no padding_mask; use resize: square (with "
            "--img-size) for this model, or a model that takes padding_mask (intr)"
        )
    return model(batch["image"], padding_mask=padding_mask)


@torch.no_grad()
def validate_model(model: torch.nn.Module, loader: DataLoader, fabric: Fabric,
                   on_batch: Callable[[dict, torch.Tensor], None] | None = None) -> dict[str, float]:
    """``{"acc1", "acc5", "loss", "samples", "skipped"}`` over every sample of ``loader``;
    ``on_batch(batch, logits)`` sees every batch's logits (e.g. per-sample predictions)."""
    was_training = model.training
    model.eval()
    sums = EpochSums(fabric.device)
    for batch in loader:
        sums.add_skipped(batch["skipped"])
        if "image" not in batch:
            continue
        out = forward_batch(model, batch)
        if on_batch is not None:
            on_batch(batch, out.logits)
        labels = batch["label"]
        sums.add(out.logits, labels, torch.nn.functional.cross_entropy(out.logits.float(), labels, reduction="sum"))
    model.train(was_training)
    return sums.all_reduce(fabric).summary()
