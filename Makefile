# Shortcuts for the README's commands (make is optional: the README gives plain commands).
VENV ?= .venv

.PHONY: demo test quick lint bench
demo:
	python3 -m venv $(VENV) && $(VENV)/bin/pip install -e . && $(VENV)/bin/seethrough demo
test:
	python3 -m venv $(VENV) && $(VENV)/bin/pip install -e ".[test]" && $(VENV)/bin/python -m pytest
# the quick loop: everything but training, DDP, resume and demo tests
quick:
	$(VENV)/bin/python -m pytest -m "not slow"
# lint + import order, types, and the one-way import layers (tests/test_architecture.py)
lint:
	$(VENV)/bin/ruff check src && $(VENV)/bin/mypy && $(VENV)/bin/python -m pytest -q tests/test_architecture.py
bench:
	$(VENV)/bin/python benchmarks/train_throughput.py
