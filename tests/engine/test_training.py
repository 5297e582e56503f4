"""The engine end to end on tiny synthetic runs: summary, resume, crash, NaN, bad images."""
import json
from pathlib import Path

import pytest
import torch

from seethrough.core.checkpoint import load_checkpoint
from seethrough.engine import NonFiniteLossError, Trainer, train

#: trains models: deselect with -m "not slow" for the quick loop
pytestmark = pytest.mark.slow


def final_weights(run: str) -> dict[str, torch.Tensor]:
    return load_checkpoint(Path(run) / "last.ckpt")["model"]


def test_run_writes_summary_checkpoint_logs_and_best_model(tiny_config):
    cfg = tiny_config()
    summary = train(cfg)
    out = Path(cfg.out)
    written = json.loads((out / "summary.json").read_text())
    for key in ("val_acc1", "val_acc5", "epochs", "images_per_s"):
        assert written[key] == summary[key]
    assert summary["epochs"] == 2 and summary["steps"] == 2 * (48 // 8)
    assert (out / "best" / "model.safetensors").is_file()
    events = [json.loads(line)["event"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert events.count("epoch") == 2
    assert any((out / "tensorboard").iterdir())


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, tiny_config_factory):
    cfg = tiny_config_factory(tmp_path_factory.mktemp("reference"), augment="crop-flip")
    train(cfg)
    return cfg


@pytest.mark.parametrize("crash_at", [3, 7])  # mid-epoch 1 (batch 3 of 6), mid-epoch 2
def test_kill_and_resume_gives_the_same_weights(tiny_config, crash_at_step, crash_at, uninterrupted):
    reference = uninterrupted

    cfg = tiny_config(augment="crop-flip")
    crash_at_step(crash_at)
    with pytest.raises(crash_at_step.Crash):
        train(cfg)
    assert load_checkpoint(Path(cfg.out) / "last.ckpt")["state"]["global_step"] == crash_at - 1
    crash_at_step(None)
    cfg.resume = True
    summary = train(cfg)
    ref_weights, weights = final_weights(reference.out), final_weights(cfg.out)
    for key in ref_weights:
        assert torch.equal(ref_weights[key], weights[key]), key
    ref_summary = json.loads((Path(reference.out) / "summary.json").read_text())
    assert summary["train_loss"] == pytest.approx(ref_summary["train_loss"], rel=1e-9)


def test_resume_with_other_settings_is_refused(tiny_config):
    cfg = tiny_config(epochs=1)
    train(cfg)
    changed = tiny_config(epochs=2, backbone="resnet18", resume=True)
    with pytest.raises(ValueError, match="backbone: checkpoint 'test_efficientnet' vs now 'resnet18'"):
        train(changed)


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(tiny_config, monkeypatch):
    cfg = tiny_config(epochs=2)
    original = Trainer.train_step
    calls = {"n": 0}

    def poisoned(self, batch):
        calls["n"] += 1
        if calls["n"] == 8:  # epoch 2
            batch = dict(batch, image=batch["image"] * float("nan"))
        return original(self, batch)

    monkeypatch.setattr(Trainer, "train_step", poisoned)
    with pytest.raises(NonFiniteLossError, match=r"loss became non-finite \(NaN/Inf\) at epoch 2, step 8; the last good checkpoint.*--resume"):
        train(cfg)
    state = load_checkpoint(Path(cfg.out) / "last.ckpt")
    assert state["state"]["epoch"] == 1
    assert all(torch.isfinite(v.float()).all() for v in state["model"].values())


def test_class_count_mismatch_is_a_clear_error(tiny_config):
    with pytest.raises(ValueError, match="--num-classes 5 does not match --data synthetic, which has 3 classes"):
        train(tiny_config(num_classes=5))


def test_bf16_mixed_precision_trains_on_cpu(tiny_config):
    summary = train(tiny_config(epochs=1, precision="bf16-mixed", accelerator="cpu"))
    assert summary["steps"] == 48 // 8
    weights = final_weights(summary["checkpoint"].rsplit("/", 1)[0])
    assert all(torch.isfinite(w.float()).all() for w in weights.values())
    assert weights["fc.weight"].dtype == torch.float32  # mixed precision keeps fp32 master weights


def test_scouter_nan_message_names_the_safe_normalization(tiny_config, monkeypatch):
    original = Trainer.train_step

    def poisoned(self, batch):
        return original(self, dict(batch, image=batch["image"] * float("nan")))

    monkeypatch.setattr(Trainer, "train_step", poisoned)
    with pytest.raises(NonFiniteLossError, match="--model-opt normalization=safe"):
        train(tiny_config(model="scouter", epochs=1))


def test_non_finite_gradients_with_clipping_give_the_nan_message_not_a_clip_error(tiny_config, monkeypatch):
    """Audit B3: clipping used error_if_nonfinite=True, so a NaN loss ended in clip_grad_norm_'s
    RuntimeError (and a scaler-skippable fp16 overflow ended the run) before the NaN message."""
    original = Trainer.train_step

    def poisoned(self, batch):
        return original(self, dict(batch, image=batch["image"] * float("nan")))

    monkeypatch.setattr(Trainer, "train_step", poisoned)
    with pytest.raises(NonFiniteLossError, match="loss became non-finite"):
        train(tiny_config(epochs=1, clip_grad=1.0))
