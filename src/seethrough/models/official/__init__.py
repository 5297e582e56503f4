"""Build seethrough models from checkpoints of the original implementations.

``from_official(kind, state_dict_or_path, **options)`` reads a checkpoint written by the
original code of a paper, renames its parameters, builds the matching seethrough model with
:func:`seethrough.create_model` and loads the weights strictly, so the forward pass matches
the original to float tolerance. Each original gets a *converter* registered under a *kind*
(``list_official()`` names them), one module per original:

- :mod:`.scouter` — ``scouter`` (FC baseline and slot classifier),
- :mod:`.intr` — ``detr`` (INTR's initialization from DETR) and ``intr``,
- :mod:`.castream` — ``castream``,
- :mod:`.prototype` — ``protopnet`` and ``lvw``;

:mod:`.geometry` holds the input each original evaluates with; :mod:`._common` what they share.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from torch import nn

# each converter module registers its kinds on import
from . import castream as _castream  # noqa: F401
from . import intr as _intr  # noqa: F401
from . import prototype as _prototype  # noqa: F401
from . import scouter as _scouter  # noqa: F401
from ._common import CONVERTERS, list_official, load_checkpoint_file, register_converter, unwrap_state_dict
from .geometry import original_geometry

__all__ = ["from_official", "list_official", "load_checkpoint_file", "original_geometry", "register_converter",
           "unwrap_state_dict"]


def from_official(kind: str, state_dict_or_path: str | Path | Mapping[str, Any], **options) -> nn.Module:
    """Build a seethrough model from a checkpoint of an original implementation.

    Args:
        kind: which original wrote the checkpoint (see :func:`list_official`), e.g. ``"scouter"``.
        state_dict_or_path: a path to a checkpoint file, a state dict, or a dict holding one
            under ``"model"`` (as the original training scripts save it).
        **options: what the state dict does not record (the backbone's timm name, the loss
            sign, ...); each converter's docstring lists them.

    Returns:
        The seethrough model (in training mode, like any new module: call ``.eval()`` for
        inference). Its ``config`` rebuilds it, so ``model.save_pretrained(dir)`` works.
    """
    if kind not in CONVERTERS:
        raise ValueError(f"unknown official kind {kind!r}; choose one of {', '.join(list_official())}")
    checkpoint = state_dict_or_path
    if isinstance(checkpoint, (str, Path)):
        checkpoint = load_checkpoint_file(checkpoint)
    if not isinstance(checkpoint, Mapping):
        raise TypeError(f"from_official expects a path, a state dict or a dict with a 'model' entry; "
                        f"got {type(checkpoint).__name__}")
    return CONVERTERS[kind](checkpoint, **options)
