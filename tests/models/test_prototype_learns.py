"""A short CPU run on the synthetic data: ProtoPNet on the demo's FC backbone (warm-up, joint,
push, last layer) beats chance clearly, and its pushed prototypes are real training patches."""
from pathlib import Path

import pytest

from seethrough.config import resolve_config
from seethrough.engine import train

#: trains models: deselect with -m "not slow" for the quick loop
pytestmark = pytest.mark.slow

SAMPLES, CLASSES = 256, 4
CHANCE = 1 / CLASSES
#: warm-up 1, joint 3 (the FC backbone at 1e-4), push after outer epoch 4, 2 last-layer epochs; the
#: paper's learning rates. Batches of 8 give the prototype layer enough steps (32 per epoch).
STAGES = {"warm_epochs": 1, "push_start": 4, "push_every": 4, "last_layer_epochs": 2}
EPOCHS, BATCH = 5, 8


def test_protopnet_beats_chance_after_its_push(demo_fc_run, tmp_path):
    fc_dir, _ = demo_fc_run
    overrides = {"data_options": {"num_samples": SAMPLES, "num_classes": CLASSES}, "progress": False,
                 "model": "protopnet", "use_pre": str(fc_dir), "epochs": EPOCHS, "batch_size": BATCH,
                 "stage_options": STAGES,
                 "model_options": {"prototype_dim": 32, "add_on": "regular"}, "out": str(tmp_path / "ppnet")}
    cfg = resolve_config(preset="demo", overrides=overrides)
    summary = train(cfg)
    assert summary["best_val_acc1"] >= CHANCE + 0.4          # the best model is a pushed one
    assert (Path(cfg.out) / "best" / "prototypes" / "gallery.json").is_file()
