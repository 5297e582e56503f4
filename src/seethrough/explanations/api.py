"""``seethrough.explain``: one call for every explainer, native or post-hoc.

    maps = seethrough.explain(model, images, "pred", method="gradcam")    # B×H×W in [0, 1]

Every explainer is a function registered under a name. It receives the model, the normalized
images and one target class per image, and returns *raw* ``B×h×w`` maps at whatever
resolution it works (feature grid for the CAM family and native maps, pixels for RISE). This
module then applies the two choices that papers make differently and rarely write down, both
explicit here and in that order (the order of SCOUTER's ``test.py`` and of pytorch-grad-cam):

1. ``normalize``: ``"minmax"`` (each map stretched to [0, 1]; a constant map becomes zeros),
   ``"joint"`` (native only: one min and max over the maps of *all* classes of the image, as
   the official SCOUTER visualisation does, so weak classes stay dim) or ``"none"``.
2. ``upsample``: ``"bilinear"`` (``align_corners=False``, what SCOUTER and cv2.resize do),
   ``"nearest"``, ``"bicubic"`` or ``"none"`` (keep the explainer's resolution).
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .maps import gather
from .targets import select_classes

#: An explainer: ``(model, images, targets, **options) -> B×h×w`` raw maps.
Explainer = Callable[..., torch.Tensor]

#: Registered explainers by name (lower case); see :func:`register_explainer`.
EXPLAINERS: dict[str, Explainer] = {}

#: Valid values of ``normalize`` and ``upsample`` in :func:`explain`.
NORMALIZE_MODES: tuple[str, ...] = ("minmax", "joint", "none")
UPSAMPLE_MODES: tuple[str, ...] = ("bilinear", "nearest", "bicubic", "none")

#: Target policies accepted as a string by :func:`resolve_targets`.
TARGET_POLICIES: tuple[str, ...] = ("gt", "pred", "least", "next")


def register_explainer(name: str) -> Callable[[Explainer], Explainer]:
    """Decorator registering an explainer under ``name`` (case-insensitive)."""
    key = name.lower()

    def decorator(fn: Explainer) -> Explainer:
        if key in EXPLAINERS and EXPLAINERS[key] is not fn:
            raise ValueError(f"an explainer named {name!r} is already registered")
        EXPLAINERS[key] = fn
        return fn

    return decorator


def list_explainers() -> list[str]:
    """Names accepted by ``explain(..., method=...)``."""
    _load_builtin_explainers()
    return sorted(EXPLAINERS)


def logits_of(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """Class scores of ``model`` for ``images``: ``ModelOutput.logits`` or a plain tensor output."""
    output = model(images)
    return output.logits if hasattr(output, "logits") else output


def resolve_targets(
    model: nn.Module,
    images: torch.Tensor,
    targets: torch.Tensor | Sequence[int] | int | str,
    *,
    labels: torch.Tensor | Sequence[int] | None = None,
) -> torch.Tensor:
    """One class index per image (``B`` long tensor on the images' device).

    ``targets`` is either class indices (one per image, or one int for all) or a policy:
    ``"gt"`` (``labels``), ``"pred"`` (argmax of the logits), ``"least"`` (argmin) or ``"next"``
    (``(label + 1) mod C``, official SCOUTER's negative class). Policies
    other than "gt" run one forward pass without gradients.
    """
    batch = images.shape[0]
    if isinstance(targets, str):
        if targets not in TARGET_POLICIES:
            raise ValueError(f"unknown target policy {targets!r}; valid: {', '.join(TARGET_POLICIES)} "
                             "or class indices")
        if targets == "gt":
            if labels is None:
                raise ValueError('target policy "gt" explains the ground-truth class and needs labels=')
            return resolve_targets(model, images, labels)
        if targets == "next":
            if labels is None:
                raise ValueError('target policy "next" explains label + 1 and needs labels=')
            with torch.no_grad(), eval_mode(model):
                logits = logits_of(model, images).float()
            return select_classes(logits, "next", labels=labels)[:, 0]
        with torch.no_grad(), eval_mode(model):
            logits = logits_of(model, images).float()
        return select_classes(logits, targets)[:, 0]
    chosen = torch.as_tensor(targets, dtype=torch.long, device=images.device).reshape(-1)
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
    **options,
) -> torch.Tensor:
    """Explain one target class per image with ``method``; returns ``B×H×W`` float maps.

    Args:
        model: a seethrough model (or any classifier returning logits, for post-hoc methods).
        images: ``B×C×H×W`` normalized images.
        targets: class indices or a policy, see :func:`resolve_targets`.
        method: a name from :func:`list_explainers` (``native``, ``gradcam``, ``scorecam``,
            ``rise``, ...).
        labels: ground-truth classes, needed by the ``"gt"`` policy.
        normalize: see the module docstring; applied before upsampling.
        upsample: see the module docstring.
        **options: passed to the explainer (e.g. ``target_layer``, ``num_masks``).

    The model's training flags are restored afterwards.
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
    explainer = get_explainer(key)
    classes = resolve_targets(model, images, targets, labels=labels)
    with eval_mode(model):
        if key == "native":
            raw = native_maps(model, images, classes, joint=normalize == "joint")
        else:
            raw = explainer(model, images, classes, **options)
    if raw.ndim != 3 or raw.shape[0] != images.shape[0]:
        raise RuntimeError(f"explainer {method!r} returned shape {tuple(raw.shape)}, expected B×h×w")
    maps = raw.float()[:, None]
    if normalize == "minmax":
        maps = _minmax(maps)
    if upsample != "none" and maps.shape[-2:] != images.shape[-2:]:
        maps = F.interpolate(maps, size=tuple(images.shape[-2:]), mode=upsample,
                             **({} if upsample == "nearest" else {"align_corners": False}))
        if upsample == "bicubic" and normalize != "none":
            maps = maps.clamp(0, 1)  # bicubic overshoots; keep normalized maps in [0, 1]
    return maps[:, 0]


@register_explainer("native")
def native_maps(model: nn.Module, images: torch.Tensor, targets: torch.Tensor, *, joint: bool = False) -> torch.Tensor:
    """The model's own map of each target class (``ModelOutput.maps``), from one forward pass.

    With ``joint=True`` the maps are min-max normalized over all classes of the image first
    (official SCOUTER), so the result is already in [0, 1].
    """
    with torch.no_grad():
        output = model(images)
    if not hasattr(output, "maps"):
        raise TypeError(f"{type(model).__name__} returns no evidence maps; native explanations need a seethrough "
                        "model (forward returns ModelOutput). Use a post-hoc method such as method='gradcam'.")
    maps = output.maps.float()
    bad = (targets < 0) | (targets >= maps.shape[1])
    if bool(bad.any()):
        raise ValueError(f"target class {int(targets[bad][0])} is out of range for a model with {maps.shape[1]} classes")
    if joint:
        maps = _minmax(maps, dims=(1, 2, 3))
    return gather(maps, targets[:, None])[:, 0]


def _minmax(maps: torch.Tensor, dims: tuple[int, ...] = (1, 2, 3)) -> torch.Tensor:
    """Min-max to [0, 1] over ``dims`` of a 4-d tensor; a constant map becomes zeros, and a map
    with NaN or Inf becomes NaN (so metrics count it instead of the call failing)."""
    finite = torch.isfinite(maps).all(dim=dims, keepdim=True)
    clean = torch.where(finite, maps, torch.zeros_like(maps))
    low = clean.amin(dim=dims, keepdim=True)
    span = clean.amax(dim=dims, keepdim=True) - low
    out = (clean - low) / torch.where(span > 0, span, torch.ones_like(span))
    return torch.where(finite, out, torch.full_like(out, float("nan")))


class eval_mode:
    """Context manager: model in eval mode, every submodule's training flag restored on exit."""

    def __init__(self, model: nn.Module):
        self.model = model
        self.flags: list[tuple[nn.Module, bool]] = []

    def __enter__(self) -> nn.Module:
        self.flags = [(module, module.training) for module in self.model.modules()]
        self.model.eval()
        return self.model

    def __exit__(self, *exc) -> None:
        for module, training in self.flags:
            module.training = training


def get_explainer(key: str) -> Explainer:
    _load_builtin_explainers()
    if key not in EXPLAINERS:
        raise ValueError(f"unknown explanation method {key!r}; valid: {', '.join(sorted(EXPLAINERS))}")
    return EXPLAINERS[key]


def _load_builtin_explainers() -> None:
    """Import the modules that register the post-hoc explainers (lazily: grad-cam is heavy)."""
    from . import posthoc, rise, scorecam_original  # noqa: F401
