"""Model scores used by the perturbation metrics, computed in device batches."""
from __future__ import annotations

import torch
from torch import nn

from .calls import logits_of

#: Images per forward pass when a metric evaluates many perturbed copies.
DEFAULT_BATCH_SIZE = 64

#: What a perturbation metric scores: the softmax probability of the target (RISE,
#: Grad-CAM++ AD/IC), its log-probability, or the raw logit.
SCORES: tuple[str, ...] = ("prob", "log_prob", "logit")


def target_scores(model: nn.Module, images: torch.Tensor, targets: torch.Tensor, *, score: str = "prob",
                  batch_size: int = DEFAULT_BATCH_SIZE) -> torch.Tensor:
    """Score of class ``targets[i]`` for ``images[i]``, ``N`` floats, without gradients.

    ``images`` may be any number ``N`` of inputs with ``N`` targets; they run ``batch_size`` at
    a time. The model must already be in the mode the caller wants (metrics use eval mode).
    """
    if score not in SCORES:
        raise ValueError(f"unknown score {score!r}; valid: {', '.join(SCORES)}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    out = []
    with torch.no_grad():
        for start in range(0, images.shape[0], batch_size):
            chunk = images[start:start + batch_size]
            logits = logits_of(model, chunk).float()
            index = targets[start:start + batch_size, None].to(logits.device)
            if score == "prob":
                values = torch.softmax(logits, dim=1).gather(1, index)
            elif score == "log_prob":
                values = torch.log_softmax(logits, dim=1).gather(1, index)
            else:
                values = logits.gather(1, index)
            out.append(values[:, 0])
    return torch.cat(out) if out else images.new_zeros(0)


#: Which class a faithfulness metric scores (``score_target``): the explained class (the
#: ``targets`` argument) or the class the model predicts on the clean image. RISE
#: (``evaluation.py:61-62,86,130``) and the ReScience SCOUTER reproduction score the clean
#: argmax; FACT-2022 scores the predicted class with its map, also for negative models.
SCORE_TARGETS: tuple[str, ...] = ("explained", "predicted")


def scored_classes(model: nn.Module, images: torch.Tensor, targets: torch.Tensor, score_target: str, *,
                   batch_size: int = DEFAULT_BATCH_SIZE) -> torch.Tensor:
    """The ``B`` classes a faithfulness metric scores: ``targets`` (``"explained"``) or the argmax
    of the model's logits on ``images`` (``"predicted"``). The model must be in eval mode."""
    if score_target not in SCORE_TARGETS:
        raise ValueError(f"unknown score_target {score_target!r}; valid: {', '.join(SCORE_TARGETS)}")
    if score_target == "explained":
        return targets
    out = []
    with torch.no_grad():
        for start in range(0, images.shape[0], batch_size):
            out.append(logits_of(model, images[start:start + batch_size]).float().argmax(dim=1))
    return torch.cat(out).to(targets.device) if out else targets
