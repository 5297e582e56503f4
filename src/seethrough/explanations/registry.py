"""The table of explainers: a name → a function ``(model, images, targets, **options) -> B×h×w``.

Registering is all an explainer module does with this table; :mod:`.api` imports the built-in
explainer modules (so they are registered) and looks names up here. A user's explainer
registered with :func:`register_explainer` is found by ``explain``, ``seethrough evaluate``
and every protocol, like a built-in one.
"""
from __future__ import annotations

from typing import Callable

import torch

#: An explainer: ``(model, images, targets, **options) -> B×h×w`` raw maps.
Explainer = Callable[..., torch.Tensor]

#: Registered explainers by name (lower case); see :func:`register_explainer`.
EXPLAINERS: dict[str, Explainer] = {}


def register_explainer(name: str) -> Callable[[Explainer], Explainer]:
    """Decorator registering an explainer under ``name`` (case-insensitive).

    The function receives the model, the normalized ``B×C×H×W`` images, one target class per
    image (``B`` long tensor) and its options, and returns *raw* ``B×h×w`` maps at any
    resolution; :func:`seethrough.explain` normalizes and upsamples them.
    """
    key = name.lower()

    def decorator(fn: Explainer) -> Explainer:
        if key in EXPLAINERS and EXPLAINERS[key] is not fn:
            raise ValueError(f"an explainer named {name!r} is already registered")
        EXPLAINERS[key] = fn
        return fn

    return decorator


def lookup(name: str) -> Explainer:
    """The explainer registered as ``name``, or a ValueError naming the registered ones."""
    key = name.lower()
    if key not in EXPLAINERS:
        raise ValueError(f"unknown explanation method {name!r}; valid: {', '.join(sorted(EXPLAINERS))}")
    return EXPLAINERS[key]
