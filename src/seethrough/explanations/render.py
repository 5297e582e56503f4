"""Pictures of explanations: heat-map overlays, per-image grids and bare overlay PNGs.

The look follows SCOUTER's official ``test.py``: the class map, resized to the image, is
drawn with matplotlib's ``jet`` colormap at alpha 0.4 over the image. Figures are built
with :class:`matplotlib.figure.Figure` on an Agg canvas, so nothing here touches pyplot's
global state or needs ``matplotlib.use("Agg")`` from the caller. matplotlib is imported
lazily, so importing this module stays cheap.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

#: SCOUTER's overlay: colormap and opacity of the heat map over the image.
DEFAULT_ALPHA = 0.4
DEFAULT_CMAP = "jet"
#: Largest value of an 8-bit channel.
UINT8_MAX = 255
#: Heat values may overshoot [0, 1] by float rounding this much before it is an error.
HEAT_TOLERANCE = 1e-4
#: Grid layout: inches per panel, resolution, title font size, title of the first panel.
PANEL_INCHES = 2.5
GRID_DPI = 100
TITLE_FONTSIZE = 9
INPUT_TITLE = "input"
#: File names: characters kept as they are (anything else becomes "_"), and a length cap.
_UNSAFE_FILENAME_CHARS = re.compile(r"[^\w.-]+")
MAX_FILENAME_STEM = 100


def denormalize(
    images: torch.Tensor, mean: Sequence[float], std: Sequence[float]
) -> np.ndarray:
    """Undo ``Normalize(mean, std)``: ``B×C×H×W`` tensor → ``B×H×W×3`` uint8 array.

    ``C`` is 1 or 3; one-channel images come back as gray RGB. ``mean``/``std`` have one
    entry per channel (or one entry for all).
    """
    if images.ndim != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"expected images of shape B×1×H×W or B×3×H×W, got {tuple(images.shape)}")
    channels = images.shape[1]
    stats = []
    for name, values in (("mean", mean), ("std", std)):
        tensor = torch.as_tensor(values, dtype=torch.float32, device=images.device).reshape(-1)
        if tensor.numel() not in (1, channels):
            raise ValueError(f"{name} has {tensor.numel()} entries for {channels}-channel images")
        stats.append(tensor[None, :, None, None])
    low, scale = stats
    pixels = (images.detach().float() * scale + low).clamp(0.0, 1.0) * UINT8_MAX
    pixels = pixels.round().to(torch.uint8).expand(-1, 3, -1, -1)
    return pixels.permute(0, 2, 3, 1).cpu().numpy()


def overlay(
    image: np.ndarray | torch.Tensor,
    heat: np.ndarray | torch.Tensor,
    *,
    alpha: float = DEFAULT_ALPHA,
    cmap: str = DEFAULT_CMAP,
) -> np.ndarray:
    """Composite a colormapped heat map over an image: ``(1-alpha)·image + alpha·cmap(heat)``.

    Args:
        image: ``H×W×3`` uint8.
        heat: ``H×W`` in ``[0, 1]``. Leading dimensions broadcast against ``image``'s, so
            ``K×H×W`` heats over one image give ``K×H×W×3`` overlays in one call.
        alpha: opacity of the heat map; 0 returns the image, 1 the pure colormap.
        cmap: any matplotlib colormap name.

    Returns:
        uint8 array of shape ``broadcast(image[..., :], heat)×3``.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    image = _as_numpy(image)
    heat = _as_numpy(heat).astype(np.float64)
    if image.dtype != np.uint8 or image.ndim < 3 or image.shape[-1] != 3:
        raise ValueError(f"expected a uint8 image of shape H×W×3, got {image.dtype} {image.shape}")
    if heat.shape[-2:] != image.shape[-3:-1]:
        raise ValueError(f"heat map size {heat.shape[-2:]} differs from image size {image.shape[-3:-1]}")
    if not np.isfinite(heat).all():
        raise ValueError("heat map contains NaN or Inf")
    if heat.min() < -HEAT_TOLERANCE or heat.max() > 1.0 + HEAT_TOLERANCE:
        raise ValueError(
            f"heat map values must be in [0, 1], got [{heat.min():.4g}, {heat.max():.4g}]; "
            'normalize the maps first (normalize="joint" or "minmax")'
        )
    colors = colormap(cmap)(np.clip(heat, 0.0, 1.0))[..., :3] * UINT8_MAX
    blended = (1.0 - alpha) * image.astype(np.float64) + alpha * colors
    return np.rint(blended).astype(np.uint8)


def colormap(name: str):
    """The matplotlib colormap called ``name``, with a clear error for unknown names."""
    import matplotlib

    try:
        return matplotlib.colormaps[name]
    except KeyError:
        raise ValueError(f"unknown matplotlib colormap {name!r} (e.g. jet, viridis, inferno)") from None


def save_explanation_grid(
    path: str | Path,
    image: np.ndarray | torch.Tensor,
    heats: np.ndarray | torch.Tensor,
    titles: Sequence[str],
    *,
    alpha: float = DEFAULT_ALPHA,
    cmap: str = DEFAULT_CMAP,
) -> Path:
    """Write one PNG: the input image, then one titled overlay per heat map, in a row.

    Args:
        path: PNG file to write (parent folders are created).
        image: ``H×W×3`` uint8.
        heats: ``K×H×W`` maps in ``[0, 1]``.
        titles: ``K`` panel titles (e.g. class name and probability).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    heats = _as_numpy(heats)
    if heats.ndim != 3:
        raise ValueError(f"expected heats of shape K×H×W, got {heats.shape}")
    if len(titles) != heats.shape[0]:
        raise ValueError(f"got {len(titles)} titles for {heats.shape[0]} heat maps")
    image = _as_numpy(image)
    panels = overlay(image, heats, alpha=alpha, cmap=cmap)

    columns = 1 + len(panels)
    figure = Figure(figsize=(columns * PANEL_INCHES, PANEL_INCHES), dpi=GRID_DPI)
    FigureCanvasAgg(figure)
    axes = figure.subplots(1, columns, squeeze=False)[0]
    for ax, picture, title in zip(axes, [image, *panels], [INPUT_TITLE, *titles]):
        ax.imshow(picture)
        ax.set_title(title, fontsize=TITLE_FONTSIZE)
        ax.set_axis_off()
    figure.tight_layout()
    path = _prepare(path)
    figure.savefig(path, format="png")
    return path


def save_overlay(
    path: str | Path,
    image: np.ndarray | torch.Tensor,
    heat: np.ndarray | torch.Tensor,
    *,
    alpha: float = DEFAULT_ALPHA,
    cmap: str = DEFAULT_CMAP,
) -> Path:
    """Write the bare overlay of one ``H×W`` heat map on an ``H×W×3`` image as a PNG, at image size."""
    from PIL import Image

    path = _prepare(path)
    Image.fromarray(overlay(image, heat, alpha=alpha, cmap=cmap)).save(path, format="PNG")
    return path


def safe_filename(name: str, fallback: str = "unnamed") -> str:
    """``name`` made safe as part of a file name: runs of characters other than letters,
    digits, ``_``, ``.`` and ``-`` become ``_``; no leading dot; at most
    :data:`MAX_FILENAME_STEM` characters; ``fallback`` if nothing is left."""
    cleaned = _UNSAFE_FILENAME_CHARS.sub("_", str(name)).strip("._")[:MAX_FILENAME_STEM]
    return cleaned or fallback


def _prepare(path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def _as_numpy(array: np.ndarray | torch.Tensor) -> np.ndarray:
    if isinstance(array, torch.Tensor):
        return array.detach().cpu().numpy()
    return np.asarray(array)
