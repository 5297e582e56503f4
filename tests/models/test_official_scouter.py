"""``from_official("scouter", ...)`` against an independent reference of the official forward.

The official code is not part of this repository. The state dicts below are built with the
parameter names of wbw520/scouter's ``SlotModel`` (``backbone.<timm keys>``, ``conv1x1.*``,
``slot.initial_slots``, ``slot.to_q.0.*``, ``slot.to_k.<i>.*``, ``slot.gru.*``; the FC model
keeps timm's classifier under ``backbone.fc.*`` / ``backbone.last_linear.*``), and
``official_forward`` re-implements the original computation from the paper's description,
written the way the original does it (unvectorized normalization, per-class loop), on those
tensors.
"""
from __future__ import annotations

import argparse
import math

import pytest
import timm
import torch
from torch import nn
from torch.nn import functional as F

import seethrough
from seethrough.models.official import list_official

HIDDEN = 64
BATCH = 2
#: Non-square input so the y/x order of the position encoding matters: resnet18 → 2×3 features.
SIZE = (64, 96)


pytestmark = pytest.mark.usefixtures("one_thread")


# --------------------------------------------------------------------------- official-named weights
def _randomize_bn(module: nn.Module) -> None:
    """Non-trivial BatchNorm statistics, so eval mode differs from identity."""
    g = torch.Generator().manual_seed(1)
    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)


def official_backbone(name: str, num_classes: int, *, with_classifier: bool, mnist: bool = False) -> dict:
    """``backbone.*`` entries as the official SlotModel stores them."""
    bone = timm.create_model(name, pretrained=False, num_classes=num_classes)
    if mnist:
        bone.conv1 = nn.Conv2d(1, 64, 3, stride=2, padding=1, bias=False)
    with torch.no_grad():
        _randomize_bn(bone)
    sd = bone.state_dict()
    if not with_classifier:  # the slot model swapped pool/classifier (and MobileNet's conv_head) for identities
        classifier = bone.default_cfg.get("classifier", "fc")
        drop = (classifier + ".", "conv_head.")
        sd = {k: v for k, v in sd.items() if not k.startswith(drop)}
    return {"backbone." + k: v.clone() for k, v in sd.items()}


def official_slot_state_dict(*, backbone="resnet18", num_classes=3, spc=1, to_k_layer=1, mnist=False, seed=0) -> dict:
    torch.manual_seed(seed)
    sd = official_backbone(backbone, num_classes, with_classifier=False, mnist=mnist)
    channels = timm.create_model(backbone, num_classes=0).num_features
    conv = nn.Conv2d(channels, HIDDEN, kernel_size=1)
    sd.update({"conv1x1." + k: v for k, v in conv.state_dict().items()})
    sd["slot.initial_slots"] = torch.randn(1, num_classes * spc, HIDDEN)
    sd.update({"slot.to_q.0." + k: v for k, v in nn.Linear(HIDDEN, HIDDEN).state_dict().items()})
    for i in range(to_k_layer):  # Linear at 0, 2, 4 (ReLUs between)
        sd.update({f"slot.to_k.{2 * i}.{k}": v for k, v in nn.Linear(HIDDEN, HIDDEN).state_dict().items()})
    sd.update({"slot.gru." + k: v for k, v in nn.GRU(HIDDEN, HIDDEN).state_dict().items()})
    return sd


def official_fc_state_dict(*, backbone="resnet18", num_classes=4, seed=0) -> dict:
    torch.manual_seed(seed)
    return official_backbone(backbone, num_classes, with_classifier=True)


# --------------------------------------------------------------------------- reference forward
def _backbone_features(sd: dict, name: str, x: torch.Tensor) -> torch.Tensor:
    bone = timm.create_model(name, pretrained=False, num_classes=0, global_pool="")
    if "backbone.conv1.weight" in sd and sd["backbone.conv1.weight"].shape[1] == 1:
        bone.conv1 = nn.Conv2d(1, 64, 3, stride=2, padding=1, bias=False)
    own = bone.state_dict()
    bone.load_state_dict({k: sd.get("backbone." + k, v) for k, v in own.items()})
    return bone.eval().forward_features(x)  # the official model with pool and classifier as identities


def detr_sine(x: torch.Tensor) -> torch.Tensor:
    """DETR's PositionEmbeddingSine(num_pos_feats=d/2, normalize=True) on a padding-free mask."""
    b, d, h, w = x.shape
    feats = d // 2
    ones = torch.ones(b, h, w)
    y_embed, x_embed = ones.cumsum(1), ones.cumsum(2)
    y_embed = y_embed / (y_embed[:, -1:, :] + 1e-6) * 2 * math.pi
    x_embed = x_embed / (x_embed[:, :, -1:] + 1e-6) * 2 * math.pi
    dim_t = 10000 ** (2 * (torch.arange(feats, dtype=torch.float32) // 2) / feats)
    px, py = x_embed[..., None] / dim_t, y_embed[..., None] / dim_t
    px = torch.stack((px[..., 0::2].sin(), px[..., 1::2].cos()), dim=4).flatten(3)
    py = torch.stack((py[..., 0::2].sin(), py[..., 1::2].cos()), dim=4).flatten(3)
    return torch.cat((py, px), dim=3).permute(0, 3, 1, 2)


@torch.no_grad()
def official_forward(sd: dict, backbone: str, x: torch.Tensor, *, spc: int = 1, sign: int = 1, iters: int = 3):
    """Logits (before log_softmax) and attention B×K×N of the official SlotModel in eval mode."""
    feats = _backbone_features(sd, backbone, x)
    if "slot.initial_slots" not in sd:  # FC: global average pool → timm classifier
        head = next(h for h in ("fc", "classifier", "last_linear") if f"backbone.{h}.weight" in sd)
        return F.linear(feats.mean((2, 3)), sd[f"backbone.{head}.weight"], sd[f"backbone.{head}.bias"]), None
    f = torch.relu(F.conv2d(feats, sd["conv1x1.weight"], sd["conv1x1.bias"]))
    f_pe = f + detr_sine(f)
    b, d = f.shape[:2]
    inputs_x = f.reshape(b, d, -1).permute(0, 2, 1)
    inputs = f_pe.reshape(b, d, -1).permute(0, 2, 1)
    k = inputs
    i = 0
    while f"slot.to_k.{i}.weight" in sd:
        if i:
            k = torch.relu(k)
        k = F.linear(k, sd[f"slot.to_k.{i}.weight"], sd[f"slot.to_k.{i}.bias"])
        i += 2
    gru = nn.GRU(d, d)
    gru.load_state_dict({n: sd["slot.gru." + n] for n in gru.state_dict()})
    slots = sd["slot.initial_slots"].expand(b, -1, -1)
    for _ in range(iters):
        dots = torch.einsum("bid,bjd->bij", slots, k) * d ** -0.5
        dots = dots / dots.sum(2)[..., None] * dots.sum((1, 2))[:, None, None]
        attn = torch.sigmoid(dots)
        updates = torch.einsum("bjd,bij->bid", inputs_x, attn) / d
        slots = gru(updates.reshape(1, -1, d), slots.reshape(1, -1, d))[0].reshape(b, -1, d)
    num_classes = updates.shape[1] // spc
    merged = torch.zeros(b, num_classes, d)
    for c in range(num_classes):
        merged[:, c] = updates[:, spc * c: spc * (c + 1)].sum(1)
    return sign * merged.sum(2), attn


def _images(channels: int = 3) -> torch.Tensor:
    return torch.randn(BATCH, channels, *SIZE, generator=torch.Generator().manual_seed(2))


def _assert_matches(model: nn.Module, sd: dict, backbone: str, *, spc=1, sign=1, channels=3, ref=None) -> tuple:
    """Our logits, attention and maps equal the reference's (``ref``: a result to reuse)."""
    x = _images(channels)
    ref_logits, ref_attn = ref or official_forward(sd, backbone, x, spc=spc, sign=sign)
    with torch.no_grad():
        out = model.eval()(x)
    torch.testing.assert_close(out.logits, ref_logits, rtol=1e-5, atol=1e-5)
    if ref_attn is not None:
        b, k, _ = ref_attn.shape
        attn = out.extras["attention"]
        torch.testing.assert_close(attn.reshape(b, k, -1), ref_attn, rtol=1e-5, atol=1e-5)
        per_class = ref_attn.reshape(b, k // spc, spc, -1).sum(2)
        torch.testing.assert_close(out.maps.reshape(b, k // spc, -1), per_class, rtol=1e-5, atol=1e-5)
    return ref_logits, ref_attn


# --------------------------------------------------------------------------- tests
@pytest.mark.parametrize("spc, to_k_layer, sign", [(1, 1, 1), (3, 3, -1), (1, 3, -1), (3, 1, 1)])
def test_slot_variant_matches_official_forward(spc, to_k_layer, sign):
    sd = official_slot_state_dict(num_classes=3, spc=spc, to_k_layer=to_k_layer)
    model = seethrough.from_official("scouter", sd, backbone="resnet18", num_classes=3, loss_status=sign)
    cfg = model.config
    assert (cfg["name"], cfg["num_classes"], cfg["slots_per_class"], cfg["to_k_layer"], cfg["hidden_dim"]) == \
        ("scouter", 3, spc, to_k_layer, HIDDEN)
    assert (cfg["sign"], cfg["power"], cfg["lambda_value"], cfg["iters"]) == (sign, 2.0, 1.0, 3)
    _assert_matches(model, sd, "resnet18", spc=spc, sign=sign)


def test_slots_per_class_option_infers_class_count():
    """Also the third combination: 3 slots per class, one to_k layer, positive."""
    sd = official_slot_state_dict(num_classes=2, spc=3)
    model = seethrough.from_official("scouter", sd, backbone="resnet18", slots_per_class=3)
    assert (model.config["num_classes"], model.config["slots_per_class"]) == (2, 3)
    _assert_matches(model, sd, "resnet18", spc=3)


def test_fc_variant_matches_official_forward():
    sd = official_fc_state_dict(num_classes=4)
    model = seethrough.from_official("scouter", sd, backbone="resnet18")
    assert (model.config["name"], model.num_classes) == ("fc", 4)
    _assert_matches(model, sd, "resnet18")


def test_old_timm_seresnet_layout_maps_to_legacy():
    """Old timm's ``seresnet18`` (layer0/last_linear) is modern timm's ``legacy_seresnet18``."""
    sd = official_fc_state_dict(backbone="legacy_seresnet18", num_classes=3)
    assert "backbone.layer0.conv1.weight" in sd and "backbone.last_linear.weight" in sd
    model = seethrough.from_official("scouter", sd, backbone="seresnet18")
    assert model.config["backbone"] == "legacy_seresnet18"
    _assert_matches(model, sd, "legacy_seresnet18")


def test_slot_mobilenet_without_conv_head():
    sd = official_slot_state_dict(backbone="mobilenetv3_small_050", num_classes=2)
    assert not any(k.startswith("backbone.conv_head.") for k in sd)
    model = seethrough.from_official("scouter", sd, backbone="mobilenetv3_small_050", num_classes=2)
    _assert_matches(model, sd, "mobilenetv3_small_050")


def test_checkpoint_files(tmp_path):
    sd = official_slot_state_dict(num_classes=2, spc=2, to_k_layer=3)
    plain = tmp_path / "model_only.pth"
    torch.save({"model": sd}, plain)
    model = seethrough.from_official("scouter", str(plain), backbone="resnet18", num_classes=2, sign=-1)
    ref = _assert_matches(model, sd, "resnet18", spc=2, sign=-1)

    # as train.py writes it: optimizer, scheduler, epoch and the argparse arguments alongside
    opt = torch.optim.AdamW([nn.Parameter(torch.zeros(1))], lr=1e-4)
    args = argparse.Namespace(model="resnet18", dataset="CUB200", num_classes=2, slots_per_class=2, loss_status=-1,
                              lambda_value=1.0, power=2, to_k_layer=3, hidden_dim=HIDDEN, use_slot=True)
    full = tmp_path / "CUB200_use_slot_negative_checkpoint.pth"
    torch.save({"model": sd, "optimizer": opt.state_dict(),
                "lr_scheduler": torch.optim.lr_scheduler.StepLR(opt, 70).state_dict(), "epoch": 3, "args": args}, full)
    model = seethrough.from_official("scouter", full)  # everything from the stored args
    assert (model.config["sign"], model.config["slots_per_class"], model.config["power"]) == (-1, 2, 2.0)
    _assert_matches(model, sd, "resnet18", spc=2, sign=-1, ref=ref)


def test_mnist_stem():
    sd = official_slot_state_dict(num_classes=10, mnist=True)
    assert tuple(sd["backbone.conv1.weight"].shape) == (64, 1, 3, 3)
    model = seethrough.from_official("scouter", sd, backbone="resnet18", num_classes=10)
    assert (model.config["stem"], model.config["in_chans"]) == ("mnist", 1)
    _assert_matches(model, sd, "resnet18", channels=1)


# --------------------------------------------------------------------------- bad input
@pytest.fixture(scope="module")
def slot_sd():
    return official_slot_state_dict(num_classes=3, spc=2)


def test_missing_backbone_option(slot_sd):
    with pytest.raises(ValueError, match=r"needs backbone=<timm name>.*num_classes or slots_per_class"):
        seethrough.from_official("scouter", slot_sd, num_classes=3)


def test_wrong_backbone_names_keys(slot_sd):
    with pytest.raises(ValueError) as err:
        seethrough.from_official("scouter", slot_sd, backbone="resnet34", num_classes=3)
    message = str(err.value)
    assert "backbone.body.layer1.2" in message  # resnet34 has blocks resnet18 lacks
    assert "backbone='resnet34'" in message and "--model" in message
    with pytest.raises(ValueError, match=r"conv1x1 takes 512 channels .* 'resnet50' yields 2048"):
        seethrough.from_official("scouter", slot_sd, backbone="resnet50", num_classes=3)


def test_ambiguous_slot_count(slot_sd):
    with pytest.raises(ValueError, match=r"K=6 slots.*6×1, 3×2, 2×3, 1×6.*num_classes=\.\.\. or slots_per_class="):
        seethrough.from_official("scouter", slot_sd, backbone="resnet18")
    with pytest.raises(ValueError, match="num_classes=4 does not divide"):
        seethrough.from_official("scouter", slot_sd, backbone="resnet18", num_classes=4)
    with pytest.raises(ValueError, match=r"num_classes=3 × slots_per_class=3 = 9"):
        seethrough.from_official("scouter", slot_sd, backbone="resnet18", num_classes=3, slots_per_class=3)


def test_unknown_kind_and_options(slot_sd):
    with pytest.raises(ValueError, match=r"unknown official kind 'scuter'.*scouter"):
        seethrough.from_official("scuter", slot_sd)
    assert "scouter" in list_official()
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['slots'\]"):
        seethrough.from_official("scouter", slot_sd, backbone="resnet18", slots=2)
    with pytest.raises(ValueError, match="not a state dict of the official SCOUTER"):
        seethrough.from_official("scouter", {"conv.weight": torch.zeros(1)}, backbone="resnet18")


class _Pickled:  # a non-tensor object in a checkpoint: not loadable with weights_only
    pass


def test_pickled_objects_are_refused_with_resave_hint(tmp_path, slot_sd):
    path = tmp_path / "ckpt.pth"
    torch.save({"model": slot_sd, "extra": _Pickled()}, path)
    with pytest.raises(ValueError, match=r"(?s)pickled Python objects.*_Pickled.*re-save.*weights_only=False"):
        seethrough.from_official("scouter", path, backbone="resnet18", num_classes=3)
