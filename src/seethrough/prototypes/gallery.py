"""Pictures of pushed prototypes (ProtoPNet, Chen et al., NeurIPS 2019, Sec. 2.2 and Fig. 2;
Learnable Visual Words, Xiao et al. 2022), rendered ONCE after a push.

:func:`render_gallery` writes, per prototype j, from its source image (the push set image whose
latent patch j now is):

- ``prototype-J-source.png``: the image with the receptive-field box of the patch (measured,
  see :mod:`.receptive_field`);
- ``prototype-J-crop.png``: ProtoPNet's "prototype image", the high-activation crop: the
  bounding box of the pixels at or above the 95th percentile of the similarity map
  g_j(x, y) = log((d + 1)/(d + ε)) upsampled bicubically to the image (ProtoPNet's
  ``find_high_activation_crop``);
- ``prototype-J-overlay.png``: the upsampled similarity map (min-max scaled) over the image;

and ``gallery.json`` (per prototype: dataset index, sample id, label and class name, latent
position, push distance, receptive-field and crop boxes, file names). The similarity maps are
recomputed here with batched forward passes over the distinct source images, never kept
during the push. Boxes are pixel ``xyxy`` with x1/y1 exclusive, as the datasets' ``boxes``.

:func:`this_looks_like_that` explains one image in the paper's Fig. 2 layout: its k most
activated prototypes, each as the image's activation region next to the prototype's crop
from the gallery, with the similarity and the last-layer weight to the predicted class.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ..core.minmax import minmax
from ..explanations.render import denormalize, overlay
from ..models.heads.prototype import PrototypeNet, similarity
from .push import PushResult, _unwrap
from .receptive_field import ReceptiveField, measure_receptive_field

#: ProtoPNet's high-activation crop: pixels at or above this percentile of the upsampled map.
HIGH_ACTIVATION_PERCENTILE = 95
#: Source images per batched forward pass while rendering.
RENDER_BATCH = 32
GALLERY_JSON = "gallery.json"
#: Where a prototype model's gallery goes, inside its model directory (``RUN/best/prototypes``).
GALLERY_DIR = "prototypes"
#: File-name pattern, RGB colours of the drawn boxes and their line width (pixels).
FILE_PATTERN = "prototype-{j:0{width}d}-{kind}.png"
RF_BOX_COLOUR, CROP_BOX_COLOUR, BOX_WIDTH = (255, 255, 0), (0, 255, 255), 1
#: This-looks-like-that figure: inches per panel, resolution, title font size.
PANEL_INCHES, FIGURE_DPI, TITLE_FONTSIZE = 2.5, 100, 8
BOX_FORMAT = "xyxy pixels, x1/y1 exclusive"


def high_activation_box(activation: np.ndarray | torch.Tensor,
                        percentile: float = HIGH_ACTIVATION_PERCENTILE) -> tuple[int, int, int, int]:
    """Bounding box ``(x0, y0, x1, y1)`` (x1/y1 exclusive) of the pixels of the H×W
    ``activation`` at or above its ``percentile``-th percentile (ProtoPNet's high-activation crop)."""
    values = activation.detach().cpu().numpy() if isinstance(activation, torch.Tensor) else np.asarray(activation)
    if values.ndim != 2 or not np.isfinite(values).all():
        raise ValueError(f"expected a finite H×W activation map, got shape {values.shape}")
    mask = values >= np.percentile(values, percentile)
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def upsampled_similarity(net: PrototypeNet, latent: torch.Tensor, prototype_ids: torch.Tensor,
                         size: tuple[int, int]) -> torch.Tensor:
    """Similarity maps (3) of prototypes ``prototype_ids`` on their own latent maps ``latent``
    (N×D×h×w, one per prototype), upsampled bicubically to ``size``: N×H×W (CPU, float32)."""
    p = net.prototypes[prototype_ids].flatten(1)[:, :, None, None].to(latent.dtype)  # N×D×1×1
    distances = F.relu((latent ** 2).sum(1) - 2 * (latent * p).sum(1) + (p ** 2).sum(1))  # Eq. (1), N×h×w
    maps = similarity(distances.float(), net.config.get("activation", "log"))
    return F.interpolate(maps[:, None], size=size, mode="bicubic", align_corners=False)[:, 0].cpu()


def render_gallery(model: nn.Module, dataset, result: PushResult, out_dir: str | Path, *,
                   mean: Sequence[float], std: Sequence[float],
                   percentile: float = HIGH_ACTIVATION_PERCENTILE, batch_size: int = RENDER_BATCH) -> dict:
    """Render every prototype's source image, crop and overlay, and ``gallery.json``.

    Args:
        model: the prototype model after :func:`~.push.push_prototypes` (its prototypes are the
            patches ``result`` describes).
        dataset: the push set's dataset with the unaugmented transform: ``dataset[index]`` gives
            the normalized image of ``result.index``.
        result: what the push returned.
        out_dir: folder to write into (created).
        mean, std: the normalization of ``dataset`` (undone for the pictures).
        percentile: of the high-activation crop (ProtoPNet: 95).
        batch_size: source images per forward pass.

    Returns:
        The content of ``gallery.json``.
    """
    net = _unwrap(model)
    p = int(net.prototypes.shape[0])
    if result.num_prototypes != p:
        raise ValueError(f"the push result describes {result.num_prototypes} prototypes but the model has {p}; "
                         "render with the model the push was run on")
    if bool((result.index < 0).any()):
        raise ValueError("the push result has prototypes without a source image (index -1); run the push again")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    names = _class_names(dataset)
    width = max(4, len(str(p - 1)))
    by_image: dict[int, list[int]] = {}
    for j, index in enumerate(result.index.tolist()):
        by_image.setdefault(index, []).append(j)
    rows: dict[int, dict] = {}
    fields: dict[tuple[int, int], ReceptiveField] = {}
    device = net.prototypes.device
    was_training = net.training
    net.eval()
    try:
        indices = sorted(by_image)
        for start in range(0, len(indices), batch_size):
            samples = [_load(dataset, i) for i in indices[start:start + batch_size]]
            for group in _same_size(samples):
                images = torch.stack([s["image"] for s in group])
                size = (images.shape[-2], images.shape[-1])
                if size not in fields:
                    fields[size] = measure_receptive_field(net, size, in_chans=images.shape[1])
                with torch.no_grad():
                    latent = net.latent(images.to(device=device, dtype=net.prototypes.dtype))
                owners = [(k, j) for k, s in enumerate(group) for j in by_image[s["index"]]]
                source = torch.tensor([k for k, _ in owners], device=device)
                ids = torch.tensor([j for _, j in owners], device=device)
                with torch.no_grad():
                    maps = upsampled_similarity(net, latent[source], ids, size)
                pictures = denormalize(images, mean, std)
                for (k, j), heat in zip(owners, maps):
                    rows[j] = _render_one(j, group[k], pictures[k], heat.numpy(), result, fields[size], out_dir,
                                          names=names, width=width, percentile=percentile, net=net)
    finally:
        net.train(was_training)
    gallery = {
        "box_format": BOX_FORMAT, "percentile": percentile, "class_specific": result.class_specific,
        "activation": net.config.get("activation", "log"), "mean": list(mean), "std": list(std),
        "latent_size": list(result.latent_size), "num_images": result.num_images,
        "receptive_fields": [rf.to_dict() for rf in fields.values()],
        "prototypes": [rows[j] for j in range(p)],
    }
    (out_dir / GALLERY_JSON).write_text(json.dumps(gallery, indent=2))
    return gallery


def _render_one(j: int, sample: dict, picture: np.ndarray, heat: np.ndarray, result: PushResult,
                field: ReceptiveField, out_dir: Path, *, names, width: int, percentile: float,
                net: PrototypeNet) -> dict:
    """Write prototype j's three PNGs; its ``gallery.json`` entry."""
    from PIL import Image

    y, x = int(result.y[j]), int(result.x[j])
    if field.latent_size != tuple(result.latent_size) and result.latent_size != (0, 0):
        raise ValueError(f"source image {sample['index']} gives a {field.latent_size} latent map but the push "
                         f"recorded positions on {tuple(result.latent_size)}: render with the push set's transform")
    rf_box = field.box(y, x)
    crop_box = high_activation_box(heat, percentile)
    files = {kind: FILE_PATTERN.format(j=j, width=width, kind=kind) for kind in ("source", "crop", "overlay")}
    Image.fromarray(_with_box(picture, rf_box, RF_BOX_COLOUR)).save(out_dir / files["source"])
    x0, y0, x1, y1 = crop_box
    Image.fromarray(np.ascontiguousarray(picture[y0:y1, x0:x1])).save(out_dir / files["crop"])
    Image.fromarray(overlay(picture, _min_max(heat))).save(out_dir / files["overlay"])
    label = int(sample["label"])
    prototype_class = int(net.prototype_class_identity[j].argmax())
    return {"prototype": j, "prototype_class": prototype_class,
            "prototype_class_name": names[prototype_class] if names else None,
            "index": int(sample["index"]), "sample_id": str(sample.get("id", sample["index"])), "label": label,
            "class_name": names[label] if names else None, "y": y, "x": x,
            "distance": float(result.distance[j]), "rf_box": list(rf_box), "crop_box": list(crop_box),
            "files": files}


def this_looks_like_that(model: nn.Module, image_tensor: torch.Tensor, gallery_dir: str | Path,
                         out_path: str | Path, *, k: int = 3, mean: Sequence[float], std: Sequence[float],
                         classes: Sequence[str] | None = None,
                         percentile: float = HIGH_ACTIVATION_PERCENTILE) -> dict:
    """Explain one image as in ProtoPNet's Fig. 2: its ``k`` most activated prototypes (largest
    similarity g_j), each shown as the image's activation region (overlay with the
    high-activation box, and that crop) next to the prototype's crop from the gallery, with the
    similarity, the last-layer weight w_cj to the predicted class c and their product. One PNG.

    Args:
        image_tensor: the normalized image, C×H×W (or 1×C×H×W).
        gallery_dir: a folder written by :func:`render_gallery` for this model's prototypes.
        out_path: the PNG to write.
        classes: class names for the titles (default: the indices).

    Returns:
        ``{"path", "predicted", "predicted_name", "prototypes": [{"prototype", "similarity",
        "weight", "contribution", "box", "gallery_crop"}]}``.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from PIL import Image

    net = _unwrap(model)
    gallery_dir = Path(gallery_dir)
    entries = _gallery_entries(gallery_dir, int(net.prototypes.shape[0]))
    image = image_tensor[None] if image_tensor.ndim == 3 else image_tensor
    if image.ndim != 4 or image.shape[0] != 1:
        raise ValueError(f"expected one image C×H×W or 1×C×H×W, got {tuple(image_tensor.shape)}")
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    k = min(k, len(entries))
    was_training = net.training
    net.eval()
    try:
        with torch.no_grad():
            output = net(image.to(device=net.prototypes.device, dtype=net.prototypes.dtype))
    finally:
        net.train(was_training)
    scores = similarity(output.extras["min_distances"][0].float(), net.config.get("activation", "log"))
    predicted = int(output.logits[0].argmax())
    top = scores.topk(k).indices.tolist()
    size = tuple(image.shape[-2:])
    heats = F.interpolate(output.extras["prototype_similarity"][:, top].float(), size=size, mode="bicubic",
                          align_corners=False)[0].cpu().numpy()
    picture = denormalize(image, mean, std)[0]
    def name(c: int) -> str:
        return str(classes[c]) if classes is not None else str(c)

    figure = Figure(figsize=(3 * PANEL_INCHES, k * PANEL_INCHES), dpi=FIGURE_DPI)
    FigureCanvasAgg(figure)
    axes = figure.subplots(k, 3, squeeze=False)
    rows = []
    for row, (j, heat) in enumerate(zip(top, heats)):
        box = high_activation_box(heat, percentile)
        x0, y0, x1, y1 = box
        weight = float(net.last_layer.weight.detach()[predicted, j])
        sim = float(scores[j])
        entry = entries[j]
        crop_path = gallery_dir / entry["files"]["crop"]
        panels = [(_with_box(overlay(picture, _min_max(heat)), box, CROP_BOX_COLOUR),
                   f"this: prototype {j} activation"),
                  (picture[y0:y1, x0:x1], f"sim {sim:.3f} × w {weight:.2f} = {sim * weight:.3f}"),
                  (np.asarray(Image.open(crop_path).convert("RGB")),
                   f"looks like: prototype {j} (class {name(entry['prototype_class'])})")]
        for ax, (panel, title) in zip(axes[row], panels):
            ax.imshow(panel)
            ax.set_title(title, fontsize=TITLE_FONTSIZE)
            ax.set_axis_off()
        rows.append({"prototype": j, "similarity": sim, "weight": weight, "contribution": sim * weight,
                     "box": list(box), "gallery_crop": str(crop_path)})
    probability = float(torch.softmax(output.logits[0].float(), dim=0)[predicted])
    figure.suptitle(f"predicted: {name(predicted)} (p = {probability:.2f})", fontsize=TITLE_FONTSIZE + 2)
    figure.tight_layout()
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out_path, format="png")
    return {"path": str(out_path), "predicted": predicted, "predicted_name": name(predicted), "prototypes": rows}


def _gallery_entries(gallery_dir: Path, num_prototypes: int) -> list[dict]:
    path = gallery_dir / GALLERY_JSON
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: render the gallery first (render_gallery after the push)")
    entries = json.loads(path.read_text())["prototypes"]
    if len(entries) != num_prototypes:
        raise ValueError(f"{path} describes {len(entries)} prototypes but the model has {num_prototypes}: "
                         "render the gallery of this model again")
    return entries


def _load(dataset, index: int) -> dict:
    sample = dataset[index]
    if sample is None:
        raise ValueError(f"source image {index} of the gallery could not be read (skipped by the dataset)")
    if not isinstance(sample.get("image"), torch.Tensor):
        raise TypeError("render_gallery needs a dataset with a transform that gives image tensors "
                        "(the push set's eval transform)")
    sample["index"] = index
    return sample


def _same_size(samples: list[dict]) -> list[list[dict]]:
    """Samples grouped by image size (one batched forward per group)."""
    groups: dict[tuple, list[dict]] = {}
    for s in samples:
        groups.setdefault(tuple(s["image"].shape), []).append(s)
    return list(groups.values())


def _class_names(dataset) -> list[str] | None:
    while dataset is not None and not getattr(dataset, "classes", None) and hasattr(dataset, "dataset"):
        dataset = dataset.dataset
    names = getattr(dataset, "classes", None)
    return list(names) if names else None


def _min_max(heat: np.ndarray) -> np.ndarray:
    """A prototype's activation map stretched to [0, 1] for its overlay (:func:`~seethrough.core.minmax.minmax`)."""
    return minmax(torch.from_numpy(np.asarray(heat, dtype=np.float32)), (0, 1)).numpy()


def _with_box(picture: np.ndarray, box: tuple[int, int, int, int], colour: tuple[int, int, int]) -> np.ndarray:
    """A copy of the H×W×3 uint8 ``picture`` with the outline of ``box`` (xyxy, exclusive) drawn."""
    from PIL import Image, ImageDraw

    canvas = Image.fromarray(np.ascontiguousarray(picture))
    x0, y0, x1, y1 = box
    ImageDraw.Draw(canvas).rectangle([x0, y0, max(x1 - 1, x0), max(y1 - 1, y0)], outline=colour, width=BOX_WIDTH)
    return np.asarray(canvas)
