"""CA-Stream (Torres et al., CVPR-W 2024) from checkpoints of the original code: ``from_official("castream")``.

The original (ftorres11/CA_Stream, commit 9489e8d) builds its models from torchvision's, so a
checkpoint holds torchvision's parameter names plus the stream's. Each stream block is a
``CLS_Attention`` (``models/transformer.py``) whose only parameters are ``to_out.1`` =
``Linear(d_ℓ, d_ℓ₊₁)``, i.e. W_ℓ, b_ℓ of eq. (2) in :mod:`.heads.castream`; its softmax scale
is 1/sqrt(d_ℓ) and its heads split the channels into contiguous groups, as ours do.

``models/ResNet/cls_v1.py`` (torchvision ResNet names are timm's)::

    conv1.*, bn1.*, layer{1..4}.*       → backbone.body.<same>
    fc.*                                → classifier.fc.*
    cls_token (1, 1, 64)                → stream.cls_token (64,)
    {base, l1, l2, l3, l4}.to_out.1.*   → stream.blocks.{0..4}.proj.*
                                          (taps: maxpool, layer1, layer2, layer3, layer4)

``models/ConvNext/cls_v1.py`` (torchvision ConvNeXt → timm)::

    features.0.{0,1}.*                  → backbone.body.stem.{0,1}.*
    features.{2s+1}.<i>.block.{0,2,3,5} → backbone.body.stages.<s>.blocks.<i>.{conv_dw, norm, mlp.fc1, mlp.fc2}
    features.{2s+1}.<i>.layer_scale     → backbone.body.stages.<s>.blocks.<i>.gamma   ((d,1,1) → (d,))
    features.{2s}.{0,1}.*  (s = 1..3)   → backbone.body.stages.<s>.downsample.{0,1}.*
    classifier.0.* (LayerNorm2d)        → backbone.body.head.norm.*
    classifier.2.* (Linear)             → classifier.fc.*
    cls_token (1, 1, d₀)                → stream.cls_token (d₀,)
    cls_stream.{0..3}.to_out.1.*        → stream.blocks.{0..3}.proj.*
                                          (taps: features.0, .2, .4, .7 = stem, stages.1.downsample,
                                          stages.2.downsample, last stage)

Both tap sets are seethrough's ``taps="paper"``, so the converted model reproduces the
original's eval-mode logits. The original's blocks return the pre-softmax scores
(``dots``); ``extras["ca_attention.<tap>"]`` holds their softmax over positions, a_ℓ of eq. (1).
Checkpoints are raw state dicts or the training scripts' ``{"model_sdict": ...}``, with or
without DistributedDataParallel's ``module.`` prefix. The original evaluates with a square
``Resize((224, 224))`` and ImageNet normalization, seethrough's defaults, so the model card
records nothing extra.
"""
from __future__ import annotations

import re
from typing import Any, Mapping, cast

import torch
from torch import nn

from ..heads.castream import CAStream
from ..hub import load_state_dict_checked
from ..registry import create_model
from ._common import RESNETS, register_converter, resnet_name, unwrap_state_dict

#: Where the original's training scripts put the weights (``engine/routines.py``).
CHECKPOINT_KEYS = ("model_sdict", "model", "state_dict")
OFFICIAL_TOKEN, OWN_TOKEN = "cls_token", "stream.cls_token"
OWN_BACKBONE, OWN_FC, OWN_BLOCKS = "backbone.body.", "classifier.fc.", "stream.blocks."
#: The original ResNet's stream blocks, in tap order (maxpool, layer1, layer2, layer3, layer4).
RESNET_BLOCKS = ("base", "l1", "l2", "l3", "l4")
# The original's ResNets are torchvision's (``_common.RESNETS``, shared with DETR). Its
# ResNeXt / wide ResNet entries of ``dict_clsv1`` build no CA model (``resnext50_32x4d_clsv1`` is
# torchvision's plain model; the others, and ``resnet152``, pass an extra positional ``project``
# to ``_resnet`` and fail); 152 is kept because its layout is known.
#: Channels of a plain ResNet's first 3×3 convolution (layer1.0.conv2); ResNeXts and wide ResNets differ.
RESNET_BASE_WIDTH = 64
#: torchvision ConvNeXts (the original's ``convnext_*_clsv1``) by blocks per stage and stem width.
CONVNEXTS: dict[tuple[tuple[int, ...], int], str] = {
    ((3, 3, 9, 3), 96): "convnext_tiny",
    ((3, 3, 27, 3), 96): "convnext_small",
    ((3, 3, 27, 3), 128): "convnext_base",
    ((3, 3, 27, 3), 192): "convnext_large",
}
#: Indices in the original ConvNeXt's ``features`` after which its stream blocks run (``ca_placement``).
CONVNEXT_PLACEMENT = (0, 2, 4, 7)
#: torchvision CNBlock ``block`` indices → timm ConvNeXtBlock names (1, 4, 6 are Permute / GELU).
CONVNEXT_BLOCK = {"0": "conv_dw", "2": "norm", "3": "mlp.fc1", "5": "mlp.fc2"}
#: ``create_model("castream")`` options passed through; the rest are fixed by the checkpoint.
PASS_THROUGH = ("pooling", "maps", "bn_stats", "train_classifier", "frozen_bn")
#: Options from_official("castream") accepts.
OPTIONS = ("backbone", "num_classes", "heads", *PASS_THROUGH)


@register_converter("castream")
def convert_castream(checkpoint: Mapping[str, Any], **options) -> nn.Module:
    """A CA-Stream model from a checkpoint of the original ``resnet*_clsv1`` / ``convnext_*_clsv1``.

    Inferred from the weights: the family (``features.0.0.weight`` → ConvNeXt, ``layer1.*`` →
    ResNet), the backbone (blocks per stage and widths: resnet18/34/50/101/152,
    convnext_tiny/small/base/large), ``num_classes`` (the classifier's rows). Given
    ``backbone`` / ``num_classes`` must agree; ``backbone`` also names a layout the tables do
    not know (another timm ResNet / ConvNeXt with torchvision's parameter names; untested).

    Options: ``heads`` (the original ResNet's ``heads``, default 1; the weights cannot tell it;
    the original ConvNeXt always uses 1), and ``create_model("castream")``'s ``pooling``,
    ``maps``, ``bn_stats``, ``train_classifier``, ``frozen_bn``. The stream must have the
    paper's taps with the widths of that backbone; another tap set is refused, naming the key.
    """
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise ValueError(f"unknown option(s) {unknown} for from_official('castream'); accepted: {', '.join(OPTIONS)}"
                         + ("; taps are always the paper's" if "taps" in unknown else ""))
    state = unwrap_state_dict(checkpoint, CHECKPOINT_KEYS)
    family = _family(state)
    heads = options.pop("heads", 1)
    if family == "convnext" and heads != 1:
        raise ValueError(f"heads={heads} was given, but the original ConvNeXt's stream always has 1 head "
                         "(models/ConvNext/cls_v1.py): drop heads=")
    if family == "resnet":
        blocks: tuple[str, ...]
        renamed, blocks = _rename_resnet(state), RESNET_BLOCKS
        inferred, fc_key = _resnet_name(state), "fc.weight"
    else:
        renamed, blocks = _rename_convnext(state), tuple(f"cls_stream.{i}" for i in range(len(CONVNEXT_PLACEMENT)))
        inferred, fc_key = _convnext_name(state), "classifier.2.weight"
    backbone = _choose_backbone(inferred, options.pop("backbone", None), family, state)
    if fc_key not in state:
        raise ValueError(f"the checkpoint has no classifier weight {fc_key!r}; found keys such as {sorted(state)[:5]}")
    num_classes = int(state[fc_key].shape[0])
    given = options.pop("num_classes", None)
    if given is not None and given != num_classes:
        raise ValueError(f"num_classes={given} was given, but the checkpoint's {fc_key} has shape "
                         f"{tuple(state[fc_key].shape)} ({num_classes} classes): drop num_classes=")
    model = cast(CAStream, create_model("castream", num_classes=num_classes, backbone=backbone, taps="paper",
                                        pretrained=False, heads=heads, **options))
    _check_stream(model, state, renamed, blocks, backbone)
    own = model.state_dict()
    for key in [k for k in own if k.endswith("num_batches_tracked")]:
        renamed.setdefault(key, own[key])  # a checkpoint saved without BatchNorm counters
    for key in [k for k in renamed if k.endswith("num_batches_tracked") and k not in own]:
        del renamed[key]  # frozen_bn=True: our frozen BatchNorm keeps no counter
    load_state_dict_checked(model, renamed, source=f"the original CA-Stream {family} checkpoint")
    return model


def _family(state: Mapping[str, torch.Tensor]) -> str:
    """``"resnet"`` or ``"convnext"`` from the backbone's keys; other layouts are refused."""
    if any(k.startswith((OWN_BACKBONE, OWN_BLOCKS)) or k == OWN_TOKEN for k in state):
        raise ValueError("from_official('castream') got a seethrough state dict (keys backbone.body.* / stream.*), "
                         "not the original's: load it with seethrough.from_pretrained or model.load_state_dict")
    if OFFICIAL_TOKEN not in state:
        raise ValueError(f"not a checkpoint of the original CA-Stream: it has no {OFFICIAL_TOKEN!r} (the stream's "
                         f"initial token); found keys such as {sorted(state)[:5]}")
    if "features.0.0.weight" in state:
        return "convnext"
    if "conv1.weight" in state and any(k.startswith("layer1.") for k in state):
        return "resnet"
    raise ValueError("unknown backbone layout: the original CA-Stream models are torchvision ResNets (conv1.*, "
                     "layer1..4.*) or ConvNeXts (features.*); this checkpoint (keys such as "
                     f"{sorted(state)[:5]}) is neither (the original's EfficientNet / MobileNet / VGG variants "
                     "are not converted)")


def _choose_backbone(inferred: str | None, given: str | None, family: str, state: Mapping[str, torch.Tensor]) -> str:
    if given is not None and inferred is not None and given != inferred:
        raise ValueError(f"backbone={given!r} was given, but the checkpoint's blocks and widths are those of "
                         f"{inferred!r}: drop backbone=")
    if given is not None:
        return given
    if inferred is None:
        known = RESNETS.values() if family == "resnet" else CONVNEXTS.values()
        raise ValueError(f"unknown {family} backbone layout ({_layout(state, family)}); the original's are "
                         f"{', '.join(known)}. If it is another timm {family} with the same parameter names, "
                         "pass backbone=<timm name>")
    return inferred


def _indices(state: Mapping[str, torch.Tensor], pattern: str) -> list[int]:
    return sorted({int(m.group(1)) for k in state if (m := re.match(pattern, k))})


def _resnet_depths(state: Mapping[str, torch.Tensor]) -> tuple[int, ...]:
    return tuple(len(_indices(state, rf"layer{stage}\.(\d+)\.")) for stage in range(1, 5))


def _resnet_name(state: Mapping[str, torch.Tensor]) -> str | None:
    """The torchvision ResNet whose blocks and widths the weights have, if it is one of :data:`RESNETS`."""
    conv2 = state.get("layer1.0.conv2.weight")
    if conv2 is None or tuple(conv2.shape[:2]) != (RESNET_BASE_WIDTH, RESNET_BASE_WIDTH):
        return None  # a ResNeXt (grouped) or wide ResNet (wider) layer1
    return resnet_name(state, prefix="")


def _convnext_name(state: Mapping[str, torch.Tensor]) -> str | None:
    depths = tuple(len(_indices(state, rf"features\.{index}\.(\d+)\.")) for index in (1, 3, 5, 7))
    return CONVNEXTS.get((depths, int(state["features.0.0.weight"].shape[0])))


def _layout(state: Mapping[str, torch.Tensor], family: str) -> str:
    """What the weights say, for an error message."""
    if family == "resnet":
        conv2 = state.get("layer1.0.conv2.weight")
        block = "bottleneck" if "layer1.0.conv3.weight" in state else "basic"
        return (f"{block} blocks per stage {_resnet_depths(state)}, layer1.0.conv2.weight "
                f"{tuple(conv2.shape) if conv2 is not None else 'absent'}")
    depths = tuple(len(_indices(state, rf"features\.{index}\.(\d+)\.")) for index in (1, 3, 5, 7))
    return f"blocks per stage {depths}, stem width {int(state['features.0.0.weight'].shape[0])}"


def _rename_resnet(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Official names → ours (module docstring); unknown keys are kept so loading names them."""
    blocks = {name: i for i, name in enumerate(RESNET_BLOCKS)}
    renamed = {}
    for key, value in state.items():
        head, _, rest = key.partition(".")
        if key == OFFICIAL_TOKEN:
            renamed[OWN_TOKEN] = value.reshape(-1)
        elif head in blocks and rest.startswith("to_out.1."):
            renamed[f"{OWN_BLOCKS}{blocks[head]}.proj.{rest[len('to_out.1.'):]}"] = value
        elif head == "fc":
            renamed[OWN_FC + rest] = value
        elif head in ("conv1", "bn1") or re.fullmatch(r"layer[1-4]", head):
            renamed[OWN_BACKBONE + key] = value
        else:
            renamed[key] = value
    return renamed


def _rename_convnext(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Official (torchvision) names → ours / timm's (module docstring); unknown keys kept."""
    renamed = {}
    for key, value in state.items():
        if key == OFFICIAL_TOKEN:
            renamed[OWN_TOKEN] = value.reshape(-1)
        elif m := re.fullmatch(r"cls_stream\.(\d+)\.to_out\.1\.(weight|bias)", key):
            renamed[f"{OWN_BLOCKS}{m.group(1)}.proj.{m.group(2)}"] = value
        elif m := re.fullmatch(r"classifier\.([02])\.(weight|bias)", key):
            renamed[(OWN_BACKBONE + "head.norm." if m.group(1) == "0" else OWN_FC) + m.group(2)] = value
        elif m := re.fullmatch(r"features\.0\.([01])\.(.+)", key):
            renamed[f"{OWN_BACKBONE}stem.{m.group(1)}.{m.group(2)}"] = value
        elif m := re.fullmatch(r"features\.([246])\.([01])\.(.+)", key):
            renamed[f"{OWN_BACKBONE}stages.{int(m.group(1)) // 2}.downsample.{m.group(2)}.{m.group(3)}"] = value
        elif m := re.fullmatch(r"features\.([1357])\.(\d+)\.(.+)", key):
            stage, block, rest = (int(m.group(1)) - 1) // 2, m.group(2), m.group(3)
            prefix = f"{OWN_BACKBONE}stages.{stage}.blocks.{block}."
            if rest == "layer_scale":
                renamed[prefix + "gamma"] = value.reshape(-1)
            elif (inner := re.fullmatch(r"block\.(\d+)\.(weight|bias)", rest)) and inner.group(1) in CONVNEXT_BLOCK:
                renamed[prefix + f"{CONVNEXT_BLOCK[inner.group(1)]}.{inner.group(2)}"] = value
            else:
                renamed[key] = value
        else:
            renamed[key] = value
    return renamed


def _check_stream(model: CAStream, state: Mapping[str, torch.Tensor], renamed: Mapping[str, torch.Tensor],
                  blocks: tuple[str, ...], backbone: str) -> None:
    """The checkpoint's stream must be the paper's taps with ``backbone``'s widths (clear errors)."""
    taps = ", ".join(model.tap_names)
    other = (f"the paper's taps of {backbone} are {len(blocks)}: {', '.join(blocks)} after {taps}; a checkpoint "
             "of another tap set cannot be converted")
    if blocks[0].startswith("cls_stream."):  # ConvNeXt: cls_stream.<i>
        indices = _indices(state, r"cls_stream\.(\d+)\.")
        if indices != list(range(len(blocks))):
            raise ValueError(f"the checkpoint's stream has blocks cls_stream.{indices} ({len(indices)} blocks); "
                             f"{other}")
    else:
        found = [name for name in blocks if any(k.startswith(name + ".") for k in state)]
        extra = sorted({m.group(1) for k in state if (m := re.match(r"(l\d+)\.", k)) and m.group(1) not in blocks})
        if found != list(blocks) or extra:
            shared = "" if found else (" (no block has weights: a --shared Light_Shared model, which seethrough "
                                       "does not implement)")
            raise ValueError(f"the checkpoint's stream has blocks {found + extra}{shared}; {other}")
    own = model.state_dict()
    token = state[OFFICIAL_TOKEN]
    if renamed[OWN_TOKEN].shape != own[OWN_TOKEN].shape:
        raise ValueError(f"{OFFICIAL_TOKEN} has shape {tuple(token.shape)}, expected (1, 1, "
                         f"{own[OWN_TOKEN].shape[0]}) for {backbone} (width of the first tap, "
                         f"{model.tap_names[0]}); {other}")
    for i, name in enumerate(blocks):
        for part in ("weight", "bias"):
            key, ours = f"{name}.to_out.1.{part}", f"{OWN_BLOCKS}{i}.proj.{part}"
            if key not in state:
                raise ValueError(f"the checkpoint has no {key} (the stream's W/b at tap {model.tap_names[i]}); "
                                 "is it truncated, or saved without projections (project_out=False)?")
            if state[key].shape != own[ours].shape:
                raise ValueError(f"{key} has shape {tuple(state[key].shape)}, expected {tuple(own[ours].shape)} "
                                 f"for {backbone} at tap {model.tap_names[i]} (Linear({own[ours].shape[-1]} → "
                                 f"{own[ours].shape[0]}) in the original's (out, in) order); {other}")
