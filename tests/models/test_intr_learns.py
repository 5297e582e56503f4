"""A short CPU training on the synthetic data: a tiny INTR beats chance clearly and its native
maps (last decoder layer's cross-attention, head average) sit on the ground-truth evidence.

The backbone trains from scratch here, so ``frozen_bn=False``: INTR freezes BatchNorm because
it starts from DETR's pretrained ResNet-50; frozen at their initial values (mean 0, variance 1,
identity affine) the layers would leave a random ResNet unnormalized."""
from pathlib import Path

import pytest

from seethrough.config import resolve_config
from seethrough.demo import score_and_render
from seethrough.engine import train

#: trains models: deselect with -m "not slow" for the quick loop
pytestmark = pytest.mark.slow

SAMPLES, CLASSES, EPOCHS = 256, 4, 3
CHANCE = 1 / CLASSES
#: One encoder and one decoder layer of width 32: INTR's structure at a CPU-test size.
TINY_INTR = {"d_model": 32, "nheads": 4, "num_encoder_layers": 1, "num_decoder_layers": 1,
             "dim_feedforward": 64, "dropout": 0.1, "frozen_bn": False}
#: Evidence mass must clearly exceed a uniform map's (the mask's share of the image).
MASS_OVER_UNIFORM = 1.5


def test_intr_learns_and_its_attention_looks_at_the_evidence(tmp_path):
    overrides = {"data_options": {"num_samples": SAMPLES, "num_classes": CLASSES}, "progress": False,
                 "model": "intr", "model_options": TINY_INTR, "epochs": EPOCHS, "out": str(tmp_path / "intr")}
    cfg = resolve_config(preset="demo", overrides=overrides)  # resnet18 from scratch, 64 px, 8×8 maps
    summary = train(cfg)
    assert summary["best_val_acc1"] >= CHANCE + 0.4
    scores = score_and_render(Path(cfg.out), tmp_path / "pictures", cfg.data_options, "gt")
    assert scores["evidence_mass"] > MASS_OVER_UNIFORM * scores["evidence_mass_uniform"]
