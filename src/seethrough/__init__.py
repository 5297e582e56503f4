"""seethrough: image classifiers that show their evidence.

Every model returns logits and per-class evidence maps from one forward pass::

    import seethrough
    model = seethrough.create_model("fc", num_classes=10, backbone="resnet18")
    out = model(images)          # out.logits B×C, out.maps B×C×h×w, out.extras {...}
"""
__version__ = "0.1.0"

from .models import (  # noqa: E402
    ModelOutput,
    create_model,
    from_official,
    from_pretrained,
    list_models,
    register_model,
)
from .explanations.api import explain, list_explainers  # noqa: E402
from . import metrics  # noqa: E402


def __getattr__(name: str):  # PEP 562: the evaluation suite imports Lightning, so load it on first use
    if name == "evaluate":
        from .suite import evaluate

        return evaluate
    raise AttributeError(f"module 'seethrough' has no attribute {name!r}")


__all__ = [
    "ModelOutput", "__version__", "create_model", "evaluate", "explain", "from_official", "from_pretrained", "list_explainers",
    "list_models", "metrics", "register_model",
]
