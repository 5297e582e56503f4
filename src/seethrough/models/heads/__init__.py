"""One file per paper's head; importing this package registers them all."""
from . import linear, scouter  # noqa: F401
