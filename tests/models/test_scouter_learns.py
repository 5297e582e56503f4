"""A short CPU training on the synthetic data: SCOUTER+ (from the FC backbone, SCOUTER's
use_pre recipe) beats chance clearly and its maps sit on the ground-truth evidence."""
from pathlib import Path

import pytest

from seethrough.config import resolve_config
from seethrough.demo import score_and_render
from seethrough.engine import train

#: trains models: deselect with -m "not slow" for the quick loop
pytestmark = pytest.mark.slow

SAMPLES, CLASSES = 256, 4
CHANCE = 1 / CLASSES


def test_scouter_pos_learns_and_looks_at_the_evidence(tmp_path):
    common = {"data_options": {"num_samples": SAMPLES, "num_classes": CLASSES}, "progress": False}
    fc = resolve_config(preset="demo", overrides={**common, "epochs": 1, "out": str(tmp_path / "fc")})
    train(fc)
    cfg = resolve_config(preset="demo", overrides={**common, "model": "scouter", "model_options": {"sign": 1, "slots_per_class": 1, "power": 1},
                                                   "use_pre": fc.out, "epochs": 2, "out": str(tmp_path / "pos")})
    summary = train(cfg)
    assert summary["best_val_acc1"] >= CHANCE + 0.4
    scores = score_and_render(Path(cfg.out), tmp_path / "pictures", cfg.data_options, "gt")
    assert scores["evidence_mass"] > 2 * scores["evidence_mass_uniform"]
