"""Explanations: which classes, their maps made viewable, and pictures of them.

    from seethrough.explanations import explain, explain_batch, render_batch, denormalize

    maps = explain(model, images, "pred", method="gradcam")     # B×H×W in [0, 1], any method

    result = explain_batch(model, images, policy="pred", k=3)     # one forward pass
    pictures = denormalize(images, mean, std)                     # B×H×W×3 uint8
    render_batch(result, pictures, class_names, "out/", stems)    # PNGs + explanations.json

One vocabulary everywhere: ``normalize`` ∈ :data:`NORMALIZE_MODES`, ``upsample`` ∈
:data:`UPSAMPLE_MODES`, target policies :data:`TARGET_POLICIES` (or a class-map ``FILE.json``).
"""
from .api import explain, get_explainer, list_explainers, register_explainer, resolve_targets
from .maps import NORMALIZE_MODES, UPSAMPLE_MODES, gather, normalize, upsample
from .native import SUMMARY_FILENAME, explain_batch, render_batch
from .render import colormap, denormalize, overlay, safe_filename, save_explanation_grid, save_overlay
from .targets import TARGET_POLICIES, load_class_map, select_classes

__all__ = [
    "NORMALIZE_MODES", "SUMMARY_FILENAME", "TARGET_POLICIES", "UPSAMPLE_MODES", "colormap", "denormalize",
    "explain", "explain_batch", "gather", "get_explainer", "list_explainers", "load_class_map", "normalize",
    "overlay", "register_explainer", "render_batch", "resolve_targets", "safe_filename", "save_explanation_grid",
    "save_overlay", "select_classes", "upsample",
]
