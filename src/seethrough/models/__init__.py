"""Models: a timm backbone plus one head per paper, all returning :class:`ModelOutput`."""
from . import heads  # noqa: F401  (registers the heads)
from .backbone import Backbone
from .base import SeeThroughModel
from .hub import from_pretrained, save_pretrained
from .official import from_official as from_official
from .output import ModelOutput
from .registry import create_model, list_models, register_model

__all__ = [
    "Backbone", "ModelOutput", "SeeThroughModel", "create_model", "from_pretrained",
    "list_models", "register_model", "save_pretrained",
]
