"""Training recipes: which parameters train in which epoch, with which optimizer and schedule.

Every run follows a recipe. The engine unrolls it into one plan entry per epoch
(:meth:`SingleStageRecipe.plan`), keeps one optimizer and one learning-rate schedule per stage
in the checkpoint (so a run resumes exactly in the middle of any stage) and calls the recipe's
hooks with explicit arguments: :meth:`~SingleStageRecipe.begin_epoch` before an epoch,
:meth:`~SingleStageRecipe.end_epoch` after it, :meth:`~SingleStageRecipe.competes_for_best`
when it selects ``best/``. A plan entry may ask for a prototype push before its epoch.

- :class:`SingleStageRecipe` — most models: one stage, the run's optimizer (``--optimizer``,
  ``--lr``, ...) and schedule, stepped after every epoch.
- :class:`PrototypeRecipe` — a model naming ``stage_recipe = "prototype"``: ProtoPNet's
  ``main.py`` (and LVW's ``main_lvw.py``)::

    for e in range(epochs):
        warm-up (e < warm_epochs): add-on + prototypes, Adam
        joint (otherwise):         backbone + add-on + prototypes, Adam, StepLR(joint_step_size)
                                   stepped before the epoch (ProtoPNet) or after it (LVW)
        if e >= push_start and e % push_every == 0:
            push, then last_layer_epochs epochs of the last layer only (Adam)

so ``epochs`` counts warm-up and joint epochs; the last-layer epochs come on top. Parameters
outside a stage's optimizer do not require gradients in that stage (the originals leave some
with gradients that no optimizer applies; the updates are the same).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..config import TrainConfig
from .optim import build_optimizer, build_scheduler

#: ProtoPNet's settings.py (and LVW's): epochs of warm-up, push schedule, optimizer groups
#: (learning rate, weight decay) per stage and module, the joint stage's StepLR.
PROTOTYPE_STAGE_DEFAULTS: dict[str, Any] = {
    "warm_epochs": 5, "push_start": 10, "push_every": 10, "last_layer_epochs": 20,
    "warm_lr_add_on": 3e-3, "warm_wd_add_on": 1e-3, "warm_lr_prototypes": 3e-3,
    "joint_lr_backbone": 1e-4, "joint_wd_backbone": 1e-3, "joint_lr_add_on": 3e-3, "joint_wd_add_on": 1e-3,
    "joint_lr_prototypes": 3e-3, "joint_step_size": 5, "joint_gamma": 0.1,
    "last_lr": 1e-4,
    # when the joint StepLR steps: "before" each joint epoch (ProtoPNet main.py:148-149) or
    # "after" it (LVW main_lvw.py:201-213, so each decay comes one joint epoch later)
    "joint_lr_step": "before",
}
#: Values of the ``joint_lr_step`` stage option.
JOINT_LR_STEPS = ("before", "after")
#: Stage of a single-stage run.
SINGLE_STAGE = "train"


@dataclass(frozen=True)
class PlannedEpoch:
    """One epoch of the unrolled recipe: its stage, whether a push precedes it, its outer epoch."""

    stage: str
    push_before: bool = False
    outer_epoch: int = 0


class SingleStageRecipe:
    """One stage: every epoch trains the model's trainable parameters with the run's optimizer,
    and the run's schedule steps after each epoch."""

    #: The recipe's stages, in the order their optimizers are kept.
    stages: tuple[str, ...] = (SINGLE_STAGE,)
    #: Whether DDP must allow parameters without gradients (a stage trains a subset of them).
    trains_parameter_subsets = False

    def __init__(self, cfg: TrainConfig) -> None:
        self.cfg = cfg
        self.epochs = cfg.epochs

    def plan(self) -> list[PlannedEpoch]:
        """One entry per epoch the engine runs, in order."""
        return [PlannedEpoch(SINGLE_STAGE, False, epoch) for epoch in range(self.epochs)]

    def build_optimizers(self, model: nn.Module) -> dict[str, torch.optim.Optimizer]:
        return {SINGLE_STAGE: build_optimizer(model, self.cfg)}

    def build_schedulers(self, optimizers: dict[str, torch.optim.Optimizer]) -> dict[str, Any]:
        return {SINGLE_STAGE: build_scheduler(optimizers[SINGLE_STAGE], self.cfg)}

    def begin_epoch(self, model: nn.Module, plan: list[PlannedEpoch], index: int, schedulers: dict[str, Any], *,
                    first_time: bool) -> None:
        """Before plan entry ``index`` (``first_time``: not a resumption in the middle of it)."""

    def end_epoch(self, plan: list[PlannedEpoch], index: int, schedulers: dict[str, Any]) -> None:
        """After plan entry ``index``'s training, before its validation: the schedule steps."""
        schedulers[SINGLE_STAGE].step()

    def competes_for_best(self, plan: list[PlannedEpoch], index: int, *, pushed: bool) -> bool:
        """Whether the model after entry ``index`` may be selected for ``best/``."""
        return True


class PrototypeRecipe(SingleStageRecipe):
    """ProtoPNet's three stages over a model with ``backbone``, ``add_on``, ``prototypes`` and
    ``last_layer`` (see the module docstring); ``options`` override :data:`PROTOTYPE_STAGE_DEFAULTS`.

    Once a push has run, only last-layer epochs compete for ``best/``: their prototypes are
    real training patches, so the gallery shows what the selected model uses.
    """

    stages = ("warm", "joint", "last")
    trains_parameter_subsets = True
    #: The stage whose schedule is a StepLR (the others are constant).
    JOINT_STAGE = "joint"
    #: The stage after a push: the last layer alone, on pushed prototypes.
    LAST_LAYER_STAGE = "last"

    def __init__(self, epochs: int, options: dict[str, Any] | None = None) -> None:
        self.epochs = epochs
        unknown = sorted(set(options or {}) - set(PROTOTYPE_STAGE_DEFAULTS))
        if unknown:
            raise ValueError(f"unknown stage options {unknown} (--stage-opt); valid: "
                             f"{', '.join(PROTOTYPE_STAGE_DEFAULTS)}")
        self.options = {**PROTOTYPE_STAGE_DEFAULTS, **(options or {})}
        o = self.options
        if o["joint_lr_step"] not in JOINT_LR_STEPS:
            raise ValueError(f"--stage-opt joint_lr_step must be one of {', '.join(JOINT_LR_STEPS)}, "
                             f"got {o['joint_lr_step']!r}")
        if o["push_every"] < 1 or o["last_layer_epochs"] < 1 or o["warm_epochs"] < 0 or o["push_start"] < 0:
            raise ValueError(f"stage options need push_every ≥ 1, last_layer_epochs ≥ 1 (a push is followed by "
                             f"last-layer epochs), warm_epochs ≥ 0, push_start ≥ 0; got {o}")

    def plan(self) -> list[PlannedEpoch]:
        """One entry per epoch the engine runs, in order."""
        o, entries = self.options, []
        for epoch in range(self.epochs):
            entries.append(PlannedEpoch("warm" if epoch < o["warm_epochs"] else "joint", False, epoch))
            if epoch >= o["push_start"] and epoch % o["push_every"] == 0:
                entries += [PlannedEpoch("last", i == 0, epoch) for i in range(o["last_layer_epochs"])]
        return entries

    def steps_joint_schedule(self, plan: list[PlannedEpoch], index: int) -> bool:
        """Whether the joint StepLR steps at the start of plan entry ``index``: before a joint epoch
        (``joint_lr_step: before``) or right after one, i.e. at the start of the next entry
        (``after``); the learning rate of every later joint epoch is then the original's."""
        if self.options["joint_lr_step"] == "before":
            return plan[index].stage == self.JOINT_STAGE
        return index > 0 and plan[index - 1].stage == self.JOINT_STAGE

    def parameter_groups(self, model: nn.Module, stage: str) -> list[dict]:
        """The stage's Adam groups (ProtoPNet's *_optimizer_specs)."""
        o = self.options
        by_stage: dict[str, list[tuple[Any, float, float]]] = {
            "warm": [(model.add_on, o["warm_lr_add_on"], o["warm_wd_add_on"]),
                     ([model.prototypes], o["warm_lr_prototypes"], 0.0)],
            "joint": [(model.backbone, o["joint_lr_backbone"], o["joint_wd_backbone"]),
                      (model.add_on, o["joint_lr_add_on"], o["joint_wd_add_on"]),
                      ([model.prototypes], o["joint_lr_prototypes"], 0.0)],
            "last": [(model.last_layer, o["last_lr"], 0.0)],
        }
        groups = by_stage[stage]
        result = []
        for source, lr, decay in groups:
            found = list(source.parameters()) if isinstance(source, nn.Module) else list(source)
            params = [p for p in found if p.dtype.is_floating_point]
            if params:
                result.append({"params": params, "lr": lr, "weight_decay": decay})
        return result

    def build_optimizers(self, model: nn.Module) -> dict[str, torch.optim.Optimizer]:
        return {stage: torch.optim.Adam(self.parameter_groups(model, stage)) for stage in self.stages}

    def build_schedulers(self, optimizers: dict[str, torch.optim.Optimizer]) -> dict[str, Any]:
        """The joint stage's StepLR (stepped once per joint epoch); constant elsewhere."""
        o = self.options
        joint = torch.optim.lr_scheduler.StepLR(optimizers[self.JOINT_STAGE], step_size=o["joint_step_size"],
                                                gamma=o["joint_gamma"])
        constant = {stage: torch.optim.lr_scheduler.LambdaLR(optimizers[stage], lambda _: 1.0)
                    for stage in self.stages if stage != self.JOINT_STAGE}
        return {self.JOINT_STAGE: joint, **constant}

    def begin_epoch(self, model: nn.Module, plan: list[PlannedEpoch], index: int, schedulers: dict[str, Any], *,
                    first_time: bool) -> None:
        """The stage's parameters become trainable; the joint StepLR steps once per joint epoch
        (before or after it, :meth:`steps_joint_schedule`), not again on a resumption."""
        self.set_trainable(model, plan[index].stage)
        if first_time and self.steps_joint_schedule(plan, index):
            with warnings.catch_warnings():   # stepped before the epoch's first optimizer step, on purpose
                warnings.filterwarnings("ignore", message=r"Detected call of `lr_scheduler.step\(\)` before")
                schedulers[self.JOINT_STAGE].step()

    def end_epoch(self, plan: list[PlannedEpoch], index: int, schedulers: dict[str, Any]) -> None:
        """Nothing: the joint schedule steps in :meth:`begin_epoch`, the others are constant."""

    def competes_for_best(self, plan: list[PlannedEpoch], index: int, *, pushed: bool) -> bool:
        return not pushed or plan[index].stage == self.LAST_LAYER_STAGE

    def set_trainable(self, model: nn.Module, stage: str) -> None:
        """Only the stage's parameters require gradients; ``model.stage`` tells the loss."""
        trainable = {id(p) for group in self.parameter_groups(model, stage) for p in group["params"]}
        for param in model.parameters():
            param.requires_grad_(id(param) in trainable)
        setattr(model, "stage", stage)  # noqa: B010  (an attribute of the prototype model, read by its loss)


#: Recipe name (``SeeThroughModel.stage_recipe``) → class of a multi-stage recipe.
RECIPES: dict[str, type[PrototypeRecipe]] = {"prototype": PrototypeRecipe}


def recipe_for(model: nn.Module, cfg: TrainConfig) -> SingleStageRecipe:
    """The model's recipe: its ``stage_recipe`` (with the model's ``stage_defaults`` below the
    run's ``stage_options``), or one stage (then ``stage_options`` must be empty)."""
    name = getattr(model, "stage_recipe", None)
    if name is None:
        if cfg.stage_options:
            raise ValueError(f"--stage-opt {sorted(cfg.stage_options)} given, but model "
                             f"{getattr(model, 'config', {}).get('name')!r} trains in one stage")
        return SingleStageRecipe(cfg)
    return RECIPES[name](cfg.epochs, {**getattr(model, "stage_defaults", {}), **(cfg.stage_options or {})})


def per_stage(saved: dict[str, Any]) -> dict[str, Any]:
    """A checkpoint's optimizer (or scheduler) states by stage. Checkpoints written before every
    run had a recipe stored a single-stage run's state dict itself; it is the ``train`` stage's."""
    if "state" in saved or "param_groups" in saved or "last_epoch" in saved:
        return {SINGLE_STAGE: saved}
    return saved
