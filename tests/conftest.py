"""Shared helpers: tiny, fast training configurations on the built-in synthetic data."""
from __future__ import annotations

import pytest

from seethrough.config import TrainConfig

#: A tiny timm backbone and image size that keep a CPU training step in milliseconds.
TINY_BACKBONE, TINY_SIZE = "test_efficientnet", 32


def make_tiny_config(out, **overrides) -> TrainConfig:
    """A validated TrainConfig that trains in a few seconds on 2 CPU cores."""
    values = dict(
        data="synthetic", data_options={"num_samples": 48, "img_size": TINY_SIZE, "num_classes": 3},
        backbone=TINY_BACKBONE, img_size=TINY_SIZE, batch_size=8, epochs=2, lr=1e-3,
        scheduler="cosine", workers=0, progress=False, out=str(out),
    )
    values.update(overrides)
    return TrainConfig(**values).validate()


@pytest.fixture(scope="session")
def tiny_config_factory():
    """:func:`make_tiny_config` itself, for fixtures of wider scope."""
    return make_tiny_config


@pytest.fixture
def tiny_config(tmp_path):
    """``tiny_config(**overrides)`` → :func:`make_tiny_config` writing into ``tmp_path/run``."""
    return lambda **overrides: make_tiny_config(tmp_path / "run", **overrides)
