"""SCOUTER's checkpoints (Li et al., ICCV 2021; wbw520/scouter, ``sloter/slot_model.py``): the
FC baseline and the slot classifier, kind ``"scouter"``."""
from __future__ import annotations

import argparse
import re
from typing import Any, Mapping, cast

import timm
import torch
from torch import nn

from ..base import SeeThroughModel
from ..hub import load_state_dict_checked
from ..registry import create_model
from ._common import mismatched_keys, register_converter, unwrap_state_dict

# ---------------------------------------------------------------------------------------------
# SCOUTER (Li et al., ICCV 2021; wbw520/scouter, sloter/slot_model.py)
# ---------------------------------------------------------------------------------------------

#: Where the official FC model (``--use_slot false``) keeps its timm classifier, per family.
SCOUTER_CLASSIFIERS = ("fc", "classifier", "last_linear")
#: Defaults of the official train.py / SlotAttention for what a state dict does not store.
SCOUTER_DEFAULTS = dict(sign=1, lambda_value=1.0, power=2.0, iters=3)
#: Options the SCOUTER converter understands.
SCOUTER_OPTIONS = ("backbone", "num_classes", "slots_per_class", "sign", "loss_status", "lambda_value",
                   "power", "iters", "normalization", "freeze_layers", "stem", "in_chans",
                   "hidden_dim", "to_k_layer")
#: Shape of the official MNIST stem's weight (conv1 → Conv2d(1, 64, 3, ...)).
MNIST_CONV1_SHAPE = (64, 1, 3, 3)


@register_converter("scouter")
def convert_scouter(checkpoint: Mapping[str, Any], **options) -> nn.Module:
    """SCOUTER or its FC baseline from a state dict of the official ``SlotModel``.

    Official names → ours: ``backbone.X`` → ``backbone.body.X``; ``conv1x1.*`` and
    ``slot.{initial_slots, to_k.*, gru.*}`` unchanged; ``slot.to_q.*`` dropped (the official
    forward never uses it); for the FC model (``--use_slot false``) the timm classifier
    ``backbone.{fc, classifier, last_linear}.*`` → ``fc.*``.

    Inferred from the weights: the variant (``slot.initial_slots`` present → ``"scouter"``,
    else ``"fc"``), ``hidden_dim`` (``conv1x1``), ``to_k_layer`` (Linear layers in ``to_k``),
    the number of slots K = num_classes × slots_per_class (``slot.initial_slots``), the FC
    model's class count, and the MNIST stem (``backbone.conv1.weight`` of shape 64×1×3×3 →
    ``stem="mnist", in_chans=1``).

    Options (explicit options win over the ``args`` an official checkpoint file stores, which
    supply ``--model``, ``--num_classes``, ``--slots_per_class``, ``--loss_status``,
    ``--lambda_value``, ``--power`` and ``--dataset MNIST``):

    - ``backbone`` (required unless in ``args``): the timm name of the official ``--model``.
      An old-timm SE-ResNet name (``seresnet18``, layout ``layer0``/``last_linear``) is mapped
      to modern timm's ``legacy_seresnet18``.
    - ``num_classes`` or ``slots_per_class``: one of them when K alone is ambiguous.
    - ``sign`` (or the original's ``loss_status``; default +1), ``lambda_value`` (1.0),
      ``power`` (2, the train.py default), ``iters`` (3): not stored in a state dict.
    - ``normalization``, ``freeze_layers``: seethrough options, passed through.

    timm naming, checked against the timm 0.1.30 vendored in wbw520/scouter (both versions
    built side by side with the same weights, features compared on 260×260 inputs): ResNet
    (resnet18/50, resnext50_32x4d, gluon_resnet50_v1d), ResNeSt (resnest14d/26d/50d,
    resnest50d_4s2x40d), EfficientNet (efficientnet_b0/b3, tf_efficientnet_b0), DenseNet
    (densenet121/161) and MobileNetV3 (mobilenetv3_large_100) have identical parameter names,
    shapes and last-stage features in modern timm, so no rename is needed; 250 of the 295 old
    model names have identical names and shapes. Old ``seresnet*``/``seresnext*``/``senet154``
    are modern ``legacy_*`` (handled above); DLA, TResNet, SK-ResNet, ig_resnext and
    ese_vovnet*_evos differ and are not supported.

    The official slot MobileNet replaced ``conv_head`` by an identity, so its state dict has
    none; our backbone keeps timm's (unused by the forward) and it stays as initialized.
    """
    unknown = sorted(set(options) - set(SCOUTER_OPTIONS))
    if unknown:
        raise ValueError(f"unknown option(s) {unknown} for from_official('scouter'); "
                         f"accepted: {', '.join(SCOUTER_OPTIONS)}")
    state = unwrap_state_dict(checkpoint)
    if "loss_status" in options:  # the original's name for sign
        loss_status = options.pop("loss_status")
        if options.setdefault("sign", loss_status) != loss_status:
            raise ValueError(f"sign={options['sign']} and loss_status={loss_status} disagree; give one of them")
    options = {**_scouter_args(checkpoint.get("args")), **options}
    if "slot.initial_slots" in state:
        variant = "scouter"
    elif any(f"backbone.{head}.weight" in state for head in SCOUTER_CLASSIFIERS) and "conv1x1.weight" not in state:
        variant = "fc"
    else:
        raise ValueError(
            "not a state dict of the official SCOUTER SlotModel: expected 'slot.initial_slots' (SCOUTER) or "
            f"'backbone.fc.weight' / 'backbone.classifier.weight' / 'backbone.last_linear.weight' (FC model); "
            f"found keys such as {sorted(state)[:5]}"
        )
    if "backbone" not in options:
        raise ValueError(
            f"from_official('scouter') needs backbone=<timm name>, the official --model this {variant} checkpoint "
            "was trained with (e.g. backbone='resnest26d'; resnet18 for MNIST). Also needed: "
            + ("num_classes or slots_per_class when the slot count is ambiguous; sign=-1 for a negative "
               "(loss_status -1) model." if variant == "scouter"
               else "nothing else (the class count is read from the classifier).")
        )
    backbone = _scouter_backbone_name(options.pop("backbone"), state)
    config: dict[str, Any] = dict(backbone=backbone, pretrained=False)
    for key in ("normalization", "freeze_layers"):
        if key in options:
            config[key] = options.pop(key)
    _scouter_stem(state, options, config)

    renamed: dict[str, torch.Tensor] = {}
    head = None
    for key, value in state.items():
        if not key.startswith("backbone."):
            renamed[key] = value
            continue
        name = key[len("backbone."):]
        module = name.split(".", 1)[0]
        if variant == "fc" and module in SCOUTER_CLASSIFIERS and name.count(".") == 1:
            head = module
            renamed["fc." + name.split(".", 1)[1]] = value
        else:
            renamed["backbone.body." + name] = value

    if variant == "fc":
        num_classes = int(renamed["fc.weight"].shape[0])
        _check_given(options, "num_classes", num_classes, f"backbone.{head}.weight")
        for key in ("slots_per_class", "sign", "lambda_value", "power", "iters", "hidden_dim", "to_k_layer"):
            options.pop(key, None)  # SCOUTER-only; meaningless for the FC model
        config["num_classes"] = num_classes
        if "mobilenet" in backbone and "backbone.body.conv_head.weight" in renamed:
            raise ValueError("the official FC MobileNet applies conv_head after pooling; seethrough's fc head "
                             "pools the last stage directly, so this checkpoint cannot be converted")
    else:
        renamed = {k: v for k, v in renamed.items() if not k.startswith("slot.to_q.")}
        config.update(_scouter_slot_config(renamed, options))
    model = cast(SeeThroughModel, create_model(variant, **config))
    own = model.state_dict()
    if variant == "scouter" and "mobilenet" in backbone:
        for key in own:  # conv_head: removed by the official slot model, unused by ours
            if key.startswith("backbone.body.conv_head.") and key not in renamed:
                renamed[key] = own[key]
    try:
        source = f"the official SCOUTER checkpoint ({'slot' if variant == 'scouter' else 'FC'} model)"
        load_state_dict_checked(model, renamed, source=source)
    except ValueError as err:
        raise ValueError(f"{err}\n{_scouter_hint(model, own, renamed, backbone)}") from None
    return model


def _scouter_args(args: Any) -> dict[str, Any]:
    """Options recorded in an official checkpoint's ``args`` (argparse.Namespace)."""
    if args is None:
        return {}
    values = vars(args) if isinstance(args, argparse.Namespace) else dict(args)
    out: dict[str, Any] = {}
    for key, target, convert in (("model", "backbone", str), ("num_classes", "num_classes", int),
                                 ("slots_per_class", "slots_per_class", int), ("loss_status", "sign", int),
                                 ("lambda_value", "lambda_value", float), ("power", "power", float)):
        try:
            if values.get(key) is not None:
                out[target] = convert(values[key])
        except (TypeError, ValueError):  # e.g. a sweep list "1,3,10": leave it to the options
            pass
    if values.get("dataset") == "MNIST":
        out["stem"] = "mnist"
    return out


def _scouter_backbone_name(name: str, state: Mapping[str, torch.Tensor]) -> str:
    """Map old-timm names whose layout lives on under another modern name."""
    if "backbone.layer0.conv1.weight" in state and not name.startswith("legacy_") and timm.is_model("legacy_" + name):
        return "legacy_" + name  # old timm senet.py layout (layer0, last_linear)
    return name


def _scouter_stem(state: Mapping[str, torch.Tensor], options: dict, config: dict) -> None:
    conv1 = state.get("backbone.conv1.weight")
    mnist = conv1 is not None and tuple(conv1.shape) == MNIST_CONV1_SHAPE
    stem = options.pop("stem", "mnist" if mnist else None)
    in_chans = options.pop("in_chans", 1 if stem == "mnist" else None)
    if stem is not None:
        config["stem"] = stem
    if in_chans is not None:
        config["in_chans"] = in_chans


def _scouter_slot_config(state: Mapping[str, torch.Tensor], options: dict) -> dict[str, Any]:
    """num_classes, slots_per_class, hidden_dim, to_k_layer from the weights; the rest from options."""
    num_slots, hidden_dim = int(state["slot.initial_slots"].shape[1]), int(state["slot.initial_slots"].shape[2])
    if "conv1x1.weight" in state:
        hidden_dim = int(state["conv1x1.weight"].shape[0])
    _check_given(options, "hidden_dim", hidden_dim, "conv1x1.weight")
    linear = sorted(int(m.group(1)) for k in state if (m := re.fullmatch(r"slot\.to_k\.(\d+)\.weight", k)))
    if linear != list(range(0, 2 * len(linear), 2)):
        raise ValueError(f"slot.to_k holds Linear layers at indices {linear}; the official to_k alternates "
                         "Linear and ReLU (indices 0, 2, 4, ...)")
    _check_given(options, "to_k_layer", len(linear), "slot.to_k.*")
    num_classes, spc = options.pop("num_classes", None), options.pop("slots_per_class", None)
    splits = ", ".join(f"{num_slots // s}×{s}" for s in range(1, num_slots + 1) if num_slots % s == 0)
    where = f"slot.initial_slots holds K={num_slots} slots = num_classes × slots_per_class (possible: {splits})"
    if num_classes is None and spc is None:
        if num_slots != 1:
            raise ValueError(f"{where}: pass num_classes=... or slots_per_class=... (the official --num_classes / "
                             "--slots_per_class) to say which")
        num_classes = spc = 1
    elif num_classes is None:
        num_classes = num_slots // spc if spc >= 1 and num_slots % spc == 0 else None
        if num_classes is None:
            raise ValueError(f"{where}: slots_per_class={spc} does not divide it")
    elif spc is None:
        spc = num_slots // num_classes if num_classes >= 1 and num_slots % num_classes == 0 else None
        if spc is None:
            raise ValueError(f"{where}: num_classes={num_classes} does not divide it")
    elif num_classes * spc != num_slots:
        raise ValueError(f"{where}, but num_classes={num_classes} × slots_per_class={spc} = {num_classes * spc}")
    config = dict(num_classes=int(num_classes), slots_per_class=int(spc), hidden_dim=hidden_dim,
                  to_k_layer=len(linear))
    for key, default in SCOUTER_DEFAULTS.items():
        config[key] = options.pop(key, default)
    return config


def _check_given(options: dict, key: str, inferred: int, source: str) -> None:
    given = options.pop(key, None)
    if given is not None and given != inferred:
        raise ValueError(f"{key}={given} was given, but the checkpoint's {source} says {inferred}")


def _scouter_hint(model: SeeThroughModel, own: Mapping[str, torch.Tensor], state: Mapping[str, torch.Tensor],
                  backbone: str) -> str:
    """Which option to fix, from where the mismatching keys are."""
    bad = mismatched_keys(own, state)
    hints = []
    if any(k.startswith("backbone.body.") for k in bad):
        hints.append(f"the backbone weights do not fit backbone={backbone!r}: pass the timm name of the official "
                     "--model the checkpoint was trained with (keys above are ours: official names lack '.body')")
    conv = state.get("conv1x1.weight")
    if conv is not None and conv.shape[1] != model.backbone.num_features:
        hints.append(f"conv1x1 takes {conv.shape[1]} channels (the official --channel) but {backbone!r} yields "
                     f"{model.backbone.num_features}: wrong backbone option?")
    if any(k.startswith("fc.") for k in bad) and not hints:
        hints.append(f"the classifier takes {state['fc.weight'].shape[1]} features but {backbone!r} yields "
                     f"{model.backbone.num_features}: wrong backbone option?")
    if any(k.startswith("slot.") for k in bad):
        hints.append("the slot module does not fit: check num_classes / slots_per_class")
    return "Fix: " + "; ".join(hints or ["check the backbone option"])
