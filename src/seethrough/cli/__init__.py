"""The ``seethrough`` command: one module per subcommand, registered on the app of :mod:`._common`.

    seethrough train | validate | explain | demo | convert | evaluate | benchmark | protocols | explainers
               | presets | models | view | data ... | prototypes ...
"""
from __future__ import annotations

import logging

from . import benchmark as _benchmark  # noqa: F401
from . import convert as _convert  # noqa: F401
from . import data as _data  # noqa: F401
from . import demo as _demo  # noqa: F401
from . import evaluate as _evaluate  # noqa: F401
from . import explain as _explain  # noqa: F401
from . import listing as _listing  # noqa: F401
from . import prototypes as _prototypes  # noqa: F401

# each module registers its subcommands on import, in the order `seethrough --help` lists them
from . import train as _train  # noqa: F401
from . import validate as _validate  # noqa: F401
from . import view as _view  # noqa: F401
from ._common import app, data_app, prototypes_app

app.add_typer(data_app, name="data")
app.add_typer(prototypes_app, name="prototypes")

__all__ = ["app", "main"]


def main() -> None:
    """Entry point of the ``seethrough`` script."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    app()
