"""One file per paper's head; importing this package registers them all."""
from . import intr, linear, scouter  # noqa: F401
