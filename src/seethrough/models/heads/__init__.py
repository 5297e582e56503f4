"""One file per paper's head; importing this package registers them all."""
from . import castream, intr, linear, prototype, scouter  # noqa: F401
