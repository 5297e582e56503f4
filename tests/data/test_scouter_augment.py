"""augment 'scouter' as SCOUTER's tools/image_aug.py (audit S4): h and v flips, an affine with
separate x/y scale, x shift 0–0.1 and y shift ±0.1, integer rotation, a Gaussian blur σ ~ U(0, 3),
each with p = 1/2, in random order; boxes and masks follow the image; deterministic per seed."""
import numpy as np
import PIL.Image
import pytest
import torch

from seethrough.data.base import RawSample
from seethrough.data.scouter_augment import ScouterAugment, affine_matrix
from seethrough.data.transforms import build_transform

SIZE = 32


def _raw():
    image = np.zeros((SIZE, SIZE, 3), np.uint8)
    image[4:12, 6:20] = 255
    mask = np.zeros((SIZE, SIZE), bool)
    mask[4:12, 6:20] = True
    return RawSample(PIL.Image.fromarray(image), 0, "s", boxes=np.array([[6, 4, 20, 12]], np.float32), mask=mask)


def _params(seed):
    torch.manual_seed(seed)
    return ScouterAugment().make_params([])


def test_every_op_and_order_occurs_and_the_draws_are_in_the_originals_ranges():
    params = [_params(seed) for seed in range(200)]
    for op in ("fliplr", "flipud", "affine", "blur"):
        share = np.mean([op in p["order"] for p in params])
        assert 0.35 < share < 0.65, (op, share)
    orders = {tuple(p["order"]) for p in params if len(p["order"]) == 4}
    assert len(orders) > 3   # random order
    assert all(0.8 <= s <= 1.0 for p in params for s in p["scale"])
    assert any(abs(p["scale"][0] - p["scale"][1]) > 0.05 for p in params)   # separate x / y scales
    assert all(0 <= p["translate"][0] <= 0.1 and -0.1 <= p["translate"][1] <= 0.1 for p in params)
    assert {p["rotate"] for p in params} <= set(range(-10, 10)) and min(p["rotate"] for p in params) == -10
    assert all(0 <= p["sigma"] <= 3 for p in params)


def test_the_same_seed_gives_the_same_sample_and_boxes_and_masks_follow():
    transform = build_transform(SIZE, train=True, augment="scouter", mean=(0, 0, 0), std=(1, 1, 1))
    outs = []
    for _ in range(2):
        torch.manual_seed(7)
        outs.append(transform(_raw()))
    assert torch.equal(outs[0]["image"], outs[1]["image"]) and torch.equal(outs[0]["boxes"], outs[1]["boxes"])
    for seed in range(30):
        torch.manual_seed(seed)
        out = transform(_raw())
        if out["boxes"].numel() == 0:
            continue
        x1, y1, x2, y2 = out["boxes"][0].round().int().tolist()
        inside = out["mask"][max(y1, 0):y2, max(x1, 0):x2]
        assert inside.float().mean() > 0.5   # the box still encloses the moved mask


def test_vertical_flip_and_affine_move_the_image_as_imgaug():
    raw = _raw()
    flipped = ScouterAugment().transform(build_transform(SIZE, train=False, mean=(0, 0, 0), std=(1, 1, 1))
                                         (raw)["image"], {"order": ["flipud"]})
    assert flipped[:, SIZE - 12:SIZE - 4, 6:20].min() == 1.0
    # translation only: x by +0.1·W, y by −0.1·H pixels
    matrix = affine_matrix({"scale": (1.0, 1.0), "translate": (0.1, -0.1), "rotate": 0}, SIZE, SIZE)
    assert matrix[0, 2].item() == pytest.approx(0.1 * SIZE) and matrix[1, 2].item() == pytest.approx(-0.1 * SIZE)
    # positive rotation is clockwise on screen (y down): the point right of the centre moves down
    rotate = affine_matrix({"scale": (1.0, 1.0), "translate": (0.0, 0.0), "rotate": 9}, SIZE, SIZE)
    centre = (SIZE - 1) / 2
    moved = rotate @ torch.tensor([centre + 10, centre, 1.0], dtype=torch.float64)
    assert moved[1] > centre
