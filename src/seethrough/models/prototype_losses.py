"""Training losses of ProtoPNet and LVW (see :mod:`.heads.prototype` for the model's equations).

With min distances d_j (B×P), labels y and the P×C class identity I of the prototypes,
``d_max`` = the latent dimension D (the largest squared distance inside [0, 1]^D)::

    Clst = mean_i ( d_max − max_j (d_max − d_ij) · I[j, y_i] )      cluster: nearest own-class prototype
    Sep  = mean_i ( d_max − max_j (d_max − d_ij) · (1 − I[j, y_i]) ) separation: nearest other-class one
    L1   = Σ_{c,j} |w_cj| · (1 − I[j, c])                            masked: wrong-class connections only

(ProtoPNet's train_and_test.py: the max over masked (d_max − d) is its masked minimum.) ProtoPNet's
stage loss is CE + 0.8·Clst − 0.08·Sep + 1e-4·L1. LVW's released code uses the class-agnostic
cluster cost mean_i min_j d_ij, no separation, the unmasked L1 Σ|w|, and adds the attention
alignment (joint and last-layer stages, not warm-up)::

    Â   = normalize( max_{k ∈ top-K words by smallest d} upsample(g_k) )   per image, ÷ its max
    Aln = MSE(Â, G)                                                       G: the base model's Grad-CAM

for L = CE + 0.8·Clst + 1e-4·L1 + 10·Aln.
"""
from __future__ import annotations

from typing import Any, Protocol

import torch
from torch import nn
from torch.nn import functional as F

from .output import ModelOutput


class PrototypeModel(Protocol):
    """What the losses read of a prototype model (``models.heads.prototype.PrototypeNet``)."""

    config: dict[str, Any]
    prototype_class_identity: torch.Tensor
    last_layer: nn.Linear
    stage: str

#: Default loss weights per model (the papers' / released code's).
PROTOTYPE_LOSS_DEFAULTS: dict[str, dict[str, float]] = {
    "protopnet": {"ce": 1.0, "cluster": 0.8, "separation": 0.08, "l1": 1e-4},
    "lvw": {"ce": 1.0, "cluster": 0.8, "l1": 1e-4, "alignment": 10.0},
}
#: LVW aligns the pixel-wise max over its K most activated words.
ALIGNMENT_TOP_K = 10
#: ``alignment_upsample`` values (see :func:`alignment_map`) and LVW's epsilon in ÷ (max + ε).
ALIGNMENT_UPSAMPLES = ("original", "half_pixel")
LVW_PEAK_EPSILON = 1e-5
#: Key of the base model's Grad-CAM map (B×H×W in [0, 1]) in a training batch.
ATTENTION_TARGET_KEY = "attention_map"
#: Stages whose loss includes LVW's alignment (not the warm-up).
ALIGNED_STAGES = ("joint", "last")


def cluster_cost(min_distances: torch.Tensor, own: torch.Tensor, max_distance: float) -> torch.Tensor:
    """Clst (class-specific) with ``own`` the B×P mask of each sample's class prototypes; the
    same formula with the complement mask is Sep."""
    inverted = ((max_distance - min_distances) * own).max(dim=1).values
    return (max_distance - inverted).mean()


def class_agnostic_cluster_cost(min_distances: torch.Tensor) -> torch.Tensor:
    """LVW's cluster cost: mean over images of the smallest distance over all words."""
    return min_distances.min(dim=1).values.mean()


def l1_cost(weight: torch.Tensor, identity: torch.Tensor | None) -> torch.Tensor:
    """Σ |w| over wrong-class connections (``identity`` P×C), or over all of them (``None``)."""
    if identity is None:
        return weight.abs().sum()
    return (weight * (1 - identity.t())).abs().sum()


def alignment_map(similarity_maps: torch.Tensor, min_distances: torch.Tensor, size: tuple[int, int],
                  top_k: int = ALIGNMENT_TOP_K, upsample: str = "original") -> torch.Tensor:
    """Â: the K words with the smallest distance, their similarity maps upsampled (bilinear) to
    ``size``, pixel-wise max, divided by each image's max. B×H×W.

    ``upsample="original"`` is LVW's train_and_test.py:117,120 (``align_corners=True``, ÷ (max +
    1e-5)); ``"half_pixel"`` uses ``align_corners=False`` and ÷ max (pixel centres as everywhere
    else in seethrough)."""
    k = min(top_k, min_distances.shape[1])
    index = min_distances.topk(k, dim=1, largest=False).indices
    chosen = similarity_maps.gather(1, index[:, :, None, None].expand(-1, -1, *similarity_maps.shape[-2:]))
    original = upsample == "original"
    fused = F.interpolate(chosen, size=size, mode="bilinear", align_corners=original).max(dim=1).values
    peak = fused.flatten(1).max(dim=1).values
    peak = peak + LVW_PEAK_EPSILON if original else peak.clamp_min(torch.finfo(fused.dtype).tiny)
    return fused / peak[:, None, None]


def alignment_loss(similarity_maps: torch.Tensor, min_distances: torch.Tensor, target: torch.Tensor,
                   top_k: int = ALIGNMENT_TOP_K, upsample: str = "original") -> torch.Tensor:
    """Aln = MSE(Â, G); zero when the fused word map equals the Grad-CAM map."""
    size = (target.shape[-2], target.shape[-1])
    return F.mse_loss(alignment_map(similarity_maps, min_distances, size, top_k, upsample),
                      target)


def prototype_loss(model: PrototypeModel, output: ModelOutput, labels: torch.Tensor, *,
                   batch: dict | None = None) -> dict[str, torch.Tensor]:
    """Every term, weighted by ``model.config["loss_weights"]``; ``"loss"`` is their sum."""
    weights = model.config["loss_weights"]
    min_distances = output.extras["min_distances"].float()
    identity = model.prototype_class_identity
    ce = F.cross_entropy(output.logits.float(), labels)
    terms = {"ce": ce}
    if model.config["class_specific"]:
        own = identity[:, labels].t()
        max_distance = float(model.config["prototype_dim"])
        terms["cluster"] = cluster_cost(min_distances, own, max_distance)
        terms["separation"] = cluster_cost(min_distances, 1 - own, max_distance)
        terms["l1"] = l1_cost(model.last_layer.weight, identity)
    else:
        terms["cluster"] = class_agnostic_cluster_cost(min_distances)
        terms["l1"] = l1_cost(model.last_layer.weight, None)
    if "alignment" in weights and model.stage in ALIGNED_STAGES:
        target = (batch or {}).get(ATTENTION_TARGET_KEY)
        if target is None:
            raise ValueError(f"model {model.config['name']!r} aligns its words with the base model's Grad-CAM maps "
                             f"in the {model.stage} stage, but the batch has no {ATTENTION_TARGET_KEY!r}; "
                             "give the maps "
                             "(see the README's LVW section) or set loss_weights alignment=0")
        terms["alignment"] = alignment_loss(output.extras["prototype_similarity"].float(), min_distances,
                                            target.float(), int(model.config.get("top_k", ALIGNMENT_TOP_K)),
                                            model.config.get("alignment_upsample", "original"))
    signs = {"separation": -1.0}
    loss = sum(signs.get(name, 1.0) * weights.get(name, 0.0) * value for name, value in terms.items())
    return {"loss": loss, **terms}
