"""The receptive field, in input pixels, of a latent position (y, x) of a prototype model.

ProtoPNet (Chen et al., NeurIPS 2019, Sec. 2.2 and its ``receptive_field.py``) computes it
analytically from layer arithmetic: per layer, jump j ← j·s, size r ← r + (k − 1)·j and centre
start ← start + ((k − 1)/2 − pad)·j, listed by hand for each of its VGG / ResNet / DenseNet
backbones. Any timm backbone works here instead, because the field is measured: the gradient of
one latent unit (the sum of its D channels, at the central position of the map) with respect to
the input is nonzero exactly on the pixels that unit depends on. Its bounding box is the
*effective support*; for a plain conv stack it equals the analytic field, but units that a
nonlinearity switches off for every probe input can make it smaller, and a global operation
(attention, global pooling inside the backbone) makes it the whole image. The probe inputs are a
zero image plus a few seeded random images, and the support is their union, so a ReLU that is
off for one input does not hide pixels.

The box of any other position follows by translation with the feature stride
``s = input size / h`` (per axis), clamped to the image::

    rows of (y, x) = [y·s_y + top, y·s_y + bottom) ∩ [0, H)        (and likewise for columns)

The field is measured on a canvas twice the image size, so a field larger than the image is
not cut at the canvas border where it matters: if the support still reaches the border there,
it extends at least an image side beyond the unit and every box clamps to the full image anyway.
Backbones that only accept their training size (e.g. fixed-size ViTs) are measured at that size.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import nn

#: The canvas the field is measured on, in image sides (see the module docstring).
CANVAS_SCALE = 2
#: Random probe images besides the zero image, and their seed.
RANDOM_PROBES, PROBE_SEED = 2, 0


@dataclass(frozen=True)
class ReceptiveField:
    """Receptive field boxes of the latent positions of an ``image_size`` input.

    Attributes:
        image_size: (H, W) of the input the boxes are for.
        latent_size: (h, w) of the latent map at that size.
        stride: (s_y, s_x) input pixels per latent step, ``H / h`` and ``W / w``.
        top, bottom, left, right: support of a position relative to its anchor (y·s_y, x·s_x),
            in pixels, bottom and right exclusive, before clamping.
    """

    image_size: tuple[int, int]
    latent_size: tuple[int, int]
    stride: tuple[float, float]
    top: float
    bottom: float
    left: float
    right: float

    def box(self, y: int, x: int) -> tuple[int, int, int, int]:
        """Pixel box ``(x0, y0, x1, y1)`` (``xyxy``, x1/y1 exclusive, the convention of the
        datasets' ``boxes``) of latent position (y, x), clamped to the image."""
        h, w = self.latent_size
        if not (0 <= y < h and 0 <= x < w):
            raise ValueError(f"latent position ({y}, {x}) is outside the {h}×{w} latent map")
        height, width = self.image_size
        sy, sx = self.stride
        y0 = min(max(math.floor(y * sy + self.top), 0), height)
        y1 = min(max(math.ceil(y * sy + self.bottom), 0), height)
        x0 = min(max(math.floor(x * sx + self.left), 0), width)
        x1 = min(max(math.ceil(x * sx + self.right), 0), width)
        return x0, y0, x1, y1

    def to_dict(self) -> dict:
        return {key: list(value) if isinstance(value, tuple) else value for key, value in asdict(self).items()}


def measure_receptive_field(model: nn.Module, image_size: int | tuple[int, int], *,
                            in_chans: int | None = None) -> ReceptiveField:
    """Measure the receptive field of ``model.latent`` for ``image_size`` inputs (see the module
    docstring). ``model`` needs a ``latent(images) → B×D×h×w`` method; it runs in eval mode (its
    training mode is restored) and no parameter gradient is touched. ``in_chans`` defaults to
    ``model.config["in_chans"]`` or 3."""
    height, width = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    if in_chans is None:
        in_chans = int(getattr(model, "config", {}).get("in_chans", 3))
    latent = getattr(model, "latent", None)
    if latent is None:
        raise TypeError("measure_receptive_field needs a model with a latent(images) method; "
                        f"got {type(model).__name__}")
    reference = next(iter(model.parameters()), None)
    device = reference.device if reference is not None else torch.device("cpu")
    dtype = reference.dtype if reference is not None and reference.is_floating_point() else torch.float32
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            h, w = latent(torch.zeros(1, in_chans, height, width, device=device, dtype=dtype)).shape[-2:]
        try:
            support = _support(latent, (CANVAS_SCALE * height, CANVAS_SCALE * width), in_chans, device, dtype)
        except (RuntimeError, ValueError, AssertionError):  # a backbone that only takes its own input size
            support = _support(latent, (height, width), in_chans, device, dtype)
    finally:
        model.train(was_training)
    (rows, cols, canvas_h, canvas_w, ch, cw) = support
    sy_c, sx_c = canvas_h / ch, canvas_w / cw
    cy, cx = ch // 2, cw // 2
    return ReceptiveField(image_size=(height, width), latent_size=(int(h), int(w)), stride=(height / h, width / w),
                          top=rows[0] - cy * sy_c, bottom=rows[1] - cy * sy_c,
                          left=cols[0] - cx * sx_c, right=cols[1] - cx * sx_c)


def _support(latent, size: tuple[int, int], in_chans: int, device, dtype):
    """Rows and columns ``[first, last + 1)`` where the gradient of the central latent unit is
    nonzero for any probe image, with the canvas size and its latent size."""
    generator = torch.Generator().manual_seed(PROBE_SEED)
    probes = torch.cat([torch.zeros(1, in_chans, *size),
                        torch.randn(RANDOM_PROBES, in_chans, *size, generator=generator)])
    probes = probes.to(device=device, dtype=dtype).requires_grad_(True)
    with torch.enable_grad():
        z = latent(probes)
        ch, cw = z.shape[-2:]
        (grad,) = torch.autograd.grad(z[:, :, ch // 2, cw // 2].sum(), probes)
    nonzero = grad.abs().sum(dim=(0, 1)) > 0
    if not bool(nonzero.any()):
        raise ValueError("the latent unit has zero gradient with respect to every input pixel: the receptive "
                         "field cannot be measured (are the model's weights all zero?)")
    rows = torch.nonzero(nonzero.any(dim=1)).flatten()
    cols = torch.nonzero(nonzero.any(dim=0)).flatten()
    return ((int(rows[0]), int(rows[-1]) + 1), (int(cols[0]), int(cols[-1]) + 1), size[0], size[1], int(ch), int(cw))
