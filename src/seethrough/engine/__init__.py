"""Training engine on Lightning Fabric."""
from .checkpoint import load_checkpoint, save_checkpoint
from .evaluate import evaluate_accuracy
from .trainer import NonFiniteLossError, Trainer, train

__all__ = ["NonFiniteLossError", "Trainer", "evaluate_accuracy", "load_checkpoint", "save_checkpoint", "train"]
