"""The built-in ground-truth dataset: cluttered images whose class is decided only by
localized evidence that is known pixel for pixel.

No files, no download: every sample is drawn on the fly with numpy from a random generator
seeded by ``(seed, split, index)``, so a sample is the same in every worker, process and run,
and the train and val splits never share a sample. In the spirit of FunnyBirds (Hesse et al.,
ICCV 2023) the class is a *known* arrangement of parts, so an explanation can be scored
against the exact evidence: ``mask`` marks the evidence pixels, ``boxes`` their parts.

Generator
---------
A scene is drawn back to front:

1. **Background** (never informative): one of ``BACKGROUND_KINDS`` — smooth colour blobs
   (a coarse grid of random colours, bilinearly upsampled), sine stripes of random angle,
   period and sharpness, or a linear gradient — in random low-saturation colours, overlaid
   with a finer blob texture and per-pixel Gaussian noise.
2. **Strokes** (medium, hard): thin random line segments in random colours.
3. **Distractor parts** (see below), then **evidence parts**. Every part is a shape from
   ``SHAPES`` inscribed in a disc of radius ``r`` (its *footprint*); footprints never overlap,
   so nothing is drawn over the evidence and the evidence never hides a distractor.

Parts come from a shared vocabulary ``PARTS``: eight (colour, shape) pairs with distinct
saturated colours and distinct shapes, named like ``"red-circle"``.

Difficulty levels
-----------------
``"easy"``
    Class ``k`` is the single object ``PARTS[k]`` (at most ``len(PARTS)`` = 8 classes).
    Distractors are shapes from the classes' shapes painted in neutral greys, so none looks
    like any class's evidence; backgrounds are weakly saturated; the object is drawn opaque
    in its exact colour.
``"medium"``
    Class ``k`` is a *combination* of two vocabulary parts placed next to each other (their
    footprints a small gap apart, in a random direction). The class pairs are taken from the
    ``m`` smallest vocabulary with enough pairs (``m(m-1)/2 >= num_classes``, up to 28
    classes), in circulant order — ``(0,1), (1,2), ..., (m-1,0), (0,2), ...`` — so every part
    belongs to several classes and no single part identifies one. Distractors are single
    parts of the same vocabulary: a *decoy pair* (the two parts of a uniformly drawn class,
    placed apart rather than together, so "both parts are somewhere in the image" is not
    enough either) plus a few random parts. Every non-paired part keeps a clearance of at
    least ``clearance × r`` from every other footprint, clearly more than the pair's gap, so
    the only adjacent pair in an image is the evidence.
``"benchmark"``
    The default of ``seethrough benchmark``: class ``k`` is a *pair of shapes* (circulant pairs
    as medium) placed a small gap apart, and every part takes a random colour of the shared
    palette — drawn independently of the class — so colour statistics carry no label
    information at all: blurring or removing the evidence really removes the class (the
    insertion/deletion and intervention protocols become informative). The decoy pair (the
    shapes of a random class, placed apart, in palette colours) makes "both shapes are
    somewhere" insufficient; single distractors are grey shapes.
``"hard"``
    As medium with more distractors and strokes, smaller parts, scale and rotation jitter,
    more saturated backgrounds, semi-transparent parts (lower contrast) and image noise.
    Distractors are drawn exactly like the evidence (same scale, rotation and opacity), so
    only the arrangement tells them apart.

Every random choice about the background, the strokes and the distractors is drawn from
distributions that do not depend on the label; the label only selects which parts form the
evidence. Labels are balanced: ``label = index % num_classes``. (In medium and hard the
evidence parts are always somewhere in the image, so a bag-of-colours statistic still beats
chance — about 0.49 for 4 classes against 0.25 — but the decoy pair keeps it far from what
the arrangement gives; with the evidence pixels left out it is at chance.) A distractor is
left out only when no free position remains, which depends on footprint sizes alone.

With ``mode="L"`` the image is converted to luminance: several evidence colours then have
similar grey levels, so classes differ mainly by shape.

Ground truth
------------
``mask`` (``H×W`` bool) is exactly the set of pixels painted by the evidence part(s): a pixel
belongs to a part when its centre lies inside the part's shape (no anti-aliasing, so in easy
and medium mode every mask pixel has the part's exact colour). ``boxes`` (``N×4`` float32,
pixel ``xyxy``, ``x1``/``y1`` exclusive) holds one tight box per evidence part — one box in
easy mode, two in medium and hard: ``[min column, min row, max column + 1, max row + 1]`` of
that part's pixels. Parts never touch the image border, so masks and boxes are complete.

:meth:`SyntheticDataset.scene` returns the scene description (every part with its role,
position, size, angle and opacity) and :meth:`SyntheticDataset.render` draws one, so
interventions such as removing a part are ``render(dataclasses.replace(scene, parts=...))``.
"""
from __future__ import annotations

import math
import operator
from dataclasses import dataclass
from typing import Any, Callable, Literal, Mapping

import numpy as np
from PIL import Image

from .base import ImageDataset, OnBadImage, RawSample

Split = Literal["train", "val"]
DifficultyName = Literal["easy", "medium", "hard", "benchmark"]

#: Split → the second word of every sample's seed, so train and val streams never coincide.
SPLIT_IDS: dict[str, int] = {"train": 0, "val": 1}
#: Samples per split when ``num_samples`` is not given.
DEFAULT_NUM_SAMPLES: dict[str, int] = {"train": 512, "val": 128}
#: Fewest classes a dataset may have.
MIN_CLASSES = 2

#: Saturated evidence colours (RGB, 0–255), pairwise far apart in hue.
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (230, 30, 40),
    "blue": (30, 80, 240),
    "yellow": (245, 220, 30),
    "green": (40, 190, 60),
    "magenta": (230, 50, 210),
    "cyan": (20, 210, 230),
    "orange": (255, 140, 0),
    "purple": (140, 60, 225),
}
#: Shapes, each inscribed in the unit disc (see :func:`shape_mask`).
SHAPES = ("circle", "bar", "triangle", "square", "cross", "ring", "star", "semicircle")
#: The part vocabulary: part ``i`` is the ``i``-th colour with the ``i``-th shape.
PARTS: tuple[tuple[str, str], ...] = tuple(zip(COLOURS, SHAPES))
#: The shared palette of the ``SHARED_PALETTE`` difficulties: every evidence colour.
PALETTE_NAMES: tuple[str, ...] = tuple(COLOURS)
#: Parts per class in each difficulty (1: a single object; 2: a combination of parts).
PARTS_PER_CLASS: dict[str, int] = {"easy": 1, "medium": 2, "hard": 2, "benchmark": 2}
#: Difficulties whose parts take a random colour of the shared palette (``COLOURS``), so that
#: only shape and arrangement tell the classes apart.
SHARED_PALETTE: tuple[str, ...] = ("benchmark",)
#: Backgrounds (with strokes) a dataset keeps for re-rendering the same scene (interventions).
CANVAS_CACHE = 64
#: Difficulties whose single distractors are grey (never a palette colour).
GREY_DISTRACTORS: tuple[str, ...] = ("easy", "benchmark")

# Shape geometry, in units of the footprint radius (all corners lie inside the unit disc).
#: Half side of the square (1/√2 would touch the footprint circle).
SQUARE_HALF_SIDE = 0.7
#: The triangle's base line (apex at -1, y pointing down): an equilateral triangle.
TRIANGLE_BASE = 0.5
#: Half length and half width of the cross's arms and of the bar.
ARM_HALF_LENGTH, ARM_HALF_WIDTH = 0.93, 0.35
#: Inner radius of the ring.
RING_INNER = 0.55
#: The star's inner radius, as a fraction of its outer radius, and its number of points.
STAR_INNER, STAR_POINTS = 0.45, 5
#: Radius of the semicircle (flat side down, centred vertically in the footprint).
SEMICIRCLE_RADIUS = 0.89

#: Grey levels (0–255) of easy-mode distractors: neutral, so never a class's colour.
DISTRACTOR_GREY = (40, 215)
#: Background colour value (brightness, 0–1) range.
BACKGROUND_VALUE = (0.25, 0.9)
#: Background kinds; each is equally likely.
BACKGROUND_KINDS = ("blobs", "stripes", "gradient")
#: Side of the coarse colour grid of "blobs" backgrounds, and of the finer texture overlay.
BLOB_GRID, TEXTURE_GRID = (3, 6), (6, 12)
#: Weight of the texture overlay blended over the base background.
TEXTURE_WEIGHT = (0.15, 0.4)
#: Stripe period as a fraction of the image side, and sharpness (1 = sine, larger = squarer).
STRIPE_PERIOD, STRIPE_SHARPNESS = (0.12, 0.35), (1.0, 4.0)
#: Stroke width as a fraction of the image side (at least ``MIN_STROKE_WIDTH_PX``).
STROKE_WIDTH, MIN_STROKE_WIDTH_PX = 0.025, 1.0
#: Gap between the image border and any part's footprint, pixels.
EDGE_MARGIN_PX = 1.0
#: Smallest gap between the two footprints of an evidence pair, pixels (keeps parts apart).
MIN_PAIR_GAP_PX = 1.0
#: Uniform random placements tried per distractor before the exhaustive lattice search.
PLACEMENT_TRIES = 64
#: Smallest footprint radius (pixels) at which shapes are still drawn; sets the minimum size.
MIN_PART_RADIUS_PX = 2.5
#: Largest 8-bit channel value.
MAX_LEVEL = 255.0


@dataclass(frozen=True)
class Difficulty:
    """Every knob of one difficulty level (lengths are fractions of the image side or of the
    footprint radius ``r``; ranges are inclusive ``(low, high)`` and drawn uniformly)."""

    #: Footprint radius of every part, fraction of the image side.
    part_radius: float
    #: Per-part multiplier of ``part_radius``.
    scale_jitter: tuple[float, float]
    #: Per-part rotation range, degrees (± this).
    rotation_jitter: float
    #: Number of single random distractor parts.
    num_distractors: tuple[int, int]
    #: Decoy pairs: the parts of a random class placed apart (0 in easy).
    num_decoy_pairs: int
    #: Number of line strokes drawn over the background.
    num_strokes: tuple[int, int]
    #: Opacity of every part over the background (1 = exact colour).
    part_alpha: tuple[float, float]
    #: Largest saturation of background colours.
    background_saturation: float
    #: Largest saturation of stroke colours.
    stroke_saturation: float
    #: Std of the per-pixel background noise (0–255 scale).
    background_noise: float
    #: Std of the per-pixel noise added to the finished image, evidence included.
    image_noise: float
    #: Gap between the footprints of an evidence pair, fraction of ``r``.
    pair_gap: tuple[float, float]
    #: Smallest gap between any two footprints that are not an evidence pair, fraction of ``r``.
    clearance: float


DIFFICULTIES: dict[str, Difficulty] = {
    "easy": Difficulty(
        part_radius=0.18, scale_jitter=(1.0, 1.0), rotation_jitter=0.0, num_distractors=(1, 2),
        num_decoy_pairs=0, num_strokes=(0, 0), part_alpha=(1.0, 1.0), background_saturation=0.3,
        stroke_saturation=0.0, background_noise=4.0, image_noise=0.0, pair_gap=(0.0, 0.0),
        clearance=0.2,
    ),
    "medium": Difficulty(
        part_radius=0.105, scale_jitter=(1.0, 1.0), rotation_jitter=0.0, num_distractors=(1, 2),
        num_decoy_pairs=1, num_strokes=(1, 3), part_alpha=(1.0, 1.0), background_saturation=0.4,
        stroke_saturation=0.5, background_noise=6.0, image_noise=0.0, pair_gap=(0.1, 0.3),
        clearance=0.7,
    ),
    "hard": Difficulty(
        part_radius=0.095, scale_jitter=(0.85, 1.15), rotation_jitter=25.0, num_distractors=(2, 4),
        num_decoy_pairs=1, num_strokes=(3, 6), part_alpha=(0.55, 0.8), background_saturation=0.6,
        stroke_saturation=1.0, background_noise=10.0, image_noise=6.0, pair_gap=(0.1, 0.3),
        clearance=0.6,
    ),
    "benchmark": Difficulty(
        part_radius=0.13, scale_jitter=(1.0, 1.0), rotation_jitter=0.0, num_distractors=(1, 2),
        num_decoy_pairs=0, num_strokes=(0, 1), part_alpha=(1.0, 1.0), background_saturation=0.3,
        stroke_saturation=0.0, background_noise=4.0, image_noise=0.0, pair_gap=(0.1, 0.3),
        clearance=0.8,
    ),
}


@dataclass(frozen=True)
class Part:
    """One drawn part: vocabulary ``name`` (e.g. ``"red-circle"``), its ``shape`` and ``rgb``
    colour, footprint ``center`` (x, y in pixels, pixel centres at ``i + 0.5``) and ``radius``,
    rotation ``angle`` (radians), opacity ``alpha`` and ``role``: ``"evidence"``,
    ``"decoy"`` (a class part placed apart from its partner) or ``"distractor"``."""

    name: str
    shape: str
    rgb: tuple[int, int, int]
    center: tuple[float, float]
    radius: float
    angle: float
    alpha: float
    role: str


@dataclass(frozen=True)
class Scene:
    """Everything :meth:`SyntheticDataset.render` needs: the parts (drawn in order) and the
    seed of the background, strokes and noise."""

    label: int
    sample_id: str
    parts: tuple[Part, ...]
    texture_seed: int


class SyntheticDataset(ImageDataset):
    """Deterministic synthetic images whose class is decided only by localized evidence.

    See the module docstring for the generator, the difficulty levels and exactly what
    ``mask`` and ``boxes`` mark.

    Args:
        split: ``"train"`` or ``"val"`` (disjoint sample streams).
        transform, mode, on_bad_image: as :class:`~seethrough.data.base.ImageDataset`
            (``mode`` is ``"RGB"`` or ``"L"``; no sample is ever unreadable).
        num_classes: ``2``–``8`` in easy, ``2``–``28`` in medium and hard.
        img_size: square image side in pixels, at least :func:`min_img_size` (14 easy,
            24 medium, 31 hard); any larger size works (parts scale with the image).
        num_samples: split length; ``None`` → 512 for train, 128 for val.
        val_samples: the val split's length when it should differ from ``num_samples``.
        difficulty: ``"easy"``, ``"medium"``, ``"hard"`` or ``"benchmark"``.
        seed: non-negative integer; the sample ``index`` of ``split`` is drawn from
            ``np.random.default_rng([seed, SPLIT_IDS[split], index])``.
    """

    def __init__(
        self,
        *,
        split: Split,
        transform: Callable[[RawSample], dict] | None = None,
        mode: str = "RGB",
        on_bad_image: OnBadImage = "error",
        num_classes: int = 4,
        img_size: int = 64,
        num_samples: int | None = None,
        val_samples: int | None = None,
        difficulty: DifficultyName = "easy",
        seed: int = 0,
    ) -> None:
        super().__init__(transform=transform, mode=mode, on_bad_image=on_bad_image)
        if split not in SPLIT_IDS:
            raise ValueError(f"split must be one of {', '.join(SPLIT_IDS)}, got {split!r}")
        if difficulty not in DIFFICULTIES:
            raise ValueError(f"difficulty must be one of {', '.join(DIFFICULTIES)}, got {difficulty!r}")
        num_classes = _integer("num_classes", num_classes)
        img_size = _integer("img_size", img_size)
        seed = _integer("seed", seed)
        if split == "val" and val_samples is not None:   # a validation set of its own size
            num_samples = val_samples
        num_samples = DEFAULT_NUM_SAMPLES[split] if num_samples is None else _integer("num_samples", num_samples)
        if seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {seed}")
        if num_samples < 1:
            raise ValueError(f"num_samples must be at least 1, got {num_samples}")

        self.split = split
        self.difficulty = difficulty
        #: The knobs of ``difficulty``.
        self.settings = DIFFICULTIES[difficulty]
        self.seed = seed
        self.img_size = img_size
        self.num_samples = num_samples

        self.class_parts = class_parts(difficulty, num_classes)
        if difficulty in SHARED_PALETTE:   # colour is no part of a class: its name is its shapes
            self.classes = ["+".join(SHAPES[p] for p in parts) for parts in self.class_parts]
        else:
            self.classes = ["+".join(_part_name(p) for p in parts) for parts in self.class_parts]
        #: Vocabulary parts in use (distractors are drawn from these in medium and hard).
        self.vocabulary = sorted({p for parts in self.class_parts for p in parts})

        min_size = min_img_size(difficulty)
        if img_size < min_size:
            cfg = self.settings
            raise ValueError(
                f"img_size={img_size} is too small for difficulty {difficulty!r}: parts would be "
                f"{cfg.part_radius * cfg.scale_jitter[0] * img_size:.1f} px in radius (at least "
                f"{MIN_PART_RADIUS_PX} needed to draw the shapes); use img_size >= {min_size}"
            )

    def __len__(self) -> int:
        return self.num_samples

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(split={self.split!r}, difficulty={self.difficulty!r}, "
                f"num_classes={self.num_classes}, img_size={self.img_size}, "
                f"num_samples={self.num_samples}, seed={self.seed})")

    # ------------------------------------------------------------------ sampling
    def _check_index(self, index: int) -> int:
        index = operator.index(index)
        if index < 0:
            index += self.num_samples
        if not 0 <= index < self.num_samples:
            raise IndexError(f"index out of range for {self.num_samples} samples")
        return index

    def label_of(self, index: int) -> int:
        """The label of sample ``index`` (balanced: ``index % num_classes``)."""
        return self._check_index(index) % self.num_classes

    def scene(self, index: int) -> Scene:
        """Draw the description of sample ``index`` (deterministic in seed, split and index)."""
        index = self._check_index(index)
        rng = np.random.default_rng([self.seed, SPLIT_IDS[self.split], index])
        label = index % self.num_classes
        cfg, size = self.settings, float(self.img_size)

        texture_seed = int(rng.integers(2**63))
        n_single = int(rng.integers(cfg.num_distractors[0], cfg.num_distractors[1] + 1))
        decoys = [int(c) for c in rng.integers(self.num_classes, size=cfg.num_decoy_pairs)]

        def draw_part(part: int, role: str, grey: bool = False) -> dict:
            colour, shape = PARTS[part]
            if self.difficulty in SHARED_PALETTE and not grey:   # a palette colour independent of the class
                colour = PALETTE_NAMES[int(rng.integers(len(PALETTE_NAMES)))]
            rgb = COLOURS[colour]
            name = f"{colour}-{shape}"
            if grey:
                level = int(rng.integers(DISTRACTOR_GREY[0], DISTRACTOR_GREY[1] + 1))
                rgb, name = (level, level, level), f"grey-{shape}"
            return dict(
                name=name, shape=shape, rgb=rgb, role=role,
                radius=cfg.part_radius * size * rng.uniform(*cfg.scale_jitter),
                angle=math.radians(rng.uniform(-cfg.rotation_jitter, cfg.rotation_jitter)),
                alpha=float(rng.uniform(*cfg.part_alpha)),
            )

        # Evidence: one object, or a pair of parts a small gap apart in a random direction.
        evidence = [draw_part(p, "evidence") for p in self.class_parts[label]]
        lows = [e["radius"] + EDGE_MARGIN_PX for e in evidence]
        highs = [size - low for low in lows]
        if len(evidence) == 1:
            evidence[0]["center"] = (rng.uniform(lows[0], highs[0]), rng.uniform(lows[0], highs[0]))
        else:
            first, second = evidence
            gap = max(MIN_PAIR_GAP_PX, first["radius"] * rng.uniform(*cfg.pair_gap))
            theta = rng.uniform(0.0, 2.0 * math.pi)
            dist = first["radius"] + second["radius"] + gap
            offset = (dist * math.cos(theta), dist * math.sin(theta))
            # Centre of the first part such that both footprints lie inside the image.
            first["center"] = tuple(
                rng.uniform(max(lows[0], lows[1] - d), min(highs[0], highs[1] - d)) for d in offset
            )
            second["center"] = (first["center"][0] + offset[0], first["center"][1] + offset[1])

        # Distractors: decoy pairs (a random class's parts) and single parts, never adjacent.
        if self.difficulty == "easy":
            shapes = [self.class_parts[int(rng.integers(self.num_classes))][0] for _ in range(n_single)]
            candidates = [draw_part(p, "distractor", grey=True) for p in shapes]
        elif self.difficulty in GREY_DISTRACTORS:
            candidates = [draw_part(p, "decoy") for c in decoys for p in self.class_parts[c]]
            candidates += [draw_part(self.vocabulary[int(rng.integers(len(self.vocabulary)))], "distractor",
                                     grey=True) for _ in range(n_single)]
        else:
            candidates = [draw_part(p, "decoy") for c in decoys for p in self.class_parts[c]]
            candidates += [draw_part(self.vocabulary[int(rng.integers(len(self.vocabulary)))], "distractor")
                           for _ in range(n_single)]
        placed = list(evidence)
        for part in candidates:
            center = place_footprint(rng, part["radius"], placed, size, cfg.clearance)
            if center is not None:
                part["center"] = center
                placed.append(part)
        distractors = placed[len(evidence):]
        parts = tuple(Part(**p) for p in distractors + evidence)
        return Scene(label=label, sample_id=f"synthetic/{self.split}/{index}", parts=parts,
                     texture_seed=texture_seed)

    # ------------------------------------------------------------------ drawing
    def render(self, scene: Scene) -> RawSample:
        """Draw ``scene``: background, strokes, then its parts in order; evidence → mask/boxes."""
        cfg, size = self.settings, self.img_size
        image, rng = self._canvas(scene.texture_seed)
        mask = np.zeros((size, size), bool)
        boxes = []
        for part in scene.parts:
            window, region = part_pixels(part, size)
            if not region.any():
                continue
            patch = image[window]
            patch[region] = part.alpha * np.asarray(part.rgb, np.float32) + (1.0 - part.alpha) * patch[region]
            if part.role == "evidence":
                mask[window] |= region
                rows, cols = np.nonzero(region)
                y0, x0 = window[0].start, window[1].start
                boxes.append([x0 + cols.min(), y0 + rows.min(), x0 + cols.max() + 1, y0 + rows.max() + 1])
        if cfg.image_noise > 0:
            image += rng.normal(0.0, cfg.image_noise, image.shape).astype(np.float32)
        pixels = np.clip(np.rint(image), 0, MAX_LEVEL).astype(np.uint8)
        pil = Image.fromarray(pixels, "RGB")
        if self.mode != "RGB":
            pil = pil.convert(self.mode)
        return RawSample(image=pil, label=scene.label, sample_id=scene.sample_id,
                         boxes=np.asarray(boxes, np.float32).reshape(-1, 4), mask=mask)

    def load(self, index: int) -> RawSample:
        return self.render(self.scene(index))

    def _canvas(self, texture_seed: int) -> tuple[np.ndarray, np.random.Generator]:
        """The background with its strokes (a copy) and the generator in the state drawing them left
        it in. The last :data:`CANVAS_CACHE` canvases are kept: an intervention re-renders the same
        scene with other parts, and the background is most of a render's cost; the pixels are the
        same as drawing it again."""
        cache: dict[int, tuple[np.ndarray, Mapping[str, Any]]] = self.__dict__.setdefault("_canvases", {})
        if texture_seed in cache:
            image, state = cache.pop(texture_seed)
            cache[texture_seed] = (image, state)                  # most recently used last
            rng = np.random.default_rng()
            rng.bit_generator.state = state
            return image.copy(), rng
        rng = np.random.default_rng(texture_seed)
        image = _background(rng, self.img_size, self.settings)
        _strokes(rng, image, self.settings)
        cache[texture_seed] = (image.copy(), rng.bit_generator.state)
        while len(cache) > CANVAS_CACHE:
            cache.pop(next(iter(cache)))
        return image, rng


# ---------------------------------------------------------------------- helpers
def min_img_size(difficulty: str) -> int:
    """Smallest image side at which every part of ``difficulty`` is at least
    ``MIN_PART_RADIUS_PX`` in radius (14 easy, 24 medium, 31 hard)."""
    cfg = DIFFICULTIES[difficulty]
    return math.ceil(MIN_PART_RADIUS_PX / (cfg.part_radius * cfg.scale_jitter[0]))


def class_parts(difficulty: str, num_classes: int) -> list[tuple[int, ...]]:
    """Vocabulary part indices of each class: ``[(k,)]`` in easy, circulant pairs otherwise."""
    if num_classes < MIN_CLASSES:
        raise ValueError(f"num_classes must be at least {MIN_CLASSES}, got {num_classes}")
    if PARTS_PER_CLASS[difficulty] == 1:
        if num_classes > len(PARTS):
            raise ValueError(
                f"difficulty 'easy' supports at most {len(PARTS)} classes (one per colour: "
                f"{', '.join(COLOURS)}), got num_classes={num_classes}; use difficulty 'medium' "
                f"or 'hard' for up to {_max_pairs()} classes"
            )
        return [(k,) for k in range(num_classes)]
    if num_classes > _max_pairs():
        raise ValueError(
            f"difficulty {difficulty!r} supports at most {_max_pairs()} classes (pairs of the "
            f"{len(PARTS)} vocabulary parts), got num_classes={num_classes}"
        )
    m = next(m for m in range(3, len(PARTS) + 1) if m * (m - 1) // 2 >= num_classes)
    pairs: list[tuple[int, ...]] = []
    for step in range(1, m // 2 + 1):
        for i in range(m):
            pair = tuple(sorted((i, (i + step) % m)))
            if pair not in pairs:
                pairs.append(pair)
    return pairs[:num_classes]


def shape_mask(shape: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Inside-test of ``shape`` at unit-radius coordinates (x right, y down, centre at 0)."""
    if shape == "circle":
        return u * u + v * v <= 1.0
    if shape == "square":
        return np.maximum(np.abs(u), np.abs(v)) <= SQUARE_HALF_SIDE
    if shape == "triangle":
        return (v <= TRIANGLE_BASE) & (np.abs(u) * math.sqrt(3.0) <= v + 1.0)
    if shape == "bar":
        return (np.abs(u) <= ARM_HALF_LENGTH) & (np.abs(v) <= ARM_HALF_WIDTH)
    if shape == "cross":
        au, av = np.abs(u), np.abs(v)
        return ((au <= ARM_HALF_WIDTH) & (av <= ARM_HALF_LENGTH)) | ((av <= ARM_HALF_WIDTH) & (au <= ARM_HALF_LENGTH))
    if shape == "ring":
        r2 = u * u + v * v
        return (r2 <= 1.0) & (r2 >= RING_INNER**2)
    if shape == "star":  # points up: angle -π/2 in image coordinates
        theta = np.arctan2(v, u) + math.pi / 2
        outline = STAR_INNER + (1.0 - STAR_INNER) * (0.5 + 0.5 * np.cos(STAR_POINTS * theta))
        return u * u + v * v <= outline * outline
    if shape == "semicircle":  # flat side down, vertically centred: spans [-R/2, R/2]
        flat = SEMICIRCLE_RADIUS / 2
        return (v <= flat) & (u * u + (v - flat) ** 2 <= SEMICIRCLE_RADIUS**2)
    raise ValueError(f"unknown shape {shape!r}; one of {', '.join(SHAPES)}")


def place_footprint(rng: np.random.Generator, radius: float, placed: list[dict], size: float,
           clearance: float) -> tuple[float, float] | None:
    """A uniformly random centre for a footprint of ``radius`` inside the image whose gap to
    every ``placed`` footprint is at least ``clearance`` × the larger radius; None if none fits.

    ``PLACEMENT_TRIES`` uniform draws first; if all collide, a uniform pick among the free
    points of a randomly shifted one-pixel lattice (so a part is left out only when no
    position is free, which depends on the footprints alone, never on the label)."""
    low, high = radius + EDGE_MARGIN_PX, size - radius - EDGE_MARGIN_PX
    centers = np.array([q["center"] for q in placed], np.float64).reshape(-1, 2)
    radii = np.array([q["radius"] for q in placed], np.float64)
    needed = radius + radii + clearance * np.maximum(radius, radii)

    def free(xy: np.ndarray) -> np.ndarray:
        dist = np.sqrt(((xy[:, None, :] - centers[None]) ** 2).sum(-1))
        return (dist >= needed).all(axis=1)

    xy = rng.uniform(low, high, size=(PLACEMENT_TRIES, 2))
    ok = np.flatnonzero(free(xy))
    if ok.size:
        return float(xy[ok[0], 0]), float(xy[ok[0], 1])
    axis = low + rng.uniform() + np.arange(max(0.0, high - low))
    grid = np.stack(np.meshgrid(axis, axis), -1).reshape(-1, 2)
    ok = np.flatnonzero(free(grid))
    if not ok.size:
        return None
    x, y = grid[ok[int(rng.integers(ok.size))]]
    return float(x), float(y)


def part_pixels(part: Part, size: int) -> tuple[tuple[slice, slice], np.ndarray]:
    """The window of the image around ``part`` and the bool region of its pixels in it."""
    cx, cy = part.center
    x0, x1 = max(0, math.floor(cx - part.radius)), min(size, math.ceil(cx + part.radius) + 1)
    y0, y1 = max(0, math.floor(cy - part.radius)), min(size, math.ceil(cy + part.radius) + 1)
    x = (np.arange(x0, x1, dtype=np.float32) + 0.5 - cx) / part.radius
    y = (np.arange(y0, y1, dtype=np.float32)[:, None] + 0.5 - cy) / part.radius
    if part.angle:
        cos, sin = math.cos(part.angle), math.sin(part.angle)
        x, y = cos * x + sin * y, cos * y - sin * x
    else:
        x, y = np.broadcast_arrays(x[None, :], y)
    return (slice(y0, y1), slice(x0, x1)), shape_mask(part.shape, x, y)


def _background(rng: np.random.Generator, size: int, cfg: Difficulty) -> np.ndarray:
    """``size×size×3`` float32 background (0–255): blobs, stripes or a gradient + texture + noise."""
    kind = BACKGROUND_KINDS[int(rng.integers(len(BACKGROUND_KINDS)))]
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    if kind == "blobs":
        base = _blobs(rng, size, int(rng.integers(BLOB_GRID[0], BLOB_GRID[1] + 1)), cfg.background_saturation)
    else:
        first, second = _colours(rng, 2, cfg.background_saturation)
        angle = rng.uniform(0.0, 2.0 * math.pi)
        along = xx * math.cos(angle) + yy * math.sin(angle)
        if kind == "stripes":
            phase = 2.0 * math.pi * (along / rng.uniform(*STRIPE_PERIOD) + rng.uniform())
            t = np.clip(0.5 + 0.5 * rng.uniform(*STRIPE_SHARPNESS) * np.sin(phase), 0.0, 1.0)
        else:
            t = (along - along.min()) / max(float(np.ptp(along)), 1e-6)
        base = first + (second - first) * t[..., None]
    weight = rng.uniform(*TEXTURE_WEIGHT)
    texture = _blobs(rng, size, int(rng.integers(TEXTURE_GRID[0], TEXTURE_GRID[1] + 1)), cfg.background_saturation)
    image = (1.0 - weight) * base + weight * texture
    image += rng.normal(0.0, cfg.background_noise, image.shape).astype(np.float32)
    return image.astype(np.float32)


def _strokes(rng: np.random.Generator, image: np.ndarray, cfg: Difficulty) -> None:
    """Draw thin random line segments in random colours onto ``image`` in place."""
    count = int(rng.integers(cfg.num_strokes[0], cfg.num_strokes[1] + 1))
    if not count:
        return
    size = image.shape[0]
    half_width = max(MIN_STROKE_WIDTH_PX, STROKE_WIDTH * size) / 2
    centres = np.arange(size, dtype=np.float32) + 0.5
    px, py = centres[None, :], centres[:, None]
    for colour in _colours(rng, count, cfg.stroke_saturation):
        (ax, ay), (bx, by) = rng.uniform(0.0, size, size=(2, 2))
        dx, dy = bx - ax, by - ay
        t = np.clip(((px - ax) * dx + (py - ay) * dy) / max(dx * dx + dy * dy, 1e-6), 0.0, 1.0)
        near = (px - ax - t * dx) ** 2 + (py - ay - t * dy) ** 2 <= half_width**2
        image[near] = colour


def _blobs(rng: np.random.Generator, size: int, grid: int, saturation: float) -> np.ndarray:
    """A ``grid×grid`` lattice of random colours bilinearly upsampled to ``size×size×3``."""
    lattice = _colours(rng, grid * grid, saturation).reshape(grid, grid, 3)
    pos = np.linspace(0.0, grid - 1, size, dtype=np.float32)
    low = np.minimum(pos.astype(np.int64), grid - 2)
    frac = (pos - low)[:, None]
    rows = lattice[low] * (1.0 - frac[..., None]) + lattice[low + 1] * frac[..., None]
    return rows[:, low] * (1.0 - frac[None, :, :]) + rows[:, low + 1] * frac[None, :, :]


def _colours(rng: np.random.Generator, count: int, saturation: float) -> np.ndarray:
    """``count×3`` float32 RGB colours (0–255): uniform hue, saturation up to ``saturation``."""
    hue = rng.uniform(0.0, 1.0, count)
    sat = rng.uniform(0.0, saturation, count)
    val = rng.uniform(*BACKGROUND_VALUE, count)
    return (_hsv_to_rgb(hue, sat, val) * MAX_LEVEL).astype(np.float32)


def _hsv_to_rgb(h: np.ndarray, s: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Vectorized HSV (all in [0, 1]) → RGB in [0, 1], shape ``(n, 3)``."""
    k = (np.array([5.0, 3.0, 1.0])[None, :] + h[:, None] * 6.0) % 6.0
    return v[:, None] - v[:, None] * s[:, None] * np.clip(np.minimum(k, 4.0 - k), 0.0, 1.0)


def _part_name(part: int) -> str:
    colour, shape = PARTS[part]
    return f"{colour}-{shape}"


def _max_pairs() -> int:
    return len(PARTS) * (len(PARTS) - 1) // 2


def _integer(name: str, value: object) -> int:
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    try:
        return operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(f"{name} must be an integer, got {value!r}") from None
