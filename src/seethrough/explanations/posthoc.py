"""Post-hoc CAM explainers through the ``grad-cam`` package (pytorch-grad-cam, J. Gildenblat).

Registered names and their papers (each a class of ``pytorch_grad_cam``):

=================  ==================  ===========================================================
name               class               map of class c from target-layer activations A_k (and grads)
=================  ==================  ===========================================================
``gradcam``        GradCAM             ReLU(Σ_k mean_ij(∂y_c/∂A_k) · A_k)  (Selvaraju et al., ICCV 2017, eq 1-2)
``gradcam++``      GradCAMPlusPlus     weights Σ_ij α_ij ReLU(∂y_c/∂A_k)   (Chattopadhay et al., WACV 2018, eq 19)
``xgradcam``       XGradCAM            weights Σ_ij A_k/ΣA_k · ∂y_c/∂A_k   (Fu et al., BMVC 2020)
``hirescam``       HiResCAM            ReLU(Σ_k ∂y_c/∂A_k ⊙ A_k)           (Draelos & Carin, 2020)
``layercam``       LayerCAM            ReLU(Σ_k ReLU(∂y_c/∂A_k) ⊙ A_k)     (Jiang et al., TIP 2021)
``scorecam``       ScoreCAM            weights softmax_k y_c(x ⊙ norm(up(A_k)))  (Wang et al., CVPRW 2020)
``ablationcam``    AblationCAM         weights (y_c − y_c(A_k ablated)) / y_c  (Desai & Ramaswamy, WACV 2020)
``eigencam``       EigenCAM            ReLU(first principal component of A)  (Muhammad & Yeasin, IJCNN 2020)
``eigengradcam``   EigenGradCAM        ReLU(first principal component of ∂y_c/∂A ⊙ A)
=================  ==================  ===========================================================

``y_c`` is the target class's logit (``ClassifierOutputTarget``), one target per image.
EigenCAM ignores the target class (its map is the same for every class).

How the package is used, and where this module departs from its ``__call__``:

- The package's ``cam(input, targets)`` returns numpy maps that it has min-max normalized
  and resized with cv2 to the input size. :func:`seethrough.explain` must normalize and
  upsample itself (explicit, in that order), so this module stops before that step: it runs
  the forward pass through the CAM object's ``activations_and_grads`` (the package's hooks,
  including its ``reshape_transform``), takes ``∂(Σ_b y_{b,c_b})/∂A`` itself, then calls the
  method's own ``get_cam_image`` (which calls its ``get_cam_weights``) and applies the ReLU
  of the package's ``compute_cam_per_layer``. The result is the *raw* ``B×h×w`` map at the
  target layer's resolution — exactly the package's map before ``scale_cam_image``.
- Gradients are taken with ``torch.autograd.grad`` with respect to the target layer's output
  instead of ``loss.backward()``: the model's ``.grad`` fields are not touched (the package
  calls ``model.zero_grad()`` and accumulates into them), the backward pass stops at the
  target layer, and it works under a caller's ``torch.no_grad()`` and with frozen parameters
  (the input is made to require gradients so the target layer's output always does). The
  layer's output is passed on as a copy, so an in-place operation after it (``ReLU(inplace=
  True)``) cannot alter the activations or their gradient (on the CPU the package's hook
  keeps the very tensor the next layer overwrites).
- The package's hooks are released after every call (``ActivationsAndGradients.release()``,
  in ``finally``; the CAM objects' context manager is not used because its ``__exit__``
  swallows ``IndexError``). AblationCAM swaps the target layer for an ablation layer; it is
  swapped back even if a forward pass fails.
- ScoreCAM and AblationCAM draw tqdm progress bars on stderr for every image; they are
  suppressed unless ``progress=True`` (other stderr output in that window is passed on).

Target layer (option ``target_layer``): by default, for a seethrough model, ``"backbone"``
— the :class:`~seethrough.models.backbone.Backbone` module, whose output is the feature map
``B×D×h×w`` that the head consumes and explains natively (the last stage's output for a
ResNet, i.e. SCOUTER's "layer4"; after EfficientNet's ``conv_head``; ViT tokens already
reshaped to their grid, prefix tokens dropped). CAM maps are then on the same ``h×w`` grid as
the native maps, and Grad-CAM of the FC baseline equals its CAM up to a positive factor. For
any other model the default is its last ``nn.Conv2d``. ``target_layer="castream"`` names
CA-Stream's per-backbone rule (:func:`castream_target_layer`; used by the ``castream``
protocol): for a ConvNeXt the last block's ``mlp.fc2``, else the default. Give a dotted module
name (relative to the model) or a module to choose another; a layer whose output is ``B×N×D`` tokens is
reshaped to its square patch grid (prefix tokens dropped) unless ``reshape_transform`` is given.
"""
from __future__ import annotations

import contextlib
import difflib
import io
import math
import re
import sys
from typing import Any, Callable, Iterator

import numpy as np
import torch
from torch import nn

from ..core.calls import eval_mode, logits_of
from ..core.inputs import check_targets
from ..core.minmax import minmax
from .registry import register_explainer

#: Registered CAM explainers: name → class of ``pytorch_grad_cam`` (imported on first use: the
#: package is slow to import).
CAM_METHODS: dict[str, str] = {
    "gradcam": "GradCAM",
    "gradcam++": "GradCAMPlusPlus",
    "xgradcam": "XGradCAM",
    "hirescam": "HiResCAM",
    "layercam": "LayerCAM",
    "scorecam": "ScoreCAM",
    "ablationcam": "AblationCAM",
    "eigencam": "EigenCAM",
    "eigengradcam": "EigenGradCAM",
}


def cam_class(method: str) -> type:
    """The ``pytorch_grad_cam`` class of a key of :data:`CAM_METHODS`."""
    import pytorch_grad_cam

    return getattr(pytorch_grad_cam, CAM_METHODS[method])

#: Masked or ablated images per forward pass when ``batch_size`` is not given: the package's
#: own defaults (ScoreCAM: 16, ``BATCH_SIZE`` in score_cam.py; AblationCAM: 32).
PACKAGE_BATCH_SIZES: dict[str, int] = {"scorecam": 16, "ablationcam": 32}

#: Module name used as the target layer of a seethrough model (its Backbone).
BACKBONE_LAYER = "backbone"

#: ``target_layer`` value naming CA-Stream's per-backbone layer rule (:func:`castream_target_layer`).
CASTREAM_LAYER_RULE = "castream"

#: How many similar module names an unknown ``target_layer`` error lists.
CLOSE_NAMES = 5

#: A tqdm progress-bar line ("37%|███▋      | 3/8 [...]"), suppressed unless progress=True.
_TQDM_LINE = re.compile(r"\d+%\|.*\|")


def cam_maps(
    model: nn.Module,
    images: torch.Tensor,
    targets: torch.Tensor,
    *,
    method: str = "gradcam",
    target_layer: nn.Module | str | None = None,
    reshape_transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
    batch_size: int | None = None,
    eigen_smooth: bool = False,
    aug_smooth: bool = False,
    progress: bool = False,
) -> torch.Tensor:
    """Raw ``B×h×w`` CAM maps of ``targets`` (one class per image) at the target layer's grid.

    Args:
        model: a seethrough model (forward returns ``ModelOutput``) or any classifier
            returning ``B×C`` logits.
        images: ``B×C×H×W`` normalized images.
        targets: ``B`` class indices.
        method: a key of :data:`CAM_METHODS`.
        target_layer: module or dotted module name relative to ``model``; ``None`` chooses
            one (see :func:`default_target_layer`).
        reshape_transform: maps the target layer's output (and its gradient) to ``B×D×h×w``;
            ``None`` reshapes ``B×N×D`` token outputs to their square grid and leaves 4-D
            outputs unchanged.
        batch_size: masked (ScoreCAM) or ablated (AblationCAM) copies per forward pass;
            ``None`` keeps the package's defaults (:data:`PACKAGE_BATCH_SIZES`).
        eigen_smooth: the package's option: replace ``Σ_k w_k A_k`` by the first principal
            component of ``w_k A_k`` (ignored by EigenCAM, which always uses it).
        aug_smooth: the package's test-time augmentation (horizontal flip × brightness
            0.9/1/1.1): each augmented map is flipped back, min-max normalized per image (as
            the package does, but at the layer's resolution rather than after resizing) and
            the maps are averaged.
        progress: show the package's tqdm bars (ScoreCAM, AblationCAM).

    Returns:
        ``B×h×w`` float32 maps on the images' device, after the method's ReLU, before any
        normalization or upsampling.
    """
    key = method.lower()
    if key not in CAM_METHODS:
        raise ValueError(f"unknown CAM method {method!r}; valid: {', '.join(CAM_METHODS)}")
    if batch_size is not None and (not isinstance(batch_size, int) or batch_size < 1):
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    if images.ndim != 4:
        raise ValueError(f"expected images of shape B×C×H×W, got {tuple(images.shape)}")
    targets = check_targets(targets, images.shape[0], device=images.device)
    if target_layer == CASTREAM_LAYER_RULE:
        target_layer, rule_transform = castream_target_layer(model)
        reshape_transform = reshape_transform if reshape_transform is not None else rule_transform
    _, layer = resolve_target_layer(model, target_layer)
    transform = reshape_transform if reshape_transform is not None else _grid_transform(model)
    pass_options: dict[str, Any] = dict(method=key, layer=layer, transform=transform, batch_size=batch_size,
                                        eigen_smooth=eigen_smooth, progress=progress)
    with eval_mode(model):
        wrapper = _LogitsOnly(model)
        if not aug_smooth:
            return _cam_pass(wrapper, images, targets, **pass_options)
        return _augmented(wrapper, images, targets, pass_options)


def default_target_layer(model: nn.Module) -> str:
    """Name of the module explained by default: ``"backbone"`` for a seethrough model, else
    the last ``nn.Conv2d`` (in registration order).

    Raises:
        ValueError: a model without a Backbone and without any Conv2d.
    """
    from ..models.backbone import Backbone

    if isinstance(getattr(model, BACKBONE_LAYER, None), Backbone):
        return BACKBONE_LAYER
    convs = [name for name, module in model.named_modules() if isinstance(module, nn.Conv2d)]
    if not convs:
        raise ValueError(f"cannot choose a target layer for {type(model).__name__}: it has no seethrough Backbone "
                         "and no nn.Conv2d; pass target_layer= (a module or its dotted name)")
    return convs[-1]


def castream_target_layer(model: nn.Module) -> tuple[str, Callable[[torch.Tensor], torch.Tensor] | None]:
    """CA-Stream's CAM layer for the model's backbone and the transform its output needs.

    The original's ``cam_targetter`` (ftorres11/CA_Stream ``models/interpretable/__init__.py:
    34-45``, the same at commit 9489e8d) explains a ResNet at ``layer4[-1]`` (the backbone's
    output, our default) and a torchvision ConvNeXt at ``features[-1][-1].block[5]``: the last
    block's second MLP linear (fc2), *before* its layer scale and residual, in channels-last
    layout (``engine/attention.py`` ``cam_processing`` permutes it). In timm naming that is
    ``stages[-1].blocks[-1].mlp.fc2``; the returned transform permutes ``B×h×w×D`` to
    ``B×D×h×w``. Other backbones get :func:`default_target_layer` and no transform (the
    original's ViT rule, ``encoder.layers[-2]``, is not reproduced).

    Only the ``castream`` protocol uses this rule (``target_layer: castream``): the fc2 output
    is a choice of the CA-Stream code, not a general ConvNeXt convention, so a ConvNeXt's
    default target layer stays the backbone output.
    """
    body = getattr(getattr(model, BACKBONE_LAYER, None), "body", None)
    stages = getattr(body, "stages", None)
    if body is not None and "convnext" in type(body).__name__.lower() and stages is not None:
        last_stage = len(stages) - 1
        last_block = len(stages[last_stage].blocks) - 1
        name = f"{BACKBONE_LAYER}.body.stages.{last_stage}.blocks.{last_block}.mlp.fc2"
        module = dict(model.named_modules()).get(name)
        if module is not None:   # timm's conv_mlp variant has a Conv2d fc2, already channels-first
            return name, _channels_last_to_first if isinstance(module, nn.Linear) else None
    return default_target_layer(model), None


def _channels_last_to_first(tensor: torch.Tensor) -> torch.Tensor:
    """``B×h×w×D`` → ``B×D×h×w`` (a ConvNeXt MLP's channels-last output)."""
    return tensor.permute(0, 3, 1, 2) if tensor.ndim == 4 else tensor


def resolve_target_layer(model: nn.Module, target_layer: nn.Module | str | None) -> tuple[str, nn.Module]:
    """``(name, module)`` of the target layer: the default, a dotted name or a submodule.

    Raises:
        ValueError: an unknown name (the closest module names are listed) or a module that is
            not part of ``model``.
    """
    if target_layer is None:
        target_layer = default_target_layer(model)
    names = dict(model.named_modules())
    if isinstance(target_layer, str):
        if target_layer not in names or target_layer == "":
            close = difflib.get_close_matches(target_layer, [n for n in names if n], n=CLOSE_NAMES, cutoff=0.4)
            hint = f"; closest module names: {', '.join(close)}" if close else ""
            raise ValueError(f"model {type(model).__name__} has no module named {target_layer!r}{hint} "
                             "(names as in model.named_modules())")
        return target_layer, names[target_layer]
    if isinstance(target_layer, nn.Module):
        for name, module in names.items():
            if module is target_layer and name:
                return name, module
        raise ValueError(f"target_layer {type(target_layer).__name__} is not a submodule of the model; pass one of "
                         "its modules or a dotted name from model.named_modules()")
    raise ValueError("target_layer must be an nn.Module, a dotted module name or None, "
                     f"got {type(target_layer).__name__}")


class _LogitsOnly(nn.Module):
    """The model with its forward reduced to the logits, as pytorch_grad_cam expects."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return logits_of(self.model, images)


def _cam_pass(wrapper: _LogitsOnly, images: torch.Tensor, targets: torch.Tensor, *, method: str, layer: nn.Module,
              transform: Callable, batch_size: int | None, eigen_smooth: bool, progress: bool) -> torch.Tensor:
    """One forward (+ backward) pass and the method's raw map; hooks released afterwards."""
    cam = cam_class(method)(wrapper, [layer], reshape_transform=transform)
    if method in PACKAGE_BATCH_SIZES:
        cam.batch_size = batch_size or PACKAGE_BATCH_SIZES[method]
    outputs: list[torch.Tensor] = []
    handle = layer.register_forward_hook(lambda module, args, output: _keep(outputs, output))
    try:
        activations, grads = _activations_and_grads(cam, images, targets, outputs)
        tokens = outputs[0].ndim == 3
    finally:
        handle.remove()
        cam.activations_and_grads.release()
        outputs.clear()
    if method == "ablationcam":  # a fresh layer: the package's default argument is one shared instance
        from pytorch_grad_cam import AblationLayer, AblationLayerVit

        cam.ablation_layer = AblationLayerVit() if tokens else AblationLayer()
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    class_targets = [ClassifierOutputTarget(int(c)) for c in targets.tolist()]
    with _layer_restored(wrapper, layer, cam), _quiet_progress_bars(enabled=not progress):
        raw = cam.get_cam_image(images.detach(), layer, class_targets, activations, grads, eigen_smooth)
    return torch.from_numpy(np.maximum(np.asarray(raw, dtype=np.float32), 0)).to(images.device)


def _keep(outputs: list, output):
    """Record the target layer's output ``A`` and pass a copy on, so that an in-place operation
    after the layer (e.g. ``ReLU(inplace=True)``) cannot change ``A`` (which the package's hook
    holds without copying on the CPU) nor the gradient taken with respect to it."""
    outputs.append(output)
    return output.clone() if isinstance(output, torch.Tensor) else output


def _activations_and_grads(cam, images: torch.Tensor, targets: torch.Tensor,
                           outputs: list[torch.Tensor]) -> tuple[np.ndarray, np.ndarray | None]:
    """Forward through the package's hooks; for gradient methods ``∂(Σ_b y_{b,c_b})/∂A``.

    Returns the (reshaped) activations and gradients as float32 numpy arrays, what the
    package's ``get_cam_image`` takes.
    """
    if cam.uses_gradients and torch.is_inference_mode_enabled():
        raise RuntimeError("gradient CAM methods cannot run under torch.inference_mode(); "
                           "call them under torch.no_grad() or with gradients enabled")
    with torch.set_grad_enabled(cam.uses_gradients):
        inputs = images.detach()
        if cam.uses_gradients:  # the target layer's output then requires grad even with frozen parameters
            inputs = inputs.clone().requires_grad_(True)
        logits = cam.activations_and_grads(inputs)
        check_targets(targets, targets.numel(), num_classes=logits.shape[1])
        if len(outputs) != 1:
            raise RuntimeError(f"the target layer ran {len(outputs)} times in one forward pass; choose a layer "
                               "that runs exactly once (target_layer=...)")
        if cam.uses_gradients:
            if not outputs[0].requires_grad:
                raise RuntimeError("the target layer's output does not depend on the input through autograd; "
                                   "choose another target_layer")
            score = logits.float().gather(1, targets[:, None].to(logits.device)).sum()
            torch.autograd.grad(score, outputs[0])  # fills the package's gradient hook
    collected = cam.activations_and_grads
    activations = collected.activations[0].float().numpy()
    grads = collected.gradients[0].float().numpy() if cam.uses_gradients else None
    return activations, grads


def _augmented(wrapper: _LogitsOnly, images: torch.Tensor, targets: torch.Tensor, pass_options: dict) -> torch.Tensor:
    """The package's ``aug_smooth``: mean of per-image min-max normalized de-augmented maps."""
    probe = cam_class(pass_options["method"])(wrapper, [pass_options["layer"]])
    probe.activations_and_grads.release()
    maps = []
    for transform in probe.tta_transforms:
        raw = _cam_pass(wrapper, transform.augment_image(images), targets, **pass_options)
        raw = transform.deaugment_mask(raw[:, None])
        maps.append(minmax(raw, (2, 3), nonfinite="raise")[:, 0])
    return torch.stack(maps).mean(dim=0)


def _grid_transform(model: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """Reshape ``B×N×D`` tokens to ``B×D×h×w`` (square grid, prefix tokens dropped); 4-D unchanged."""
    known_prefix = getattr(getattr(model, BACKBONE_LAYER, None), "num_prefix_tokens", None)

    def to_grid(tensor: torch.Tensor) -> torch.Tensor:
        if tensor.ndim != 3:
            return tensor
        count = tensor.shape[1]
        side = math.isqrt(count - (known_prefix or 0))
        prefix = count - side * side if known_prefix is None else known_prefix
        if side * side != count - prefix:
            raise ValueError(f"cannot reshape {count} tokens to a square grid; pass reshape_transform=")
        return tensor[:, prefix:].transpose(1, 2).reshape(tensor.shape[0], -1, side, side)

    return to_grid


@contextlib.contextmanager
def _layer_restored(wrapper: nn.Module, layer: nn.Module, cam) -> Iterator[None]:
    """Undo what a failed AblationCAM pass can leave behind: its ablation layer in place of
    ``layer`` and its own activation hook on ``layer`` (both are undone by the package only
    when every forward pass succeeds)."""
    try:
        yield
    finally:
        ablation = getattr(cam, "ablation_layer", None)
        if ablation is not None and any(module is ablation for module in wrapper.modules()):
            from pytorch_grad_cam.utils.find_layers import replace_layer_recursive

            replace_layer_recursive(wrapper, ablation, layer)
        for key, hook in list(layer._forward_hooks.items()):
            if getattr(hook, "__self__", None) is cam:
                del layer._forward_hooks[key]


@contextlib.contextmanager
def _quiet_progress_bars(enabled: bool) -> Iterator[None]:
    """Drop tqdm progress-bar lines written to stderr; pass any other stderr text on."""
    if not enabled:
        yield
        return
    buffer = io.StringIO()
    try:
        with contextlib.redirect_stderr(buffer):
            yield
    finally:
        lines = buffer.getvalue().replace("\r", "\n").splitlines()
        kept = [line for line in lines if line.strip() and not _TQDM_LINE.search(line)]
        if kept:
            sys.stderr.write("\n".join(kept) + "\n")


def _register(name: str) -> None:
    def explainer(model: nn.Module, images: torch.Tensor, targets: torch.Tensor, **options) -> torch.Tensor:
        return cam_maps(model, images, targets, method=name, **options)

    explainer.__name__ = explainer.__qualname__ = f"{re.sub(r'[^a-z]', '_', name)}_maps"
    explainer.__doc__ = (f"``{name}``: raw ``B×h×w`` maps of pytorch_grad_cam.{CAM_METHODS[name]}; "
                         "options as :func:`cam_maps` (target_layer, reshape_transform, batch_size, "
                         "eigen_smooth, aug_smooth, progress).")
    register_explainer(name)(explainer)


for _name in CAM_METHODS:
    _register(_name)
