"""Explanations: which classes, their maps made viewable, and pictures of them.

    from seethrough.explanations import explain, explain_batch, render_batch, denormalize

    maps = explain(model, images, "pred", method="gradcam")     # B×H×W in [0, 1], any method

    result = explain_batch(model, images, policy="pred", k=3)     # one forward pass
    pictures = denormalize(images, mean, std)                     # B×H×W×3 uint8
    render_batch(result, pictures, class_names, "out/", stems)    # PNGs + explanations.json
"""
from .api import explain, list_explainers, register_explainer, resolve_targets
from .maps import NORMALIZATIONS, gather, normalize, upsample
from .native import SUMMARY_FILENAME, explain_batch, render_batch
from .render import colormap, denormalize, overlay, safe_filename, save_explanation_grid, save_overlay
from .targets import POLICIES, select_classes

__all__ = [
    "NORMALIZATIONS", "POLICIES", "SUMMARY_FILENAME", "colormap", "denormalize", "explain", "explain_batch",
    "gather", "list_explainers", "normalize", "overlay", "register_explainer", "render_batch", "resolve_targets",
    "safe_filename", "save_explanation_grid", "save_overlay", "select_classes", "upsample",
]
