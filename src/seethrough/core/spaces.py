"""Where a robustness metric perturbs the input: the model's normalized space or [0, 1] pixels.

Models see normalized images ``x = (p − mean) / std`` of pixels ``p`` in [0, 1]. Yeh et al.'s
infidelity and sensitivity code (chihkuanyeh/saliency_evaluation, ``infid_sen_utils.py``,
``set_zero_infid`` and ``sample_eps_Inf``) perturbs MNIST images that ``loader.py`` loads with
``ToTensor()`` only, i.e. in [0, 1] pixel space, so their σ = 0.2 and radius 0.2 are in pixel
units. ``space="pixel"`` reproduces that for normalized models: denormalize with the model's
``mean``/``std``, perturb, normalize again before the model; noise sizes are then in pixel
units (0.2 pixel ≈ 0.87 normalized units for ImageNet's std ≈ 0.23). ``space="normalized"``
perturbs the model's input directly (Captum's examples): 0.2 there is ≈ 0.046 in pixels.
"""
from __future__ import annotations

from typing import Sequence

import torch

try:  # the normalization of timm's ImageNet models, the default
    from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
except ImportError:  # pragma: no cover - timm is a dependency
    IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)

#: Valid values of a robustness metric's ``space``.
INPUT_SPACES: tuple[str, ...] = ("normalized", "pixel")


class InputSpace:
    """Maps normalized images to the perturbation space and back (identity for ``"normalized"``)."""

    def __init__(self, space: str, images: torch.Tensor, mean: Sequence[float] = IMAGENET_DEFAULT_MEAN,
                 std: Sequence[float] = IMAGENET_DEFAULT_STD, *, metric: str = "this metric",
                 names: tuple[str, str] = ("norm_mean", "norm_std")):
        if space not in INPUT_SPACES:
            raise ValueError(f"{metric}: unknown space {space!r}; valid: {', '.join(INPUT_SPACES)}")
        self.space = space
        # the normalized space needs no statistics: identity maps (any channel count)
        self.mean, self.std = torch.zeros(()), torch.ones(())
        if space != "pixel":
            return
        channels = images.shape[1]
        stats: list[torch.Tensor] = []
        for name, value in ((names[0], mean), (names[1], std)):
            t = torch.as_tensor(value, dtype=images.dtype, device=images.device).reshape(-1)
            if t.numel() not in (1, channels):
                raise ValueError(f"{metric}: {name} has {t.numel()} values but the images have {channels} channels; "
                                 f"pass {name}= of the normalization your images went through")
            stats.append(t.expand(channels).view(1, channels, 1, 1))
        self.mean, self.std = stats
        if bool((self.std == 0).any()):
            raise ValueError(f"{metric}: {names[1]} must be non-zero, got {list(std)}")

    def to_space(self, images: torch.Tensor) -> torch.Tensor:
        """Normalized images → the perturbation space."""
        return images * self.std + self.mean if self.space == "pixel" else images

    def to_model(self, values: torch.Tensor) -> torch.Tensor:
        """Perturbation space → the model's normalized input."""
        return (values - self.mean) / self.std if self.space == "pixel" else values
