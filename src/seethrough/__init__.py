"""seethrough: image classifiers that show their evidence.

Every model returns logits and per-class evidence maps from one forward pass::

    import seethrough
    model = seethrough.create_model("fc", num_classes=10, backbone="resnet18")
    out = model(images)          # out.logits B×C, out.maps B×C×h×w, out.extras {...}

    summary = seethrough.train(preset="demo", out="runs/demo")         # a run
    report = seethrough.validate("runs/demo", "synthetic")              # accuracy
    maps = seethrough.explain(model, images, "pred", method="gradcam")  # B×H×W
    results = seethrough.evaluate(["runs/demo"], protocol="quick")      # explanation metrics
"""
from __future__ import annotations

import importlib
from typing import Any

from . import metrics
from ._version import __version__
from .explanations import (
    denormalize,
    explain,
    explain_batch,
    list_explainers,
    register_explainer,
    render_batch,
)
from .models import (
    ModelOutput,
    create_model,
    from_official,
    from_pretrained,
    list_models,
    register_model,
)

#: Entry points that import Lightning, loaded on first use (``import seethrough`` stays light).
_LAZY: dict[str, tuple[str, str]] = {
    "train": ("seethrough.engine.trainer", "train"),
    "validate": ("seethrough.validation", "validate"),
    "evaluate": ("seethrough.suite", "evaluate"),
    "benchmark": ("seethrough.benchmark", "benchmark"),
}


def __getattr__(name: str) -> Any:  # PEP 562
    if name in _LAZY:
        module, attribute = _LAZY[name]
        return getattr(importlib.import_module(module), attribute)
    raise AttributeError(f"module 'seethrough' has no attribute {name!r}")


__all__ = [
    "ModelOutput", "__version__", "benchmark", "create_model", "denormalize", "evaluate", "explain", "explain_batch",
    "from_official", "from_pretrained", "list_explainers", "list_models", "metrics", "register_explainer",
    "register_model", "render_batch", "train", "validate",
]
