"""The push (projection) step of ProtoPNet (Chen et al., NeurIPS 2019, Sec. 2.2, "Projection of
prototypes") and of Learnable Visual Words (Xiao, Ding, Liu 2022).

Every prototype p_j is replaced by its nearest latent patch over the push set::

    p_j ← argmin_{z ∈ Z_j} ‖z − p_j‖²,   Z_j = { z(x, y) of every image i ∈ push set }        (5)

(the paper's Eq. in Sec. 2.2; distances are Eq. (1) of :mod:`seethrough.models.heads.prototype`).
Class-specific (ProtoPNet): ``Z_j`` only holds the patches of images whose label is the class of
p_j. Class-agnostic (LVW's released code): every image of the push set.

The search is ONE batched tensor pass: per batch, the B×P×h×w distance tensor is reduced to the
per-prototype minimum over (B, h, w) on the device and compared with the running best, so the
cost is a forward pass plus one reduction per batch. The original loops in Python over every
prototype with numpy copies of the whole distance tensor and writes PNGs on every improvement
(see ``benchmarks/push_throughput.py``); pictures are rendered once at the end instead
(:func:`seethrough.prototypes.gallery.render_gallery`), and the per-prototype similarity maps
are not kept here.

Under DDP every rank scans its shard; the per-prototype bests are all-gathered and the winner is
the smallest distance (ties: the smallest dataset index), so every rank sets the same prototypes.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Iterable, cast

import torch
from torch import nn

from ..models.heads.prototype import PrototypeNet, squared_distances

#: Dataset index / position recorded for a prototype that found no patch (class-specific push
#: with no image of its class); such a push is refused before the prototypes change.
NO_PATCH = -1
#: Classes named in the error about classes without images (the rest are counted).
MAX_LISTED_CLASSES = 20
#: Batch keys the push reads (the dataset contract of :mod:`seethrough.data.base`).
IMAGE_KEY, LABEL_KEY, INDEX_KEY = "image", "label", "index"


@dataclass
class PushResult:
    """Where each prototype was pushed: per prototype j (tensors of length P, on the CPU).

    Attributes:
        index: dataset index of the source image (``batch["index"]``, the stable sample id).
        label: label of the source image.
        y, x: latent position of the patch (row, column of the h×w map).
        distance: squared distance (1) between the old prototype and the patch.
        class_specific: whether the search was restricted to each prototype's class.
        num_images: images scanned (over every rank).
        latent_size: (h, w) of the latent map the positions refer to.
    """

    index: torch.Tensor
    label: torch.Tensor
    y: torch.Tensor
    x: torch.Tensor
    distance: torch.Tensor
    class_specific: bool
    num_images: int
    latent_size: tuple[int, int] = field(default=(0, 0))

    @property
    def num_prototypes(self) -> int:
        return int(self.index.numel())

    def to_dict(self) -> dict:
        """Plain lists and numbers, one entry per prototype."""
        return {"class_specific": self.class_specific, "num_images": self.num_images,
                "latent_size": list(self.latent_size),
                "prototypes": [{"prototype": j, "index": int(self.index[j]), "label": int(self.label[j]),
                                "y": int(self.y[j]), "x": int(self.x[j]), "distance": float(self.distance[j])}
                               for j in range(self.num_prototypes)]}

    def to_json(self, path=None) -> str:
        """:meth:`to_dict` as JSON text, also written to ``path`` when given."""
        text = json.dumps(self.to_dict(), indent=2)
        if path is not None:
            from pathlib import Path

            Path(path).parent.mkdir(parents=True, exist_ok=True)
            Path(path).write_text(text)
        return text

    @classmethod
    def from_dict(cls, data: dict) -> "PushResult":
        rows = data["prototypes"]

        def column(key: str, dtype: torch.dtype) -> torch.Tensor:
            return torch.tensor([row[key] for row in rows], dtype=dtype)

        return cls(index=column("index", torch.long), label=column("label", torch.long), y=column("y", torch.long),
                   x=column("x", torch.long), distance=column("distance", torch.float32),
                   class_specific=bool(data["class_specific"]), num_images=int(data["num_images"]),
                   latent_size=tuple(data.get("latent_size", (0, 0))))


class NearestPatchSearch:
    """The running per-prototype minimum of (5), kept on the device.

    :meth:`update` takes one batch's latent map and folds it in with one reduction; the state
    (``distance``, ``vector``, ``index``, ``label``, ``y``, ``x``, ``count``) is what DDP
    all-gathers. A strictly smaller distance wins, so on ties the patch seen first stays.
    """

    def __init__(self, prototypes: torch.Tensor, class_identity: torch.Tensor | None) -> None:
        """``prototypes`` P×D×1×1; ``class_identity`` P×C one-hot for a class-specific search, else None."""
        p, d = prototypes.shape[:2]
        device = prototypes.device
        self.prototypes = prototypes.detach()
        self.prototype_class = None if class_identity is None else class_identity.argmax(dim=1).to(device)
        self.distance = torch.full((p,), float("inf"), device=device)
        self.vector = torch.zeros(p, d, device=device, dtype=prototypes.dtype)
        self.index = torch.full((p,), NO_PATCH, dtype=torch.long, device=device)
        self.label = torch.full((p,), NO_PATCH, dtype=torch.long, device=device)
        self.y = torch.full((p,), NO_PATCH, dtype=torch.long, device=device)
        self.x = torch.full((p,), NO_PATCH, dtype=torch.long, device=device)
        self.count = torch.zeros((), dtype=torch.long, device=device)
        self.nan_batches = torch.zeros((), dtype=torch.long, device=device)
        self.latent_hw = torch.zeros(2, dtype=torch.long, device=device)

    def update(self, latent: torch.Tensor, labels: torch.Tensor, indices: torch.Tensor) -> None:
        """Fold in one batch: ``latent`` B×D×h×w, ``labels`` and dataset ``indices`` of length B."""
        self.update_with_distances(squared_distances(latent, self.prototypes), latent, labels, indices)

    def update_with_distances(self, distances: torch.Tensor, latent: torch.Tensor, labels: torch.Tensor,
                              indices: torch.Tensor) -> None:
        """:meth:`update` with the B×P×h×w distances (1) of ``latent`` already computed."""
        b, _, h, w = latent.shape
        self.latent_hw = torch.tensor([h, w], device=self.latent_hw.device)
        per_image = distances.float().flatten(2)  # B×P×(h·w)
        image_min = per_image.amin(dim=2)  # B×P: each image's nearest patch to each prototype
        if self.prototype_class is not None:  # only images of the prototype's class count
            image_min = image_min.masked_fill(self.prototype_class[None, :] != labels[:, None], float("inf"))
        image = image_min.argmin(dim=0)  # P: the first image holding the batch minimum
        batch_min = image_min.gather(0, image[None]).squeeze(0)
        columns = torch.arange(per_image.shape[1], device=per_image.device)
        pos = per_image[image, columns].argmin(dim=1)  # P: its first position at that minimum
        self.nan_batches += torch.isnan(batch_min).any()
        better = batch_min < self.distance
        row, col = pos // w, pos % w
        self.distance = torch.where(better, batch_min, self.distance)
        self.vector = torch.where(better[:, None], latent[image, :, row, col].to(self.vector.dtype), self.vector)
        self.index = torch.where(better, indices[image], self.index)
        self.label = torch.where(better, labels[image], self.label)
        self.y = torch.where(better, row, self.y)
        self.x = torch.where(better, col, self.x)
        self.count += b

    def state(self) -> dict[str, torch.Tensor]:
        return {"distance": self.distance, "vector": self.vector, "index": self.index, "label": self.label,
                "y": self.y, "x": self.x, "count": self.count.reshape(1),
                "nan_batches": self.nan_batches.reshape(1), "latent_hw": self.latent_hw}

    def merge(self, gathered: dict[str, torch.Tensor]) -> None:
        """Take the best over ranks from ``gathered`` (every state entry with a leading world
        dimension W): the smallest distance, ties broken by the smallest dataset index."""
        distance = gathered["distance"]  # W×P
        best = distance.min(dim=0).values
        candidates = torch.where(distance == best[None], gathered["index"], torch.iinfo(torch.long).max)
        rank = candidates.argmin(dim=0)  # P
        columns = torch.arange(distance.shape[1], device=distance.device)
        for key in ("distance", "index", "label", "y", "x"):
            setattr(self, key, gathered[key][rank, columns])
        self.vector = gathered["vector"][rank, columns]
        self.count = gathered["count"].sum()
        self.nan_batches = gathered["nan_batches"].sum()
        self.latent_hw = gathered["latent_hw"].max(dim=0).values


def push_prototypes(model: nn.Module, loader: Iterable[dict], *, class_specific: bool | None = None,
                    fabric=None) -> PushResult:
    """Move every prototype of ``model`` onto its nearest latent patch of the push set (5).

    Args:
        model: a :class:`~seethrough.models.heads.prototype.PrototypeNet` (ProtoPNet or LVW),
            possibly wrapped by Fabric; it runs in eval mode under ``no_grad`` and its training
            mode is restored afterwards.
        loader: batches of the dataset contract (``"image"``, ``"label"``, ``"index"``): the
            unaugmented training set, normalized as in training (ProtoPNet pushes onto the
            unaugmented train set). Under DDP, each rank's shard.
        class_specific: search only images of each prototype's class (ProtoPNet); default
            ``model.config["class_specific"]`` (False for LVW's shared words).
        fabric: a Lightning Fabric; with ``world_size > 1`` the ranks' results are all-gathered
            and every rank sets the same prototypes.

    Returns:
        :class:`PushResult`; ``model.prototypes`` now holds the found patches (P×D×1×1).

    Raises:
        ValueError: an empty push set, a push set with another class count than the model, NaN
            distances, or (class-specific) classes without any image in the push set. The
            prototypes are unchanged when it raises.
    """
    net = _unwrap(model)
    for attribute in ("latent", "prototypes", "prototype_class_identity"):
        if not hasattr(net, attribute):
            raise TypeError(f"push_prototypes needs a prototype model (ProtoPNet / LVW) with .{attribute}; "
                            f"got {type(net).__name__}")
    if class_specific is None:
        class_specific = bool(net.config.get("class_specific", True))
    num_classes = int(net.prototype_class_identity.shape[1])
    dataset = _base_dataset(loader)
    dataset_classes = getattr(dataset, "num_classes", None)
    if dataset_classes is not None and int(dataset_classes) != num_classes:
        raise ValueError(f"push set {type(dataset).__name__} has {dataset_classes} classes but the model was built "
                         f"for {num_classes}; push with the (unaugmented) training set the model was trained on")

    search = NearestPatchSearch(net.prototypes, net.prototype_class_identity if class_specific else None)
    device, dtype = net.prototypes.device, net.prototypes.dtype
    was_training = net.training
    net.eval()
    try:
        with torch.no_grad():
            for batch in loader:
                if IMAGE_KEY not in batch:  # every sample of the batch was skipped as unreadable
                    continue
                labels = batch[LABEL_KEY]  # checked before the move: no device sync for loaders on the CPU
                if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
                    bad = sorted(set(labels[(labels < 0) | (labels >= num_classes)].tolist()))
                    raise ValueError(f"push set labels {bad[:5]} are outside [0, {num_classes}) for a model of "
                                     f"{num_classes} classes; push with the dataset the model was built for")
                labels = labels.to(device)
                latent = net.latent(batch[IMAGE_KEY].to(device=device, dtype=dtype))
                search.update(latent, labels, batch[INDEX_KEY].to(device))
    finally:
        net.train(was_training)

    if fabric is not None and fabric.world_size > 1:
        search.merge(fabric.all_gather(search.state()))
    _check(search, class_specific, net, dataset)
    with torch.no_grad():
        net.prototypes.data.copy_(search.vector.reshape(net.prototypes.shape).to(dtype))
    return PushResult(index=search.index.cpu(), label=search.label.cpu(), y=search.y.cpu(), x=search.x.cpu(),
                      distance=search.distance.cpu(), class_specific=class_specific,
                      num_images=int(search.count),
                      latent_size=(int(search.latent_hw[0]), int(search.latent_hw[1])))


def _check(search: NearestPatchSearch, class_specific: bool, net: PrototypeNet, dataset) -> None:
    """Refuse an empty push set, NaN distances, and classes without images (class-specific)."""
    if int(search.count) == 0:
        raise ValueError("push set is empty: the loader gave no images (over every rank); push with the "
                         "unaugmented training set")
    if int(search.nan_batches):
        raise ValueError("push: the distances to the prototypes contain NaN (the model's latent or prototypes "
                         "are not finite); the training diverged, resume from an earlier checkpoint")
    missing = torch.isinf(search.distance)
    if not bool(missing.any()):
        return
    classes = sorted(set(net.prototype_class_identity[missing].argmax(dim=1).tolist()))
    names = getattr(dataset, "classes", None)
    listed = ", ".join(f"{c} ({names[c]})" if names and c < len(names) else str(c)
                       for c in classes[:MAX_LISTED_CLASSES])
    if len(classes) > MAX_LISTED_CLASSES:
        listed += f", … ({len(classes) - MAX_LISTED_CLASSES} more)"
    mode = "class-specific " if class_specific else ""
    raise ValueError(f"{mode}push: the push set has no image of {len(classes)} class(es), so their prototypes have "
                     f"no patch to move to: {listed}; push with a set that holds every class (the unaugmented "
                     "training set)" + (", or pass class_specific=False" if class_specific else ""))


def _unwrap(model: nn.Module) -> PrototypeNet:
    """The plain module under Fabric's wrapper and torch.compile (parameters are shared)."""
    for attribute in ("_original_module", "_orig_mod"):
        while hasattr(model, attribute) and isinstance(getattr(model, attribute), nn.Module):
            model = getattr(model, attribute)
    return cast(PrototypeNet, model)


def _base_dataset(loader):
    """The dataset under ``loader`` (through Subset-like ``.dataset`` chains), or None."""
    dataset = getattr(loader, "dataset", None)
    while dataset is not None and not hasattr(dataset, "num_classes") and hasattr(dataset, "dataset"):
        dataset = dataset.dataset
    return dataset
