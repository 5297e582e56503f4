"""SCOUTER's xSlot head against independent re-derivations of its equations."""
import pytest
import torch
from torch.nn import functional as F

import seethrough
from seethrough.models.heads.scouter import XSlot

C, SPC = 3, 2


def make(**options):
    torch.manual_seed(0)
    return seethrough.create_model("scouter", num_classes=C, backbone="test_efficientnet", slots_per_class=SPC,
                                   output_stride=8, **options).eval()


def features_and_output(model, x):
    feats = model.backbone(x)
    return feats, model.head_forward(feats)


def test_shapes_and_maps_are_class_slot_sums():
    model = make()
    _, out = features_and_output(model, torch.randn(2, 3, 64, 64))
    attn = out.extras["attention"]
    assert out.logits.shape == (2, C) and attn.shape[:2] == (2, C * SPC)
    assert out.maps.shape == (2, C) + attn.shape[2:]
    for c in range(C):  # loop reference of the vectorized merge
        torch.testing.assert_close(out.maps[:, c], attn[:, c * SPC:(c + 1) * SPC].sum(1))
    assert ((attn >= 0) & (attn <= 1)).all()  # sigmoid attention (may saturate in float32)


@pytest.mark.parametrize("sign", [1, -1])
def test_logit_is_sign_over_d_times_attention_weighted_feature_sums(sign):
    """z_c = (e/d) Σ_{s∈c} Σ_j A_sj Σ_ch F′_j,ch (the reference's closed form)."""
    model = make(sign=sign)
    feats, out = features_and_output(model, torch.randn(2, 3, 64, 64))
    f_prime = F.relu(model.conv1x1(feats)).flatten(2)          # B×d×N
    d = f_prime.shape[1]
    attn = out.extras["attention"].flatten(2)                   # B×K×N
    per_slot = torch.einsum("bkn,bn->bk", attn, f_prime.sum(1)) / d
    expected = sign * per_slot.reshape(2, C, SPC).sum(-1)
    torch.testing.assert_close(out.logits, expected, rtol=1e-4, atol=1e-5)


def test_negative_model_flips_the_scores_of_the_same_weights():
    positive, negative = make(sign=1), make(loss_status=-1)
    negative.load_state_dict(positive.state_dict())
    x = torch.randn(2, 3, 64, 64)
    torch.testing.assert_close(negative(x).logits, -positive(x).logits)


def test_loss_is_nll_plus_lambda_times_area_power():
    model = make(lambda_value=2.5, power=2)
    out = model(torch.randn(2, 3, 64, 64))
    labels = torch.tensor([0, 2])
    terms = model.compute_loss(out, labels)
    area = out.extras["attention"].mean() ** 2
    torch.testing.assert_close(terms["area"], area)
    torch.testing.assert_close(terms["nll"], F.cross_entropy(out.logits, labels))
    torch.testing.assert_close(terms["loss"], terms["nll"] + 2.5 * area)


def test_safe_normalization_survives_a_zero_row_sum():
    slot = XSlot(1, 1, 4)
    dots = torch.tensor([[[1.0, -1.0, 2.0], [0.5, 0.5, 1.0]]])  # first row sums to 2, fine
    torch.testing.assert_close(slot.normalize(dots), XSlot(1, 1, 4, normalization="safe").normalize(dots))
    zero_row = torch.tensor([[[1.0, -1.0, 0.0], [0.5, 0.5, 1.0]]])
    assert not torch.isfinite(slot.normalize(zero_row)).all()
    assert torch.isfinite(XSlot(1, 1, 4, normalization="safe").normalize(zero_row)).all()


@pytest.mark.parametrize("options, message", [
    ({"slots_per_class": 0}, "slots_per_class must be ≥ 1"),
    ({"hidden_dim": 63}, "hidden_dim must be positive and even"),
    ({"lambda_value": -1}, "lambda_value must be ≥ 0"),
    ({"power": -2}, "power must be ≥ 0"),
    ({"sign": 2}, r"sign \(loss_status\) must be \+1"),
    ({"sign": 1, "loss_status": -1}, "disagree"),
    ({"normalization": "abs"}, "normalization must be one of official, safe"),
])
def test_bad_options_are_clear_errors(options, message):
    with pytest.raises(ValueError, match=message):
        seethrough.create_model("scouter", num_classes=3, backbone="test_efficientnet", **options)


def test_scouter_trains_through_the_engine_and_logs_both_loss_terms(tiny_config):
    import json
    from pathlib import Path

    from seethrough.engine import train

    cfg = tiny_config(model="scouter", epochs=1, output_stride=8, model_options={"lambda_value": 1.0})
    summary = train(cfg)
    steps = [json.loads(l) for l in (Path(cfg.out) / "metrics.jsonl").read_text().splitlines()
             if json.loads(l)["event"] == "train_step"]
    assert summary["epochs"] == 1 and {"nll", "area", "loss"} <= set(steps[-1])


@pytest.mark.parametrize("slots_per_class", [1, 3])
def test_every_class_map_is_non_zero(slots_per_class):
    """The FACT reproduction's merge bug zeroed every class map but class 0."""
    torch.manual_seed(0)
    model = seethrough.create_model("scouter", num_classes=4, backbone="test_efficientnet", output_stride=8,
                                    slots_per_class=slots_per_class).eval()
    maps = model(torch.randn(2, 3, 64, 64)).maps
    assert (maps.flatten(2).sum(-1) > 0).all()


def test_defaults_are_the_original_train_py_argparse_defaults():
    """Audit S6: --slots_per_class "3", --power "2", --to_k_layer 1, --lambda_value "1.", --hidden_dim 64."""
    model = seethrough.create_model("scouter", num_classes=2, backbone="test_efficientnet")
    cfg = model.config
    assert (cfg["slots_per_class"], cfg["power"], cfg["to_k_layer"], cfg["lambda_value"], cfg["hidden_dim"],
            cfg["sign"]) == (3, 2.0, 1, 1.0, 64, 1)
