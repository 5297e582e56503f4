"""Training recipes: one stage, and ProtoPNet's warm-up / joint / push + last-layer schedule, unrolled."""
import pytest
import torch

import seethrough
from seethrough.config import TrainConfig
from seethrough.engine.stages import (
    PROTOTYPE_STAGE_DEFAULTS,
    SINGLE_STAGE,
    PrototypeRecipe,
    SingleStageRecipe,
    per_stage,
    recipe_for,
)


def test_plan_unrolls_protopnets_schedule():
    recipe = PrototypeRecipe(12, {"warm_epochs": 2, "push_start": 4, "push_every": 4, "last_layer_epochs": 2})
    plan = recipe.plan()
    stages = [(p.stage, p.push_before, p.outer_epoch) for p in plan]
    assert stages == [("warm", False, 0), ("warm", False, 1), ("joint", False, 2), ("joint", False, 3),
                      ("joint", False, 4), ("last", True, 4), ("last", False, 4),
                      ("joint", False, 5), ("joint", False, 6), ("joint", False, 7),
                      ("joint", False, 8), ("last", True, 8), ("last", False, 8),
                      ("joint", False, 9), ("joint", False, 10), ("joint", False, 11)]


def test_protopnet_defaults_are_the_originals():
    assert PROTOTYPE_STAGE_DEFAULTS["warm_epochs"] == 5 and PROTOTYPE_STAGE_DEFAULTS["push_every"] == 10
    assert PROTOTYPE_STAGE_DEFAULTS["last_layer_epochs"] == 20 and PROTOTYPE_STAGE_DEFAULTS["joint_step_size"] == 5


def test_stage_groups_and_trainable_parameters():
    model = seethrough.create_model("protopnet", num_classes=2, backbone="test_resnet", num_prototypes=4,
                                    prototype_dim=8)
    recipe = PrototypeRecipe(3)
    optimizers = recipe.build_optimizers(model)
    warm = optimizers["warm"].param_groups
    assert [g["lr"] for g in warm] == [3e-3, 3e-3] and [g["weight_decay"] for g in warm] == [1e-3, 0.0]
    joint = optimizers["joint"].param_groups
    assert [g["lr"] for g in joint] == [1e-4, 3e-3, 3e-3]
    assert optimizers["last"].param_groups[0]["params"] == [model.last_layer.weight]
    recipe.set_trainable(model, "last")
    assert [n for n, p in model.named_parameters() if p.requires_grad] == ["last_layer.weight"]
    assert model.stage == "last"
    recipe.set_trainable(model, "warm")
    trainable = {n.split(".")[0] for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"add_on", "prototypes"}


def test_bad_stage_options_are_refused():
    with pytest.raises(ValueError, match="unknown stage options"):
        PrototypeRecipe(3, {"push_evry": 2})
    with pytest.raises(ValueError, match="last_layer_epochs ≥ 1"):
        PrototypeRecipe(3, {"last_layer_epochs": 0})
    fc = seethrough.create_model("fc", num_classes=2, backbone="test_resnet")
    with pytest.raises(ValueError, match="trains in one stage"):
        recipe_for(fc, TrainConfig(epochs=3, stage_options={"warm_epochs": 1}))


def test_a_single_stage_model_gets_a_one_stage_recipe_whose_schedule_steps_after_each_epoch():
    fc = seethrough.create_model("fc", num_classes=2, backbone="test_resnet")
    cfg = TrainConfig(epochs=3, lr=0.1, scheduler="step", step_size=1, gamma=0.5)
    recipe = recipe_for(fc, cfg)
    assert type(recipe) is SingleStageRecipe and recipe.stages == (SINGLE_STAGE,)
    plan = recipe.plan()
    assert [(p.stage, p.push_before, p.outer_epoch) for p in plan] == [(SINGLE_STAGE, False, e) for e in range(3)]
    schedulers = recipe.build_schedulers(recipe.build_optimizers(fc))
    lrs = []
    for index in range(len(plan)):
        recipe.begin_epoch(fc, plan, index, schedulers, first_time=True)
        lrs.append(schedulers[SINGLE_STAGE].optimizer.param_groups[0]["lr"])
        recipe.end_epoch(plan, index, schedulers)
        assert recipe.competes_for_best(plan, index, pushed=False)
    assert lrs == pytest.approx([0.1, 0.05, 0.025])
    assert all(p.requires_grad for p in fc.parameters())   # the one stage leaves trainability alone


def test_after_a_push_only_last_layer_epochs_compete_for_best():
    recipe = PrototypeRecipe(12, {"warm_epochs": 2, "push_start": 4, "push_every": 4, "last_layer_epochs": 2})
    plan = recipe.plan()
    assert all(recipe.competes_for_best(plan, i, pushed=False) for i in range(len(plan)))
    assert [i for i in range(len(plan)) if recipe.competes_for_best(plan, i, pushed=True)] == [5, 6, 11, 12]


def test_checkpoints_of_single_stage_runs_written_before_recipes_still_load():
    state = {"state": {}, "param_groups": []}
    assert per_stage(state) == {SINGLE_STAGE: state}
    assert per_stage({"joint": state}) == {"joint": state}


def _engine_joint_lrs(model, epochs, options=None):
    """The joint learning rate of every joint epoch as the engine's recipe hooks step it."""
    recipe = recipe_for(model, TrainConfig(epochs=epochs, stage_options=options))
    plan = recipe.plan()
    schedulers = recipe.build_schedulers(recipe.build_optimizers(model))
    lrs = []
    for index, entry in enumerate(plan):
        recipe.begin_epoch(model, plan, index, schedulers, first_time=True)
        recipe.begin_epoch(model, plan, index, schedulers, first_time=False)   # a resumption: no second step
        if entry.stage == "joint":
            lrs.append(schedulers["joint"].optimizer.param_groups[0]["lr"])
        recipe.end_epoch(plan, index, schedulers)
    return lrs


def _original_joint_lrs(epochs, warm, step_size, step_after):
    """ProtoPNet main.py:146-151 steps StepLR and then trains; LVW main_lvw.py:201-213 trains, then steps."""
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1e-4)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=step_size, gamma=0.1)
    lrs = []
    for epoch in range(epochs):
        if epoch < warm:
            continue
        if not step_after:
            scheduler.step()
        lrs.append(optimizer.param_groups[0]["lr"])
        if step_after:
            scheduler.step()
    return lrs


@pytest.mark.parametrize("name, step_after", [("protopnet", False), ("lvw", True)])
def test_joint_lr_steps_before_protopnet_and_after_lvw_epochs_as_the_originals(name, step_after):
    """Audit B2: LVW's joint StepLR steps after each joint epoch; stepping before (ProtoPNet's
    order) decayed every LVW learning rate one joint epoch early."""
    model = seethrough.create_model(name, num_classes=2, backbone="test_resnet", num_prototypes=4, prototype_dim=8)
    options = {"warm_epochs": 1, "push_start": 100, "joint_step_size": 2}
    engine = _engine_joint_lrs(model, 8, options)
    original = _original_joint_lrs(8, warm=1, step_size=2, step_after=step_after)
    assert engine == pytest.approx(original)
    other = _engine_joint_lrs(model, 8, {**options, "joint_lr_step": "before" if step_after else "after"})
    assert other != pytest.approx(original)


def test_joint_lr_step_option_is_checked():
    with pytest.raises(ValueError, match="joint_lr_step must be one of before, after"):
        PrototypeRecipe(3, {"joint_lr_step": "sometimes"})
