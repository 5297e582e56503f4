"""``select``: which epoch ``OUT/best/`` holds (best val top-1, last epoch, lowest val loss),
kept exactly across a resume; the one warning when best/ is picked on a test split."""
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from seethrough.config import resolve_config
from seethrough.core.checkpoint import load_checkpoint
from seethrough.engine import train
from seethrough.engine import trainer as trainer_module
from seethrough.engine.selection import Selection, selection_warning

#: Scripted validation results per epoch: top-1 peaks at epoch 2, the loss is lowest at epoch 1,
#: so best, best-loss and last each pick another epoch.
VAL_ACC1, VAL_LOSS = (0.5, 0.9, 0.7), (0.4, 0.8, 0.6)
EXPECTED = {"best": 2, "best-loss": 1, "last": 3}


@pytest.fixture
def scripted_val(monkeypatch):
    """Replace the validation pass by the scripted values, one per call, across runs."""
    calls, script = [], {"acc1": VAL_ACC1, "loss": VAL_LOSS}

    def fake(model, loader, fabric):
        i = len(calls)
        calls.append(i)
        return {"samples": 8, "skipped": 0, "loss": script["loss"][i], "acc1": script["acc1"][i], "acc5": 1.0}

    monkeypatch.setattr(trainer_module, "validate_model", fake)
    return script


def best_card(out) -> dict:
    return json.loads((Path(out) / "best" / "config.json").read_text())["card"]


@pytest.mark.slow
@pytest.mark.parametrize("select", list(EXPECTED))
def test_each_select_mode_keeps_its_epoch(tiny_config, scripted_val, select):
    cfg = tiny_config(epochs=3, max_batches=1, select=select)
    summary = train(cfg)
    card = best_card(cfg.out)
    assert card["epoch"] == summary["best_epoch"] == EXPECTED[select]
    assert card["select"] == select
    chosen = EXPECTED[select] - 1
    assert summary["selection"] == {
        "select": select, "rule": {"best": "highest val top-1", "last": "last epoch",
                                   "best-loss": "lowest val loss"}[select],
        "epoch": EXPECTED[select], "val_acc1": VAL_ACC1[chosen], "val_loss": VAL_LOSS[chosen],
        "val_is_test_split": None}


@pytest.mark.slow
def test_resume_keeps_the_lowest_loss_so_far(tiny_config, scripted_val):
    cfg = tiny_config(epochs=2, max_batches=1, select="best-loss")
    train(cfg)
    assert load_checkpoint(Path(cfg.out) / "last.ckpt")["state"]["best_loss"] == VAL_LOSS[0]
    cfg.epochs, cfg.resume = 3, True   # epoch 3 (loss 0.6) beats a forgotten state, not epoch 1's 0.4
    summary = train(cfg)
    assert summary["epochs"] == 3 and summary["best_epoch"] == 1 == best_card(cfg.out)["epoch"]


#: ProtoPNet's plan in 5 engine epochs: warm, joint, joint, then push and 2 last-layer epochs.
STAGES = {"warm_epochs": 1, "push_start": 1, "push_every": 2, "last_layer_epochs": 2}


@pytest.mark.slow
@pytest.mark.parametrize("select, expected", [("best-loss", 5), ("best", 4), ("last", 5)])
def test_after_the_push_only_pushed_models_compete_under_every_rule(tiny_config, scripted_val, select, expected):
    # the unpushed epochs 1-3 have the lowest loss and the highest top-1: none may stay in best/
    scripted_val.update(loss=(0.1, 0.2, 0.3, 0.9, 0.5), acc1=(0.9, 0.9, 0.9, 0.6, 0.5))
    cfg = tiny_config(model="protopnet", backbone="test_resnet", img_size=64, epochs=3, stage_options=STAGES,
                      model_options={"num_prototypes": 6, "prototype_dim": 16}, max_batches=1, select=select,
                      data_options={"num_samples": 24, "img_size": 64, "num_classes": 3})
    summary = train(cfg)
    assert summary["epochs"] == 5 and summary["best_epoch"] == expected == best_card(cfg.out)["epoch"]


@pytest.mark.slow
def test_resume_with_another_select_is_refused(tiny_config, scripted_val):
    cfg = tiny_config(epochs=1, max_batches=1, select="last")
    train(cfg)
    with pytest.raises(ValueError, match="select: checkpoint 'last' vs now 'best'"):
        train(tiny_config(epochs=2, max_batches=1, select="best", resume=True))


def test_unknown_select_is_refused_naming_the_flag(tiny_config):
    with pytest.raises(ValueError, match="--select must be one of best, last, best-loss"):
        tiny_config(select="top5")


def test_selection_rules():
    state = Selection(epoch=1, acc1=0.5, loss=0.4)
    assert state.improves("best", 0.6, 9.0) and not state.improves("best", 0.5, 0.1)
    assert state.improves("best-loss", 0.0, 0.3) and not state.improves("best-loss", 1.0, 0.4)  # strictly lower
    assert state.improves("last", 0.0, 9.0)


def write_folder(root: Path, val_name: str) -> Path:
    """train/ and VAL_NAME/ (val or test) with 2 classes of 4 tiny images each."""
    rng = np.random.default_rng(0)
    for split in ("train", val_name):
        for c in ("a", "b"):
            (root / split / c).mkdir(parents=True)
            for i in range(4):
                pixels = rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(root / split / c / f"{i}.png")
    return root


def run_folder(tmp_path, val_name: str, select: str, capsys) -> str:
    data = f"folder:{write_folder(tmp_path / val_name, val_name)}"
    cfg = resolve_config(overrides=dict(data=data, backbone="test_efficientnet", img_size=32, batch_size=4,
                                        epochs=2, workers=0, progress=False, select=select,
                                        out=str(tmp_path / f"run-{val_name}-{select}")))
    summary = train(cfg)
    return capsys.readouterr().out, summary


def test_selecting_on_a_test_split_warns_once(tmp_path, capsys):
    out, summary = run_folder(tmp_path, "test", "best", capsys)
    assert out.count("warning: --select best picks best/ on the validation data folder:") == 1
    assert "model selection on the test set" in out and "--select last" in out
    assert summary["selection"]["val_is_test_split"].startswith("the test/ folder")


@pytest.mark.parametrize("val_name, select", [("val", "best"), ("test", "last")])
def test_no_warning_on_a_validation_split_or_with_select_last(tmp_path, capsys, val_name, select):
    out, _ = run_folder(tmp_path, val_name, select, capsys)
    assert "warning: --select" not in out


@pytest.mark.slow
def test_no_warning_for_synthetic_data(tiny_config, capsys):
    train(tiny_config(epochs=1, max_batches=1, select="best-loss"))
    assert "warning: --select" not in capsys.readouterr().out


def test_warning_text_names_dataset_and_fixes():
    text = selection_warning("best-loss", "cub:/data/CUB", "CUB-200-2011's official test split")
    assert "cub:/data/CUB" in text and "CUB-200-2011's official test split" in text
    assert "--select last" in text and "--val-data" in text
    assert selection_warning("last", "cub:/data/CUB", "CUB's test split") is None
    assert selection_warning("best", "synthetic", None) is None
