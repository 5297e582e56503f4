import pytest
import torch

import seethrough
from seethrough.config import TrainConfig
from seethrough.engine.optim import build_optimizer, build_scheduler


def test_weight_decay_is_applied_to_weights_not_biases():
    model = seethrough.create_model("fc", num_classes=3, backbone="test_efficientnet")
    opt = build_optimizer(model, TrainConfig(weight_decay=0.05))
    decay, no_decay = opt.param_groups
    assert decay["weight_decay"] == 0.05 and no_decay["weight_decay"] == 0.0
    assert any(p is model.fc.weight for p in decay["params"])
    assert any(p is model.fc.bias for p in no_decay["params"])


def test_frozen_model_is_refused():
    model = seethrough.create_model("fc", num_classes=3, backbone="test_efficientnet")
    for p in model.parameters():
        p.requires_grad_(False)
    with pytest.raises(ValueError, match="no trainable parameters"):
        build_optimizer(model, TrainConfig())


def lrs(cfg: TrainConfig, epochs: int) -> list[float]:
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=cfg.lr)
    sched = build_scheduler(opt, cfg)
    out = []
    for _ in range(epochs):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


def test_schedules():
    assert lrs(TrainConfig(lr=1.0, scheduler="step", step_size=2, gamma=0.1), 5) == pytest.approx([1, 1, .1, .1, .01])
    assert lrs(TrainConfig(lr=1.0, scheduler="multistep", milestones=[1, 3], gamma=0.5), 4) == pytest.approx([1, .5, .5, .25])
    cosine = lrs(TrainConfig(lr=1.0, scheduler="cosine", epochs=4), 4)
    assert cosine == pytest.approx([1.0, 0.853553, 0.5, 0.146447], abs=1e-5)
    assert lrs(TrainConfig(lr=1.0, scheduler="none", warmup_epochs=2), 3) == pytest.approx([0.5, 1, 1])


def test_lr_backbone_gives_the_backbone_its_own_learning_rate_through_the_schedule():
    model = seethrough.create_model("fc", num_classes=3, backbone="test_efficientnet")
    cfg = TrainConfig(lr=1e-4, lr_backbone=1e-5, weight_decay=1e-6, scheduler="step", step_size=1, gamma=0.1)
    opt = build_optimizer(model, cfg)
    backbone = {id(p) for p in model.backbone.parameters()}
    for group in opt.param_groups:
        ids = {id(p) for p in group["params"]}
        assert ids <= backbone or not ids & backbone          # no group mixes backbone and head
        assert group["lr"] == (1e-5 if ids <= backbone else 1e-4)
    assert sum(len(g["params"]) for g in opt.param_groups) == len(list(model.parameters()))
    sched = build_scheduler(opt, cfg)
    opt.step()
    sched.step()
    assert sorted({round(g["lr"], 12) for g in opt.param_groups}) == [1e-6, 1e-5]


def test_lr_backbone_must_be_positive():
    with pytest.raises(ValueError, match="--lr-backbone must be positive"):
        TrainConfig(lr_backbone=0.0).validate()


def test_weight_decay_on_all_decays_biases_and_norms_as_the_originals():
    """Audit S1 / I3 / C4: SCOUTER's, INTR's and CA-Stream's optimizers decay every parameter."""
    from seethrough.config import TrainConfig, resolve_config
    from seethrough.engine.optim import build_optimizer

    model = seethrough.create_model("fc", num_classes=3, backbone="test_efficientnet")
    count = sum(1 for p in model.parameters() if p.requires_grad)
    weights_only = build_optimizer(model, TrainConfig(weight_decay=0.01))
    everything = build_optimizer(model, TrainConfig(weight_decay=0.01, weight_decay_on="all"))
    decayed = lambda opt: sum(len(g["params"]) for g in opt.param_groups if g["weight_decay"] > 0)  # noqa: E731
    assert decayed(everything) == count > decayed(weights_only) > 0
    for preset in ("scouter-mnist-pos", "fc-cub", "intr", "castream-resnet50-imagenet"):
        assert resolve_config(preset=preset).weight_decay_on == "all", preset
    with pytest.raises(ValueError, match="--weight-decay-on must be 'weights' or 'all'"):
        TrainConfig(weight_decay_on="biases").validate()


def test_cosine_min_lr_is_torchs_cosine_annealing_eta_min():
    """Audit I5: INTR's CosineAnnealingLR ends at --min_lr 1e-6 (per group, backbone included)."""
    from seethrough.config import TrainConfig
    from seethrough.engine.optim import build_optimizer, build_scheduler

    cfg = TrainConfig(scheduler="cosine", epochs=6, lr=5e-5, lr_backbone=1e-5, min_lr=1e-6, weight_decay=0.0)
    model = seethrough.create_model("fc", num_classes=3, backbone="test_efficientnet")
    ours = build_optimizer(model, cfg)
    scheduler = build_scheduler(ours, cfg)
    reference_opt = torch.optim.AdamW([{"params": [torch.nn.Parameter(torch.zeros(1))], "lr": g["lr"]}
                                       for g in ours.param_groups])
    reference = torch.optim.lr_scheduler.CosineAnnealingLR(reference_opt, T_max=cfg.epochs, eta_min=cfg.min_lr)
    for _ in range(cfg.epochs):
        assert [g["lr"] for g in ours.param_groups] == pytest.approx([g["lr"] for g in reference_opt.param_groups])
        ours.step(), scheduler.step(), reference_opt.step(), reference.step()
    floorless = build_scheduler(build_optimizer(model, TrainConfig(scheduler="cosine", epochs=6, lr=5e-5)),
                                TrainConfig(scheduler="cosine", epochs=6, lr=5e-5))
    assert floorless.lr_lambdas[0](3) < scheduler.lr_lambdas[0](3)
