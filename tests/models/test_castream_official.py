"""``from_official("castream")`` on state dicts named like the original CA-Stream code.

The original (ftorres11/CA_Stream, commit 9489e8d) is not part of this repository. Its
checkpoints hold torchvision's parameter names (``models/ResNet/cls_v1.py``: conv1, bn1,
layer1..4, fc; ``models/ConvNext/cls_v1.py``: features.*, classifier.{0,2}) plus the stream:
``cls_token`` (1, 1, d₀) and one ``CLS_Attention`` per tap whose only parameters are
``to_out.1.{weight,bias}``, a Linear(d_ℓ, d_ℓ₊₁) (ResNet: ``base, l1, l2, l3, l4`` after
maxpool, layer1..4; ConvNeXt: ``cls_stream.{0..3}`` after ``features[0, 2, 4, 7]``).

``reference_resnet`` / ``reference_convnext`` re-implement the original forward from the
paper's formulas on those names, with torchvision's own backbones, independently of
seethrough's model:  a_ℓ = softmax(F_ℓ q_ℓ / sqrt(d_ℓ)) (per head on contiguous channel
groups, scale from the full width), q_{ℓ+1} = W_ℓ (F_ℓᵀ a_ℓ) + b_ℓ, logits = fc(q) (ResNet) or
classifier(q as B×d×1×1) = Linear(LayerNorm2d(q)) (ConvNeXt).
"""
from __future__ import annotations

import math

import pytest
import torch
import torchvision
from torch import nn

import seethrough
from seethrough.models.official import list_official

CLASSES = 5
BATCH, SIZE = 2, 64
TOL = 1e-5
#: The original ResNet-18's stream: block name → (in, out) widths of to_out.1
#: (basic blocks: 64→64→128→256→512→512).
RESNET18_STREAM = {"base": (64, 64), "l1": (64, 128), "l2": (128, 256), "l3": (256, 512), "l4": (512, 512)}
#: The original ConvNeXt-T's stream (widths 96→192→384→768→768) and where in ``features`` each block reads.
CONVNEXT_T_STREAM = {"cls_stream.0": (96, 192), "cls_stream.1": (192, 384), "cls_stream.2": (384, 768),
                     "cls_stream.3": (768, 768)}
CONVNEXT_PLACEMENT = (0, 2, 4, 7)


pytestmark = pytest.mark.usefixtures("one_thread")


# --------------------------------------------------------------------------- official-named checkpoints
def _stream(widths: dict, g: torch.Generator) -> dict[str, torch.Tensor]:
    d0 = next(iter(widths.values()))[0]
    sd = {"cls_token": torch.normal(torch.ones(1, 1, d0), torch.ones(1, 1, d0), generator=g)}
    for name, (d_in, d_out) in widths.items():
        sd[f"{name}.to_out.1.weight"] = torch.randn(d_out, d_in, generator=g) / math.sqrt(d_in)
        sd[f"{name}.to_out.1.bias"] = torch.randn(d_out, generator=g) * 0.1
    return sd


def _randomize(net: nn.Module, g: torch.Generator) -> None:
    """Non-trivial BatchNorm statistics (so eval mode matters), norm affines, biases and layer scales."""
    with torch.no_grad():
        for key, value in net.state_dict().items():
            if key.endswith("running_var"):
                value.copy_(torch.rand(value.shape, generator=g) + 0.5)
            elif key.endswith("running_mean") or key.endswith("bias"):
                value.copy_(torch.randn(value.shape, generator=g) * 0.1)
            elif key.endswith("layer_scale"):
                value.copy_(torch.randn(value.shape, generator=g) * 0.3)
            elif value.is_floating_point() and value.ndim == 1:  # BatchNorm / LayerNorm weights
                value.copy_(1 + torch.randn(value.shape, generator=g) * 0.1)


def official_resnet18(seed: int = 0) -> dict[str, torch.Tensor]:
    """A ``resnet18_clsv1`` state dict: torchvision ResNet-18 + cls_token + base/l1..l4."""
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed + 1)
    net = torchvision.models.resnet18(weights=None, num_classes=CLASSES)
    _randomize(net, g)
    return {**{k: v.clone() for k, v in net.state_dict().items()}, **_stream(RESNET18_STREAM, g)}


def official_convnext_tiny(seed: int = 0) -> dict[str, torch.Tensor]:
    """A ``convnext_tiny_clsv1`` state dict: torchvision ConvNeXt-T + cls_token + cls_stream.0..3."""
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed + 1)
    net = torchvision.models.convnext_tiny(weights=None, num_classes=CLASSES)
    _randomize(net, g)
    return {**{k: v.clone() for k, v in net.state_dict().items()}, **_stream(CONVNEXT_T_STREAM, g)}


# --------------------------------------------------------------------------- reference forward
def _backbone(factory, sd: dict) -> nn.Module:
    net = factory(weights=None, num_classes=sd["fc.weight" if "fc.weight" in sd else "classifier.2.weight"].shape[0])
    own = net.state_dict()
    net.load_state_dict({k: v for k, v in sd.items() if k in own})
    return net.eval()


def ca_step(features: torch.Tensor, token: torch.Tensor, sd: dict, name: str, heads: int = 1):
    """Eqs. (1)-(2): a = softmax(F q / sqrt(d)) per head, q' = W (Fᵀ a) + b; returns (q', a as B×heads×h×w)."""
    b, d, h, w = features.shape
    f = features.flatten(2).transpose(1, 2).reshape(b, h * w, heads, d // heads)   # B×t×heads×(d/heads)
    q = token.reshape(b, heads, d // heads)
    a = (torch.einsum("bthk,bhk->bht", f, q) / math.sqrt(d)).softmax(dim=-1)
    pooled = torch.einsum("bht,bthk->bhk", a, f).reshape(b, d)
    out = pooled @ sd[f"{name}.to_out.1.weight"].T + sd[f"{name}.to_out.1.bias"]
    return out, a.reshape(b, heads, h, w)


def reference_resnet(sd: dict, x: torch.Tensor, heads: int = 1):
    """The original ResNet clsv1 forward: taps after maxpool and layer1..4, logits = fc(token)."""
    net = _backbone(torchvision.models.resnet18, sd)
    token = sd["cls_token"].reshape(1, -1).expand(x.shape[0], -1)
    attentions = []
    with torch.no_grad():
        f = net.maxpool(net.relu(net.bn1(net.conv1(x))))
        for name, layer in zip(RESNET18_STREAM, (None, net.layer1, net.layer2, net.layer3, net.layer4)):
            f = f if layer is None else layer(f)
            token, a = ca_step(f, token, sd, name, heads)
            attentions.append(a)
        return net.fc(token), attentions


def reference_convnext(sd: dict, x: torch.Tensor):
    """The original ConvNeXt clsv1 forward: taps after features[0, 2, 4, 7], logits = Linear(LayerNorm2d(token))."""
    net = _backbone(torchvision.models.convnext_tiny, sd)
    token = sd["cls_token"].reshape(1, -1).expand(x.shape[0], -1)
    attentions, blocks = [], iter(CONVNEXT_T_STREAM)
    with torch.no_grad():
        f = x
        for index, feature in enumerate(net.features):
            f = feature(f)
            if index in CONVNEXT_PLACEMENT:
                token, a = ca_step(f, token, sd, next(blocks))
                attentions.append(a)
        return net.classifier(token.reshape(*token.shape, 1, 1)), attentions


def _images(seed: int = 3) -> torch.Tensor:
    return torch.randn(BATCH, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(seed))


def _check(model: nn.Module, logits: torch.Tensor, attentions: list[torch.Tensor], x: torch.Tensor) -> None:
    with torch.no_grad():
        out = model.eval()(x)
    assert len(model.tap_names) == len(attentions)
    torch.testing.assert_close(out.logits, logits, rtol=0, atol=TOL)
    for tap, expected in zip(model.tap_names, attentions):
        torch.testing.assert_close(out.extras[f"ca_attention.{tap}"], expected, rtol=0, atol=TOL, msg=tap)


@pytest.fixture(scope="module")
def resnet_sd() -> dict:
    return official_resnet18()


@pytest.fixture(scope="module")
def convnext_sd() -> dict:
    return official_convnext_tiny()


# --------------------------------------------------------------------------- matches the original
def test_kind_registered():
    assert "castream" in list_official()


@pytest.mark.parametrize("heads", [1, 2])
def test_resnet_matches_official_forward(resnet_sd, heads):
    model = seethrough.from_official("castream", resnet_sd, heads=heads)
    assert model.config["backbone"] == "resnet18" and model.config["num_classes"] == CLASSES
    assert model.config["heads"] == heads and model.config["taps"] == ["maxpool", "layer1", "layer2", "layer3"]
    x = _images()
    _check(model, *reference_resnet(resnet_sd, x, heads), x)


def test_convnext_matches_official_forward(convnext_sd):
    model = seethrough.from_official("castream", convnext_sd)
    assert model.config["backbone"] == "convnext_tiny" and model.config["num_classes"] == CLASSES
    x = _images()
    _check(model, *reference_convnext(convnext_sd, x), x)


def test_resnet_class_maps_sum_to_logits_minus_a_class_constant(resnet_sd):
    """mean_p M_c(p) = z_c − (w_cᵀ b_L + bias_c), b_L the last block's bias (ResNet: no head norm)."""
    model = seethrough.from_official("castream", resnet_sd).eval()
    with torch.no_grad():
        out = model(_images())
    offset = out.maps.mean(dim=(2, 3)) - out.logits
    torch.testing.assert_close(offset, offset[:1].expand_as(offset), rtol=0, atol=TOL)
    constant = resnet_sd["fc.weight"] @ resnet_sd["l4.to_out.1.bias"] + resnet_sd["fc.bias"]
    torch.testing.assert_close(offset[0], -constant, rtol=0, atol=TOL)


def test_checkpoint_wrappings_and_files(resnet_sd, tmp_path):
    """Raw, {"model_sdict": ...}, DDP's module. prefix, and a saved .pth file give the same model."""
    x = _images()
    expected, _ = reference_resnet(resnet_sd, x)
    prefixed = {"module." + k: v for k, v in resnet_sd.items()}
    torch.save({"model_sdict": prefixed, "epoch": 3}, tmp_path / "checkpoint.pth")
    files = (tmp_path / "checkpoint.pth", str(tmp_path / "checkpoint.pth"))
    for checkpoint in ({"model_sdict": resnet_sd}, prefixed, *files):
        with torch.no_grad():
            logits = seethrough.from_official("castream", checkpoint).eval()(x).logits
        torch.testing.assert_close(logits, expected, rtol=0, atol=TOL)


def test_round_trip_through_save_pretrained_and_convert_command(resnet_sd, tmp_path):
    from typer.testing import CliRunner

    from seethrough.cli import app
    from seethrough.models.loading import load_for_inference

    model = seethrough.from_official("castream", resnet_sd).eval()
    model.save_pretrained(tmp_path / "saved")
    torch.save(resnet_sd, tmp_path / "official.pth")
    result = CliRunner().invoke(app, ["convert", "castream", str(tmp_path / "official.pth"), "--out",
                                      str(tmp_path / "cli")])
    assert result.exit_code == 0, result.output
    loaded = load_for_inference(tmp_path / "cli")
    assert loaded.resize == "pil-bilinear" and loaded.img_size == 224  # the original's Resize((224, 224)) on the PIL image
    x = _images()
    with torch.no_grad():
        expected = model(x).logits
        torch.testing.assert_close(seethrough.from_pretrained(tmp_path / "saved").eval()(x).logits, expected,
                                   rtol=0, atol=0)
        torch.testing.assert_close(loaded.model(x).logits, expected, rtol=0, atol=0)


# --------------------------------------------------------------------------- refused checkpoints
def test_convnext_stream_with_a_missing_or_extra_block(convnext_sd):
    missing = {k: v for k, v in convnext_sd.items() if not k.startswith("cls_stream.3.")}
    with pytest.raises(ValueError, match=r"cls_stream\.\[0, 1, 2\] \(3 blocks\).*paper's taps of convnext_tiny"):
        seethrough.from_official("castream", missing)
    extra = {**convnext_sd, "cls_stream.4.to_out.1.weight": torch.zeros(768, 768),
             "cls_stream.4.to_out.1.bias": torch.zeros(768)}
    with pytest.raises(ValueError, match=r"\(5 blocks\).*another tap set"):
        seethrough.from_official("castream", extra)


def test_resnet_stream_of_other_widths(resnet_sd):
    wide = {**resnet_sd, "l1.to_out.1.weight": torch.zeros(100, 64), "l1.to_out.1.bias": torch.zeros(100),
            "l2.to_out.1.weight": torch.zeros(256, 100)}
    with pytest.raises(ValueError, match=r"l1\.to_out\.1\.weight has shape \(100, 64\), expected \(128, 64\) "
                                         r"for resnet18 at tap layer1"):
        seethrough.from_official("castream", wide)
    token = {**resnet_sd, "cls_token": torch.ones(1, 1, 32)}
    with pytest.raises(ValueError, match=r"cls_token has shape \(1, 1, 32\), expected \(1, 1, 64\)"):
        seethrough.from_official("castream", token)
    extra = {**resnet_sd, "l5.to_out.1.weight": torch.zeros(512, 512)}
    with pytest.raises(ValueError, match=r"blocks \['base', 'l1', 'l2', 'l3', 'l4', 'l5'\]"):
        seethrough.from_official("castream", extra)
    shared = {k: v for k, v in resnet_sd.items() if ".to_out." not in k}
    with pytest.raises(ValueError, match="Light_Shared"):
        seethrough.from_official("castream", shared)


def test_missing_keys_are_named(resnet_sd):
    with pytest.raises(ValueError, match=r"no l2\.to_out\.1\.bias"):
        seethrough.from_official("castream", {k: v for k, v in resnet_sd.items() if k != "l2.to_out.1.bias"})
    with pytest.raises(ValueError, match=r"missing keys.*backbone\.body\.layer3\.1\.bn2\.running_var"):
        seethrough.from_official("castream",
                                 {k: v for k, v in resnet_sd.items() if k != "layer3.1.bn2.running_var"})
    with pytest.raises(ValueError, match=r"unexpected keys.*l4\.to_q\.weight"):
        seethrough.from_official("castream", {**resnet_sd, "l4.to_q.weight": torch.zeros(512, 512)})


def test_unknown_layouts_and_other_checkpoints(resnet_sd):
    shallow = {k: v for k, v in resnet_sd.items() if not k.startswith("layer4.1.")}
    with pytest.raises(ValueError, match=r"unknown resnet backbone layout \(basic blocks per stage \(2, 2, 2, 1\)"):
        seethrough.from_official("castream", shallow)
    with pytest.raises(ValueError, match="unknown backbone layout"):
        seethrough.from_official("castream", {"cls_token": torch.ones(1, 1, 32), "stem.weight": torch.zeros(3)})
    with pytest.raises(ValueError, match="no 'cls_token'"):
        seethrough.from_official("castream", {k: v for k, v in resnet_sd.items() if k != "cls_token"})
    own = seethrough.from_official("castream", resnet_sd).state_dict()
    with pytest.raises(ValueError, match="seethrough state dict"):
        seethrough.from_official("castream", own)


def test_options_checked_against_the_checkpoint(resnet_sd, convnext_sd):
    with pytest.raises(ValueError, match=r"num_classes=7 was given.*fc\.weight has shape \(5, 512\)"):
        seethrough.from_official("castream", resnet_sd, num_classes=7)
    with pytest.raises(ValueError, match=r"backbone='resnet34' was given.*'resnet18'"):
        seethrough.from_official("castream", resnet_sd, backbone="resnet34")
    with pytest.raises(ValueError, match=r"unknown option.*'taps'.*always the paper's"):
        seethrough.from_official("castream", resnet_sd, taps="feature_info")
    with pytest.raises(ValueError, match="ConvNeXt's stream always has 1 head"):
        seethrough.from_official("castream", convnext_sd, heads=2)
    model = seethrough.from_official("castream", resnet_sd, backbone="resnet18", num_classes=CLASSES,
                                     pooling="gap", bn_stats="updated")
    assert model.config["pooling"] == "gap" and model.config["bn_stats"] == "updated"
    x = _images()
    expected, _ = reference_resnet(resnet_sd, x)
    no_counters = {k: v for k, v in resnet_sd.items() if not k.endswith("num_batches_tracked")}
    for model in (seethrough.from_official("castream", resnet_sd, frozen_bn=True),
                  seethrough.from_official("castream", no_counters)):
        with torch.no_grad():
            torch.testing.assert_close(model.eval()(x).logits, expected, rtol=0, atol=TOL)
