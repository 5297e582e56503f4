"""One file per paper's head; importing this package registers them all."""
from . import linear  # noqa: F401
