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


#: The demo's synthetic data at test size: 4 classes, 256 images per split.
DEMO_SAMPLES, DEMO_CLASSES = 256, 4


@pytest.fixture(scope="session")
def demo_fc_run(tmp_path_factory):
    """The demo preset's FC baseline (resnet18 from scratch, 64 px, output stride 8) on 256 / 256
    synthetic images of 4 classes, trained once per session: the use_pre source of the heads
    that start from a trained backbone (CA-Stream, ProtoPNet)."""
    from seethrough.config import resolve_config
    from seethrough.engine import train

    out = tmp_path_factory.mktemp("demo-fc") / "fc"
    cfg = resolve_config(preset="demo", overrides={
        "data_options": {"num_samples": DEMO_SAMPLES, "num_classes": DEMO_CLASSES}, "progress": False,
        "out": str(out)})
    return out, train(cfg)


@pytest.fixture(scope="session")
def tiny_config_factory():
    """:func:`make_tiny_config` itself, for fixtures of wider scope."""
    return make_tiny_config


@pytest.fixture
def tiny_config(tmp_path):
    """``tiny_config(**overrides)`` → :func:`make_tiny_config` writing into ``tmp_path/run``."""
    return lambda **overrides: make_tiny_config(tmp_path / "run", **overrides)


class Crash(Exception):
    """Raised by :func:`crash_at_step` in place of a training step."""


@pytest.fixture
def crash_at_step(monkeypatch):
    """``crash_at_step(n)`` makes the n-th ``Trainer.train_step`` call raise
    ``crash_at_step.Crash`` (a crash mid-training); ``crash_at_step(None)`` restores the real
    step for the resumed run."""
    from seethrough.engine import Trainer

    original = Trainer.train_step

    def arm(n):
        if n is None:
            monkeypatch.setattr(Trainer, "train_step", original)
            return
        calls = {"n": 0}

        def crashing_step(self, batch):
            calls["n"] += 1
            if calls["n"] == n:
                raise Crash
            return original(self, batch)

        monkeypatch.setattr(Trainer, "train_step", crashing_step)

    arm.Crash = Crash
    return arm
