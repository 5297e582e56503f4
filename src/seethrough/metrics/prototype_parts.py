"""Prototype localization: does a pushed prototype show an evidence part?

A prototype model's explanation is "this looks like that" (ProtoPNet, Chen et al., NeurIPS 2019,
Sec. 2.2): after the push, prototype ``j`` *is* a patch of one training image, and ProtoPNet shows
it as the high-activation box ``B_j`` of its similarity map on that image (the 95th-percentile
crop, :func:`seethrough.prototypes.gallery.high_activation_box`). On data whose parts are known
(:class:`~seethrough.data.interventions.PartInterventions` of the source images, one row per
prototype) the box can be checked against the parts, with FunnyBirds' 5×5 dilation of a mask
(``dilate₅``, as :func:`~seethrough.metrics.parts.part_importance`):

    overlap_j(role) = |B_j ∩ ⋃_{p : role(p) = role} dilate₅(M_p)| / |B_j|
    on_evidence_j   = [ overlap_j(evidence) ≥ min_overlap ]

and the model's score is the share of its prototypes on evidence, mean_j on_evidence_j. Its
chance level is the same test for the same box placed uniformly at random in the same image —
:func:`chance_on_evidence`, exact (every position counted), so a model whose prototypes sit on
evidence no more often than boxes thrown at the image scores at its chance level.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..data.interventions import PART_ROLES, PartInterventions
from .parts import PART_DILATION

#: A prototype is on a role's parts when at least this share of its box lies on them.
MIN_OVERLAP = 0.5


def _check_boxes(boxes: torch.Tensor, parts: PartInterventions) -> torch.Tensor:
    boxes = torch.as_tensor(boxes, dtype=torch.long)
    height, width = parts.masks.shape[-2:]
    if boxes.ndim != 2 or boxes.shape[1] != 4 or boxes.shape[0] != parts.masks.shape[0]:
        raise ValueError(f"expected one xyxy box per prototype ({parts.masks.shape[0]}×4), "
                         f"got shape {tuple(boxes.shape)}")
    x0, y0, x1, y1 = boxes.unbind(1)
    if bool(((x0 < 0) | (y0 < 0) | (x1 > width) | (y1 > height) | (x1 <= x0) | (y1 <= y0)).any()):
        raise ValueError(f"boxes must be non-empty xyxy pixel boxes (x1/y1 exclusive) inside the "
                         f"{height}×{width} source images, got {boxes.tolist()}")
    return boxes


def role_masks(parts: PartInterventions, role: str, *, dilation: int = PART_DILATION) -> torch.Tensor:
    """``B×H×W`` bool: the union of every ``role`` part's mask, dilated by a ``dilation``² max-pool."""
    if dilation < 1 or dilation % 2 == 0:
        raise ValueError(f"dilation must be a positive odd number of pixels, got {dilation}")
    chosen = (parts.masks & parts.role_mask(role)[:, :, None, None]).any(dim=1).float()
    if dilation > 1:
        chosen = F.max_pool2d(chosen[:, None], dilation, stride=1, padding=dilation // 2)[:, 0]
    return chosen > 0


def box_overlap(boxes: torch.Tensor, parts: PartInterventions, *,
                dilation: int = PART_DILATION) -> dict[str, torch.Tensor]:
    """role → ``N``: the share of each box's pixels on that role's (dilated) parts, and
    ``"background"``: on none of them."""
    boxes = _check_boxes(boxes, parts)
    shares: dict[str, torch.Tensor] = {}
    anywhere = torch.zeros(parts.masks.shape[0], *parts.masks.shape[-2:], dtype=torch.bool)
    for role in PART_ROLES:
        mask = role_masks(parts, role, dilation=dilation)
        anywhere |= mask
        shares[role] = _inside_share(mask, boxes)
    shares["background"] = _inside_share(~anywhere, boxes)
    return shares


def prototype_on_evidence(boxes: torch.Tensor, parts: PartInterventions, *, dilation: int = PART_DILATION,
                          min_overlap: float = MIN_OVERLAP) -> torch.Tensor:
    """``N`` float, 1 where prototype ``j``'s box (row ``j`` of ``boxes``, xyxy pixels, x1/y1
    exclusive, on its source image = row ``j`` of ``parts``) lies on evidence (module docstring)."""
    _check_overlap(min_overlap)
    return (box_overlap(boxes, parts, dilation=dilation)["evidence"] >= min_overlap).float()


def chance_on_evidence(boxes: torch.Tensor, parts: PartInterventions, *, dilation: int = PART_DILATION,
                       min_overlap: float = MIN_OVERLAP) -> torch.Tensor:
    """``N`` float: the probability that box ``j``, placed uniformly at random (every position
    where it fits) in its source image, is on evidence — :func:`prototype_on_evidence`'s chance."""
    _check_overlap(min_overlap)
    boxes = _check_boxes(boxes, parts)
    evidence = role_masks(parts, "evidence", dilation=dilation).float()
    chance = torch.empty(boxes.shape[0])
    for j, (x0, y0, x1, y1) in enumerate(boxes.tolist()):
        shares = F.avg_pool2d(evidence[j][None, None], (y1 - y0, x1 - x0), stride=1)
        chance[j] = (shares >= min_overlap).float().mean()
    return chance


def _inside_share(mask: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    return torch.stack([mask[j, y0:y1, x0:x1].float().mean() for j, (x0, y0, x1, y1) in enumerate(boxes.tolist())])


def _check_overlap(min_overlap: float) -> None:
    if not 0.0 < min_overlap <= 1.0:
        raise ValueError(f"min_overlap must be in (0, 1], got {min_overlap}")


__all__ = ["MIN_OVERLAP", "box_overlap", "chance_on_evidence", "prototype_on_evidence", "role_masks"]
