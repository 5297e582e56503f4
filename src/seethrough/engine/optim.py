"""Optimizers and per-epoch learning-rate schedules from a :class:`TrainConfig`."""
from __future__ import annotations

import math
from typing import Callable

import torch
from torch import nn

from ..config import TrainConfig

#: Parameters with fewer dimensions than this (biases, norm scales) get no weight decay.
DECAY_MIN_NDIM = 2


#: Parameter-name prefix of the backbone (the part ``--lr-backbone`` applies to).
BACKBONE_PREFIX = "backbone."


#: ``weight_decay_on`` values: decay the weights only (ndim ≥ 2), or every parameter as the
#: originals' optimizers do (SCOUTER train.py:146 AdamW(params), INTR main.py:136 AdamW over all
#: param_dicts, CA-Stream engine/utils.py:97-98 SGD with the cls_token and biases).
WEIGHT_DECAY_ON = ("weights", "all")


def parameter_groups(model: nn.Module, weight_decay: float, *, lr: float | None = None,
                     lr_backbone: float | None = None, decay_all: bool = False) -> list[dict]:
    """Trainable parameters split so that weight decay applies to weights, not biases/norms
    (``decay_all``: to every parameter, as the originals); with ``lr_backbone`` the backbone's
    parameters get their own learning rate (DETR / INTR: transformer 5e-5 in INTR's recipe, 1e-4
    in DETR's; backbone 1e-5). Empty groups are left out."""
    buckets: dict[tuple[bool, bool], list[nn.Parameter]] = {}
    for name, param in model.named_parameters():
        if param.requires_grad:
            in_backbone = lr_backbone is not None and name.startswith(BACKBONE_PREFIX)
            buckets.setdefault((in_backbone, decay_all or param.ndim >= DECAY_MIN_NDIM), []).append(param)
    if not buckets:
        raise ValueError("the model has no trainable parameters; lower --freeze-layers")
    groups = []
    order = [(False, True), (False, False), (True, True), (True, False)]   # head decay/no-decay, backbone
    for in_backbone, decays in (key for key in order if key in buckets):
        params = buckets[(in_backbone, decays)]
        group = {"params": params, "weight_decay": weight_decay if decays else 0.0}
        if in_backbone:
            group["lr"] = lr_backbone
        elif lr is not None:
            group["lr"] = lr
        groups.append(group)
    return groups


def build_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """AdamW (SCOUTER, INTR) or SGD with momentum (CA-Stream, ProtoPNet last layer).

    The configured weight decay is applied to the weights, or with ``weight_decay_on: all`` to
    every parameter (the paper presets, as their originals); ``cfg.lr_backbone`` (when set) is the
    backbone's learning rate, ``cfg.lr`` everyone else's.
    """
    groups = parameter_groups(model, cfg.weight_decay, lr=cfg.lr, lr_backbone=cfg.lr_backbone,
                              decay_all=cfg.weight_decay_on == "all")
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.lr)
    return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum)


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: TrainConfig) -> torch.optim.lr_scheduler.LRScheduler:
    """Stepped once per epoch: ``step`` (StepLR), ``multistep``, ``cosine`` (torch's
    CosineAnnealingLR with T_max = epochs: from each group's lr to ``min_lr`` at the last epoch,
    INTR's main.py:143 uses min_lr 1e-6) or ``none``; an optional linear warm-up over
    ``warmup_epochs`` multiplies any of them."""

    def factor(epoch: int, base_lr: float) -> float:
        warm = min(1.0, (epoch + 1) / cfg.warmup_epochs) if cfg.warmup_epochs else 1.0
        if cfg.scheduler == "step":
            return warm * cfg.gamma ** (epoch // cfg.step_size)
        if cfg.scheduler == "multistep":
            return warm * cfg.gamma ** sum(epoch >= m for m in cfg.milestones)
        if cfg.scheduler == "cosine":
            floor = cfg.min_lr / base_lr
            return warm * (floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * epoch / cfg.epochs)))
        return warm

    def schedule_of(base: float) -> Callable[[int], float]:
        return lambda epoch: factor(epoch, base)

    lambdas = [schedule_of(group.get("initial_lr", group["lr"])) for group in optimizer.param_groups]
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambdas)
