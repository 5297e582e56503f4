"""One file per paper's head; importing this package registers them all."""
from . import castream, intr, linear, scouter  # noqa: F401
