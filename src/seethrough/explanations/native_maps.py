"""The ``native`` explainer: the maps a model computes in its own forward pass."""
from __future__ import annotations

import torch
from torch import nn

from ..core.minmax import minmax
from .maps import gather
from .registry import register_explainer


@register_explainer("native")
def native_maps(model: nn.Module, images: torch.Tensor, targets: torch.Tensor, *, joint: bool = False,
                output=None, nonfinite: str = "nan") -> torch.Tensor:
    """The model's own map of each target class (``ModelOutput.maps``), from one forward pass.

    ``targets`` is ``B`` (one class per image → ``B×h×w``) or ``B×K`` (→ ``B×K×h×w``). With
    ``joint=True`` the maps are min-max normalized over all classes of the image first
    (official SCOUTER), so the result is already in [0, 1]. ``output``: the model's output for
    these images when the caller already has it (no second forward pass). ``nonfinite``: what the
    joint min-max does with a NaN map (:func:`~seethrough.core.minmax.minmax`).
    """
    if output is None:
        with torch.no_grad():
            output = model(images)
    if not hasattr(output, "maps"):
        raise TypeError(f"{type(model).__name__} returns no evidence maps; native explanations need a seethrough "
                        "model (forward returns ModelOutput). Use a post-hoc method such as method='gradcam'.")
    maps = output.maps.float()
    bad = (targets < 0) | (targets >= maps.shape[1])
    if bool(bad.any()):
        raise ValueError(f"target class {int(targets[bad][0])} is out of range for a model with "
                         f"{maps.shape[1]} classes")
    if joint:
        maps = minmax(maps, (1, 2, 3), nonfinite=nonfinite)
    picked = gather(maps, targets if targets.ndim == 2 else targets[:, None])
    return picked if targets.ndim == 2 else picked[:, 0]
