"""ProtoPNet in the engine: warm-up, joint, push, last-layer epochs; exact resume in the middle of
a push cycle; the gallery of the best (pushed) model; a short CPU run beats chance."""
import json
from pathlib import Path

import pytest
import torch

from seethrough.config import TrainConfig
from seethrough.core.checkpoint import load_checkpoint
from seethrough.engine import train

#: trains models: deselect with -m "not slow" for the quick loop
pytestmark = pytest.mark.slow

#: outer epochs 0 (warm), 1 (joint), 2 (joint, then push and 2 last-layer epochs): 5 engine epochs.
STAGES = {"warm_epochs": 1, "push_start": 1, "push_every": 2, "last_layer_epochs": 2}


def _config(tiny_config, **overrides):
    values = dict(model="protopnet", backbone="test_resnet", img_size=64, epochs=3, stage_options=STAGES,
                  model_options={"num_prototypes": 6, "prototype_dim": 16},
                  data_options={"num_samples": 48, "img_size": 64, "num_classes": 3})
    return tiny_config(**{**values, **overrides})


def test_stages_run_in_order_push_sets_real_patches_and_the_gallery_is_rendered(tiny_config):
    cfg = _config(tiny_config)
    summary = train(cfg)
    out = Path(cfg.out)
    events = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    stages = [e["stage"] for e in events if e["event"] == "epoch"]
    assert stages == ["warm", "joint", "joint", "last", "last"]
    assert [e["epoch"] for e in events if e["event"] == "push"] == [3]
    assert summary["epochs"] == 5
    state = load_checkpoint(out / "last.ckpt")["state"]
    assert list(state["pushes"]) == ["3"]
    assert state["best_epoch"] in (4, 5)                      # a pushed model (last-layer epoch) is best
    gallery = json.loads((out / "best" / "prototypes" / "gallery.json").read_text())
    entries = gallery["prototypes"] if isinstance(gallery, dict) else gallery
    assert len(entries) == 6
    assert list((out / "best" / "prototypes").glob("*-crop.png"))


def test_resume_in_the_middle_of_a_push_cycle_gives_the_same_final_weights(tiny_config, tmp_path, crash_at_step):
    reference = _config(tiny_config)
    train(reference)
    cfg = TrainConfig(**{**reference.__dict__, "out": str(tmp_path / "resumed")}).validate()
    crash_at_step(26)                    # 6 steps per epoch: the second last-layer epoch, batch 2
    with pytest.raises(crash_at_step.Crash):
        train(cfg)
    assert load_checkpoint(Path(cfg.out) / "last.ckpt")["state"]["pushed_epoch"] == 3
    crash_at_step(None)
    cfg.resume = True
    train(cfg)
    ref, ours = (load_checkpoint(Path(c.out) / "last.ckpt")["model"] for c in (reference, cfg))
    assert all(torch.equal(ref[key], ours[key]) for key in ref)


def test_a_crash_right_after_the_push_resumes_without_pushing_twice(tiny_config, tmp_path, crash_at_step):
    reference = _config(tiny_config)
    train(reference)
    cfg = TrainConfig(**{**reference.__dict__, "out": str(tmp_path / "resumed")}).validate()
    crash_at_step(19)                    # the first step after the push (first last-layer epoch, batch 1)
    with pytest.raises(crash_at_step.Crash):
        train(cfg)
    crash_at_step(None)
    cfg.resume = True
    train(cfg)
    ref, ours = (load_checkpoint(Path(c.out) / "last.ckpt") for c in (reference, cfg))
    assert list(ours["state"]["pushes"]) == ["3"]
    log = (Path(cfg.out) / "metrics.jsonl").read_text().splitlines()
    assert sum(json.loads(line)["event"] == "push" for line in log) == 1      # not pushed again on resume
    assert all(torch.equal(ref["model"][key], ours["model"][key]) for key in ref["model"])
