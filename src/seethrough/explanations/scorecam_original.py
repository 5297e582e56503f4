"""``scorecam-original``: Score-CAM as the CA-Stream code computes it.

ftorres11/CA_Stream ``engine/attention.py:106-137`` (``scorecam_weights``; the same at commit
9489e8d) and ``cam_processing`` (lines 141-170). For each image and each channel ``k`` of the
target layer's activations ``A`` (``B×K×h×w``):

1. ``U_k`` = ``A_k`` upsampled to the input size by ``nn.UpsamplingBilinear2d`` (bilinear
   with ``align_corners=True``), min-max normalized per channel with ``+ε`` in the
   denominator (``ε = sys.float_info.epsilon``);
2. the mask is applied in *pixel* space: ``x_k = normalize(denormalize(x) · U_k)`` (the
   model's ``mean``/``std``), so a masked-out pixel is black;
3. ``w_k = softmax(f(x_k))_c``, the target class's softmax probability on the masked image;
4. map ``= ReLU(Σ_k w_k A_k)`` at the layer's grid (``seethrough.explain`` then min-max
   normalizes and upsamples it, as ``cam_processing`` does).

It differs from ``scorecam`` (pytorch-grad-cam's ``ScoreCAM``), which masks the *normalized*
image (a masked-out pixel becomes the mean colour), scores the target's *logit* and applies a
softmax across the channels' scores. The original runs batch 1 and 128 masked images per
forward pass; here every image is explained on its own (same values) and ``batch_size`` masked
images go through the model at a time.
"""
from __future__ import annotations

import sys
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..core.calls import eval_mode, logits_of
from ..core.inputs import check_targets
from ..core.spaces import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD, InputSpace
from .posthoc import CASTREAM_LAYER_RULE, _grid_transform, castream_target_layer, resolve_target_layer
from .registry import register_explainer

#: Masked images per forward pass (the original: 128 channels at a time).
ORIGINAL_MASK_BATCH = 128
#: Added to the min-max denominator of every upsampled channel (the original's ``epsilon``).
EPSILON = sys.float_info.epsilon


@register_explainer("scorecam-original")
def scorecam_original_maps(
    model: nn.Module,
    images: torch.Tensor,
    targets: torch.Tensor,
    *,
    target_layer: nn.Module | str | None = None,
    reshape_transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
    mean: Sequence[float] = IMAGENET_DEFAULT_MEAN,
    std: Sequence[float] = IMAGENET_DEFAULT_STD,
    batch_size: int = ORIGINAL_MASK_BATCH,
) -> torch.Tensor:
    """Raw ``B×h×w`` Score-CAM maps as CA-Stream computes them (see the module docstring).

    Args:
        target_layer: as :func:`seethrough.explanations.posthoc.cam_maps` (``"castream"``: the
            original's per-backbone rule).
        reshape_transform: maps the layer's output to ``B×D×h×w`` (default: token grids).
        mean, std: the images' normalization (``seethrough evaluate`` fills in the model's).
        batch_size: masked images per forward pass.
    """
    if images.ndim != 4:
        raise ValueError(f"expected images of shape B×C×H×W, got {tuple(images.shape)}")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"scorecam-original: batch_size must be a positive int, got {batch_size!r}")
    targets = check_targets(targets, images.shape[0], device=images.device)
    if target_layer == CASTREAM_LAYER_RULE:
        target_layer, rule_transform = castream_target_layer(model)
        reshape_transform = reshape_transform if reshape_transform is not None else rule_transform
    _, layer = resolve_target_layer(model, target_layer)
    transform = reshape_transform if reshape_transform is not None else _grid_transform(model)
    pixels = InputSpace("pixel", images, mean, std, metric="scorecam-original", names=("mean", "std"))
    outputs: list[torch.Tensor] = []
    handle = layer.register_forward_hook(lambda module, args, output: outputs.append(output.detach().clone()))
    with eval_mode(model), torch.no_grad():
        try:
            logits_of(model, images)
        finally:
            handle.remove()
        if len(outputs) != 1:
            raise RuntimeError(f"the target layer ran {len(outputs)} times in one forward pass; choose a layer "
                               "that runs exactly once (target_layer=...)")
        activations = transform(outputs[0]).float()                       # B×K×h×w
        maps = []
        for index in range(images.shape[0]):
            maps.append(_one_image(model, images[index:index + 1], activations[index], int(targets[index]),
                                   pixels, batch_size))
    return torch.stack(maps)


def _one_image(model: nn.Module, image: torch.Tensor, activation: torch.Tensor, target: int,
               pixels: InputSpace, batch_size: int) -> torch.Tensor:
    """``ReLU(Σ_k w_k A_k)`` for one image; ``activation`` is ``K×h×w``."""
    upsampled = F.interpolate(activation[None], size=tuple(image.shape[-2:]), mode="bilinear",
                              align_corners=True)[0]                      # K×H×W (UpsamplingBilinear2d)
    low = upsampled.amin(dim=(-1, -2), keepdim=True)
    high = upsampled.amax(dim=(-1, -2), keepdim=True)
    masks = (upsampled - low) / (high - low + EPSILON)
    picture = pixels.to_space(image)                                     # 1×C×H×W in [0, 1]
    weights = []
    for start in range(0, masks.shape[0], batch_size):
        chunk = masks[start:start + batch_size, None]                    # k×1×H×W
        masked = pixels.to_model(picture * chunk)
        probs = torch.softmax(logits_of(model, masked.to(image.dtype)).float(), dim=-1)
        weights.append(probs[:, target])
    weight = torch.cat(weights)                                          # K
    return (weight[:, None, None] * activation).sum(dim=0).clamp(min=0)
