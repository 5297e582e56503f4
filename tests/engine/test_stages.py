"""The multi-stage recipe: ProtoPNet's warm-up / joint / push + last-layer schedule, unrolled."""
import pytest
import torch

import seethrough
from seethrough.engine.stages import PROTOTYPE_STAGE_DEFAULTS, StageRecipe, recipe_for


def test_plan_unrolls_protopnets_schedule():
    recipe = StageRecipe(12, {"warm_epochs": 2, "push_start": 4, "push_every": 4, "last_layer_epochs": 2})
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
    recipe = StageRecipe(3)
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
        StageRecipe(3, {"push_evry": 2})
    with pytest.raises(ValueError, match="last_layer_epochs ≥ 1"):
        StageRecipe(3, {"last_layer_epochs": 0})
    fc = seethrough.create_model("fc", num_classes=2, backbone="test_resnet")
    with pytest.raises(ValueError, match="trains in one stage"):
        recipe_for(fc, 3, {"warm_epochs": 1})
    assert recipe_for(fc, 3, {}) is None
