"""The viewer's data format, version 1: what ``seethrough view`` writes and ``index.html`` reads.

A view is a folder that opens from ``file://`` with no server and makes no network request:
data are JavaScript files loaded by ``<script>`` tags (never ``fetch``-ed JSON, which browsers
refuse from ``file://``), images are files beside them. Other tools can write it::

    DIR/index.html, viewer.js, viewer.css     the viewer (copied, no build step)
    DIR/data/manifest.js                      SEETHROUGH.manifest({...})   (below)
    DIR/data/chunk-00000.js ...               SEETHROUGH.chunk(k, {...})   samples' maps, loaded on demand
    DIR/img/<sample>.jpg                      thumbnails; img/<sample>-p<j>.jpg: part j removed
    DIR/assets/...                            prototype crops, radar plots (PNG)

**manifest** (one object)::

    format: "seethrough-view", version: 1, title, created (ISO 8601)
    classes: [name, ...]
    models: [{name, kind, sign (1: "why c", -1: SCOUTER−'s "why not c"), accuracy | null,
              map_size: [h, w] per explainer}]
    explainers: [name, ...]                   metrics: [name, ...]    (per-sample, see samples)
    lower_is_better: [metric, ...]
    chunk_size, chunks                        samples per chunk file, number of chunk files
    samples: [{id, label, thumb, chunk,
               models: {model: {top: [[class, probability], ...]}},      (top-k, best first)
               metrics: {model: {explainer: {metric: value | null}}}}]
    benchmark: null | {leaderboard: [{model, explainer, score, families: {family: {mean, low, high}}}],
                       validity: {metric: {tells, separated, pairs, failures}}, radar: {model: path},
                       prototypes: {model: {on_evidence, chance, prototypes}}}
    prototypes: {model: [{prototype, class, crop: path, source: path}]}
    errors: [text, ...]                       what could not be shown, and why

**chunk** ``k`` (object keyed by sample id)::

    maps:    {model: {explainer: {class: MAP}}}       classes = top-k ∪ ground truth; "*": one MAP
                                                      for every class (a class-independent explainer)
    extras:  {model: {heads: {class: [MAP per head]}, taps: {tap: MAP},
                      prototypes: [{prototype, similarity, weight, map: MAP}]}}
    curves:  {model: {explainer: {metric: [y₀, …, y_n]}}}
    interventions: [{part, role, name, thumb, delta: {model: Δ score}}]

A MAP is ``{h, w, d}``: the map at its own (native) resolution (a post-hoc map computed at the
input's resolution is stored area-averaged to a longest side of 24, ``--max-map-side``), min-max
scaled and quantized to uint8 (``round(255·(m − min)/(max − min))``, 0 for a constant map),
row-major, base64 — the browser upsamples it bilinearly onto the thumbnail.
"""
from __future__ import annotations

import base64
import io
import json
import math
import shutil
from importlib import resources
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import torch

FORMAT_NAME = "seethrough-view"
FORMAT_VERSION = 1
#: Samples per chunk file.
CHUNK_SIZE = 50
#: Longest side of a thumbnail, and its JPEG quality.
THUMBNAIL_SIDE, THUMBNAIL_QUALITY = 160, 90
#: Files of the viewer itself (``seethrough/viewer/static``).
STATIC_FILES: tuple[str, ...] = ("index.html", "viewer.js", "viewer.css")
DATA_DIR, IMAGE_DIR, ASSET_DIR = "data", "img", "assets"
MANIFEST_FILE = "manifest.js"
#: The largest quantized value.
LEVELS = 255
#: The class key of a map that is the same for every class (random, center, edges, ...).
ANY_CLASS = "*"


def encode_map(values: torch.Tensor | np.ndarray) -> dict[str, Any]:
    """An ``h×w`` map as the format's MAP: min-max scaled, uint8, base64 (NaN/Inf count as the minimum)."""
    array = values.detach().float().cpu().numpy() if isinstance(values, torch.Tensor) else np.asarray(values, float)
    if array.ndim != 2:
        raise ValueError(f"a map must be h×w, got shape {array.shape}")
    finite = np.isfinite(array)
    low = float(array[finite].min()) if finite.any() else 0.0
    high = float(array[finite].max()) if finite.any() else 0.0
    array = np.where(finite, array, low)
    scaled = (array - low) / (high - low) if high > low else np.zeros_like(array)
    quantized = np.rint(scaled * LEVELS).astype(np.uint8)
    return {"h": int(array.shape[0]), "w": int(array.shape[1]),
            "d": base64.b64encode(quantized.tobytes()).decode("ascii")}


def decode_map(encoded: dict[str, Any]) -> np.ndarray:
    """The ``h×w`` uint8 array of a MAP (for tests and other readers)."""
    data = np.frombuffer(base64.b64decode(encoded["d"]), dtype=np.uint8)
    return data.reshape(encoded["h"], encoded["w"])


def thumbnail(picture: np.ndarray, path: Path, *, side: int = THUMBNAIL_SIDE) -> None:
    """Write an ``H×W×3`` uint8 picture as a JPEG whose longest side is at most ``side``."""
    from PIL import Image

    image = Image.fromarray(picture)
    scale = side / max(image.size)
    if scale < 1:
        image = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))),
                             Image.Resampling.BILINEAR)
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="JPEG", quality=THUMBNAIL_QUALITY)
    path.write_bytes(buffer.getvalue())


def clean(value: Any) -> Any:
    """JSON-ready: non-finite floats → None, tensors/arrays → lists, recursively."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, (torch.Tensor, np.ndarray)):
        return clean(value.tolist())
    if isinstance(value, (np.floating, np.integer)):
        return clean(value.item())
    if isinstance(value, dict):
        return {str(k): clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean(v) for v in value]
    return value


class ViewWriter:
    """Writes one view folder: thumbnails and assets as they come, chunks and manifest at the end."""

    def __init__(self, out: str | Path, *, title: str, chunk_size: int = CHUNK_SIZE) -> None:
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be positive, got {chunk_size}")
        self.out = Path(out)
        self.chunk_size = chunk_size
        self.manifest: dict[str, Any] = {
            "format": FORMAT_NAME, "version": FORMAT_VERSION, "title": title, "created": _now(),
            "classes": [], "models": [], "explainers": [], "metrics": [], "lower_is_better": [],
            "chunk_size": chunk_size, "chunks": 0, "samples": [], "benchmark": None, "prototypes": {},
            "errors": []}
        self.chunks: dict[str, dict[str, Any]] = {}
        for folder in (DATA_DIR, IMAGE_DIR, ASSET_DIR):
            (self.out / folder).mkdir(parents=True, exist_ok=True)

    def image_path(self, name: str) -> str:
        """The relative path of thumbnail ``name`` (``img/<name>.jpg``)."""
        return f"{IMAGE_DIR}/{_file_safe(name)}.jpg"

    def add_asset(self, source: Path, name: str) -> str:
        """Copy ``source`` into ``assets/`` as ``name``; its relative path."""
        target = self.out / ASSET_DIR / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
        return f"{ASSET_DIR}/{name}"

    def sample_chunk(self, sample_id: str) -> dict[str, Any]:
        """The chunk entry of ``sample_id`` (created empty)."""
        return self.chunks.setdefault(str(sample_id), {"maps": {}, "extras": {}, "curves": {}, "interventions": []})

    def error(self, text: str) -> None:
        if text not in self.manifest["errors"]:
            self.manifest["errors"].append(text)

    def write(self) -> Path:
        """Write the chunks, the manifest and the viewer's files; returns ``index.html``."""
        samples = self.manifest["samples"]
        for position, sample in enumerate(samples):
            sample["chunk"] = position // self.chunk_size
        self.manifest["chunks"] = math.ceil(len(samples) / self.chunk_size) if samples else 0
        for k in range(self.manifest["chunks"]):
            ids = [str(s["id"]) for s in samples[k * self.chunk_size:(k + 1) * self.chunk_size]]
            body = {i: self.chunks.get(i, {"maps": {}, "extras": {}, "curves": {}, "interventions": []}) for i in ids}
            _write_js(self.out / DATA_DIR / chunk_file(k), f"SEETHROUGH.chunk({k}, ", body)
        _write_js(self.out / DATA_DIR / MANIFEST_FILE, "SEETHROUGH.manifest(", self.manifest)
        copy_static(self.out)
        return self.out / "index.html"


def chunk_file(k: int) -> str:
    return f"chunk-{k:05d}.js"


def copy_static(out: Path) -> None:
    """Copy the viewer's HTML, JavaScript and CSS into ``out``."""
    static = resources.files("seethrough.viewer") / "static"
    for name in STATIC_FILES:
        (out / name).write_bytes((static / name).read_bytes())


def _write_js(path: Path, prefix: str, body: Any) -> None:
    text = json.dumps(clean(body), separators=(",", ":"), allow_nan=False)
    path.write_text(f"{prefix}{text});\n", encoding="utf-8")


def _file_safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in str(name))


def _now() -> str:
    import datetime

    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def iter_chunks(out: Path) -> Iterable[Path]:
    """The chunk files of a written view, in order."""
    return sorted((Path(out) / DATA_DIR).glob("chunk-*.js"))


__all__ = ["ANY_CLASS", "CHUNK_SIZE", "FORMAT_NAME", "FORMAT_VERSION", "ViewWriter", "clean", "decode_map",
           "encode_map", "thumbnail"]
