"""``seethrough.explain``: one call for every explainer, native or post-hoc.

    maps = seethrough.explain(model, images, "pred", method="gradcam")    # B×H×W in [0, 1]

Every explainer is a function registered under a name (:mod:`.registry`). It receives the
model, the normalized images and one target class per image, and returns *raw* ``B×h×w`` maps
at whatever resolution it works (feature grid for the CAM family and native maps, pixels for
RISE). This module then applies the two choices that papers make differently and rarely write
down, both explicit here and in that order (the order of SCOUTER's ``test.py`` and of
pytorch-grad-cam):

1. ``normalize`` (:data:`NORMALIZE_MODES`): ``"minmax"`` (each map stretched to [0, 1]; a
   constant map becomes zeros), ``"joint"`` (native only: one min and max over the maps of
   *all* classes of the image, as the official SCOUTER visualisation does, so weak classes
   stay dim) or ``"none"``. A map with NaN or Inf follows ``nonfinite``
   (:func:`~seethrough.core.minmax.minmax`).
2. ``upsample`` (:data:`UPSAMPLE_MODES`): ``"bilinear"`` (``align_corners=False``, what SCOUTER
   and cv2.resize do), ``"nearest"``, ``"bicubic"`` or ``"none"`` (keep the explainer's
   resolution).

The same names are used by :func:`~seethrough.explanations.native.explain_batch`, the CLI
(``seethrough explain --normalize``) and the protocols.
"""
from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import nn

from ..core.calls import eval_mode, logits_of

# the built-in explainers register themselves on import
from . import baselines as _baselines  # noqa: F401
from . import native_maps as _native  # noqa: F401
from . import posthoc as _posthoc  # noqa: F401
from . import rise as _rise  # noqa: F401
from . import scorecam_original as _scorecam_original  # noqa: F401
from .maps import NORMALIZE_MODES, UPSAMPLE_MODES
from .maps import normalize as normalize_maps
from .maps import upsample as upsample_maps
from .registry import EXPLAINERS, Explainer, lookup, register_explainer
from .targets import TARGET_POLICIES, is_class_map_file, select_classes

__all__ = ["NORMALIZE_MODES", "TARGET_POLICIES", "UPSAMPLE_MODES", "Explainer", "explain", "get_explainer",
           "list_explainers", "register_explainer", "resolve_targets"]


def list_explainers() -> list[str]:
    """Names accepted by ``explain(..., method=...)``: the built-in ones and every registered one."""
    return sorted(EXPLAINERS)


def get_explainer(name: str) -> Explainer:
    """The explainer function registered as ``name`` (case-insensitive)."""
    return lookup(name)


def resolve_targets(
    model: nn.Module,
    images: torch.Tensor,
    targets: torch.Tensor | Sequence[int] | int | str,
    *,
    labels: torch.Tensor | Sequence[int] | None = None,
) -> torch.Tensor:
    """One class index per image (``B`` long tensor on the images' device), or ``B×K`` when
    ``targets`` is a ``B×K`` tensor of classes.

    ``targets`` is either class indices (one per image, or one int for all) or a policy of
    :data:`~seethrough.explanations.targets.TARGET_POLICIES` — ``"gt"`` (``labels``), ``"pred"``
    (argmax of the logits), ``"least"`` (argmin), ``"next"`` (``(label + 1) mod C``, official
    SCOUTER's negative class) — or a class-map file ``FILE.json``. Policies other than "gt" run
    one forward pass without gradients.
    """
    batch = images.shape[0]
    if isinstance(targets, str):
        if targets == "gt":
            if labels is None:
                raise ValueError('target policy "gt" explains the ground-truth class and needs labels=')
            return resolve_targets(model, images, labels)
        if targets not in TARGET_POLICIES and not is_class_map_file(targets):
            raise ValueError(f"unknown target policy {targets!r}; valid: {', '.join(TARGET_POLICIES)}, a class-map "
                             "file FILE.json, or class indices")
        if labels is None and targets != "pred" and targets != "least":
            raise ValueError(f'target policy "{targets}" is defined from the ground-truth class and needs labels=')
        with torch.no_grad(), eval_mode(model):
            logits = logits_of(model, images).float()
        return select_classes(logits, targets, labels=labels)[:, 0]
    chosen = torch.as_tensor(targets, dtype=torch.long, device=images.device)
    if chosen.ndim == 2:
        if chosen.shape[0] != batch:
            raise ValueError(f"got targets of shape {tuple(chosen.shape)} for a batch of {batch} images; give B×K")
    else:
        chosen = chosen.reshape(-1)
        if chosen.numel() == 1 and batch != 1:
            chosen = chosen.expand(batch).clone()
        if chosen.numel() != batch:
            raise ValueError(f"got {chosen.numel()} targets for a batch of {batch} images; give one class per image")
    if bool((chosen < 0).any()):
        raise ValueError(f"target classes must be >= 0, got {chosen.tolist()}")
    return chosen


def explain(
    model: nn.Module,
    images: torch.Tensor,
    targets: torch.Tensor | Sequence[int] | int | str,
    *,
    method: str = "native",
    labels: torch.Tensor | Sequence[int] | None = None,
    normalize: str = "minmax",
    upsample: str = "bilinear",
    nonfinite: str = "nan",
    output: Any = None,
    **options: Any,
) -> torch.Tensor:
    """Explain the target classes of each image with ``method``; returns ``B×H×W`` float maps
    (``B×K×H×W`` when ``targets`` is a ``B×K`` tensor of classes).

    Args:
        model: a seethrough model (or any classifier returning logits, for post-hoc methods).
        images: ``B×C×H×W`` normalized images.
        targets: class indices or a policy, see :func:`resolve_targets`.
        method: a name from :func:`list_explainers` (``native``, ``gradcam``, ``scorecam``,
            ``rise``, ...).
        labels: ground-truth classes, needed by the ``"gt"``, ``"next"`` and class-map policies.
        normalize: see the module docstring; applied before upsampling.
        upsample: see the module docstring.
        nonfinite: what normalization does with a map holding NaN or Inf: ``"nan"`` (the map
            becomes NaN, metrics count it), ``"raise"`` or ``"ignore"``.
        output: the model's output for ``images`` when the caller already ran it; native maps
            then need no forward pass of their own.
        **options: passed to the explainer (e.g. ``target_layer``, ``num_masks``).

    The model's training flags are restored afterwards. Native maps of ``K`` classes per image
    come from one forward pass; a post-hoc method runs once per column of ``targets``.
    """
    if images.ndim != 4:
        raise ValueError(f"expected images of shape B×C×H×W, got {tuple(images.shape)}")
    if normalize not in NORMALIZE_MODES:
        raise ValueError(f"unknown normalize={normalize!r}; valid: {', '.join(NORMALIZE_MODES)}")
    if upsample not in UPSAMPLE_MODES:
        raise ValueError(f"unknown upsample={upsample!r}; valid: {', '.join(UPSAMPLE_MODES)}")
    key = method.lower()
    if key != "native" and normalize == "joint":
        raise ValueError('normalize="joint" needs every class map of the image, which only method="native" has; '
                         'use normalize="minmax" for post-hoc explainers')
    explainer = lookup(key)
    classes = resolve_targets(model, images, targets, labels=labels)
    columns = classes if classes.ndim == 2 else classes[:, None]
    with eval_mode(model):
        if key == "native":
            raw = explainer(model, images, columns, joint=normalize == "joint", output=output, nonfinite=nonfinite)
        else:
            raw = torch.stack([_checked(explainer(model, images, columns[:, k], **options), method, images)
                               for k in range(columns.shape[1])], dim=1)
    if raw.ndim != 4 or raw.shape[:2] != columns.shape:
        raise RuntimeError(f"explainer {method!r} returned shape {tuple(raw.shape)}, expected B×h×w")
    maps = finish_maps(raw.float(), (images.shape[-2], images.shape[-1]), normalize=normalize, upsample=upsample,
                       nonfinite=nonfinite)
    return maps if classes.ndim == 2 else maps[:, 0]


def finish_maps(maps: torch.Tensor, size: tuple[int, int], *, normalize: str, upsample: str,
                nonfinite: str = "nan") -> torch.Tensor:
    """Step 1 and 2 of the module docstring on raw ``B×K×h×w`` maps (``"joint"`` is already done
    by the native explainer)."""
    if normalize == "minmax":
        maps = normalize_maps(maps, "minmax", nonfinite=nonfinite)
    resized = upsample_maps(maps, size, upsample)
    if upsample == "bicubic" and normalize != "none" and resized is not maps:
        resized = resized.clamp(0, 1)  # bicubic overshoots; keep normalized maps in [0, 1]
    return resized


def _checked(raw: torch.Tensor, method: str, images: torch.Tensor) -> torch.Tensor:
    if raw.ndim != 3 or raw.shape[0] != images.shape[0]:
        raise RuntimeError(f"explainer {method!r} returned shape {tuple(raw.shape)}, expected B×h×w")
    return raw
