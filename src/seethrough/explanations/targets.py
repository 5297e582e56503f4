"""Which classes to explain: ground truth, predicted, least likely or an explicit list.

SCOUTER's official ``test.py`` explains the ground-truth class (and ``label + 1`` for the
negative model); the FACT-2022 reproduction explains the argmax (positive) or the argmin
(negative) of the logits. Every choice is a policy here, so a metric or a picture can
record which one it used.
"""
from __future__ import annotations

from typing import Sequence

import torch

#: Valid values of ``policy``. "topk" is an alias of "pred".
POLICIES: tuple[str, ...] = ("gt", "pred", "least", "topk", "explicit")


def select_classes(
    logits: torch.Tensor,
    policy: str,
    *,
    k: int = 1,
    labels: torch.Tensor | Sequence[int] | None = None,
    indices: Sequence[int] | torch.Tensor | None = None,
) -> torch.Tensor:
    """Class indices to explain for every image, as a ``B×K`` LongTensor.

    Args:
        logits: ``B×C`` class scores.
        policy: one of :data:`POLICIES`:

            - ``"gt"``: the ground-truth class (``labels``, length ``B``); ``K = 1``, ``k`` ignored.
            - ``"pred"`` / ``"topk"``: the ``k`` highest logits, most likely first.
            - ``"least"``: the ``k`` lowest logits, least likely first.
            - ``"explicit"``: the same distinct ``indices`` for every image, in the given order;
              ``K = len(indices)``, ``k`` ignored.
        k: how many classes for "pred", "topk" and "least" (``1 <= k <= C``).
        labels: ground-truth class per image, required by "gt".
        indices: class indices, required by "explicit".

    Raises:
        ValueError: unknown policy, missing ``labels``/``indices``, ``k`` or an index out of range.
    """
    if logits.ndim != 2:
        raise ValueError(f"expected logits of shape B×C, got {tuple(logits.shape)}")
    batch, num_classes = logits.shape
    device = logits.device
    if policy == "gt":
        if labels is None:
            raise ValueError('policy "gt" explains the ground-truth class and needs labels=')
        labels = torch.as_tensor(labels, dtype=torch.long, device=device).reshape(-1)
        if labels.numel() != batch:
            raise ValueError(f"got {labels.numel()} labels for a batch of {batch} images")
        _check_range(labels, num_classes, what="label")
        return labels[:, None]
    if policy in ("pred", "topk", "least"):
        if not 1 <= k <= num_classes:
            raise ValueError(f"k must be between 1 and the class count {num_classes}, got {k}")
        largest = policy != "least"
        return torch.topk(logits, k, dim=1, largest=largest, sorted=True).indices
    if policy == "explicit":
        if indices is None:
            raise ValueError('policy "explicit" needs indices= (a list of class indices)')
        chosen = torch.as_tensor(indices, dtype=torch.long, device=device).reshape(-1)
        if chosen.numel() == 0:
            raise ValueError('policy "explicit" needs at least one class index')
        _check_range(chosen, num_classes, what="class index")
        if chosen.unique().numel() != chosen.numel():
            raise ValueError(f"explicit class indices must be distinct, got {chosen.tolist()}")
        return chosen[None, :].expand(batch, -1).clone()
    raise ValueError(f"unknown class policy {policy!r}; valid policies: {', '.join(POLICIES)}")


def _check_range(values: torch.Tensor, num_classes: int, *, what: str) -> None:
    """Raise a ValueError naming the first value outside ``[0, num_classes)``."""
    bad = (values < 0) | (values >= num_classes)
    if bool(bad.any()):
        first = int(values[bad][0])
        raise ValueError(
            f"{what} {first} is out of range for a model with {num_classes} classes "
            f"(valid: 0..{num_classes - 1})"
        )
