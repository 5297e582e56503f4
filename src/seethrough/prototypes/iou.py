"""LVW's IoU evaluation: do the model's visual words look where the base model's Grad-CAM looks?

As the original's ``evaluation.py -thr T``: per image the 10 words with the largest similarity
(smallest distance), their similarity maps upsampled with bicubic interpolation to the image
size, the pixel-wise max, min-max normalized — then both this map and the base model's Grad-CAM
map are binarized at their own T-th percentile and compared by IoU, averaged over the set.
Scored by the evaluation suite's ``iou_at_percentile`` metric, in both conventions: ``top`` (the
salient region, map > q; seethrough's default) and ``bottom`` (map <= q, the released code's),
each with its chance level (two independent random regions of the same sizes).
"""
from __future__ import annotations

from typing import Any, Callable, Iterable, Sequence

import torch
from torch import nn
from torch.nn import functional as F

from ..metrics import iou_at_percentile
from ..models.heads.prototype import PrototypeNet
from ..models.prototype_losses import ALIGNMENT_TOP_K

#: The original evaluates at ``-thr 50``.
IOU_PERCENTILE = 50.0
IOU_CONVENTIONS = ("top", "bottom")


def word_map(model: nn.Module, images: torch.Tensor, *, top_k: int = ALIGNMENT_TOP_K) -> torch.Tensor:
    """B×H×W: pixel-wise max of the top-k words' similarity maps (bicubic to the image size), min-max."""
    out = model(images)
    similarity_maps, min_distances = out.extras["prototype_similarity"], out.extras["min_distances"]
    k = min(top_k, min_distances.shape[1])
    index = min_distances.topk(k, dim=1, largest=False).indices
    chosen = similarity_maps.gather(1, index[:, :, None, None].expand(-1, -1, *similarity_maps.shape[-2:]))
    fused = F.interpolate(chosen, size=images.shape[-2:], mode="bicubic", align_corners=False).max(dim=1).values
    flat = fused.flatten(1)
    low, high = flat.min(dim=1).values, flat.max(dim=1).values
    return (fused - low[:, None, None]) / (high - low).clamp_min(torch.finfo(fused.dtype).tiny)[:, None, None]


@torch.no_grad()
def lvw_iou(model: PrototypeNet, batches: Iterable[dict], reference: Callable[[Sequence[str]], torch.Tensor], *,
            percentile: float = IOU_PERCENTILE, conventions: Sequence[str] = IOU_CONVENTIONS,
            top_k: int = ALIGNMENT_TOP_K) -> dict:
    """Mean IoU (and chance level, count, NaN count) per convention over ``batches`` (dicts with
    ``image`` and ``id``); ``reference(ids)`` gives the base model's Grad-CAM maps B×H×W."""
    model.eval()
    values: dict[str, list[torch.Tensor]] = {c: [] for c in conventions}
    chance: dict[str, list[torch.Tensor]] = {c: [] for c in conventions}
    device = next(model.parameters()).device
    for batch in batches:
        if "image" not in batch:
            continue
        images = batch["image"].to(device)
        maps = word_map(model, images, top_k=top_k)
        ref = reference(list(batch["id"])).to(device=device, dtype=maps.dtype)
        if ref.shape[-2:] != maps.shape[-2:]:
            ref = F.interpolate(ref[:, None], size=maps.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
        for convention in conventions:
            iou, details = iou_at_percentile(None, None, maps, reference=ref, percentile=percentile,
                                             region=convention, return_details=True)
            values[convention].append(iou.cpu())
            chance[convention].append(details["chance"].cpu())
    result: dict[str, Any] = {"percentile": percentile, "top_k": top_k}
    for convention in conventions:
        if not values[convention]:
            raise ValueError("the IoU evaluation set is empty")
        v, c = torch.cat(values[convention]), torch.cat(chance[convention])
        finite = torch.isfinite(v)
        result[convention] = {"mean": v[finite].mean().item() if finite.any() else float("nan"),
                              "chance": c[finite].mean().item() if finite.any() else float("nan"),
                              "count": int(finite.sum()), "nan_count": int((~finite).sum())}
    return result
