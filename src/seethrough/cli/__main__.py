"""``python -m seethrough.cli``."""
from . import main

main()
