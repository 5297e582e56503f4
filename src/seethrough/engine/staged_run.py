"""The engine side of a multi-stage recipe (:mod:`.stages`): what happens between epochs.

At the start of every epoch of the plan: the stage's parameters are made trainable, its
joint schedule steps once (before the joint epoch as ProtoPNet, or after it as LVW), and — when the plan says
so — the prototypes are pushed and a checkpoint is written, so a resumed run never pushes
twice. After the first push only pushed models compete for ``best/``; at the end the push
that produced ``best/`` is rendered once into ``best/prototypes/`` (the gallery).
"""
from __future__ import annotations

import time
import warnings
from typing import TYPE_CHECKING

from ..models.loading import RUN_BEST_DIR as BEST_DIR
from .data import build_push_data, make_loader

if TYPE_CHECKING:  # pragma: no cover
    from .trainer import Trainer

#: Where a prototype model's gallery goes, inside ``best/``.
GALLERY_DIR = "prototypes"


class StagedRun:
    """Per-epoch hooks of a :class:`~.trainer.Trainer` whose model trains in stages."""

    def __init__(self, trainer: "Trainer") -> None:
        self.trainer = trainer
        self._push_loader = None

    def begin_epoch(self) -> None:
        """Multi-stage recipes: set the stage's trainable parameters, step its schedule once per
        epoch (before or after a joint epoch, per recipe) and push when the plan says so."""
        t = self.trainer
        state, entry = t.state, t.plan[t.state.epoch]
        t.recipe.set_trainable(t.model.module, entry.stage)
        if state.scheduled_epoch != state.epoch:
            if t.recipe.steps_joint_schedule(t.plan, state.epoch):
                with warnings.catch_warnings():   # stepped before the epoch's first optimizer step, on purpose
                    warnings.filterwarnings("ignore", message=r"Detected call of `lr_scheduler.step\(\)` before")
                    t.schedulers["joint"].step()
            state.scheduled_epoch = state.epoch
        if entry.push_before and state.pushed_epoch != state.epoch:
            self.push()
            state.pushed_epoch = state.epoch
            t.save_last()

    def push(self) -> None:
        """Replace every prototype by its nearest latent patch of the push set (``--push-data``'s
        train split, or the training data's; evaluation transform), as one batched pass; records
        kept for the gallery."""
        from ..prototypes.push import push_prototypes

        t = self.trainer
        if self._push_loader is None:
            dataset = build_push_data(t.cfg, t.data.mean, t.data.std, classes=t.data.train.classes)
            self._push_loader = t.fabric.setup_dataloaders(
                make_loader(dataset, t.cfg, train=False, rank=t.fabric.global_rank,
                            world_size=t.fabric.world_size), use_distributed_sampler=False)
        module = t.model.module
        was_training = module.training
        started = time.time()
        result = push_prototypes(module, self._push_loader, fabric=t.fabric)
        module.train(was_training)
        if not t.state.pushes:   # from now on only pushed models compete for best/
            t.state.best_acc1, t.state.best_epoch, t.state.best_loss = -1.0, -1, float("inf")
        t.state.pushes[str(t.state.epoch)] = result.to_dict()
        t.fabric.print(f"push before epoch {t.state.epoch + 1}: {module.num_prototypes} prototypes set to their "
                       f"nearest training patches ({time.time() - started:.1f} s)")
        t.logger.log("push", t.state.global_step, epoch=t.state.epoch, seconds=time.time() - started)

    def eligible_for_best(self, epoch_index: int) -> bool:
        """Once a push has run, only pushed models (last-layer epochs) count as "best": their
        prototypes are real training patches, so the gallery shows what the model uses."""
        t = self.trainer
        if not t.state.pushes:
            return True
        return t.plan[epoch_index].stage == "last"

    def render_gallery(self) -> None:
        """The prototype gallery of ``best/`` (rank 0, once at the end): the push that set its
        prototypes, rendered into ``best/prototypes/``."""
        from ..models.hub import from_pretrained
        from ..prototypes.gallery import render_gallery
        from ..prototypes.push import PushResult

        t = self.trainer
        best_index = t.state.best_epoch - 1
        pushed = [int(epoch) for epoch in t.state.pushes if int(epoch) <= best_index]
        if not pushed or not (t.out / BEST_DIR).exists():
            return
        result = PushResult.from_dict(t.state.pushes[str(max(pushed))])
        model = from_pretrained(t.out / BEST_DIR).to(t.fabric.device)
        dataset = build_push_data(t.cfg, t.data.mean, t.data.std)
        render_gallery(model, dataset, result, t.out / BEST_DIR / GALLERY_DIR, mean=t.data.mean, std=t.data.std)
        t.fabric.print(f"prototype gallery: {t.out / BEST_DIR / GALLERY_DIR}")
