"""ProtoPNet (Chen et al., NeurIPS 2019) and Learnable Visual Words (Xiao et al., 2022) from
checkpoints of the original code: ``from_official("protopnet")`` and ``from_official("lvw")``.

Both originals (cfchen-duke/ProtoPNet, LearnableVW/Learnable-Visual-Words) build the same
``PPNet`` (model.py): ``features`` (their own copies of torchvision's ResNet / VGG / DenseNet
convolutional parts), ``add_on_layers`` (1×1 convolutions ending in a sigmoid),
``prototype_vectors`` P×D×1×1, a constant ``ones`` of the same shape (the kernel that sums
z² over channels), and ``last_layer`` Linear(P → C, no bias). Its state dict converts by
renaming (the forward is seethrough's ``PrototypeNet``, eqs. (1)-(4) of
:mod:`.heads.prototype`)::

    features.<ResNet: conv1, bn1, layer1..4>  → backbone.body.<timm resnet*, same names>
    features.features.<VGG: 0, 1, 2, ...>     → backbone.body.features.<timm vgg*, same indices>
    features.features.<DenseNet: conv0, ...>  → backbone.body.features.<timm densenet*, same names>
    add_on_layers.<i>.{weight,bias}           → add_on.<i>.{weight,bias}
    prototype_vectors (P, D, 1, 1)            → prototypes
    last_layer.weight (C, P)                  → last_layer.weight
    ones                                      → dropped (checked to be all ones)

Both training scripts save the whole model, ``torch.save(model)`` (save.py), a pickle of the
original classes that only unpickles where the original's ``model.py`` is importable;
seethrough refuses such files (see :func:`.official.load_checkpoint_file`): re-save the
weights once in the original environment, ``torch.save(model.state_dict(), 'x.pth')``.
State dicts may be wrapped in ``{"model": ...}`` / ``{"state_dict": ...}`` and carry
DataParallel's ``module.`` prefix. The originals evaluate with a square ``Resize((224, 224))``
and ImageNet normalization (preprocess.py), seethrough's defaults.
"""
from __future__ import annotations

import re
from typing import Any, Mapping, cast

import torch
from torch import nn

from ..base import SeeThroughModel
from ..hub import load_state_dict_checked
from ..registry import create_model
from ._common import RESNETS, register_converter, resnet_name, unwrap_state_dict

CHECKPOINT_KEYS = ("model", "state_dict")
OFFICIAL_FEATURES, OWN_BACKBONE = "features.", "backbone.body."
OFFICIAL_ADD_ON, OWN_ADD_ON = "add_on_layers.", "add_on."
OFFICIAL_PROTOTYPES, OWN_PROTOTYPES = "prototype_vectors", "prototypes"
LAST_LAYER = "last_layer.weight"
#: PPNet's constant all-ones kernel (P×D×1×1) of the ‖z‖² convolution; not a parameter of ours.
ONES = "ones"
#: Plain ResNet width of layer1's 3×3 convolution (the originals build no ResNeXt / wide ResNet).
RESNET_BASE_WIDTH = 64
#: The originals' VGGs (vgg_features.py, torchvision's configurations A, B, D, E) by 3×3 conv count.
VGGS = {8: "vgg11", 10: "vgg13", 13: "vgg16", 16: "vgg19"}
#: The originals' DenseNets (densenet_features.py) by dense layers per block and stem width.
DENSENETS: dict[tuple[tuple[int, ...], int], str] = {
    ((6, 12, 24, 16), 64): "densenet121",
    ((6, 12, 32, 32), 64): "densenet169",
    ((6, 12, 48, 32), 64): "densenet201",
    ((6, 12, 36, 24), 96): "densenet161",
}
#: timm VGG's fc6/fc7 as 7×7 / 1×1 convolutions, which a prototype model never runs.
VGG_UNUSED = OWN_BACKBONE + "pre_logits."
#: ``create_model`` options passed through; the rest are fixed by the checkpoint.
PASS_THROUGH = ("loss_weights", "freeze_layers", "frozen_bn")
#: Options both kinds accept; ProtoPNet also ``class_specific``.
OPTIONS = ("backbone", "num_classes", "num_prototypes", "prototype_dim", "add_on", "activation", *PASS_THROUGH)
#: The original's names for options (settings.py).
ALIASES = {"prototype_activation_function": "activation", "add_on_layers_type": "add_on"}


@register_converter("protopnet")
def convert_protopnet(checkpoint: Mapping[str, Any], **options) -> nn.Module:
    """ProtoPNet from a state dict of the original ``PPNet`` (cfchen-duke/ProtoPNet model.py).

    Inferred from the weights: the backbone (ResNet-18/34/50/101/152 from blocks per stage,
    VGG-11/13/16/19 with or without BatchNorm from the convolutions, DenseNet-121/161/169/201
    from dense layers per block), ``num_classes`` and ``num_prototypes`` (``last_layer.weight``
    C×P), ``prototype_dim`` (``prototype_vectors`` P×D×1×1) and the add-on type (two
    convolutions C→D, D→D: ``regular``; the halving chain: ``bottleneck``; a one-step
    bottleneck is the same network as ``regular``). Given values of these must agree.

    Options: ``activation`` (the original's ``prototype_activation_function``, ``"log"`` by
    default, or ``"linear"``; a state dict does not record it), ``class_specific`` (True, as
    the original's main.py), ``loss_weights``, ``freeze_layers``, ``frozen_bn``.

    A pruned model (prune.py) whose prototype count is no longer a multiple of the class count
    is refused: its class identities are not stored in the weights.
    """
    return _convert("protopnet", checkpoint, options)


@register_converter("lvw")
def convert_lvw(checkpoint: Mapping[str, Any], **options) -> nn.Module:
    """Learnable Visual Words from a state dict of the original ``PPNet``
    (LearnableVW/Learnable-Visual-Words model.py; same layout as ProtoPNet's, and the same
    inference from the weights, see :func:`convert_protopnet`).

    Options: ``activation`` (``"log"`` by default; the original's ``"linear"`` path adds an
    undefined ``self.max_dist`` and fails, so its checkpoints use ``"log"``),
    ``loss_weights``, ``freeze_layers``, ``frozen_bn``. The words are shared by every class
    (seethrough's ``lvw``); the nominal identity of 5 words per class only matters for the
    last layer's initialization, which the checkpoint overwrites.
    """
    return _convert("lvw", checkpoint, options)


def _convert(kind: str, checkpoint: Mapping[str, Any], options: dict) -> nn.Module:
    options = _options(kind, options)
    state = unwrap_state_dict(checkpoint, CHECKPOINT_KEYS)
    _check_layout(state, kind)
    prototypes, last = state[OFFICIAL_PROTOTYPES], state[LAST_LAYER]
    if prototypes.ndim != 4 or tuple(prototypes.shape[2:]) != (1, 1):
        raise ValueError(f"{OFFICIAL_PROTOTYPES} has shape {tuple(prototypes.shape)}; seethrough's prototypes are "
                         "P×D×1×1 (the original's prototype_shape (P, D, 1, 1)); larger prototype kernels are not "
                         "supported")
    num_prototypes, dim = int(prototypes.shape[0]), int(prototypes.shape[1])
    if last.ndim != 2 or last.shape[1] != num_prototypes:
        raise ValueError(f"{LAST_LAYER} has shape {tuple(last.shape)}, expected (num_classes, {num_prototypes}) for "
                         f"the {num_prototypes} prototypes of {OFFICIAL_PROTOTYPES} {tuple(prototypes.shape)}")
    num_classes = int(last.shape[0])
    _check_given(options, "num_classes", num_classes, LAST_LAYER, last)
    _check_given(options, "num_prototypes", num_prototypes, OFFICIAL_PROTOTYPES, prototypes)
    _check_given(options, "prototype_dim", dim, OFFICIAL_PROTOTYPES, prototypes)
    if num_prototypes % num_classes:
        raise ValueError(f"{OFFICIAL_PROTOTYPES} holds {num_prototypes} prototypes, not a multiple of the "
                         f"{num_classes} classes of {LAST_LAYER} {tuple(last.shape)}: seethrough gives each class "
                         "P / C prototypes. A pruned model (prune.py) cannot be converted, since its prototypes' "
                         "classes are not stored in the weights; convert the checkpoint saved before pruning")
    _check_ones(state, prototypes)
    family = _family(state)
    backbone = _choose_backbone(_infer_backbone(state, family), options.pop("backbone", None), family, state)
    add_on = _add_on_type(state, options.pop("add_on", None))
    model = cast(SeeThroughModel, create_model(kind, num_classes=num_classes, backbone=backbone, pretrained=False,
                         num_prototypes=num_prototypes, prototype_dim=dim, add_on=add_on, **options))
    renamed = _rename(state)
    own = model.state_dict()
    _check_add_on(renamed, own, model, backbone, add_on, dim)
    for key in own:
        if key.endswith("num_batches_tracked") or key.startswith(VGG_UNUSED):
            renamed.setdefault(key, own[key])  # BatchNorm counters of old torch; timm VGG's unused fc6/fc7
    for key in [k for k in renamed if k.endswith("num_batches_tracked") and k not in own]:
        del renamed[key]  # frozen_bn=True: our frozen BatchNorm keeps no counter
    source = {"protopnet": "the original ProtoPNet", "lvw": "the original LVW"}[kind]
    load_state_dict_checked(model, renamed, source=f"{source} checkpoint ({backbone})")
    return model


def _options(kind: str, options: dict) -> dict:
    options = dict(options)
    for alias, name in ALIASES.items():
        if alias in options:
            value = options.pop(alias)
            if options.setdefault(name, value) != value:
                raise ValueError(f"{name}={options[name]!r} and {alias}={value!r} disagree; give one of them")
    accepted = OPTIONS + (("class_specific",) if kind == "protopnet" else ())
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        extra = "; the backbone's weights all come from the checkpoint" if "pretrained" in unknown else ""
        raise ValueError(f"unknown option(s) {unknown} for from_official({kind!r}); accepted: "
                         f"{', '.join(accepted)}{extra}")
    options.setdefault("activation", "log")
    return options


def _check_layout(state: Mapping[str, torch.Tensor], kind: str) -> None:
    """Refuse seethrough's own state dicts and checkpoints of other models, naming what is missing."""
    if OWN_PROTOTYPES in state or any(k.startswith((OWN_BACKBONE, OWN_ADD_ON)) for k in state):
        raise ValueError(f"from_official({kind!r}) got a seethrough state dict (keys prototypes / backbone.body.* / "
                         "add_on.*), not the original's: load it with seethrough.from_pretrained or "
                         "model.load_state_dict")
    needed = {OFFICIAL_PROTOTYPES: OFFICIAL_PROTOTYPES in state, LAST_LAYER: LAST_LAYER in state,
              OFFICIAL_ADD_ON + "*": any(k.startswith(OFFICIAL_ADD_ON) for k in state),
              OFFICIAL_FEATURES + "*": any(k.startswith(OFFICIAL_FEATURES) for k in state)}
    missing = [name for name, found in needed.items() if not found]
    if missing:
        raise ValueError(f"not a state dict of the original PPNet (ProtoPNet / LVW model.py): it has no "
                         f"{', '.join(missing)}; found keys such as {sorted(state)[:5]}")


def _check_ones(state: Mapping[str, torch.Tensor], prototypes: torch.Tensor) -> None:
    ones = state.get(ONES)
    if ones is None:
        return  # a constant: nothing is lost without it
    if ones.shape != prototypes.shape or not bool((ones == 1).all()):
        raise ValueError(f"{ONES} (the original's constant kernel summing z² over channels) should be all ones of "
                         f"the shape of {OFFICIAL_PROTOTYPES} {tuple(prototypes.shape)}; found shape "
                         f"{tuple(ones.shape)}{'' if ones.shape != prototypes.shape else ' with other values'}, so "
                         "the original's distances were not the squared L2 distances seethrough computes")


def _family(state: Mapping[str, torch.Tensor]) -> str:
    if f"{OFFICIAL_FEATURES}conv1.weight" in state and any(k.startswith(f"{OFFICIAL_FEATURES}layer1.") for k in state):
        return "resnet"
    if f"{OFFICIAL_FEATURES}features.conv0.weight" in state:
        return "densenet"
    if f"{OFFICIAL_FEATURES}features.0.weight" in state:
        return "vgg"
    raise ValueError("unknown backbone layout under features.*: the originals' backbones are ResNet "
                     "(features.conv1, features.layer1..4), VGG (features.features.0, ...) and DenseNet "
                     f"(features.features.conv0, ...); found keys such as "
                     f"{sorted(k for k in state if k.startswith(OFFICIAL_FEATURES))[:5]}. Supported: "
                     f"{', '.join(_supported())}")


def _supported() -> list[str]:
    vggs = [name + suffix for name in VGGS.values() for suffix in ("", "_bn")]
    return [*RESNETS.values(), *vggs, *DENSENETS.values()]


def _infer_backbone(state: Mapping[str, torch.Tensor], family: str) -> str | None:
    """The timm name of the original's backbone, from blocks and widths; None if unknown."""
    prefix = OFFICIAL_FEATURES + ("" if family == "resnet" else "features.")
    if family == "resnet":
        conv2 = state.get(f"{prefix}layer1.0.conv2.weight")
        if conv2 is None or tuple(conv2.shape[:2]) != (RESNET_BASE_WIDTH, RESNET_BASE_WIDTH):
            return None
        return resnet_name(state, prefix=prefix)
    if family == "vgg":
        convs = [k for k in state if re.fullmatch(rf"{re.escape(prefix)}\d+\.weight", k) and state[k].ndim == 4]
        batch_norm = any(k.startswith(prefix) and k.endswith(".running_mean") for k in state)
        name = VGGS.get(len(convs))
        return None if name is None else name + ("_bn" if batch_norm else "")
    depths = tuple(len({m.group(1) for k in state
                        if (m := re.match(rf"{re.escape(prefix)}denseblock{block}\.denselayer(\d+)\.", k))})
                   for block in range(1, 5))
    return DENSENETS.get((depths, int(state[f"{prefix}conv0.weight"].shape[0])))


def _layout(state: Mapping[str, torch.Tensor], family: str) -> str:
    """What the backbone weights say, for an error message."""
    if family == "resnet":
        conv2 = state.get(f"{OFFICIAL_FEATURES}layer1.0.conv2.weight")
        block = "bottleneck" if f"{OFFICIAL_FEATURES}layer1.0.conv3.weight" in state else "basic"
        depths = tuple(len({m.group(1) for k in state
                            if (m := re.match(rf"features\.layer{stage}\.(\d+)\.", k))}) for stage in range(1, 5))
        return (f"{block} blocks per stage {depths}, features.layer1.0.conv2.weight "
                f"{tuple(conv2.shape) if conv2 is not None else 'absent'}")
    if family == "vgg":
        convs = sum(1 for k in state if re.fullmatch(r"features\.features\.\d+\.weight", k) and state[k].ndim == 4)
        return f"{convs} convolutions"
    depths = tuple(len({m.group(1) for k in state if (m := re.match(rf"features\.features\.denseblock{block}"
                                                                    r"\.denselayer(\d+)\.", k))})
                   for block in range(1, 5))
    return f"dense layers per block {depths}, stem width {int(state['features.features.conv0.weight'].shape[0])}"


def _choose_backbone(inferred: str | None, given: str | None, family: str, state: Mapping[str, torch.Tensor]) -> str:
    if given is not None and inferred is not None and given != inferred:
        raise ValueError(f"backbone={given!r} was given, but the checkpoint's features are those of {inferred!r}: "
                         "drop backbone=")
    if given is not None:
        return given
    if inferred is None:
        raise ValueError(f"unknown {family} backbone layout ({_layout(state, family)}); the originals' backbones "
                         f"are {', '.join(_supported())}. If it is another timm {family} with the same parameter "
                         "names, pass backbone=<timm name>")
    return inferred


def _add_on_type(state: Mapping[str, torch.Tensor], given: str | None) -> str:
    """``regular`` for exactly two convolutions, else ``bottleneck`` (checked against the given one)."""
    indices = sorted({int(m.group(1)) for k in state if (m := re.fullmatch(r"add_on_layers\.(\d+)\.weight", k))})
    if indices != list(range(0, 2 * len(indices), 2)):
        raise ValueError(f"add_on_layers holds convolutions at indices {indices}; the original's add-on alternates "
                         "a 1×1 convolution and an activation (indices 0, 2, 4, ...)")
    inferred = "regular" if len(indices) == 2 else "bottleneck"
    if given == "regular" and inferred != "regular":
        raise ValueError(f"add_on='regular' was given, but the checkpoint's add-on has {len(indices)} convolutions "
                         f"(add_on_layers.{indices}): a 'bottleneck' add-on; drop add_on=")
    return given or inferred


def _rename(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Official names → ours (module docstring); unknown keys kept, so loading names them."""
    renamed = {}
    for key, value in state.items():
        if key == ONES:
            continue
        if key == OFFICIAL_PROTOTYPES:
            key = OWN_PROTOTYPES
        elif key.startswith(OFFICIAL_FEATURES):
            key = OWN_BACKBONE + key[len(OFFICIAL_FEATURES):]
        elif key.startswith(OFFICIAL_ADD_ON):
            key = OWN_ADD_ON + key[len(OFFICIAL_ADD_ON):]
        renamed[key] = value
    return renamed


def _check_add_on(renamed: Mapping[str, torch.Tensor], own: Mapping[str, torch.Tensor], model: SeeThroughModel,
                  backbone: str, add_on: str, dim: int) -> None:
    """The add-on must lead from the backbone's width to D as the original builds it (clear errors)."""
    width = model.backbone.num_features
    chain = " → ".join(str(int(own[k].shape[0])) for k in own if k.startswith(OWN_ADD_ON) and k.endswith(".weight"))
    what = f"the {add_on} add-on from {backbone}'s {width} channels to prototype_dim {dim} ({width} → {chain})"
    ours = [k for k in own if k.startswith(OWN_ADD_ON)]  # module order: the first misfit is named
    theirs = [k for k in renamed if k.startswith(OWN_ADD_ON)]
    first = OWN_ADD_ON + "0.weight"
    if first in renamed and renamed[first].ndim == 4 and renamed[first].shape[1] != width:
        raise ValueError(f"{OFFICIAL_ADD_ON}0.weight has shape {tuple(renamed[first].shape)}: it takes "
                         f"{renamed[first].shape[1]} channels, but {backbone}'s features have {width} (expected "
                         f"{tuple(own[first].shape)} for {what}); the add-on does not fit the backbone")
    for key in ours:
        if key in renamed and renamed[key].shape != own[key].shape:
            raise ValueError(f"{OFFICIAL_ADD_ON}{key[len(OWN_ADD_ON):]} has shape {tuple(renamed[key].shape)}, "
                             f"expected {tuple(own[key].shape)} for {what}")
    if set(ours) != set(theirs):
        raise ValueError(f"the checkpoint's add_on_layers do not match {what}: missing "
                         f"{_official_add_on(set(ours) - set(theirs))}, unexpected "
                         f"{_official_add_on(set(theirs) - set(ours))}")


def _official_add_on(keys: set[str]) -> list[str]:
    """Our add-on keys under the original's names, for an error message."""
    return sorted(OFFICIAL_ADD_ON + k[len(OWN_ADD_ON):] for k in keys)


def _check_given(options: dict, key: str, inferred: int, source: str, tensor: torch.Tensor) -> None:
    given = options.pop(key, None)
    if given is not None and given != inferred:
        raise ValueError(f"{key}={given} was given, but the checkpoint's {source} has shape {tuple(tensor.shape)} "
                         f"({key} {inferred}): drop {key}=")
