"""Robustness: infidelity, max-sensitivity and average-sensitivity of explanation maps.

**Infidelity** (Yeh et al., "On the (In)fidelity and Sensitivity of Explanations", NeurIPS
2019, Def. 2.1): how well the map predicts the change of the model's score under a random
perturbation ``I`` of the input,

    INFD(Φ, f, x) = E_I[(Iᵀ Φ(x) − (f(x) − f(x − I)))²],

estimated from ``num_perturbations`` draws per image. ``f`` is the score of the target class
(``score``: ``"logit"`` by default, the model output that Yeh et al.'s code and Captum's
``infidelity`` score; ReScience's SCOUTER reproduction used ``"log_prob"``). Our maps are
``B×H×W`` while ``I`` is ``B×C×H×W``: the map is applied to every channel, ``IᵀΦ =
Σ_{c,h,w} I[c,h,w]·Φ[h,w]`` — which is exactly Captum's ``infidelity`` with the attributions
expanded over the channels (``maps[:, None].expand_as(images)``). Perturbations:

- ``"yeh"``: Yeh et al.'s Gaussian perturbation as their code builds it
  (saliency_evaluation ``infid_sen_utils.py:114-121``, ``set_zero_infid``; the same in the
  ReScience SCOUTER reproduction): in [0, 1] pixel space, ``I = clip(x + std·z, x − 1, x)``
  element-wise with ``z ~ N(0, 1)``, so the perturbed input ``x − I = clip(−std·z, 0, 1)`` is
  a *noisy black baseline* (about half of the pixels exactly 0, the others |std·z|), and
  ``I ≈ x``: ``IᵀΦ`` is close to the map times the input. Needs ``space="pixel"``.
- ``"gaussian"``: ``I ~ N(0, std²)`` i.i.d. over all pixels and channels, ``x − I`` a small
  noise around ``x`` (Captum's ``infidelity`` documentation example), no clipping. This is not
  Yeh et al.'s perturbation (see ``"yeh"``).
- ``"square"``: Yeh et al.'s square removal (their ``get_imageset``): a square of side ``s``
  in ``square_sizes`` (1–10 px in their 28×28 MNIST setting) at a random position is set to
  ``baseline`` in every channel, ``I = (x − baseline)·1_square``. Their code enumerates every
  (side, position) pair; here each perturbation draws one such pair uniformly (the side
  with probability ∝ its number of positions ``(H−s+1)(W−s+1)``, then the position), i.e.
  samples their distribution. Because ``I`` carries the input, ``IᵀΦ`` is the map times
  input summed over the square — Yeh et al.'s "binary_I" global explanation of a local map.
  Scale ``square_sizes`` with the image (the default covers 1/28–10/28 of a 28 px side).

``space`` (:mod:`seethrough.core.spaces`): ``"normalized"`` (default) perturbs the model's
input; ``"pixel"`` denormalizes with ``norm_mean``/``norm_std`` (the images' normalization,
filled in from the model by ``seethrough evaluate``), perturbs in [0, 1] pixels (Yeh et al.'s
setting: ``std`` and the square ``baseline`` in pixel units) and normalizes again for the
model; ``I`` (and so ``IᵀΦ``) is then in pixel units.

``normalize=True`` (default, as Yeh et al.'s official code always does) rescales the map by
the optimal ``β = E[IᵀΦ·Δf] / E[(IᵀΦ)²]`` first, so the value does not depend on the map's
scale (min-max normalized maps have an arbitrary one); ``β = 0`` when ``IᵀΦ`` is always 0.
That is Captum's ``normalize=True``; Captum's default is ``False``. A zero map scores
``E[Δf²]`` either way. Lower is better.

**Max-sensitivity** (Yeh et al. 2019, Def. 3.1; Captum ``sensitivity_max``) and
**average-sensitivity** (Bhatt et al., "Evaluating and Aggregating Feature-based Model
Explanations", IJCAI 2020): the explanation is recomputed at ``x + δ`` for ``num_samples``
draws ``δ ~ U[−radius, radius]`` per input element (the L∞ ball, in float — no uint8
wrap-around as in the ReScience code), in ``space`` ``"normalized"`` (default) or ``"pixel"``
(Yeh et al.'s ``sample_eps_Inf`` on [0, 1] MNIST pixels, no clipping; ``x + δ`` is normalized
again before the model, so ``radius`` is in pixel units), and

    SENS(x) = max_δ (resp. mean_δ) ‖Φ(x + δ) − Φ(x)‖ / ‖Φ(x)‖

with ``norm`` ``"fro"`` (default; the L2 norm of the flattened map), ``"inf"`` or ``"l1"``;
``relative=False`` drops the denominator. As Captum, a zero ``‖Φ(x)‖`` is replaced by 1. The
denominator is each sample's own norm (FACT divides by the norm of the whole batch), and the
value is the true maximum over the draws. The ReScience reproduction's ``get_exp_sens``
(``scouter/metrics/saliency_evaluation/infid_sen_utils.py:93-104``) divides inside the loop,
``max_diff = max(max_diff, ‖Δ‖) / norm``, so the running maximum is re-divided at every draw
and its result is about the last draw's ``‖Δ‖ / norm`` (for ``norm`` > 1, earlier draws shrink
geometrically); it also scored only the first 50 images. Its published numbers are therefore
not comparable with this max; that is their bug, not reproduced here (no option).
``Φ(x)`` is the ``maps`` argument; ``Φ(x + δ)`` comes from ``explainer``: ``"native"`` (the
default), any method name of :func:`seethrough.explain`, or a callable ``(model, images,
targets, **explain_options) -> B×H×W``. The maps passed in must come from the same explainer
with the same ``explain_options`` (e.g. ``normalize``: ``seethrough.explain`` min-max
normalizes by default, and so do the re-explanations unless ``explain_options`` says
otherwise) — otherwise the difference measures the mismatch, not the sensitivity. An
explainer with its own randomness and a ``sample_ids`` parameter (RISE) gets the id of the
perturbed image's sample, so ``Φ(x + δ)`` uses the same masks as ``Φ(x)`` had (when the maps
were made with the same ``sample_ids``), and only ``δ`` moves the map.

Defaults follow Yeh et al.'s official configuration (radius 0.2, 50 samples, also ReScience's
SCOUTER setting); :data:`SENSITIVITY_PRESETS` and :data:`INFIDELITY_PRESETS` hold the other
published settings, e.g. ``max_sensitivity(..., **SENSITIVITY_PRESETS["captum"])``.

Randomness: the perturbations of every sample come from its own generator seeded by
``(seed, sample_id)`` (:mod:`seethrough.core.noise`), drawn one perturbation at a time in
a fixed order, so a value does not depend on the batch size, on ``batch_size`` or on the
rank. Gaussian and uniform noise is drawn on the images' device (CPU and CUDA streams
differ); square positions always on the CPU. The ``B·n`` perturbed inputs run ``batch_size``
at a time. Degenerate maps: NaN/Inf → NaN value.
"""
from __future__ import annotations

import inspect
import math
from typing import Any, Callable, Sequence

import torch
from torch import nn

from ..core.calls import eval_mode
from ..core.inputs import check_images, check_maps, check_sample_ids, check_targets
from ..core.noise import INFIDELITY_STREAM, SENSITIVITY_STREAM, sample_generator
from ..core.scoring import DEFAULT_BATCH_SIZE, SCORES, target_scores
from ..core.spaces import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD, InputSpace
from ..explanations.api import explain, get_explainer

#: Infidelity perturbations (see module docstring).
PERTURBATIONS: tuple[str, ...] = ("gaussian", "square", "yeh")
#: Perturbations per image: ReScience's SCOUTER setting (Yeh et al. used 10 000 on MNIST, Captum 10).
INFIDELITY_PERTURBATIONS = 100
#: Standard deviation of the Gaussian perturbation (Yeh et al.'s code, ReScience).
GAUSSIAN_STD = 0.2
#: Smallest and largest side (px) of the square perturbation (Yeh et al.: 1..10 at 28×28).
SQUARE_SIZES: tuple[int, int] = (1, 10)
#: Value the square is set to, in the perturbation space (``space``; normalized: 0 = the dataset mean colour).
SQUARE_BASELINE = 0.0
#: Score of the target class: the model output, as Yeh et al.'s code and Captum.
INFIDELITY_SCORE = "logit"

#: L∞ radius of the sensitivity noise and number of draws (Yeh et al.'s official config; ReScience).
SENSITIVITY_RADIUS = 0.2
SENSITIVITY_SAMPLES = 50
#: Norms of a flattened map: "fro" = L2 (Captum's default name), "inf" = max |·|, "l1" = Σ |·|.
NORMS: dict[str, float] = {"fro": 2.0, "inf": math.inf, "l1": 1.0}

#: Published settings, usable as ``infidelity(..., **INFIDELITY_PRESETS[name])``.
INFIDELITY_PRESETS: dict[str, dict[str, Any]] = {
    "yeh2019": {"perturbation": "yeh", "space": "pixel", "std": 0.2, "num_perturbations": 10_000,
                "normalize": True, "score": "logit"},
    "yeh2019-square": {"perturbation": "square", "square_sizes": (1, 10), "num_perturbations": 10_000,
                       "normalize": True, "score": "logit"},
    "rescience-scouter": {"perturbation": "yeh", "space": "pixel", "std": 0.2, "num_perturbations": 100,
                          "normalize": True, "score": "log_prob"},
    "captum": {"num_perturbations": 10, "normalize": False, "score": "logit"},
}
#: Published settings, usable as ``max_sensitivity(..., **SENSITIVITY_PRESETS[name])``.
SENSITIVITY_PRESETS: dict[str, dict[str, Any]] = {
    "yeh2019": {"radius": 0.2, "num_samples": 50, "norm": "fro", "relative": True, "space": "pixel"},
    "rescience-scouter": {"radius": 0.2, "num_samples": 50, "norm": "fro", "relative": True, "space": "pixel"},
    "captum": {"radius": 0.02, "num_samples": 10, "norm": "fro", "relative": True},
    "quantus": {"radius": 0.2, "num_samples": 200, "norm": "fro", "relative": True},
}

#: Noise streams of :func:`seethrough.core.noise.sample_generator` (one per metric family
#: member, so infidelity and sensitivity of the same sample draw independent noise; max- and
#: average-sensitivity share theirs, so avg ≤ max holds sample by sample).

#: ``(model, images, targets, sample_ids=None) -> B×H×W`` maps.
ExplainFn = Callable[..., torch.Tensor]


# --------------------------------------------------------------------------- shared helpers
def _takes_sample_ids(fn: Callable[..., Any]) -> bool:
    try:
        return "sample_ids" in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


def make_explainer(explainer: str | Callable[..., torch.Tensor] = "native",
                   explain_options: dict[str, Any] | None = None) -> ExplainFn:
    """The function that re-explains perturbed inputs (sensitivity) or a randomized model (sanity).

    ``explainer`` is a method name of :func:`seethrough.explain` (called with
    ``**explain_options``: ``normalize``, ``upsample``, the method's own options) or a
    callable ``(model, images, targets, **explain_options) -> B×H×W`` run in eval mode. The
    returned function takes ``(model, images, targets, sample_ids=None)``; an explainer that
    has a ``sample_ids`` parameter (RISE) receives the ids of the images' source samples, so a
    re-explanation draws the same masks as the original map of that sample (unless
    ``explain_options`` fixes ``sample_ids`` itself).
    """
    options: dict[str, Any] = dict(explain_options or {})
    if isinstance(explainer, str):
        method = explainer
        takes_ids = _takes_sample_ids(get_explainer(method.lower())) and "sample_ids" not in options

        def run(model: nn.Module, images: torch.Tensor, targets: torch.Tensor,
                sample_ids: torch.Tensor | None = None) -> torch.Tensor:
            extra: dict[str, Any] = {"sample_ids": sample_ids} if takes_ids and sample_ids is not None else {}
            return explain(model, images, targets, method=method, **options, **extra)
        return run
    if callable(explainer):
        fn = explainer
        takes_ids_callable = _takes_sample_ids(fn) and "sample_ids" not in options

        def run_callable(model: nn.Module, images: torch.Tensor, targets: torch.Tensor,
                         sample_ids: torch.Tensor | None = None) -> torch.Tensor:
            extra = {"sample_ids": sample_ids} if takes_ids_callable and sample_ids is not None else {}
            with eval_mode(model):
                return fn(model, images, targets, **options, **extra)
        return run_callable
    raise ValueError(f"explainer must be a method name of seethrough.explain or a callable "
                     f"(model, images, targets) -> B×H×W, got {type(explainer).__name__}")


def explain_checked(explain_fn: ExplainFn, model: nn.Module, images: torch.Tensor, targets: torch.Tensor,
                    sample_ids: torch.Tensor | None = None) -> torch.Tensor:
    """``explain_fn`` output as float ``B×H×W`` on the images' device, its shape checked."""
    out = explain_fn(model, images, targets, sample_ids).detach()
    if out.ndim == 4 and out.shape[1] == 1:
        out = out[:, 0]
    expected = (images.shape[0], *images.shape[-2:])
    if tuple(out.shape) != expected:
        raise ValueError(f"the explainer returned maps of shape {tuple(out.shape)}, expected {expected} (one map per "
                         "image at the image size); keep upsample on in explain_options")
    return out.to(device=images.device, dtype=torch.float32)


def require_model(model: nn.Module | None, metric: str) -> None:
    if model is None or not callable(model):
        raise ValueError(f"{metric} runs the model; pass the classifier as the first argument, got {model!r}")


def _check_positive_int(name: str, value: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


def _generators(ids: torch.Tensor, seed: int, stream: int, device: torch.device | str) -> list[torch.Generator]:
    return [sample_generator(seed, int(i), stream, device) for i in ids.tolist()]


def _chunks(total: int, batch_size: int):
    """``(start, stop)`` of consecutive chunks of the flat (sample, draw) pairs, sample-major
    (pair ``k`` is draw ``k % n`` of sample ``k // n``), so each sample's generator is consumed
    in draw order whatever ``batch_size`` is."""
    for start in range(0, total, batch_size):
        yield start, min(start + batch_size, total)


# --------------------------------------------------------------------------- infidelity
def gaussian_perturbations(generators: Sequence[torch.Generator], samples: Sequence[int], shape: Sequence[int],
                           std: float, device: torch.device) -> torch.Tensor:
    """One ``N(0, std²)`` draw of ``shape`` per entry of ``samples`` (an index into
    ``generators``), in order: ``std · randn(shape, generator)``."""
    return torch.stack([torch.randn(tuple(shape), generator=generators[s], device=device)
                        for s in samples]) * std


def square_masks(generators: Sequence[torch.Generator], samples: Sequence[int], size: tuple[int, int],
                 square_sizes: tuple[int, int], device: torch.device) -> torch.Tensor:
    """One random square per entry of ``samples``, ``R×1×H×W`` bool.

    Each draw takes ``u = rand(3)`` from the (CPU) generator: ``u₀`` picks the side by the
    inverse CDF of P(s) ∝ (H−s+1)(W−s+1) over ``square_sizes``; ``u₁``, ``u₂`` the top and left
    corner uniformly among the ``H−s+1`` and ``W−s+1`` positions.
    """
    height, width = size
    sides = torch.arange(square_sizes[0], square_sizes[1] + 1, dtype=torch.float64)
    weights = (height - sides + 1) * (width - sides + 1)
    cdf = torch.cumsum(weights, 0) / weights.sum()
    u = torch.stack([torch.rand(3, generator=generators[s], dtype=torch.float64) for s in samples])  # R×3
    index = torch.searchsorted(cdf, u[:, 0].contiguous(), right=True).clamp(max=sides.numel() - 1)
    side = sides[index]
    top = torch.floor(u[:, 1] * (height - side + 1))
    left = torch.floor(u[:, 2] * (width - side + 1))
    ys = torch.arange(height, dtype=torch.float64)
    xs = torch.arange(width, dtype=torch.float64)
    inside_y = (ys[None] >= top[:, None]) & (ys[None] < (top + side)[:, None])
    inside_x = (xs[None] >= left[:, None]) & (xs[None] < (left + side)[:, None])
    return (inside_y[:, :, None] & inside_x[:, None, :])[:, None].to(device)


def infidelity(
    model: nn.Module,
    images: torch.Tensor,
    maps: torch.Tensor,
    targets: torch.Tensor,
    *,
    sample_ids: torch.Tensor | Sequence[int] | None = None,
    perturbation: str = "gaussian",
    num_perturbations: int = INFIDELITY_PERTURBATIONS,
    std: float = GAUSSIAN_STD,
    square_sizes: tuple[int, int] = SQUARE_SIZES,
    baseline: float = SQUARE_BASELINE,
    score: str = INFIDELITY_SCORE,
    normalize: bool = True,
    space: str = "normalized",
    norm_mean: Sequence[float] = IMAGENET_DEFAULT_MEAN,
    norm_std: Sequence[float] = IMAGENET_DEFAULT_STD,
    batch_size: int = DEFAULT_BATCH_SIZE,
    seed: int = 0,
    return_details: bool = False,
):
    """Infidelity of every map (Yeh et al. 2019; see the module docstring), ``B`` floats, lower is better.

    Args:
        perturbation: ``"yeh"`` (Yeh et al.'s code, uses ``std``, needs ``space="pixel"``),
            ``"gaussian"`` (uses ``std``) or ``"square"`` (uses ``square_sizes``, ``baseline``).
        num_perturbations: draws of ``I`` per image.
        score: ``"logit"``, ``"log_prob"`` or ``"prob"`` of the target class.
        normalize: rescale the map by the optimal β first (Yeh et al.'s code; Captum ``normalize=True``).
        space: ``"normalized"`` or ``"pixel"`` (perturb [0, 1] pixels, Yeh et al.).
        norm_mean, norm_std: the images' normalization, for ``space="pixel"``.
        batch_size: perturbed images per forward pass.
        seed: with ``sample_ids``, seeds every sample's perturbations.
        return_details: also return ``{"beta": B}`` (the β used; 1 when ``normalize=False``).
    """
    require_model(model, "infidelity")
    images = check_images(images)
    batch, channels, height, width = images.shape
    maps, finite = check_maps(maps, images)
    targets = check_targets(targets, batch, images.device)
    ids = check_sample_ids(sample_ids, batch)
    if perturbation not in PERTURBATIONS:
        raise ValueError(f"unknown perturbation {perturbation!r}; valid: {', '.join(PERTURBATIONS)}")
    if score not in SCORES:
        raise ValueError(f"unknown score {score!r}; valid: {', '.join(SCORES)}")
    _check_positive_int("num_perturbations", num_perturbations)
    _check_positive_int("batch_size", batch_size)
    if perturbation in ("gaussian", "yeh") and not std > 0:
        raise ValueError(f"std must be > 0, got {std}")
    if perturbation == "yeh" and space != "pixel":
        raise ValueError('infidelity perturbation "yeh" clips to the [0, 1] pixel range and needs space="pixel" '
                         f"(got space={space!r}); use perturbation=\"gaussian\" for noise in the normalized space")
    pixels = InputSpace(space, images, norm_mean, norm_std, metric="infidelity")
    if perturbation == "square":
        low, high = (int(v) for v in square_sizes)
        if not 1 <= low <= high <= min(height, width):
            raise ValueError(f"square_sizes must satisfy 1 <= min <= max <= {min(height, width)} (the image side), "
                             f"got {tuple(square_sizes)}")
        square_sizes = (low, high)

    values = torch.full((batch,), math.nan, device=images.device)
    betas = torch.full((batch,), math.nan, device=images.device)
    active = torch.nonzero(finite).flatten()
    if active.numel():
        x, phi, t = images[active], maps[active].to(images.device)[:, None], targets[active]
        count, n = active.numel(), num_perturbations
        device = images.device
        gens = _generators(ids[active.cpu()], seed, INFIDELITY_STREAM, "cpu" if perturbation == "square" else device)
        u = pixels.to_space(x)   # the perturbation space: I and x − I live here
        dots = torch.zeros(count * n, dtype=torch.float64, device=device)    # IᵀΦ
        diffs = torch.zeros(count * n, dtype=torch.float64, device=device)   # f(x) − f(x − I)
        with eval_mode(model):
            clean = target_scores(model, x, t, score=score, batch_size=batch_size).double()
            for start, stop in _chunks(count * n, batch_size):
                samples = torch.arange(start, stop, device=device) // n
                order = samples.tolist()
                clean_u = u[samples]
                if perturbation == "gaussian":
                    noise = gaussian_perturbations(gens, order, (channels, height, width), std, device)
                    perturbed = clean_u - noise
                elif perturbation == "yeh":   # I = clip(x + std·z, x − 1, x): x − I = clip(−std·z, 0, 1)
                    shifted = clean_u + gaussian_perturbations(gens, order, (channels, height, width), std, device)
                    noise = torch.minimum(clean_u, torch.maximum(clean_u - 1, shifted))
                    perturbed = clean_u - noise
                else:
                    inside = square_masks(gens, order, (height, width), square_sizes, device)
                    noise = (clean_u - baseline) * inside
                    perturbed = torch.where(inside, torch.full_like(noise, baseline), clean_u)
                perturbed = pixels.to_model(perturbed)
                dots[start:stop] = (noise * phi[samples]).flatten(1).sum(dim=1, dtype=torch.float64)
                diffs[start:stop] = clean[samples] - target_scores(model, perturbed, t[samples], score=score,
                                                                   batch_size=batch_size).double()
        dots, diffs = dots.view(count, n), diffs.view(count, n)
        if normalize:
            energy = (dots * dots).sum(dim=1)
            beta = (dots * diffs).sum(dim=1) / torch.where(energy > 0, energy, torch.ones_like(energy))
        else:
            beta = torch.ones(count, dtype=torch.float64, device=device)
        values[active] = ((beta[:, None] * dots - diffs) ** 2).mean(dim=1).float()
        betas[active] = beta.float()
    if return_details:
        return values, {"beta": betas}
    return values


# --------------------------------------------------------------------------- sensitivity
def sensitivities(
    model: nn.Module,
    images: torch.Tensor,
    maps: torch.Tensor,
    targets: torch.Tensor,
    *,
    sample_ids: torch.Tensor | Sequence[int] | None = None,
    radius: float = SENSITIVITY_RADIUS,
    num_samples: int = SENSITIVITY_SAMPLES,
    norm: str = "fro",
    relative: bool = True,
    explainer: str | Callable[..., torch.Tensor] = "native",
    explain_options: dict[str, Any] | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    seed: int = 0,
    space: str = "normalized",
    norm_mean: Sequence[float] = IMAGENET_DEFAULT_MEAN,
    norm_std: Sequence[float] = IMAGENET_DEFAULT_STD,
) -> torch.Tensor:
    """``B×num_samples`` values ``‖Φ(x+δ_j) − Φ(x)‖ (/ ‖Φ(x)‖)``, NaN rows for non-finite maps.

    The shared core of :func:`max_sensitivity` and :func:`avg_sensitivity` (same arguments).
    """
    require_model(model, "sensitivity")
    images = check_images(images)
    batch, channels, height, width = images.shape
    maps, finite = check_maps(maps, images)
    targets = check_targets(targets, batch, images.device)
    ids = check_sample_ids(sample_ids, batch)
    if norm not in NORMS:
        raise ValueError(f"unknown norm {norm!r}; valid: {', '.join(NORMS)}")
    if not radius > 0:
        raise ValueError(f"radius must be > 0, got {radius}")
    _check_positive_int("num_samples", num_samples)
    _check_positive_int("batch_size", batch_size)
    explain_fn = make_explainer(explainer, explain_options)
    pixels = InputSpace(space, images, norm_mean, norm_std, metric="sensitivity")

    out = torch.full((batch, num_samples), math.nan, device=images.device)
    active = torch.nonzero(finite).flatten()
    if active.numel():
        device, n, count = images.device, num_samples, active.numel()
        x, phi, t = images[active], maps[active].to(images.device), targets[active]
        source_ids = ids[active.cpu()]
        gens = _generators(source_ids, seed, SENSITIVITY_STREAM, device)
        ord_ = NORMS[norm]
        result = torch.zeros(count * n, device=device)
        for start, stop in _chunks(count * n, batch_size):
            samples = torch.arange(start, stop, device=device) // n
            delta = torch.stack([torch.empty((channels, height, width), device=device).uniform_(
                -radius, radius, generator=gens[s]) for s in samples.tolist()])
            noisy = pixels.to_model(pixels.to_space(x[samples]) + delta) if space == "pixel" else x[samples] + delta
            explained = explain_checked(explain_fn, model, noisy, t[samples], source_ids[samples.cpu()])
            result[start:stop] = torch.linalg.vector_norm((explained - phi[samples]).flatten(1), ord=ord_, dim=1)
        result = result.view(count, n)
        if relative:
            scale = torch.linalg.vector_norm(phi.flatten(1), ord=ord_, dim=1)
            result = result / torch.where(scale == 0, torch.ones_like(scale), scale)[:, None]
        out[active] = result
    return out


def max_sensitivity(
    model: nn.Module,
    images: torch.Tensor,
    maps: torch.Tensor,
    targets: torch.Tensor,
    *,
    sample_ids: torch.Tensor | Sequence[int] | None = None,
    radius: float = SENSITIVITY_RADIUS,
    num_samples: int = SENSITIVITY_SAMPLES,
    norm: str = "fro",
    relative: bool = True,
    explainer: str | Callable[..., torch.Tensor] = "native",
    explain_options: dict[str, Any] | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    seed: int = 0,
    space: str = "normalized",
    norm_mean: Sequence[float] = IMAGENET_DEFAULT_MEAN,
    norm_std: Sequence[float] = IMAGENET_DEFAULT_STD,
    return_details: bool = False,
):
    """Max-sensitivity (Yeh et al. 2019; Captum ``sensitivity_max``), ``B`` floats, lower is better.

    Args:
        radius: half-width of the uniform noise per input element (in ``space``'s units).
        num_samples: perturbations per image.
        norm: ``"fro"`` (L2), ``"inf"`` or ``"l1"`` of the flattened map difference.
        relative: divide by the norm of ``maps`` (zero → 1, as Captum).
        explainer, explain_options: how ``Φ(x + δ)`` is computed (see the module docstring);
            must match how ``maps`` were made.
        batch_size: perturbed images per explainer call.
        space: ``"normalized"`` or ``"pixel"`` (noise in [0, 1] pixel units, Yeh et al.).
        norm_mean, norm_std: the images' normalization, for ``space="pixel"``.
        return_details: also return ``{"sensitivities": B×num_samples}``.
    """
    values = sensitivities(model, images, maps, targets, sample_ids=sample_ids, radius=radius, num_samples=num_samples,
                           norm=norm, relative=relative, explainer=explainer, explain_options=explain_options,
                           batch_size=batch_size, seed=seed, space=space, norm_mean=norm_mean, norm_std=norm_std)
    result = values.amax(dim=1)
    return (result, {"sensitivities": values}) if return_details else result


def avg_sensitivity(
    model: nn.Module,
    images: torch.Tensor,
    maps: torch.Tensor,
    targets: torch.Tensor,
    *,
    sample_ids: torch.Tensor | Sequence[int] | None = None,
    radius: float = SENSITIVITY_RADIUS,
    num_samples: int = SENSITIVITY_SAMPLES,
    norm: str = "fro",
    relative: bool = True,
    explainer: str | Callable[..., torch.Tensor] = "native",
    explain_options: dict[str, Any] | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    seed: int = 0,
    space: str = "normalized",
    norm_mean: Sequence[float] = IMAGENET_DEFAULT_MEAN,
    norm_std: Sequence[float] = IMAGENET_DEFAULT_STD,
    return_details: bool = False,
):
    """Average-sensitivity (Bhatt et al. 2020; Quantus ``AvgSensitivity``): the mean instead of the
    max of :func:`max_sensitivity` over the same perturbations (same arguments), ``B`` floats."""
    values = sensitivities(model, images, maps, targets, sample_ids=sample_ids, radius=radius, num_samples=num_samples,
                           norm=norm, relative=relative, explainer=explainer, explain_options=explain_options,
                           batch_size=batch_size, seed=seed, space=space, norm_mean=norm_mean, norm_std=norm_std)
    result = values.mean(dim=1)
    return (result, {"sensitivities": values}) if return_details else result
