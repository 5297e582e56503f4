"""Optimizers and per-epoch learning-rate schedules from a :class:`TrainConfig`."""
from __future__ import annotations

import math

import torch
from torch import nn

from ..config import TrainConfig

#: Parameters with fewer dimensions than this (biases, norm scales) get no weight decay.
DECAY_MIN_NDIM = 2


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Trainable parameters split so that weight decay applies to weights, not biases/norms."""
    decay, no_decay = [], []
    for param in model.parameters():
        if param.requires_grad:
            (decay if param.ndim >= DECAY_MIN_NDIM else no_decay).append(param)
    if not decay and not no_decay:
        raise ValueError("the model has no trainable parameters; lower --freeze-layers")
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def build_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """AdamW (SCOUTER, INTR) or SGD with momentum (CA-Stream, ProtoPNet last layer).

    The configured weight decay is actually applied (the official SCOUTER ignored it).
    """
    groups = parameter_groups(model, cfg.weight_decay)
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
