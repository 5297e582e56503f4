"""Optimizers and per-epoch learning-rate schedules from a :class:`TrainConfig`."""
from __future__ import annotations

import math

import torch
from torch import nn

from ..config import TrainConfig

#: Parameters with fewer dimensions than this (biases, norm scales) get no weight decay.
DECAY_MIN_NDIM = 2


#: Parameter-name prefix of the backbone (the part ``--lr-backbone`` applies to).
BACKBONE_PREFIX = "backbone."


def parameter_groups(model: nn.Module, weight_decay: float, *, lr: float | None = None,
                     lr_backbone: float | None = None) -> list[dict]:
    """Trainable parameters split so that weight decay applies to weights, not biases/norms;
    with ``lr_backbone`` the backbone's parameters get their own learning rate (DETR / INTR:
    transformer 1e-4, backbone 1e-5). Empty groups are left out."""
    buckets: dict[tuple[bool, bool], list[nn.Parameter]] = {}
    for name, param in model.named_parameters():
        if param.requires_grad:
            in_backbone = lr_backbone is not None and name.startswith(BACKBONE_PREFIX)
            buckets.setdefault((in_backbone, param.ndim >= DECAY_MIN_NDIM), []).append(param)
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

    The configured weight decay is actually applied (the official SCOUTER ignored it);
    ``cfg.lr_backbone`` (when set) is the backbone's learning rate, ``cfg.lr`` everyone else's.
    """
    groups = parameter_groups(model, cfg.weight_decay, lr=cfg.lr, lr_backbone=cfg.lr_backbone)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.lr)
    return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum)


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: TrainConfig) -> torch.optim.lr_scheduler.LRScheduler:
    """Stepped once per epoch: ``step`` (StepLR), ``multistep``, ``cosine`` (to 0 at the last
    epoch) or ``none``; an optional linear warm-up over ``warmup_epochs`` multiplies any of them."""

    def factor(epoch: int) -> float:
        warm = min(1.0, (epoch + 1) / cfg.warmup_epochs) if cfg.warmup_epochs else 1.0
        if cfg.scheduler == "step":
            return warm * cfg.gamma ** (epoch // cfg.step_size)
        if cfg.scheduler == "multistep":
            return warm * cfg.gamma ** sum(epoch >= m for m in cfg.milestones)
        if cfg.scheduler == "cosine":
            return warm * 0.5 * (1.0 + math.cos(math.pi * epoch / cfg.epochs))
        return warm

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
