"""``from_official("protopnet")`` / ``from_official("lvw")`` on state dicts named like the originals.

The originals (cfchen-duke/ProtoPNet 81bf2b7, LearnableVW/Learnable-Visual-Words 4c1fa7e) are
not part of this repository. Both build the same ``PPNet`` (model.py), whose state dict holds
``features.*`` (their copy of torchvision's ResNet: conv1, bn1, layer1..4; of its DenseNet:
features.features.conv0, ...), ``add_on_layers.<i>.{weight,bias}`` (1×1 convolutions at even
indices, ReLU between them, a sigmoid at the end), ``prototype_vectors`` (P, D, 1, 1), the
constant ``ones`` of the same shape and ``last_layer.weight`` (C, P).

``reference_forward`` re-implements the original forward from the paper's formulas on those
names, with torchvision's own backbones, independently of seethrough's model: z = add-on(f(x)),
d = relu(conv(z², ones) − 2 conv(z, p) + Σp²), min-pooled over positions, similarity
log((d + 1)/(d + 1e-4)) (or −d), logits = last_layer(similarity).
"""
from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn
from torch.nn import functional as F

import seethrough
from seethrough.models.official import list_official

CLASSES = 3
BATCH, SIZE = 2, 64
TOL = 1e-5
EPSILON = 1e-4
RESNET18_WIDTH = 512
#: ProtoPNet: 2 prototypes per class, D = 128, bottleneck 512 → 256 → 128 (convs 0, 2, 4, 6).
PROTOPNET = dict(per_class=2, dim=128, widths=[(512, 256), (256, 256), (256, 128), (128, 128)])
#: LVW: 5 words per class, D = 64, regular 512 → 64 → 64 (convs 0, 2).
LVW = dict(per_class=5, dim=64, widths=[(512, 64), (64, 64)])

pytestmark = pytest.mark.usefixtures("one_thread")


# --------------------------------------------------------------------------- official-named checkpoints
def _randomize(net: nn.Module, g: torch.Generator) -> None:
    """Non-trivial BatchNorm statistics and affines (so eval mode matters)."""
    with torch.no_grad():
        for key, value in net.state_dict().items():
            if key.endswith("running_var"):
                value.copy_(torch.rand(value.shape, generator=g) + 0.5)
            elif key.endswith("running_mean") or key.endswith("bias"):
                value.copy_(torch.randn(value.shape, generator=g) * 0.1)
            elif value.is_floating_point() and value.ndim == 1:
                value.copy_(1 + torch.randn(value.shape, generator=g) * 0.1)


def _head(widths: list, per_class: int, dim: int, g: torch.Generator) -> dict[str, torch.Tensor]:
    """add_on_layers, prototype_vectors, ones and last_layer as PPNet names them."""
    sd = {}
    for i, (c_in, c_out) in enumerate(widths):
        sd[f"add_on_layers.{2 * i}.weight"] = torch.randn(c_out, c_in, 1, 1, generator=g) * (2 / c_in) ** 0.5
        sd[f"add_on_layers.{2 * i}.bias"] = torch.randn(c_out, generator=g) * 0.1
    p = per_class * CLASSES
    sd["prototype_vectors"] = torch.rand(p, dim, 1, 1, generator=g)
    sd["ones"] = torch.ones(p, dim, 1, 1)
    identity = F.one_hot(torch.arange(p) // per_class, CLASSES).float().t()
    sd["last_layer.weight"] = identity - 0.5 * (1 - identity) + torch.randn(CLASSES, p, generator=g) * 0.1
    return sd


def official_resnet18(head: dict, seed: int = 0) -> dict[str, torch.Tensor]:
    """A PPNet state dict on resnet18_features (torchvision ResNet-18 without fc, under features.)."""
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed + 1)
    net = torchvision.models.resnet18(weights=None)
    _randomize(net, g)
    features = {"features." + k: v.clone() for k, v in net.state_dict().items() if not k.startswith("fc.")}
    return {**features, **_head(head["widths"], head["per_class"], head["dim"], g)}


def official_densenet121(seed: int = 0) -> dict[str, torch.Tensor]:
    """A PPNet state dict on densenet121_features (torchvision's ``features`` under features.features.)."""
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed + 1)
    net = torchvision.models.densenet121(weights=None)
    _randomize(net, g)
    features = {"features." + k: v.clone() for k, v in net.state_dict().items() if k.startswith("features.")}
    return {**features, **_head([(1024, 32), (32, 32)], per_class=2, dim=32, g=g)}


# --------------------------------------------------------------------------- reference forward
def _features(sd: dict, x: torch.Tensor) -> torch.Tensor:
    """The original's ``features(x)``: ResNet conv1..layer4, or DenseNet features + final ReLU."""
    if "features.conv1.weight" in sd:
        net = torchvision.models.resnet18(weights=None)
        missing, unexpected = net.load_state_dict({k[len("features."):]: v for k, v in sd.items()
                                                   if k.startswith("features.")}, strict=False)
        assert sorted(missing) == ["fc.bias", "fc.weight"] and not unexpected
        net.eval()
        f = net.maxpool(net.relu(net.bn1(net.conv1(x))))
        return net.layer4(net.layer3(net.layer2(net.layer1(f))))
    net = torchvision.models.densenet121(weights=None)
    missing, _ = net.load_state_dict({k[len("features."):]: v for k, v in sd.items()
                                      if k.startswith("features.")}, strict=False)
    assert sorted(missing) == ["classifier.bias", "classifier.weight"]
    return F.relu(net.eval().features(x))


def reference_forward(sd: dict, x: torch.Tensor, activation: str = "log"):
    """(logits, min_distances B×P, similarity maps B×P×h×w) of the original PPNet forward."""
    with torch.no_grad():
        z = _features(sd, x)
        convs = sorted(int(k.split(".")[1]) for k in sd if k.startswith("add_on_layers.") and k.endswith(".weight"))
        for n, i in enumerate(convs):
            z = F.conv2d(z, sd[f"add_on_layers.{i}.weight"], sd[f"add_on_layers.{i}.bias"])
            z = torch.sigmoid(z) if n == len(convs) - 1 else F.relu(z)
        p = sd["prototype_vectors"]
        z2 = F.conv2d(z ** 2, torch.ones_like(p))
        zp = F.conv2d(z, p)
        distances = F.relu(z2 + (-2 * zp + (p ** 2).sum(dim=(1, 2, 3)).view(-1, 1, 1)))
        min_distances = -F.max_pool2d(-distances, kernel_size=distances.shape[2:]).view(x.shape[0], -1)

        def similarity(d):
            return torch.log((d + 1) / (d + EPSILON)) if activation == "log" else -d

        logits = similarity(min_distances) @ sd["last_layer.weight"].t()
        return logits, min_distances, similarity(distances)


def _images(seed: int = 3) -> torch.Tensor:
    return torch.randn(BATCH, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(seed))


def _check(model: nn.Module, sd: dict, x: torch.Tensor, activation: str = "log") -> None:
    logits, min_distances, maps = reference_forward(sd, x, activation)
    with torch.no_grad():
        out = model.eval()(x)
    torch.testing.assert_close(out.logits, logits, rtol=0, atol=TOL)
    # distances are ~D/6: compare relative to their size (summation order differs by a few ulps)
    torch.testing.assert_close(out.extras["min_distances"], min_distances, rtol=TOL, atol=TOL)
    torch.testing.assert_close(out.extras["prototype_similarity"], maps, rtol=TOL, atol=TOL)


@pytest.fixture(scope="module")
def protopnet_sd() -> dict:
    return official_resnet18(PROTOPNET)


@pytest.fixture(scope="module")
def lvw_sd() -> dict:
    return official_resnet18(LVW, seed=5)


# --------------------------------------------------------------------------- matches the original
def test_kinds_registered():
    assert {"protopnet", "lvw"} <= set(list_official())


def test_protopnet_bottleneck_matches_official_forward(protopnet_sd):
    model = seethrough.from_official("protopnet", protopnet_sd)
    config = model.config
    assert (config["name"], config["backbone"], config["add_on"], config["activation"]) == \
        ("protopnet", "resnet18", "bottleneck", "log")
    assert (config["num_classes"], config["num_prototypes"], config["prototype_dim"]) == (CLASSES, 6, 128)
    assert config["class_specific"] is True
    _check(model, protopnet_sd, _images())


def test_lvw_regular_matches_official_forward(lvw_sd):
    model = seethrough.from_official("lvw", lvw_sd)
    config = model.config
    assert (config["name"], config["backbone"], config["add_on"]) == ("lvw", "resnet18", "regular")
    assert (config["num_classes"], config["num_prototypes"], config["prototype_dim"]) == (CLASSES, 15, 64)
    assert config["class_specific"] is False
    _check(model, lvw_sd, _images())


def test_linear_activation_and_its_original_name(protopnet_sd):
    x = _images()
    for options in ({"activation": "linear"}, {"prototype_activation_function": "linear"}):
        model = seethrough.from_official("protopnet", protopnet_sd, **options)
        assert model.config["activation"] == "linear"
        _check(model, protopnet_sd, x, activation="linear")
    with pytest.raises(ValueError, match="activation='log' and prototype_activation_function='linear' disagree"):
        seethrough.from_official("protopnet", protopnet_sd, activation="log", prototype_activation_function="linear")


def test_densenet_backbone_matches_official_forward():
    sd = official_densenet121()
    model = seethrough.from_official("protopnet", sd)
    assert (model.config["backbone"], model.config["add_on"], model.config["prototype_dim"]) == \
        ("densenet121", "regular", 32)
    _check(model, sd, _images())


def test_checkpoint_wrappings_and_files(lvw_sd, tmp_path):
    """Raw, {"state_dict": ...}, {"model": ...}, DataParallel's module. prefix, and saved .pth files."""
    x = _images()
    expected, _, _ = reference_forward(lvw_sd, x)
    prefixed = {"module." + k: v for k, v in lvw_sd.items()}
    torch.save({"state_dict": prefixed, "epoch": 20}, tmp_path / "wrapped.pth")
    torch.save(lvw_sd, tmp_path / "raw.pth")
    for checkpoint in ({"state_dict": lvw_sd}, {"model": prefixed}, prefixed, tmp_path / "wrapped.pth",
                       str(tmp_path / "raw.pth")):
        with torch.no_grad():
            logits = seethrough.from_official("lvw", checkpoint).eval()(x).logits
        torch.testing.assert_close(logits, expected, rtol=0, atol=TOL)


def test_whole_model_pickle_is_refused_with_resave_instructions(tmp_path):
    """save.py pickles the whole PPNet; seethrough does not unpickle code and says how to re-save."""
    torch.save(nn.Sequential(nn.Conv2d(3, 4, 1)), tmp_path / "10push0.7822.pth")
    with pytest.raises(ValueError, match=r"(?s)pickled Python objects.*Sequential.*state_dict\(\).*torch\.save"):
        seethrough.from_official("protopnet", tmp_path / "10push0.7822.pth")


def test_round_trip_through_save_pretrained_and_convert_command(protopnet_sd, tmp_path):
    from typer.testing import CliRunner

    from seethrough.cli import app

    model = seethrough.from_official("protopnet", protopnet_sd).eval()
    model.save_pretrained(tmp_path / "saved")
    torch.save(protopnet_sd, tmp_path / "official.pth")
    result = CliRunner().invoke(app, ["convert", "protopnet", str(tmp_path / "official.pth"), "--out",
                                      str(tmp_path / "cli")])
    assert result.exit_code == 0, result.output
    x = _images()
    with torch.no_grad():
        expected = model(x)
        for directory in ("saved", "cli"):
            loaded = seethrough.from_pretrained(tmp_path / directory).eval()
            assert loaded.config == model.config
            out = loaded(x)
            torch.testing.assert_close(out.logits, expected.logits, rtol=0, atol=0)
            torch.testing.assert_close(out.extras["min_distances"], expected.extras["min_distances"], rtol=0, atol=0)


def test_bn_counters_and_frozen_bn(protopnet_sd):
    """Checkpoints of old torch have no num_batches_tracked; frozen_bn keeps none."""
    x = _images()
    no_counters = {k: v for k, v in protopnet_sd.items() if not k.endswith("num_batches_tracked")}
    for model in (seethrough.from_official("protopnet", no_counters),
                  seethrough.from_official("protopnet", protopnet_sd, frozen_bn=True)):
        _check(model, protopnet_sd, x)


# --------------------------------------------------------------------------- refused checkpoints
def test_add_on_that_does_not_fit_the_backbone(lvw_sd, protopnet_sd):
    narrow = {**lvw_sd, "add_on_layers.0.weight": torch.zeros(64, 256, 1, 1)}
    with pytest.raises(ValueError, match=r"add_on_layers\.0\.weight has shape \(64, 256, 1, 1\): it takes 256 "
                                         r"channels, but resnet18's features have 512 \(expected \(64, 512, 1, 1\)"):
        seethrough.from_official("lvw", narrow)
    odd = {**protopnet_sd, "add_on_layers.4.weight": torch.zeros(100, 256, 1, 1)}
    with pytest.raises(ValueError, match=r"add_on_layers\.4\.weight has shape \(100, 256, 1, 1\), expected "
                                         r"\(128, 256, 1, 1\) for the bottleneck add-on from resnet18's 512 channels "
                                         r"to prototype_dim 128 \(512 → 256 → 256 → 128 → 128\)"):
        seethrough.from_official("protopnet", odd)
    gap = {k: v for k, v in protopnet_sd.items() if not k.startswith("add_on_layers.2.")}
    with pytest.raises(ValueError, match=r"convolutions at indices \[0, 4, 6\]"):
        seethrough.from_official("protopnet", gap)
    with pytest.raises(ValueError, match=r"add_on='regular' was given, but the checkpoint's add-on has 4 convolutions"):
        seethrough.from_official("protopnet", protopnet_sd, add_on="regular")
    with pytest.raises(ValueError, match=r"add_on_layers\.0\.weight has shape \(64, 512, 1, 1\), expected "
                                         r"\(256, 512, 1, 1\) for the bottleneck add-on"):
        seethrough.from_official("lvw", lvw_sd, add_on="bottleneck")


def test_prototype_count_not_a_multiple_of_the_classes(lvw_sd):
    pruned = {**lvw_sd, "prototype_vectors": lvw_sd["prototype_vectors"][:-1], "ones": lvw_sd["ones"][:-1],
              "last_layer.weight": lvw_sd["last_layer.weight"][:, :-1]}
    with pytest.raises(ValueError, match=r"holds 14 prototypes, not a multiple of the 3 classes.*pruned model"):
        seethrough.from_official("lvw", pruned)


def test_prototype_and_last_layer_shapes(protopnet_sd):
    with pytest.raises(ValueError, match=r"last_layer\.weight has shape \(3, 5\), expected \(num_classes, 6\)"):
        seethrough.from_official("protopnet", {**protopnet_sd, "last_layer.weight": torch.zeros(3, 5)})
    with pytest.raises(ValueError, match=r"prototype_vectors has shape \(6, 128, 3, 3\).*P×D×1×1"):
        seethrough.from_official("protopnet", {**protopnet_sd, "prototype_vectors": torch.rand(6, 128, 3, 3)})
    with pytest.raises(ValueError, match=r"ones .*should be all ones.*with other values"):
        seethrough.from_official("protopnet", {**protopnet_sd, "ones": torch.full((6, 128, 1, 1), 2.0)})
    x = _images()
    without_ones = {k: v for k, v in protopnet_sd.items() if k != "ones"}  # a constant: not needed
    _check(seethrough.from_official("protopnet", without_ones), protopnet_sd, x)


def test_missing_and_unexpected_keys_are_named(protopnet_sd):
    with pytest.raises(ValueError, match=r"no prototype_vectors"):
        seethrough.from_official("protopnet", {k: v for k, v in protopnet_sd.items() if k != "prototype_vectors"})
    with pytest.raises(ValueError, match=r"no last_layer\.weight"):
        seethrough.from_official("protopnet", {k: v for k, v in protopnet_sd.items() if k != "last_layer.weight"})
    with pytest.raises(ValueError, match=r"missing keys.*backbone\.body\.layer3\.1\.bn2\.running_var"):
        seethrough.from_official("protopnet",
                                 {k: v for k, v in protopnet_sd.items() if k != "features.layer3.1.bn2.running_var"})
    with pytest.raises(ValueError, match=r"missing \['add_on_layers\.6\.bias'\]"):
        seethrough.from_official("protopnet", {k: v for k, v in protopnet_sd.items() if k != "add_on_layers.6.bias"})
    with pytest.raises(ValueError, match=r"unexpected keys.*last_layer\.bias"):
        seethrough.from_official("protopnet", {**protopnet_sd, "last_layer.bias": torch.zeros(CLASSES)})


def test_unknown_layouts_and_other_checkpoints(protopnet_sd):
    shallow = {k: v for k, v in protopnet_sd.items() if not k.startswith("features.layer4.1.")}
    with pytest.raises(ValueError, match=r"unknown resnet backbone layout \(basic blocks per stage \(2, 2, 2, 1\).*"
                                         r"resnet18, resnet34, resnet50, resnet101, resnet152, vgg11"):
        seethrough.from_official("protopnet", shallow)
    other = {k.replace("features.conv1.", "features.stem.").replace("features.layer", "features.stages."): v
             for k, v in protopnet_sd.items()}
    with pytest.raises(ValueError, match=r"unknown backbone layout under features\.\*.*Supported: resnet18.*"
                                         r"vgg19_bn.*densenet121"):
        seethrough.from_official("protopnet", other)
    own = seethrough.from_official("protopnet", protopnet_sd).state_dict()
    with pytest.raises(ValueError, match="seethrough state dict"):
        seethrough.from_official("protopnet", own)
    with pytest.raises(ValueError, match="not a state dict of the original PPNet"):
        seethrough.from_official("protopnet", {"cls_token": torch.zeros(1, 1, 8)})


def test_options_checked_against_the_checkpoint(protopnet_sd, lvw_sd):
    with pytest.raises(ValueError, match=r"num_classes=7 was given.*last_layer\.weight has shape \(3, 6\)"):
        seethrough.from_official("protopnet", protopnet_sd, num_classes=7)
    with pytest.raises(ValueError, match=r"prototype_dim=64 was given.*\(6, 128, 1, 1\)"):
        seethrough.from_official("protopnet", protopnet_sd, prototype_dim=64)
    with pytest.raises(ValueError, match=r"backbone='resnet34' was given.*'resnet18'"):
        seethrough.from_official("protopnet", protopnet_sd, backbone="resnet34")
    with pytest.raises(ValueError, match=r"unknown option.*'pretrained'.*from the checkpoint"):
        seethrough.from_official("protopnet", protopnet_sd, pretrained=True)
    with pytest.raises(ValueError, match=r"unknown option.*'class_specific'"):
        seethrough.from_official("lvw", lvw_sd, class_specific=True)
    model = seethrough.from_official("protopnet", protopnet_sd, backbone="resnet18", num_classes=CLASSES,
                                     num_prototypes=6, class_specific=False, freeze_layers=2,
                                     loss_weights={"cluster": 0.5})
    assert model.config["class_specific"] is False and model.config["loss_weights"]["cluster"] == 0.5
    assert not model.backbone.body.layer2[0].conv1.weight.requires_grad
