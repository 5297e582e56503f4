"""SCOUTER's ``--aug`` (wbw520/scouter tools/image_aug.py, an imgaug pipeline), as a torchvision v2
transform that moves boxes and masks with the image.

Per image, the original draws (``ImageAugment.__init__`` / ``aug_function``)::

    each with probability 1/2:  Fliplr(1) · Flipud(1) ·
                                Affine(scale x ~ U(0.8, 1), scale y ~ U(0.8, 1),
                                       translate x ~ U(0, 0.1)·W, y ~ U(−0.1, 0.1)·H,
                                       rotate ~ randint(−10, 10) degrees) ·
                                GaussianBlur(σ ~ U(0, 3))
    applied in a random order (iaa.Sequential(random_order=True)).

The affine is imgaug's: scale, then rotation (positive = clockwise on screen, y pointing down),
then translation, about the pixel centre ((W−1)/2, (H−1)/2); bilinear (``order=1``), zeros
outside (``mode="constant"``, ``cval=0``). The blur is a Gaussian of that σ truncated at
:data:`BLUR_TRUNCATE` σ (imgaug's own kernel size rule is not reproduced; σ < 0.05 is no blur).
Every draw comes from torch's global RNG, which :class:`seethrough.engine.sampling.SeededDataset`
seeds per ``(seed, epoch, index)``, so runs resume exactly.
"""
from __future__ import annotations

import math
from typing import Any

import torch
from torch.nn import functional as F
from torchvision import tv_tensors
from torchvision.transforms import v2

#: Probability of each of the four operations (``self.rd(2) == self.key``).
OP_PROBABILITY = 0.5
#: Affine ranges of ImageAugment.__init__.
SCALE_RANGE = (0.8, 1.0)
TRANSLATE_X_RANGE, TRANSLATE_Y_RANGE = (0.0, 0.1), (-0.1, 0.1)
ROTATE_RANGE = (-10, 10)   # np.random.randint: −10 … 9 degrees
#: GaussianBlur σ ~ U(0, 3); below this σ imgaug leaves the image as is.
BLUR_SIGMA_RANGE, BLUR_MIN_SIGMA = (0.0, 3.0), 0.05
#: Kernel half-width in σ of the blur.
BLUR_TRUNCATE = 3.0
OPS = ("fliplr", "flipud", "affine", "blur")
#: Offset between a box edge coordinate and the pixel-index coordinate of the affine matrix.
PIXEL_CENTRE = 0.5


def _uniform(low: float, high: float) -> float:
    return low + (high - low) * torch.rand(()).item()


class ScouterAugment(v2.Transform):
    """The original ``--aug`` (see the module docstring). ``photometric`` tells
    :class:`~seethrough.data.transforms.JointTransform` that the blur would alter an attention map."""

    photometric = True

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        chosen = [op for op in OPS if torch.rand(()).item() < OP_PROBABILITY]
        order = [chosen[i] for i in torch.randperm(len(chosen)).tolist()]
        return {
            "order": order,
            "scale": (_uniform(*SCALE_RANGE), _uniform(*SCALE_RANGE)),
            "translate": (_uniform(*TRANSLATE_X_RANGE), _uniform(*TRANSLATE_Y_RANGE)),
            "rotate": int(torch.randint(*ROTATE_RANGE, ()).item()),
            "sigma": _uniform(*BLUR_SIGMA_RANGE),
        }

    _get_params = make_params   # torchvision < 0.21

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        for op in params["order"]:
            if op == "fliplr":
                inpt = v2.functional.horizontal_flip(inpt)
            elif op == "flipud":
                inpt = v2.functional.vertical_flip(inpt)
            elif op == "affine":
                inpt = _affine(inpt, params)
            elif op == "blur" and isinstance(inpt, tv_tensors.Image) and params["sigma"] >= BLUR_MIN_SIGMA:
                radius = max(1, math.ceil(BLUR_TRUNCATE * params["sigma"]))
                inpt = v2.functional.gaussian_blur(inpt, [2 * radius + 1] * 2, [params["sigma"]] * 2)
        return inpt

    _transform = transform


def affine_matrix(params: dict[str, Any], height: int, width: int) -> torch.Tensor:
    """3×3 map from input to output pixel coordinates (x right, y down): imgaug's
    shift-to-centre · translate · rotate · scale · shift-from-centre."""
    sx, sy = params["scale"]
    tx, ty = params["translate"][0] * width, params["translate"][1] * height
    angle = math.radians(params["rotate"])
    cx, cy = (width - 1) / 2, (height - 1) / 2
    cos, sin = math.cos(angle), math.sin(angle)
    centre = torch.tensor([[1, 0, cx], [0, 1, cy], [0, 0, 1]], dtype=torch.float64)
    uncentre = torch.tensor([[1, 0, -cx], [0, 1, -cy], [0, 0, 1]], dtype=torch.float64)
    linear = torch.tensor([[cos * sx, -sin * sy, tx], [sin * sx, cos * sy, ty], [0, 0, 1]], dtype=torch.float64)
    return centre @ linear @ uncentre


def _affine(inpt: Any, params: dict[str, Any]) -> Any:
    if isinstance(inpt, tv_tensors.BoundingBoxes):
        return _affine_boxes(inpt, params)
    if not isinstance(inpt, (tv_tensors.Image, tv_tensors.Mask)):
        return inpt
    height, width = inpt.shape[-2:]
    inverse = torch.linalg.inv(affine_matrix(params, height, width))
    ys, xs = torch.meshgrid(torch.arange(height, dtype=torch.float64), torch.arange(width, dtype=torch.float64),
                            indexing="ij")
    points = torch.stack([xs, ys, torch.ones_like(xs)]).reshape(3, -1)
    source = (inverse @ points)[:2].reshape(2, height, width)
    grid = torch.stack([(2 * source[0] + 1) / width - 1, (2 * source[1] + 1) / height - 1], dim=-1)
    data = inpt.as_subclass(torch.Tensor)
    mode = "nearest" if isinstance(inpt, tv_tensors.Mask) else "bilinear"
    batch = data.reshape(1, -1, height, width).to(torch.float64)   # masks are H×W, images C×H×W
    warped = F.grid_sample(batch, grid[None], mode=mode, padding_mode="zeros",
                           align_corners=False).reshape(data.shape)
    if data.dtype == torch.uint8:
        warped = warped.round().clamp(0, 255)
    return tv_tensors.wrap(warped.to(data.dtype), like=inpt)


def _affine_boxes(boxes: tv_tensors.BoundingBoxes, params: dict[str, Any]) -> tv_tensors.BoundingBoxes:
    """Each box's four corners through the affine, then their enclosing box (imgaug's rule)."""
    height, width = boxes.canvas_size
    if boxes.numel() == 0:
        return boxes
    matrix = affine_matrix(params, height, width)
    # box edges → pixel-index coordinates (pixel i spans [i, i + 1], its centre is i in the matrix)
    x1, y1, x2, y2 = (boxes.as_subclass(torch.Tensor).to(torch.float64) - PIXEL_CENTRE).unbind(-1)
    corners = torch.stack([torch.stack([x, y, torch.ones_like(x)], -1)
                           for x, y in ((x1, y1), (x2, y1), (x1, y2), (x2, y2))], dim=1)   # N×4×3
    moved = corners @ matrix.T
    out = torch.stack([moved[..., 0].amin(1), moved[..., 1].amin(1), moved[..., 0].amax(1), moved[..., 1].amax(1)],
                      -1) + PIXEL_CENTRE
    return tv_tensors.wrap(out.to(boxes.dtype), like=boxes)
