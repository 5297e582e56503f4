"""Explanations: which classes, their maps made viewable, and pictures of them.

    from seethrough.explanations import explain_batch, render_batch, denormalize

    result = explain_batch(model, images, policy="pred", k=3)     # one forward pass
    pictures = denormalize(images, mean, std)                     # B×H×W×3 uint8
    render_batch(result, pictures, class_names, "out/", stems)    # PNGs + explanations.json
"""
from .maps import NORMALIZATIONS, gather, normalize, upsample
from .native import SUMMARY_FILENAME, explain_batch, render_batch
from .render import colormap, denormalize, overlay, safe_filename, save_explanation_grid, save_overlay
from .targets import POLICIES, select_classes

__all__ = [
    "NORMALIZATIONS", "POLICIES", "SUMMARY_FILENAME", "colormap", "denormalize", "explain_batch",
    "gather", "normalize", "overlay", "render_batch", "safe_filename", "save_explanation_grid",
    "save_overlay", "select_classes", "upsample",
]
