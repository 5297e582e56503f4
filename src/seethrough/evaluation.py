"""Accuracy of a trained model on a dataset split (``seethrough eval``)."""
from __future__ import annotations

from typing import Any

from lightning.fabric import Fabric

from .config import TrainConfig
from .data import build_dataset
from .engine.data import make_loader
from .engine.evaluate import evaluate_accuracy
from .models.loading import load_for_inference


def evaluate_checkpoint(checkpoint: str, data: str, *, split: str = "val", data_options: dict | None = None,
                        batch_size: int = 64, workers: int = 2, accelerator: str = "auto",
                        on_bad_image: str = "error") -> dict[str, Any]:
    """Top-1/top-5 accuracy and loss of ``checkpoint`` on ``split`` of ``data``, with the
    preprocessing (size, mean, std) the model was trained with.

    Accuracy is the share of correct *samples*. INTR's ``engine.py:99-101`` (``evaluate``)
    instead averages each batch's acc@1/acc@5 and then the batch values with equal weights
    (``MetricLogger.update`` with ``n=1``, ``util/misc.py:49-52,173-178``), so its number
    weights a smaller last batch more; the two agree when the split divides into full
    batches. Documented, not reproduced.
    """
    loaded = load_for_inference(checkpoint)
    dataset = build_dataset(data, split, mode="L" if loaded.in_chans == 1 else "RGB",
                            on_bad_image=on_bad_image, **(data_options or {}))
    if dataset.num_classes != len(loaded.classes):
        raise ValueError(
            f"{checkpoint} was trained on {len(loaded.classes)} classes but --data {data} has "
            f"{dataset.num_classes}; evaluate on the same classes (dataset option num_classes)"
        )
    dataset.transform = loaded.transform()   # as trained (resize detr: aspect kept, padded batches)
    fabric = Fabric(accelerator=accelerator, devices=1)
    cfg = TrainConfig(batch_size=batch_size, workers=workers)
    loader = fabric.setup_dataloaders(make_loader(dataset, cfg, train=False, rank=0, world_size=1),
                                      use_distributed_sampler=False)
    model = fabric.setup(loaded.model)
    result = evaluate_accuracy(model, loader, fabric)
    return {"checkpoint": str(checkpoint), "data": data, "split": split, **result}
