"""Prototype pruning (ProtoPNet, Sec. 2.5 and its prune.py): drop prototype j when fewer than τ
of the k training images nearest to it belong to its class.

"Nearest images" as the original's ``find_k_nearest_patches_to_prototypes``: each image
contributes its closest patch (its min distance d_j(x), eq. (2) of the model), and the k images
with the smallest d_j are kept. Here that is one batched pass over the push set collecting the
N×P matrix of min distances, then a top-k per prototype — no per-prototype heaps.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import torch

from ..models.heads.prototype import PrototypeNet
from ..models.registry import create_model

#: The paper's defaults: k = 6 nearest images, prune when fewer than τ = 3 share the class.
PRUNE_K, PRUNE_TAU = 6, 3


@dataclass
class PruneResult:
    """Which prototypes stay, and why: ``own_class_counts[j]`` of prototype j's ``k`` nearest images
    are of its class; ``nearest_labels`` is P×k (nearest first)."""

    keep: list[int]
    pruned: list[int]
    own_class_counts: list[int]
    nearest_labels: list[list[int]]
    k: int
    tau: int

    def to_json(self) -> dict:
        return {"k": self.k, "tau": self.tau, "kept": self.keep, "pruned": self.pruned,
                "own_class_counts": self.own_class_counts, "nearest_labels": self.nearest_labels}


@torch.no_grad()
def nearest_image_labels(model: PrototypeNet, loader, k: int = PRUNE_K) -> torch.Tensor:
    """P×k labels of the k images whose closest patch is nearest to each prototype."""
    was_training = model.training
    model.eval()
    distance_batches: list[torch.Tensor] = []
    label_batches: list[torch.Tensor] = []
    try:
        for batch in loader:
            if "image" not in batch:
                continue
            out = model(batch["image"].to(next(model.parameters()).device))
            distance_batches.append(out.extras["min_distances"].float().cpu())
            label_batches.append(batch["label"].cpu())
    finally:
        model.train(was_training)
    if not distance_batches:
        raise ValueError("the pruning set is empty: give the training data the model was pushed on")
    distances, labels = torch.cat(distance_batches), torch.cat(label_batches)
    if distances.shape[0] < k:
        raise ValueError(f"pruning needs at least k={k} images, the set has {distances.shape[0]}; lower --k")
    nearest = distances.topk(k, dim=0, largest=False).indices      # k×P, nearest first
    return labels[nearest].t()


def find_prunable(model: PrototypeNet, loader, *, k: int = PRUNE_K, tau: int = PRUNE_TAU) -> PruneResult:
    """Prototype j is pruned when fewer than ``tau`` of its ``k`` nearest images are of its class."""
    if not 1 <= tau <= k:
        raise ValueError(f"--tau must be between 1 and --k ({k}), got {tau}")
    nearest = nearest_image_labels(model, loader, k)
    own = model.prototype_class_identity.argmax(dim=1).cpu()
    counts = (nearest == own[:, None]).sum(dim=1)
    keep = [j for j in range(len(own)) if counts[j] >= tau]
    pruned = [j for j in range(len(own)) if counts[j] < tau]
    return PruneResult(keep, pruned, counts.tolist(), nearest.tolist(), k, tau)


def pruned_model(model: PrototypeNet, keep: list[int]) -> PrototypeNet:
    """A new model with only the prototypes ``keep`` (their vectors and last-layer columns), the
    class of each recorded in ``prototype_classes``; everything else copied."""
    if not keep:
        raise ValueError("pruning would remove every prototype; raise --k or lower --tau")
    config = {key: value for key, value in model.config.items() if key not in ("name", "num_classes", "backbone")}
    own = model.prototype_class_identity.argmax(dim=1)
    config.update(num_prototypes=len(keep), prototype_classes=own[keep].tolist())
    new = cast(PrototypeNet, create_model(model.config["name"], num_classes=model.num_classes,
                                          backbone=model.config["backbone"], pretrained=False, **config))
    state = model.state_dict()
    state["prototypes"] = state["prototypes"][keep]
    state["last_layer.weight"] = state["last_layer.weight"][:, keep]
    new.load_state_dict(state)
    return new


#: ProtoPNet's run_pruning.py:136-155: after pruning, the last layer trains 100 epochs with Adam 1e-4.
PRUNE_LAST_LAYER_EPOCHS, PRUNE_LAST_LAYER_LR = 100, 1e-4


def retrain_last_layer(model: PrototypeNet, loader, *, epochs: int = PRUNE_LAST_LAYER_EPOCHS,
                       lr: float = PRUNE_LAST_LAYER_LR) -> list[float]:
    """Train only ``model.last_layer`` for ``epochs`` epochs (Adam ``lr``) with the model's own loss
    in its last-layer stage (ProtoPNet: CE + 0.8 Clst − 0.08 Sep + 1e-4 L1), as run_pruning.py does
    after pruning; returns the mean loss of each epoch. The rest of the model stays in eval mode."""
    params = list(model.last_layer.parameters())
    optimizer = torch.optim.Adam(params, lr=lr)
    trainable = {id(p) for p in params}
    flags = {name: p.requires_grad for name, p in model.named_parameters()}
    for p in model.parameters():
        p.requires_grad_(id(p) in trainable)
    stage, was_training = model.stage, model.training
    model.eval()
    model.stage = "last"
    losses = []
    try:
        for _ in range(epochs):
            total, count = 0.0, 0
            for batch in loader:
                if "image" not in batch:
                    continue
                out = model(batch["image"])
                loss = model.compute_loss(out, batch["label"], batch=batch)["loss"]
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                total, count = total + loss.item() * len(batch["label"]), count + len(batch["label"])
            losses.append(total / max(count, 1))
    finally:
        model.stage = stage
        model.train(was_training)
        for name, p in model.named_parameters():
            p.requires_grad_(flags[name])
    return losses
