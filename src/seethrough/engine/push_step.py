"""The engine's prototype push (ProtoPNet's projection) and the gallery of ``best/``.

A plan entry with ``push_before`` (:class:`~.stages.PlannedEpoch`) replaces every prototype by
its nearest latent patch of the push set — ``--push-data``'s train split, or the training
data's, with the evaluation transform — as one batched pass. At the end of the run the push
that produced ``best/`` is rendered once into ``best/prototypes/`` (the gallery).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from lightning.fabric import Fabric
from torch import nn
from torch.utils.data import DataLoader

from ..config import TrainConfig
from ..models.hub import from_pretrained
from ..prototypes.gallery import GALLERY_DIR, render_gallery
from ..prototypes.push import PushResult, push_prototypes
from .data import RunData, build_push_data, make_loader, setup_loader


class PushStep:
    """Pushes the prototypes of a model onto the push set; the loader is built on first use."""

    def __init__(self, cfg: TrainConfig, data: RunData, fabric: Fabric) -> None:
        self.cfg, self.data, self.fabric = cfg, data, fabric
        self._loader: DataLoader | None = None

    def __call__(self, module: nn.Module) -> PushResult:
        """Push ``module``'s prototypes (its training flag is kept); returns the push records."""
        if self._loader is None:
            dataset = build_push_data(self.cfg, self.data.mean, self.data.std, classes=self.data.train.classes)
            self._loader = setup_loader(self.fabric, make_loader(dataset, self.cfg, train=False,
                                                                 rank=self.fabric.global_rank,
                                                                 world_size=self.fabric.world_size))
        was_training = module.training
        result = push_prototypes(module, self._loader, fabric=self.fabric)
        module.train(was_training)
        return result


def render_best_gallery(best_dir: Path, pushes: dict[str, Any], best_epoch: int, cfg: TrainConfig,
                        mean: Sequence[float], std: Sequence[float], device: Any) -> Path | None:
    """Render the push that set ``best/``'s prototypes (the last push at or before its epoch)
    into ``best/prototypes/``; ``None`` when no push precedes ``best/``."""
    pushed = [int(epoch) for epoch in pushes if int(epoch) <= best_epoch - 1]
    if not pushed or not best_dir.exists():
        return None
    result = PushResult.from_dict(pushes[str(max(pushed))])
    model = from_pretrained(best_dir).to(device)
    dataset = build_push_data(cfg, mean, std)
    render_gallery(model, dataset, result, best_dir / GALLERY_DIR, mean=mean, std=std)
    return best_dir / GALLERY_DIR
