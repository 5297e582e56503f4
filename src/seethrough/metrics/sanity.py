"""Sanity check: model-parameter randomization (Adebayo et al., "Sanity Checks for Saliency
Maps", NeurIPS 2018, §3.1).

An explanation that depends on what the model learned must change when the learned weights
are replaced by random ones. :func:`randomization_check` re-initializes layers of a *deep
copy* of the model (the caller's model is never modified), explains the same images and
targets with the randomized copy, and compares each map with the original one. Low
similarity passes the check; a similarity near 1 means the map ignores the weights.

- ``mode="cascading"``: layers are randomized one after the other from the top (the logits)
  downward, cumulatively; the last step is the fully randomized model.
- ``mode="independent"``: one layer at a time, every other layer keeping its trained
  weights, in the same top-down order; the last step randomizes the bottom layer alone.

Layers (:func:`randomization_layers`): by default every module that holds parameters
itself (``module.parameters(recurse=False)``; e.g. each Conv2d, BatchNorm, Linear, GRU, and
modules with their own ``nn.Parameter`` such as SCOUTER's slot initialization), in reverse
registration order (``named_modules``, which follows the forward order in timm, torchvision
and seethrough models) — the granularity of Quantus' ``MPRT``; Adebayo et al. randomize
Inception's named blocks. ``layers=`` takes any module names, in the order to randomize:
a module holding parameters randomizes those (what a default step does), a module without
own parameters (a block such as ``"backbone.body.blocks.3"``) every parameterized module
inside it. The model's root module holding parameters is listed as ``""``.

Re-initialization (``init``): ``"reset"`` calls the module's ``reset_parameters()`` (PyTorch's
own initialization, as Quantus; for BatchNorm this also resets the running statistics);
modules without one, and every module under ``init="normal"``, get each own parameter drawn
from ``N(0, s²)`` with ``s`` the trained tensor's standard deviation (1 when it has no spread).
Every module is seeded by ``(seed, its name)``, so the same layer gets the same random
weights in both modes and in every batch (the value of a sample does not depend on the batch).

Similarity (:mod:`seethrough.metrics.similarity`) between the original map (``maps``) and
the randomized one, per sample: ``"spearman"`` rank correlation (``absolute=True``, the
default, ranks absolute values, Adebayo et al.'s "ABS" variant; min-max normalized maps are
non-negative so both variants agree on them) or ``"ssim"`` (Wang et al. 2004, 11×11 Gaussian
window σ 1.5, on maps min-max normalized to [0, 1]; maps must be ≥ 11×11). The value is the
similarity after the last step; ``return_details=True`` adds ``"similarities"``: ``B×L``, one
column per step in the order of :func:`randomization_layers` (each step costs one explanation
of the batch; without details only the last step is explained).

The randomized maps come from ``explainer`` (as in :func:`seethrough.metrics.max_sensitivity`:
``"native"``, a method name of :func:`seethrough.explain`, or a callable), which must match
how ``maps`` were made (same method and ``explain_options``). Degenerate maps: NaN/Inf in the
original or randomized map → NaN; constant maps, see :mod:`seethrough.metrics.similarity`.
"""
from __future__ import annotations

import copy
import math
import zlib
from typing import Any, Callable, Sequence

import torch
from torch import nn

from ..core.inputs import check_images, check_maps, check_sample_ids, check_targets
from ..core.minmax import minmax
from ..core.noise import RANDOMIZATION_STREAM, sample_generator
from .robustness import explain_checked, make_explainer, require_model
from .similarity import spearman, ssim

#: Randomization schedules (see module docstring).
MODES: tuple[str, ...] = ("cascading", "independent")
#: Map similarities.
SIMILARITIES: tuple[str, ...] = ("spearman", "ssim")
#: Re-initialization rules.
INITS: tuple[str, ...] = ("reset", "normal")
#: Noise stream of :func:`seethrough.core.noise.sample_generator` that seeds the layers.
#: Standard deviation of the fallback normal draw for a parameter without spread.
FALLBACK_STD = 1.0


def _own_parameters(module: nn.Module) -> list[nn.Parameter]:
    return list(module.parameters(recurse=False))


def randomization_layers(model: nn.Module) -> list[str]:
    """Default layer names of :func:`randomization_check`, in randomization order: every module
    holding parameters itself, from the top (last registered, the logits) down."""
    names = [name for name, module in model.named_modules() if _own_parameters(module)]
    return names[::-1]


def _layer_seed(seed: int, name: str) -> int:
    return sample_generator(seed, zlib.crc32(name.encode()), RANDOMIZATION_STREAM).initial_seed()


def _reinitialize(module: nn.Module, name: str, *, seed: int, init: str) -> None:
    """Re-initialize ``module``'s own parameters in place, seeded by ``(seed, name)``."""
    devices = sorted({p.device.index or 0 for p in _own_parameters(module) if p.device.type == "cuda"})
    with torch.random.fork_rng(devices=devices), torch.no_grad():
        torch.manual_seed(_layer_seed(seed, name))
        reset = getattr(module, "reset_parameters", None)
        if init == "reset" and callable(reset):
            reset()
            return
        for parameter in _own_parameters(module):
            spread = float(parameter.float().std(unbiased=False)) if parameter.numel() > 1 else 0.0
            parameter.normal_(0.0, spread if spread > 0 and math.isfinite(spread) else FALLBACK_STD)


def randomize_layer(model: nn.Module, name: str, *, seed: int = 0, init: str = "reset") -> None:
    """Randomize layer ``name`` of ``model`` **in place** (see the module docstring for what a
    name covers). :func:`randomization_check` calls it on a deep copy."""
    if init not in INITS:
        raise ValueError(f"unknown init {init!r}; valid: {', '.join(INITS)}")
    modules = dict(model.named_modules())
    if name not in modules:
        raise ValueError(f"model has no module named {name!r}; "
                         "see seethrough.metrics.sanity.randomization_layers(model)")
    module = modules[name]
    if _own_parameters(module):
        _reinitialize(module, name, seed=seed, init=init)
        return
    inner = [(f"{name}.{sub}" if name and sub else name or sub, m) for sub, m in module.named_modules()
             if _own_parameters(m)]
    if not inner:
        raise ValueError(f"module {name!r} has no parameters to randomize")
    for full_name, m in inner:
        _reinitialize(m, full_name, seed=seed, init=init)


def _similarity(original: torch.Tensor, randomized: torch.Tensor, similarity: str, absolute: bool) -> torch.Tensor:
    if similarity == "spearman":
        return spearman(original, randomized, absolute=absolute)
    return ssim(minmax(original, (1, 2)), minmax(randomized, (1, 2)))


def randomization_check(
    model: nn.Module,
    images: torch.Tensor,
    maps: torch.Tensor,
    targets: torch.Tensor,
    *,
    mode: str = "cascading",
    similarity: str = "spearman",
    absolute: bool = True,
    layers: Sequence[str] | None = None,
    init: str = "reset",
    explainer: str | Callable[..., torch.Tensor] = "native",
    explain_options: dict[str, Any] | None = None,
    seed: int = 0,
    sample_ids: torch.Tensor | Sequence[int] | None = None,
    return_details: bool = False,
):
    """Similarity of every map to the map of the randomized model (Adebayo et al. 2018), ``B``
    floats; lower passes the sanity check. See the module docstring.

    Args:
        mode: ``"cascading"`` (top-down, cumulative; value = fully randomized) or ``"independent"``.
        similarity: ``"spearman"`` or ``"ssim"``.
        absolute: Spearman on absolute values.
        layers: module names in randomization order (default :func:`randomization_layers`).
        init: ``"reset"`` (``reset_parameters``, normal fallback) or ``"normal"``.
        explainer, explain_options: how the randomized model is explained; must match ``maps``.
        seed: seeds the re-initialization of every layer.
        sample_ids: passed to an explainer with a ``sample_ids`` parameter (RISE), so the
            randomized model is explained with the same masks as the original maps.
        return_details: also return ``{"similarities": B×L}`` (one column per step).
    """
    require_model(model, "randomization_check")
    images = check_images(images)
    batch = images.shape[0]
    maps, finite = check_maps(maps, images)
    targets = check_targets(targets, batch, images.device)
    ids = check_sample_ids(sample_ids, batch)
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; valid: {', '.join(MODES)}")
    if similarity not in SIMILARITIES:
        raise ValueError(f"unknown similarity {similarity!r}; valid: {', '.join(SIMILARITIES)}")
    if init not in INITS:
        raise ValueError(f"unknown init {init!r}; valid: {', '.join(INITS)}")
    names = list(randomization_layers(model) if layers is None else layers)
    if not names:
        raise ValueError("no layers to randomize: the model has no parameters (or layers=[] was given)")
    known = dict(model.named_modules())
    unknown = [name for name in names if name not in known]
    if unknown:
        raise ValueError(f"model has no module named {', '.join(map(repr, unknown))}; "
                         "see seethrough.metrics.sanity.randomization_layers(model)")
    if similarity == "ssim":
        ssim(maps[:1], maps[:1])  # fails early, with the window size, on maps that are too small
    explain_fn = make_explainer(explainer, explain_options)
    maps = maps.to(images.device)

    randomized = copy.deepcopy(model)
    copies = dict(randomized.named_modules())
    steps = range(len(names)) if return_details else [len(names) - 1]
    columns: list[torch.Tensor] = []
    done = 0
    for step in steps:
        if mode == "cascading":
            for name in names[done:step + 1]:
                randomize_layer(randomized, name, seed=seed, init=init)
            done = step + 1
        else:
            randomize_layer(randomized, names[step], seed=seed, init=init)
        new_maps, new_finite = check_maps(explain_checked(explain_fn, randomized, images, targets, ids), images)
        values = _similarity(maps, new_maps, similarity, absolute)
        columns.append(torch.where(finite & new_finite, values, torch.full_like(values, math.nan)))
        if mode == "independent":  # restore the trained weights of this layer (and its children)
            copies[names[step]].load_state_dict(known[names[step]].state_dict())
    del randomized
    values = columns[-1]
    if return_details:
        return values, {"similarities": torch.stack(columns, dim=1)}
    return values
