"""Part metrics: does an explanation point at the parts the model *causally* uses?

FunnyBirds' protocols (Hesse, Schaub-Meyer & Roth, "FunnyBirds: a synthetic vision dataset for
a part-based analysis of explainable AI methods", ICCV 2023; ``visinf/funnybirds-framework``,
``evaluation_protocols.py`` and ``explainers/explainer_wrapper.py``) on data whose parts can be
removed: the built-in synthetic data, through :class:`~seethrough.data.interventions.PartInterventions`
(``parts=``). For a map ``m`` and part masks ``M_p``:

    importance_p = Σ_{x} m(x) · dilate₅(M_p)(x)                 (the wrapper's get_part_importance)
    important(t) = { p : importance_p > t · Σ_x m(x) },  t ∈ linspace(0.01, 0.5, 80)

(``dilate₅``: a 5×5 max-pool, FunnyBirds' ``MaxPool2d(5, 1, 2)``), and with ``s_c(x)`` the
model's score of class ``c`` (its logit, as FunnyBirds):

- :func:`controlled_synthetic_data_check` (completeness): |evidence ∩ important(t)| / |evidence|,
  on correctly classified samples — the evidence parts are the one minimal sufficient set;
- :func:`preservation_check` (completeness): the prediction is unchanged when every part *not*
  important(t) is removed;
- :func:`deletion_check` (completeness): the prediction changes when the important(t) parts are removed;
- :func:`distractibility` (completeness): 1 − |important(t) ∩ irrelevant| / |irrelevant|, where a part
  is irrelevant when removing it alone changes ``s_c`` by less than 5 % of ``|s_c(x)|`` or raises it;
- :func:`single_deletion` (correctness): Spearman ρ between importance_p and the drop
  ``s_c(x) − s_c(x without p)``, reported as (ρ + 1) / 2;
- :func:`target_sensitivity` (contrastivity): for two classes that each share a different evidence
  part with the image, each class's explanation gives more importance to the part it shares;
- :func:`background_independence` (a model property): the score does not drop by 5 % or more when
  the background is replaced (same parts).

Threshold metrics are the mean over thresholds, as FunnyBirds reports them. Every function returns
one value per sample and NaN where the protocol is undefined for it (a misclassified sample for
the controlled check, no irrelevant part, a constant ranking, no pair of classes to contrast).
"""
from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..core.calls import eval_mode, logits_of
from ..core.inputs import check_maps
from ..core.scoring import SCORES
from ..data.interventions import PartInterventions
from ..data.synthetic import PARTS
from .robustness import make_explainer

#: FunnyBirds' thresholds ``t`` of the important-part sets (``get_p_thresholds``).
THRESHOLDS: tuple[float, ...] = tuple(float(t) for t in np.linspace(0.01, 0.50, num=80))
#: Side of FunnyBirds' max-pool dilation of a part mask before summing the map over it.
PART_DILATION = 5
#: A part (or the background) matters when removing it changes the score by this share of |s_c(x)|.
RELEVANCE_SHARE = 0.05
#: The score FunnyBirds compares: the target's logit.
DEFAULT_SCORE = "logit"


def part_importance(maps: torch.Tensor, parts: PartInterventions, *, dilation: int = PART_DILATION) -> torch.Tensor:
    """``B×P``: the map summed over each part's mask dilated by a ``dilation``×``dilation``
    max-pool (NaN in empty slots)."""
    if dilation < 1 or dilation % 2 == 0:
        raise ValueError(f"dilation must be a positive odd number of pixels, got {dilation}")
    masks = parts.masks.to(maps.device).float()
    if masks.shape[-2:] != maps.shape[-2:] or masks.shape[0] != maps.shape[0]:
        raise ValueError(f"part masks of shape {tuple(masks.shape)} do not match maps {tuple(maps.shape)}")
    dilated = F.max_pool2d(masks, dilation, stride=1, padding=dilation // 2) if dilation > 1 else masks
    importance = (dilated * maps[:, None].float()).sum(dim=(-2, -1))
    return torch.where(parts.valid.to(maps.device), importance, torch.full_like(importance, math.nan))


def important_parts(maps: torch.Tensor, importance: torch.Tensor, valid: torch.Tensor,
                    thresholds: Sequence[float] = THRESHOLDS) -> torch.Tensor:
    """``T×B×P`` bool: important(t) for every threshold (see the module docstring)."""
    total = maps.float().sum(dim=(-2, -1))                                        # B
    t = torch.as_tensor(list(thresholds), dtype=importance.dtype, device=importance.device)
    return (importance[None] > t[:, None, None] * total[None, :, None]) & valid[None].to(importance.device)


def controlled_synthetic_data_check(model: nn.Module | None, images: torch.Tensor, maps: torch.Tensor,
                                    targets: torch.Tensor, *, parts: PartInterventions,
                                    thresholds: Sequence[float] = THRESHOLDS,
                                    dilation: int = PART_DILATION) -> torch.Tensor:
    """Mean over ``t`` of |evidence ∩ important(t)| / |evidence|; NaN when the model does not
    predict the label (FunnyBirds scores correctly classified samples only) or ``model`` is None
    and ``targets`` differ from the labels."""
    maps, finite = check_maps(maps, images)
    importance = part_importance(maps, parts, dilation=dilation)
    chosen = important_parts(maps, importance, parts.valid, thresholds)
    evidence = parts.role_mask("evidence").to(maps.device)
    found = (chosen & evidence[None]).sum(-1).float() / evidence.sum(-1).clamp(min=1)[None]
    values = found.mean(0)
    correct = _predicted(model, images, targets) == parts.labels.to(maps.device)
    return _nan_where(values, ~finite | ~correct | (evidence.sum(-1) == 0))


def preservation_check(model: nn.Module, images: torch.Tensor, maps: torch.Tensor, targets: torch.Tensor, *,
                       parts: PartInterventions, thresholds: Sequence[float] = THRESHOLDS,
                       dilation: int = PART_DILATION) -> torch.Tensor:
    """Mean over ``t`` of [prediction unchanged when every part not important(t) is removed]."""
    return _threshold_check(model, images, maps, parts, thresholds, dilation, keep_important=True)


def deletion_check(model: nn.Module, images: torch.Tensor, maps: torch.Tensor, targets: torch.Tensor, *,
                   parts: PartInterventions, thresholds: Sequence[float] = THRESHOLDS,
                   dilation: int = PART_DILATION) -> torch.Tensor:
    """Mean over ``t`` of [prediction changed when the important(t) parts are removed]."""
    return _threshold_check(model, images, maps, parts, thresholds, dilation, keep_important=False)


def distractibility(model: nn.Module, images: torch.Tensor, maps: torch.Tensor, targets: torch.Tensor, *,
                    parts: PartInterventions, thresholds: Sequence[float] = THRESHOLDS,
                    dilation: int = PART_DILATION, relevance_share: float = RELEVANCE_SHARE,
                    score: str = DEFAULT_SCORE) -> torch.Tensor:
    """1 − mean over ``t`` of |important(t) ∩ irrelevant| / |irrelevant|; NaN without irrelevant parts."""
    maps, finite = check_maps(maps, images)
    drops, original = _single_part_drops(model, parts, targets.to(maps.device), score)
    small = drops.abs() < relevance_share * original.abs()[:, None]
    irrelevant = (small | (drops < 0)) & parts.valid.to(drops.device)
    chosen = important_parts(maps, part_importance(maps, parts, dilation=dilation), parts.valid, thresholds)
    share = (chosen & irrelevant[None]).sum(-1).float() / irrelevant.sum(-1).clamp(min=1)[None]
    return _nan_where(1 - share.mean(0), ~finite | (irrelevant.sum(-1) == 0))


def single_deletion(model: nn.Module, images: torch.Tensor, maps: torch.Tensor, targets: torch.Tensor, *,
                    parts: PartInterventions, dilation: int = PART_DILATION,
                    score: str = DEFAULT_SCORE) -> torch.Tensor:
    """(ρ + 1) / 2 of the Spearman correlation between part importance and the score drop when
    that part alone is removed; NaN with fewer than two parts or a constant side."""
    maps, finite = check_maps(maps, images)
    importance = part_importance(maps, parts, dilation=dilation)
    drops, _ = _single_part_drops(model, parts, targets.to(maps.device), score)
    values = torch.tensor([_spearman(importance[b][parts.valid[b]], drops[b][parts.valid[b].to(drops.device)])
                           for b in range(maps.shape[0])], device=maps.device)
    return _nan_where((values + 1) / 2, ~finite)


def target_sensitivity(model: nn.Module, images: torch.Tensor, maps: torch.Tensor, targets: torch.Tensor, *,
                       parts: PartInterventions, explainer: str | Callable[..., torch.Tensor] = "native",
                       explain_options: dict[str, Any] | None = None, dilation: int = PART_DILATION,
                       score: str = DEFAULT_SCORE) -> torch.Tensor:
    """Contrastivity: for classes ``c₁`` (sharing evidence part ``a`` with the image's class, not
    ``b``) and ``c₂`` (sharing ``b``, not ``a``), the share of the two comparisons
    importance_{c₁}(a) > importance_{c₂}(a) and importance_{c₂}(b) > importance_{c₁}(b) that hold.

    As FunnyBirds, a sample counts only when the model agrees: removing ``a`` lowers ``s_{c₁}``
    more than removing ``b``, and removing ``b`` lowers ``s_{c₂}`` more than removing ``a``. NaN
    when no such pair of classes exists (single-part classes) or the model disagrees.
    ``explainer``: a registered name (with ``explain_options``) or ``fn(model, images, classes) ->
    B×H×W`` — it explains the two contrast classes (``maps`` are not used).
    """
    explain_fn = make_explainer(explainer, explain_options)
    device = images.device
    batch = images.shape[0]
    values = torch.full((batch,), math.nan, device=device)
    found = [(b, pair) for b in range(batch) if (pair := _contrast_classes(parts, b)) is not None]
    if not found:
        return values
    rows = [b for b, _ in found]
    class1 = torch.tensor([pair[0] for _, pair in found], device=device)
    class2 = torch.tensor([pair[1] for _, pair in found], device=device)
    slot_a = torch.tensor([pair[2] for _, pair in found])
    slot_b = torch.tensor([pair[3] for _, pair in found])
    sub = parts.subset(rows)
    drop_a = torch.zeros_like(sub.valid)
    drop_a[torch.arange(len(rows)), slot_a] = True
    drop_b = torch.zeros_like(sub.valid)
    drop_b[torch.arange(len(rows)), slot_b] = True
    x = images[rows]
    with eval_mode(model):
        logits = [sub.removed_logits(model, drop, device) for drop in (torch.zeros_like(drop_a), drop_a, drop_b)]
    s1 = [_score(values, class1, score) for values in logits]
    s2 = [_score(values, class2, score) for values in logits]
    agrees = (s1[1] - s1[0] < s1[2] - s1[0]) & (s2[2] - s2[0] < s2[1] - s2[0])
    imp1 = part_importance(explain_fn(model, x, class1), sub, dilation=dilation)
    imp2 = part_importance(explain_fn(model, x, class2), sub, dilation=dilation)
    index = torch.arange(len(rows), device=imp1.device)
    a1, a2 = imp1[index, slot_a.to(imp1.device)], imp2[index, slot_a.to(imp1.device)]
    b1, b2 = imp1[index, slot_b.to(imp1.device)], imp2[index, slot_b.to(imp1.device)]
    hits = ((a1 > a2).float() + (b2 > b1).float()) / 2
    values[torch.tensor(rows, device=device)] = torch.where(agrees.to(device), hits.to(device),
                                                            torch.full_like(hits.to(device), math.nan))
    return values


def background_independence(model: nn.Module, images: torch.Tensor, maps: torch.Tensor | None,
                            targets: torch.Tensor, *, parts: PartInterventions, variants: int = 1,
                            relevance_share: float = RELEVANCE_SHARE, score: str = DEFAULT_SCORE) -> torch.Tensor:
    """Share of ``variants`` replaced backgrounds (same parts) that do not lower ``s_c`` by
    ``relevance_share`` of ``|s_c(x)|`` or more (1 = the model ignores the background)."""
    if variants < 1:
        raise ValueError(f"variants must be at least 1, got {variants}")
    if score not in SCORES:
        raise ValueError(f"unknown score {score!r}; valid: {', '.join(SCORES)}")
    targets = targets.to(images.device)
    with eval_mode(model):
        original = _score(parts.removed_logits(model, torch.zeros_like(parts.valid), images.device), targets, score)
        kept = torch.zeros_like(original)
        for variant in range(variants):
            replaced = _score(parts.background_logits(model, variant, images.device), targets, score)
            drop = original - replaced
            kept += ~((drop.abs() >= relevance_share * original.abs()) & (drop > 0))
    return kept / variants


# ------------------------------------------------------------------------------------------- helpers
def _predicted(model: nn.Module | None, images: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    if model is None:
        return targets.to(images.device)
    with torch.no_grad(), eval_mode(model):
        return logits_of(model, images).argmax(1)


def _threshold_check(model: nn.Module, images: torch.Tensor, maps: torch.Tensor, parts: PartInterventions,
                     thresholds: Sequence[float], dilation: int, *, keep_important: bool) -> torch.Tensor:
    """Mean over thresholds of [prediction kept (preservation) / changed (deletion)]; each distinct
    removed set of a sample is rendered and scored once (and shared across explainers)."""
    maps, finite = check_maps(maps, images)
    chosen = important_parts(maps, part_importance(maps, parts, dilation=dilation), parts.valid, thresholds)
    valid = parts.valid.to(chosen.device)
    drops = ((valid[None] & ~chosen) if keep_important else chosen).cpu()             # T×B×P parts to remove
    with eval_mode(model):
        before = parts.removed_logits(model, torch.zeros_like(parts.valid), images.device).argmax(1)
        outcome = torch.stack([(parts.removed_logits(model, drops[t], images.device).argmax(1) == before).float()
                               for t in range(drops.shape[0])])                       # T×B: prediction kept
    if not keep_important:
        outcome = 1 - outcome
    return _nan_where(outcome.mean(0), ~finite)


def _single_part_drops(model: nn.Module, parts: PartInterventions, targets: torch.Tensor,
                       score: str) -> tuple[torch.Tensor, torch.Tensor]:
    """``B×P`` score drops s_c(x) − s_c(x without part p) (NaN in empty slots) and ``B`` s_c(x)."""
    if score not in SCORES:
        raise ValueError(f"unknown score {score!r}; valid: {', '.join(SCORES)}")
    device = targets.device
    with eval_mode(model):
        original = _score(parts.removed_logits(model, torch.zeros_like(parts.valid), device), targets, score)
        drops = torch.full(parts.valid.shape, math.nan, device=device)
        for p in range(parts.valid.shape[1]):
            drop = torch.zeros_like(parts.valid)
            drop[:, p] = parts.valid[:, p]
            after = _score(parts.removed_logits(model, drop, device), targets, score)
            drops[:, p] = torch.where(parts.valid[:, p].to(device), original - after, drops[:, p])
    return drops, original


def _score(logits: torch.Tensor, targets: torch.Tensor, score: str) -> torch.Tensor:
    """The ``score`` (:data:`~seethrough.core.scoring.SCORES`) of class ``targets[i]`` in row ``i``."""
    index = targets.to(logits.device)[:, None]
    if score == "prob":
        return torch.softmax(logits, 1).gather(1, index)[:, 0]
    if score == "log_prob":
        return torch.log_softmax(logits, 1).gather(1, index)[:, 0]
    return logits.gather(1, index)[:, 0]


def _contrast_classes(parts: PartInterventions, b: int) -> tuple[int, int, int, int] | None:
    """(c₁, c₂, slot of part a, slot of part b) for sample ``b``, or None (see :func:`target_sensitivity`)."""
    dataset, label = parts.dataset, int(parts.labels[b])
    own = dataset.class_parts[label]
    if len(own) != 2:
        return None
    part_a, part_b = own
    # evidence slots by shape (the two shapes of a class differ; colours may be the shared palette's)
    slot_of = {scene_part.shape: i for i, scene_part in enumerate(parts.scenes[b].parts)
               if scene_part.role == "evidence"}
    shapes = [PARTS[part_a][1], PARTS[part_b][1]]
    if any(shape not in slot_of for shape in shapes):
        return None
    with_a = [c for c, ps in enumerate(dataset.class_parts) if part_a in ps and part_b not in ps]
    with_b = [c for c, ps in enumerate(dataset.class_parts) if part_b in ps and part_a not in ps]
    if not with_a or not with_b:
        return None
    return with_a[0], with_b[0], slot_of[shapes[0]], slot_of[shapes[1]]


def _spearman(x: torch.Tensor, y: torch.Tensor) -> float:
    if x.numel() < 2 or bool(x.eq(x[0]).all()) or bool(y.eq(y[0]).all()):
        return math.nan
    rx, ry = _ranks(x.double().cpu()), _ranks(y.double().cpu())
    rx, ry = rx - rx.mean(), ry - ry.mean()
    return float((rx * ry).sum() / (rx.norm() * ry.norm()))


def _ranks(values: torch.Tensor) -> torch.Tensor:
    """Average ranks (ties share their mean rank), as scipy.stats.rankdata."""
    order = values.argsort()
    ranks = torch.empty_like(values)
    ranks[order] = torch.arange(1, len(values) + 1, dtype=values.dtype)
    for value in values.unique():
        tied = values == value
        ranks[tied] = ranks[tied].mean()
    return ranks


def _nan_where(values: torch.Tensor, bad: torch.Tensor) -> torch.Tensor:
    return torch.where(bad.to(values.device), torch.full_like(values, math.nan), values)


__all__ = ["THRESHOLDS", "background_independence", "controlled_synthetic_data_check", "deletion_check",
           "distractibility", "part_importance", "preservation_check", "single_deletion", "target_sensitivity"]

