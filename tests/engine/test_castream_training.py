"""CA-Stream in the engine: only the stream moves (BatchNorm statistics included), use_pre
reuses an FC run's backbone and classifier, and a short CPU run beats chance clearly."""
from pathlib import Path

import pytest
import torch

import seethrough
from seethrough.config import resolve_config
from seethrough.engine import train
from seethrough.models.heads.castream import ATTENTION_KEY

#: trains models: deselect with -m "not slow" for the quick loop
pytestmark = pytest.mark.slow

SAMPLES, CLASSES = 256, 4
CHANCE = 1 / CLASSES


def _backbone_state(model):
    return {k: v.clone() for k, v in model.backbone.state_dict().items()}


def _trained(cfg):
    train(cfg)
    return seethrough.from_pretrained(Path(cfg.out) / "best")


@pytest.mark.parametrize("bn_stats", ["frozen", "updated"])
def test_backbone_parameters_and_batchnorm_buffers_are_bit_identical_after_training(tiny_config, bn_stats, capsys):
    # 64 px: test_resnet's final map is 2×2 (at 1×1 the last attention is constant and nothing
    # before it gets a gradient)
    cfg = tiny_config(model="castream", backbone="test_resnet", optimizer="sgd", lr=0.1, weight_decay=1e-4,
                      epochs=1, model_options={"bn_stats": bn_stats}, seed=3, img_size=64,
                      data_options={"num_samples": 48, "img_size": 64, "num_classes": 3})
    torch.manual_seed(cfg.seed)
    initial = seethrough.create_model("castream", num_classes=3, backbone="test_resnet", bn_stats=bn_stats)
    trained = _trained(cfg)
    assert "the frozen classifier is random" in capsys.readouterr().out    # nothing initialized it: said
    before, after = _backbone_state(initial), _backbone_state(trained)
    moved = [k for k in before if not torch.equal(before[k], after[k])]
    assert not torch.equal(initial.stream.blocks[-1].proj.weight, trained.stream.blocks[-1].proj.weight)
    assert torch.equal(initial.classifier.fc.weight, trained.classifier.fc.weight)
    if bn_stats == "frozen":
        assert moved == []
    else:   # the original's behaviour: weights frozen, running statistics follow the batches
        assert moved and all("running_" in k or "num_batches_tracked" in k for k in moved)


@pytest.fixture(scope="module")
def fc_run(demo_fc_run):
    return demo_fc_run


def test_castream_on_an_fc_run_beats_chance_and_attends_to_the_evidence(fc_run, tmp_path, capsys):
    from seethrough.demo import score_and_render

    fc_dir, fc_summary = fc_run
    overrides = {"data_options": {"num_samples": SAMPLES, "num_classes": CLASSES}, "progress": False,
                 "model": "castream", "use_pre": str(fc_dir), "optimizer": "sgd", "lr": 0.1, "weight_decay": 1e-4,
                 "scheduler": "none", "out": str(tmp_path / "ca")}
    cfg = resolve_config(preset="demo", overrides=overrides)
    summary = train(cfg)
    assert summary["best_val_acc1"] >= CHANCE + 0.4
    assert "the frozen classifier is random" not in capsys.readouterr().out   # use_pre provided it
    model = seethrough.from_pretrained(tmp_path / "ca" / "best")
    fc = seethrough.from_pretrained(fc_dir / "best")
    assert torch.equal(model.classifier.fc.weight, fc.fc.weight)      # the FC's classifier, frozen
    scores = score_and_render(tmp_path / "ca", tmp_path / "pictures", cfg.data_options, "gt")
    assert scores["evidence_mass"] > scores["evidence_mass_uniform"]
    out = model.eval()(torch.randn(1, 3, 64, 64))
    assert out.extras[ATTENTION_KEY].shape == (1, 1, 8, 8)


def test_use_pre_of_a_model_that_is_not_an_fc_baseline_is_refused(fc_run, tmp_path):
    from seethrough.models.loading import init_backbone_from, load_for_inference

    fc_dir, _ = fc_run
    classes = load_for_inference(fc_dir).classes
    other = seethrough.create_model("castream", num_classes=CLASSES, backbone="resnet18", output_stride=8)
    other.save_pretrained(tmp_path / "ca", classes=list(classes))
    model = seethrough.create_model("castream", num_classes=CLASSES, backbone="resnet18", output_stride=8)
    with pytest.raises(ValueError, match="reuses the classifier of an FC baseline"):
        init_backbone_from(model, tmp_path / "ca", classes=classes)


def test_kill_and_resume_of_a_castream_run_with_its_recipe_gives_the_same_weights(tiny_config, tmp_path,
                                                                                  crash_at_step):
    from seethrough.config import TrainConfig
    from seethrough.core.checkpoint import load_checkpoint

    recipe = dict(model="castream", backbone="test_resnet", img_size=64, augment="castream", optimizer="sgd", lr=0.1,
                  weight_decay=1e-4, scheduler="multistep", milestones=[1], gamma=0.1,
                  data_options={"num_samples": 48, "img_size": 64, "num_classes": 3})
    reference = tiny_config(**recipe)
    train(reference)
    cfg = TrainConfig(**{**reference.__dict__, "out": str(tmp_path / "resumed")}).validate()
    crash_at_step(7)                                          # mid-epoch 2, after the milestone
    with pytest.raises(crash_at_step.Crash):
        train(cfg)
    crash_at_step(None)
    cfg.resume = True
    train(cfg)
    ref, ours = (load_checkpoint(Path(c.out) / "last.ckpt")["model"] for c in (reference, cfg))
    assert all(torch.equal(ref[key], ours[key]) for key in ref)
