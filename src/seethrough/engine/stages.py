"""Multi-stage training recipes: which parameters train in which epoch, with which optimizer.

A model that trains in stages names a recipe (``SeeThroughModel.stage_recipe``); the engine
unrolls it into one plan entry per epoch (:func:`StageRecipe.plan`) and keeps one optimizer and
one learning-rate schedule per stage in the checkpoint, so a run resumes exactly in the middle
of any stage. The prototype recipe is ProtoPNet's ``main.py`` (and LVW's ``main_lvw.py``)::

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

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

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


class StageRecipe:
    """ProtoPNet's three stages over a model with ``backbone``, ``add_on``, ``prototypes`` and
    ``last_layer`` (see the module docstring); ``options`` override :data:`PROTOTYPE_STAGE_DEFAULTS`."""

    stages = ("warm", "joint", "last")

    def __init__(self, epochs: int, options: dict[str, Any] | None = None) -> None:
        unknown = sorted(set(options or {}) - set(PROTOTYPE_STAGE_DEFAULTS))
        if unknown:
            raise ValueError(f"unknown stage options {unknown} (--stage-opt); valid: "
                             f"{', '.join(PROTOTYPE_STAGE_DEFAULTS)}")
        self.options = {**PROTOTYPE_STAGE_DEFAULTS, **(options or {})}
        self.epochs = epochs
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
            return plan[index].stage == "joint"
        return index > 0 and plan[index - 1].stage == "joint"

    def parameter_groups(self, model: nn.Module, stage: str) -> list[dict]:
        """The stage's Adam groups (ProtoPNet's *_optimizer_specs)."""
        o = self.options
        groups = {
            "warm": [(model.add_on, o["warm_lr_add_on"], o["warm_wd_add_on"]),
                     ([model.prototypes], o["warm_lr_prototypes"], 0.0)],
            "joint": [(model.backbone, o["joint_lr_backbone"], o["joint_wd_backbone"]),
                      (model.add_on, o["joint_lr_add_on"], o["joint_wd_add_on"]),
                      ([model.prototypes], o["joint_lr_prototypes"], 0.0)],
            "last": [(model.last_layer, o["last_lr"], 0.0)],
        }[stage]
        result = []
        for params, lr, decay in groups:
            params = list(params.parameters()) if isinstance(params, nn.Module) else list(params)
            params = [p for p in params if p.dtype.is_floating_point]
            if params:
                result.append({"params": params, "lr": lr, "weight_decay": decay})
        return result

    def build_optimizers(self, model: nn.Module) -> dict[str, torch.optim.Optimizer]:
        return {stage: torch.optim.Adam(self.parameter_groups(model, stage)) for stage in self.stages}

    def build_schedulers(self, optimizers: dict[str, torch.optim.Optimizer]) -> dict[str, Any]:
        """The joint stage's StepLR (stepped once per joint epoch); constant elsewhere."""
        o = self.options
        joint = torch.optim.lr_scheduler.StepLR(optimizers["joint"], step_size=o["joint_step_size"],
                                                gamma=o["joint_gamma"])
        constant = {stage: torch.optim.lr_scheduler.LambdaLR(optimizers[stage], lambda _: 1.0)
                    for stage in ("warm", "last")}
        return {"joint": joint, **constant}

    def set_trainable(self, model: nn.Module, stage: str) -> None:
        """Only the stage's parameters require gradients; ``model.stage`` tells the loss."""
        trainable = {id(p) for group in self.parameter_groups(model, stage) for p in group["params"]}
        for param in model.parameters():
            param.requires_grad_(id(param) in trainable)
        model.stage = stage


#: Recipe name (``SeeThroughModel.stage_recipe``) → class.
RECIPES: dict[str, type[StageRecipe]] = {"prototype": StageRecipe}


def recipe_for(model: nn.Module, epochs: int, options: dict[str, Any] | None) -> StageRecipe | None:
    """The model's recipe, or ``None`` for a single-stage model (then ``options`` must be empty)."""
    name = getattr(model, "stage_recipe", None)
    if name is None:
        if options:
            raise ValueError(f"--stage-opt {sorted(options)} given, but model {model.config.get('name')!r} trains in "
                             "one stage")
        return None
    # a model's own recipe defaults (LVW: joint_lr_step after), below the user's --stage-opt
    return RECIPES[name](epochs, {**getattr(model, "stage_defaults", {}), **(options or {})})
