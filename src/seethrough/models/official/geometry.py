"""The input geometry each original evaluates its checkpoints with (audit B4).

A converted checkpoint must see the pixels its original saw: the size, the resize rule and the
normalization are written into the model directory's card by ``seethrough convert``, and
:func:`~seethrough.models.loading.load_for_inference` (so ``eval``, ``evaluate``, ``explain``)
uses them; ``--img-size``, ``--mean`` and ``--std`` override them.

- SCOUTER (wbw520/scouter dataset/transform_func.py ``make_transform``): PIL bilinear resize to
  260², ``ToTensor``, ``Normalize`` with MNIST's (0.1307, 0.3081) on one channel for the MNIST
  model (its stem takes one channel), ImageNet's statistics for CUB200 / ConText / ImageNet.
- ProtoPNet (main.py) and LVW (main_lvw.py): ``Resize((224, 224))`` on the PIL image, ImageNet
  statistics (preprocess.py).
- CA-Stream (lib/data.py ``imagenet_tester``): ``Resize((224, 224))`` on the PIL image, ImageNet
  statistics.
- INTR and DETR (datasets/coco.py): DETR's aspect-preserving resize, shorter side 800.
"""
from __future__ import annotations

from typing import Any

from torch import nn

from ...data.transforms import IMAGENET_MEAN, IMAGENET_STD

#: SCOUTER's input size (train.py ``--img_size`` default, used by every README command).
SCOUTER_IMG_SIZE = 260
#: The input size of ProtoPNet / LVW (settings.py ``img_size``) and CA-Stream (``--imsize``).
PROTOTYPE_IMG_SIZE = CASTREAM_IMG_SIZE = 224
#: SCOUTER's MNIST normalization (transform_func.py ``normalize_value["MNIST"]``).
MNIST_MEAN, MNIST_STD = (0.1307,), (0.3081,)
#: Resize rule of the torchvision-on-PIL originals (see seethrough.data.transforms.PilBilinearResize).
PIL_BILINEAR = "pil-bilinear"

_SQUARE_PIL = {
    "scouter": SCOUTER_IMG_SIZE,
    "protopnet": PROTOTYPE_IMG_SIZE,
    "lvw": PROTOTYPE_IMG_SIZE,
    "castream": CASTREAM_IMG_SIZE,
}


def original_geometry(kind: str, model: nn.Module) -> dict[str, Any]:
    """Card entries (``img_size``, ``resize``, ``mean``, ``std``) of a model converted from the
    original ``kind``; the channel count follows from ``mean``."""
    if kind in ("detr", "intr"):
        return {"resize": "detr", "mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD)}
    if kind not in _SQUARE_PIL:
        return {}
    config: dict[str, Any] = getattr(model, "config")  # noqa: B009  (a converted seethrough model)
    mnist = config.get("stem") == "mnist" or config.get("in_chans") == 1
    mean, std = (MNIST_MEAN, MNIST_STD) if mnist else (IMAGENET_MEAN, IMAGENET_STD)
    return {"img_size": _SQUARE_PIL[kind], "resize": PIL_BILINEAR, "mean": list(mean), "std": list(std)}
