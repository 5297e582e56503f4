# Shortcuts for the README's two commands (make is optional: the README gives plain commands).
VENV ?= .venv

.PHONY: demo test bench
demo:
	python3 -m venv $(VENV) && $(VENV)/bin/pip install -e . && $(VENV)/bin/seethrough demo
test:
	python3 -m venv $(VENV) && $(VENV)/bin/pip install -e ".[test]" && $(VENV)/bin/python -m pytest
bench:
	$(VENV)/bin/python benchmarks/train_throughput.py
