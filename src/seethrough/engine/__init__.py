"""Training engine on Lightning Fabric."""
from ..core.checkpoint import load_checkpoint, save_checkpoint
from .trainer import NonFiniteLossError, Trainer, train
from .validate import validate_model

__all__ = ["NonFiniteLossError", "Trainer", "load_checkpoint", "save_checkpoint", "train", "validate_model"]
