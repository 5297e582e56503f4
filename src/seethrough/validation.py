"""Validation: accuracy of a trained model on a dataset split (``seethrough validate``,
``seethrough.validate``). Explanation metrics are :func:`seethrough.evaluate`."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from lightning.fabric import Fabric

from .config import TrainConfig
from .data import build_dataset
from .engine.data import make_loader, setup_loader
from .engine.predictions import PredictionRecorder
from .engine.validate import validate_model
from .models.loading import load_for_inference


def validate(checkpoint: str, data: str, *, split: str = "val", data_options: dict | None = None,
             batch_size: int = 64, workers: int = 2, accelerator: str = "auto",
             on_bad_image: str = "error", predictions: str | Path | None = None,
             img_size: int | None = None, mean: Sequence[float] | None = None,
             std: Sequence[float] | None = None) -> dict[str, Any]:
    """Top-1/top-5 accuracy and loss of ``checkpoint`` on ``split`` of ``data``, with the
    preprocessing (size, resize rule, mean, std) the model was trained with — or, for a
    converted checkpoint, the original's (``img_size``, ``mean``, ``std`` override it).

    ``predictions``: also write one CSV row per sample (see
    :mod:`seethrough.engine.predictions`: sample_id, label, pred, pred_name, prob, top5,
    top5_prob) to compare with another implementation sample by sample.

    A model with more outputs than the data has classes (the official Con-Text SCOUTER command
    trains 30 outputs for 28 classes) is scored over all its outputs; the unused ones are
    listed in ``unused_outputs`` and a prediction there counts as wrong.

    Accuracy is the share of correct *samples*. INTR's ``engine.py:99-101`` (``evaluate``)
    instead averages each batch's acc@1/acc@5 and then the batch values with equal weights
    (``MetricLogger.update`` with ``n=1``, ``util/misc.py:49-52,173-178``), so its number
    weights a smaller last batch more; the two agree when the split divides into full
    batches. Documented, not reproduced.
    """
    loaded = load_for_inference(checkpoint, img_size=img_size, mean=mean, std=std)
    dataset = build_dataset(data, split, mode="L" if loaded.in_chans == 1 else "RGB",
                            on_bad_image=on_bad_image, **(data_options or {}))
    unused = loaded.unused_outputs(dataset.classes, source=str(checkpoint), spec=data)
    dataset.transform = loaded.transform()   # as trained (resize detr: aspect kept, padded batches)
    fabric = Fabric(accelerator=accelerator, devices=1)
    cfg = TrainConfig(batch_size=batch_size, workers=workers)
    loader = setup_loader(fabric, make_loader(dataset, cfg, train=False, rank=0, world_size=1))
    model = fabric.setup(loaded.model)
    recorder = PredictionRecorder(loaded.classes) if predictions is not None else None
    result = validate_model(model, loader, fabric, on_batch=recorder)
    geometry = {"img_size": loaded.img_size, "resize": loaded.resize, "mean": list(loaded.mean),
                "std": list(loaded.std)}
    report = {"checkpoint": str(checkpoint), "data": data, "split": split, **result, "input": geometry}
    if unused:
        report["unused_outputs"] = unused
    if recorder is not None and predictions is not None:
        report["predictions"] = str(recorder.write_csv(predictions))
    return report
