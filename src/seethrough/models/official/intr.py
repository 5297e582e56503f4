"""INTR (Paul et al., ICLR 2024) from checkpoints of the original code: ``from_official("detr")``
and ``from_official("intr")``.

INTR is DETR (Carion et al., 2020; facebookresearch/detr) without detection heads: the same
backbone (torchvision ResNet with frozen BatchNorm), ``input_proj`` and transformer, ``C``
class queries instead of DETR's 100 object queries, and one shared ``presence_vector``
giving each class's logit. Both originals name their parameters alike, and seethrough's
``intr`` model mirrors those names, so a checkpoint converts by renaming::

    backbone.0.body.<torchvision ResNet>   → backbone.body.<timm ResNet>   (same names)
    input_proj.*                           → input_proj.*
    query_embed.weight (Q×d)               → query_embed.weight (C×d)
    transformer.{encoder,decoder}.*        → transformer.{encoder,decoder}.*
    presence_vector.* (INTR)               → presence.*
    class_embed.*, bbox_embed.* (DETR)     → dropped (detection heads)

DETR's FrozenBatchNorm2d stores ``weight``, ``bias``, ``running_mean``, ``running_var`` (no
``num_batches_tracked``), the buffers of the frozen BatchNorm in our backbone; with
``frozen_bn=False`` the missing counters are taken from the new model.
"""
from __future__ import annotations

import argparse
import contextlib
import logging
import re
from typing import Any, Mapping, cast

import torch
from torch import nn

from ..base import SeeThroughModel
from ..hub import load_state_dict_checked
from ..registry import create_model
from ._common import DETR_BACKBONE_PREFIX, mismatched_keys, register_converter, resnet_name, unwrap_state_dict

log = logging.getLogger(__name__)

#: INTR's ``--noise_frac``: std of the Gaussian noise added to the query rows tiled beyond DETR's.
NOISE_FRAC = 0.1
#: Prefixes of DETR's detection heads, which INTR deletes before loading (util/misc.py load_model).
DETR_HEADS = ("class_embed.", "bbox_embed.")
#: Heads of DETR's panoptic model (DETRsegm), which wraps DETR under ``detr.``.
DETR_SEGM_HEADS = ("bbox_attention.", "mask_head.")
DETR_SEGM_PREFIX = "detr."
#: DETR's learned position encoding (``--position_embedding learned``); INTR uses the sine one.
LEARNED_POSITION_PREFIX = "backbone.1."
OFFICIAL_BACKBONE_PREFIX, OWN_BACKBONE_PREFIX = DETR_BACKBONE_PREFIX, "backbone.body."
OFFICIAL_PRESENCE_PREFIX, OWN_PRESENCE_PREFIX = "presence_vector.", "presence."
QUERY_KEY = "query_embed.weight"
#: ``--dilation`` (DETR's DC5 models): layer4's stride replaced by dilation → output stride 16.
DILATION_OUTPUT_STRIDE = 16
#: INTR's main.py defaults for what the weights do not record.
INTR_DEFAULTS = dict(nheads=8, dropout=0.1)
#: The original's argument names (main.py) → ours; both are accepted as options.
ALIASES = {"hidden_dim": "d_model", "enc_layers": "num_encoder_layers", "dec_layers": "num_decoder_layers",
           "num_queries": "num_classes"}
#: Entries of an official checkpoint's ``args`` used when not given as options.
ARGS_OPTIONS = ("backbone", "nheads", "dropout", "dilation")


@register_converter("detr")
def convert_detr(checkpoint: Mapping[str, Any], *, seed: int | None = None, noise_frac: float = NOISE_FRAC,
                 **options) -> nn.Module:
    """INTR initialized from a DETR checkpoint the way INTR's ``--finetune`` does it.

    INTR's ``util/misc.py`` ``load_model``: the backbone, ``input_proj`` and transformer are
    copied; DETR's Q = 100 object queries become C class queries, ``query_embed`` being tiled
    ``⌊C/Q⌋`` times plus its first ``C mod Q`` rows (truncated to the first C rows if C < Q),
    and the rows beyond the first Q get ``N(0, 1) · noise_frac`` noise (the first Q rows stay
    exact copies); ``class_embed`` / ``bbox_embed`` are dropped (logged at INFO); the presence
    vector is new: Xavier-uniform weight, zero bias. A panoptic DETR (``detr.*`` keys) works too:
    its ``bbox_attention`` / ``mask_head`` are dropped as well.

    Args:
        checkpoint: a DETR state dict, or a dict holding it under ``"model"`` (the released
            ``detr-r50-e632da11.pth`` is ``{"model": state_dict}``).
        num_classes: C, the number of classes (INTR's ``--num_queries``, also accepted). Required.
        seed: seeds the noise and the presence vector, drawn in INTR's order (noise, then
            weight) right after ``torch.manual_seed(seed)``, on a forked CPU generator, so the
            global random state is untouched. ``None`` draws from the global generator, as
            INTR does (after its own model construction, so its draws cannot be reproduced).
        noise_frac: INTR's ``--noise_frac`` (0.1).
        **options: options of ``create_model("intr", ...)`` that the weights do not fix:
            ``backbone`` (default: recognized from the ResNet's blocks; resnet50 for DETR-R50),
            ``nheads`` (8), ``dropout`` (0.1), ``dilation`` (DETR's DC5 flag →
            ``output_stride=16``), ``frozen_bn``, ``freeze_layers``, ... The ones the weights
            fix (``d_model``, layer counts, ``dim_feedforward``, ``pre_norm``; INTR's
            ``hidden_dim``, ``enc_layers``, ``dec_layers`` also accepted) are checked.
    """
    state = _strip_panoptic(unwrap_state_dict(checkpoint))
    _check_kind(state, "detr")
    options = _merge_args(checkpoint, options, kind="detr")
    num_classes = options.pop("num_classes", None)
    if num_classes is None:
        raise ValueError(
            f"from_official('detr') needs num_classes=C, the number of classes INTR will tell apart (INTR's "
            f"--num_queries: one query per class); the checkpoint's {QUERY_KEY} holds DETR's "
            f"{state[QUERY_KEY].shape[0]} object queries, which are tiled to C rows")
    if not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")
    dropped = sorted(k for k in state if k.startswith(DETR_HEADS + DETR_SEGM_HEADS))
    state = {k: v for k, v in state.items() if k not in dropped}
    config = _config_from_weights(state, options)
    config["num_classes"] = num_classes

    renamed = _rename(state)
    queries = renamed[QUERY_KEY]
    with torch.random.fork_rng(devices=[]) if seed is not None else contextlib.nullcontext():
        if seed is not None:
            torch.manual_seed(seed)
        renamed[QUERY_KEY] = tile_queries(queries, num_classes, noise_frac)  # INTR's order: noise, then w
        renamed[OWN_PRESENCE_PREFIX + "weight"] = nn.init.xavier_uniform_(
            torch.empty(1, config["d_model"], dtype=queries.dtype))
        renamed[OWN_PRESENCE_PREFIX + "bias"] = torch.zeros(1, dtype=queries.dtype)
        model = _build_and_load(renamed, config, source="the DETR checkpoint")  # its own init is overwritten
    existing = queries.shape[0]
    noisy = f"noise {noise_frac:g} on rows {existing}..{num_classes - 1}" if num_classes > existing else "no noise"
    log.info("from_official('detr'): dropped DETR's heads %s; query_embed %d → %d rows (%s); presence vector "
             "new (Xavier-uniform weight, zero bias)", dropped or "(none found)", existing, num_classes, noisy)
    return model


@register_converter("intr")
def convert_intr(checkpoint: Mapping[str, Any], **options) -> nn.Module:
    """An INTR model from a checkpoint of the official code (Imageomics/INTR ``main.py``).

    The published checkpoints (``intr_checkpoint_{cub,bird,butterfly}_detr_r50.pth``) hold
    ``{"model": state_dict, "optimizer", "lr_scheduler", "epoch", "args"}``; only the weights
    and ``args`` are read. The forward of the result matches the official one in eval mode:
    logits (``query_logits``) and every decoder layer's per-head cross-attention
    (``attention_scores``) to float tolerance.

    Inferred from the weights: ``num_classes`` (rows of ``query_embed.weight``), ``d_model``
    (its columns), ``num_encoder_layers`` / ``num_decoder_layers`` (layer indices),
    ``dim_feedforward`` (``linear1``), ``pre_norm`` (``transformer.encoder.norm`` exists only
    then) and the ResNet (blocks per stage). Given values of these (also under INTR's names
    ``num_queries``, ``hidden_dim``, ``enc_layers``, ``dec_layers``) must agree.

    From the checkpoint's ``args`` unless given: ``backbone``, ``nheads`` (default 8; the
    weights cannot tell the head count, so pass the official ``--nheads`` for a state dict
    without ``args``), ``dropout`` (0.1), ``dilation`` (→ ``output_stride=16``). Other options
    of ``create_model("intr", ...)`` (``frozen_bn``, ``freeze_layers``, ...) pass through.
    """
    state = unwrap_state_dict(checkpoint)
    _check_kind(state, "intr")
    options = _merge_args(checkpoint, options, kind="intr")
    num_classes = int(state[QUERY_KEY].shape[0])
    _check_option(options, "num_classes", num_classes, QUERY_KEY, state[QUERY_KEY],
                  lambda given: f"({given}, {state[QUERY_KEY].shape[1]})")
    config = _config_from_weights(state, options)
    config["num_classes"] = num_classes
    return _build_and_load(_rename(state), config, source="the INTR checkpoint")


def tile_queries(queries: torch.Tensor, num_classes: int, noise_frac: float = NOISE_FRAC) -> torch.Tensor:
    """DETR's Q object queries → C class queries, as INTR's ``load_model`` does it.

    C < Q: the first C rows. C ≥ Q: the Q rows repeated ``⌊C/Q⌋`` times, then the first
    ``C mod Q`` rows, and ``N(0, 1) · noise_frac`` (from the global generator) added to rows
    Q..C-1, so the copies can tell their classes apart while the first Q rows stay DETR's.
    """
    existing = queries.shape[0]
    if num_classes < existing:
        return queries[:num_classes].clone()
    repeats, extra = divmod(num_classes, existing)
    tiled = torch.cat([queries.repeat(repeats, 1), queries[:extra]], dim=0)
    noise = torch.randn(num_classes - existing, queries.shape[1]) * noise_frac
    tiled[existing:] += noise.to(tiled.dtype)
    return tiled


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------
def _strip_panoptic(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """DETRsegm keeps DETR under ``detr.`` next to its mask heads: unwrap it."""
    if any(k.startswith(DETR_SEGM_PREFIX) for k in state):
        return {(k[len(DETR_SEGM_PREFIX):] if k.startswith(DETR_SEGM_PREFIX) else k): v for k, v in state.items()}
    return state


def _check_kind(state: Mapping[str, torch.Tensor], kind: str) -> None:
    """Refuse a checkpoint of another kind, saying which converter fits."""
    is_detr = any(k.startswith(DETR_HEADS) for k in state)
    is_intr = any(k.startswith(OFFICIAL_PRESENCE_PREFIX) for k in state)
    if any(k.startswith((OWN_PRESENCE_PREFIX, OWN_BACKBONE_PREFIX)) for k in state):
        raise ValueError(f"from_official({kind!r}) got a seethrough state dict (keys presence.* / backbone.body.*), "
                         "not the original's: load it with seethrough.from_pretrained or model.load_state_dict")
    if QUERY_KEY not in state or not any(k.startswith("transformer.decoder.") for k in state):
        what = ("a SCOUTER checkpoint (use from_official('scouter', ...))" if "slot.initial_slots" in state
                else "not a DETR/INTR checkpoint")
        raise ValueError(f"from_official({kind!r}) expects the original's {QUERY_KEY} and transformer.decoder.* "
                         f"entries; this looks like {what}; found keys such as {sorted(state)[:5]}")
    if kind == "intr" and is_detr:
        raise ValueError("this is a DETR checkpoint (it has the detection heads class_embed / bbox_embed and no "
                         "presence_vector): initialize INTR from it with from_official('detr', ..., num_classes=C)")
    if kind == "intr" and not is_intr:
        raise ValueError(f"the INTR checkpoint has no presence_vector.weight / presence_vector.bias (the shared "
                         f"classifier); found keys such as {sorted(state)[:5]}")
    if kind == "detr" and is_intr:
        raise ValueError("this is an INTR checkpoint (it has presence_vector.*): load it with "
                         "from_official('intr', ...)")
    if any(k.startswith(LEARNED_POSITION_PREFIX) for k in state):
        raise ValueError("the checkpoint uses DETR's learned position encoding (backbone.1.row_embed / col_embed, "
                         "--position_embedding learned); seethrough's INTR implements the sine encoding only")


def _merge_args(checkpoint: Mapping[str, Any], options: dict, *, kind: str) -> dict:
    """Options with INTR's argument names translated, completed from the checkpoint's ``args``."""
    options = dict(options)
    for alias, name in ALIASES.items():
        if alias in options:
            value = options.pop(alias)
            if options.setdefault(name, value) != value:
                raise ValueError(f"{name}={options[name]} and {alias}={value} disagree; give one of them")
    if "pretrained" in options:
        raise ValueError(f"from_official({kind!r}) loads every backbone weight from the checkpoint; "
                         "drop pretrained=")
    args = checkpoint.get("args")
    values = vars(args) if isinstance(args, argparse.Namespace) else dict(args or {})
    if values.get("position_embedding", "sine") != "sine":
        raise ValueError(f"the checkpoint was trained with --position_embedding {values['position_embedding']}; "
                         "seethrough's INTR implements the sine encoding only")
    for key in ARGS_OPTIONS:
        if key not in options and values.get(key) is not None:
            options[key] = values[key]
    return options


def _config_from_weights(state: Mapping[str, torch.Tensor], options: dict) -> dict[str, Any]:
    """``create_model("intr", ...)`` options: shapes from the weights (given ones checked), the rest given."""
    query = state[QUERY_KEY]
    d_model = int(query.shape[1])
    _check_option(options, "d_model", d_model, QUERY_KEY, query, lambda given: f"({query.shape[0]}, {given})")
    config: dict[str, Any] = {"d_model": d_model}
    for part in ("encoder", "decoder"):
        found = sorted({int(m.group(1)) for k in state if (m := re.match(rf"transformer\.{part}\.layers\.(\d+)\.", k))})
        if found != list(range(len(found))):
            raise ValueError(f"transformer.{part}.layers holds layer indices {found}; expected 0..{len(found) - 1} "
                             "without gaps")
        config[f"num_{part}_layers"] = len(found)
        given = options.pop(f"num_{part}_layers", None)
        if given is not None and given != len(found):
            raise ValueError(f"num_{part}_layers={given} was given, but the checkpoint has {len(found)} "
                             f"transformer.{part}.layers.* (indices {found[:1] + found[-1:]})")
    ffn_key = next((f"transformer.{p}.layers.0.linear1.weight" for p in ("encoder", "decoder")
                    if f"transformer.{p}.layers.0.linear1.weight" in state), None)
    if ffn_key is None:
        raise ValueError("the checkpoint has no transformer.{encoder,decoder}.layers.0.linear1.weight; "
                         f"found keys such as {sorted(state)[:5]}")
    ffn = state[ffn_key]
    _check_option(options, "dim_feedforward", int(ffn.shape[0]), ffn_key, ffn,
                  lambda given: f"({given}, {ffn.shape[1]})")
    config["dim_feedforward"] = int(ffn.shape[0])
    pre_norm = "transformer.encoder.norm.weight" in state
    given = options.pop("pre_norm", None)
    if given is not None and bool(given) != pre_norm:
        raise ValueError(f"pre_norm={given} was given, but the checkpoint "
                         + ("has" if pre_norm else "has no") + " transformer.encoder.norm.* (DETR creates the "
                         "encoder's final LayerNorm only with --pre_norm)")
    config["pre_norm"] = pre_norm

    backbone = options.pop("backbone", None) or resnet_name(state) or "resnet50"
    config["backbone"] = backbone
    if options.pop("dilation", False):
        stride = options.setdefault("output_stride", DILATION_OUTPUT_STRIDE)
        if stride != DILATION_OUTPUT_STRIDE:
            raise ValueError(f"dilation=True (DETR's DC5) means output_stride={DILATION_OUTPUT_STRIDE}, "
                             f"but output_stride={stride} was given")
    for key, default in INTR_DEFAULTS.items():
        config[key] = options.pop(key, default)
    config.update(options)  # other create_model options (frozen_bn, freeze_layers, ...) pass through
    return config


def _check_option(options: dict, key: str, inferred: int, source: str, tensor: torch.Tensor, expected) -> None:
    """Pop ``key``; if given, it must equal what ``source`` (of ``tensor``'s shape) says."""
    given = options.pop(key, None)
    if given is not None and given != inferred:
        raise ValueError(f"{key}={given} was given, but the checkpoint's {source} has shape "
                         f"{tuple(tensor.shape)} (expected {expected(given)} for {key}={given}); "
                         f"drop {key}= to use the checkpoint's {inferred}")


def _rename(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Official names → ours (table in the module docstring); unknown keys kept, so loading lists them."""
    renamed = {}
    for key, value in state.items():
        if key.startswith(OFFICIAL_BACKBONE_PREFIX):
            key = OWN_BACKBONE_PREFIX + key[len(OFFICIAL_BACKBONE_PREFIX):]
        elif key.startswith(OFFICIAL_PRESENCE_PREFIX):
            key = OWN_PRESENCE_PREFIX + key[len(OFFICIAL_PRESENCE_PREFIX):]
        renamed[key] = value
    return renamed


def _build_and_load(state: dict[str, torch.Tensor], config: dict[str, Any], *, source: str) -> nn.Module:
    """``create_model("intr", **config)`` with ``state`` loaded strictly; errors say what to fix."""
    backbone = config.pop("backbone")
    num_classes = config.pop("num_classes")
    model = cast(SeeThroughModel, create_model("intr", num_classes=num_classes, backbone=backbone,
                                                pretrained=False, **config))
    own = model.state_dict()
    counters = [k for k in own if k.endswith("num_batches_tracked")]
    for key in counters:  # frozen_bn=False: DETR's FrozenBatchNorm2d has no counters
        state.setdefault(key, own[key])
    for key in [k for k in state if k.endswith("num_batches_tracked") and k not in own]:
        del state[key]  # our frozen BatchNorm has none (DETR's FrozenBatchNorm2d drops them too)
    try:
        load_state_dict_checked(model, state, source=source)
    except ValueError as err:
        raise ValueError(f"{err}\n{_hint(model, own, state, backbone)}") from None
    return model


def _hint(model: SeeThroughModel, own: Mapping[str, torch.Tensor], state: Mapping[str, torch.Tensor],
          backbone: str) -> str:
    """Which option to fix, from where the mismatching keys are."""
    bad = mismatched_keys(own, state)
    hints = []
    if any(k.startswith(OWN_BACKBONE_PREFIX) for k in bad):
        found = resnet_name(state, OWN_BACKBONE_PREFIX)
        looks = f" (its blocks are those of {found})" if found else ""
        hints.append(f"the backbone weights{looks} do not fit backbone={backbone!r}: pass the official --backbone "
                     "(keys above are ours: the original's are backbone.0.body.*)")
    proj = state.get("input_proj.weight")
    if proj is not None and proj.shape[1] != model.backbone.num_features:
        hints.append(f"input_proj takes {proj.shape[1]} channels but {backbone!r} yields "
                     f"{model.backbone.num_features}: wrong backbone option?")
    if any(k.startswith("transformer.") for k in bad):
        hints.append("the transformer weights are incomplete or inconsistent (d_model, layer counts, FFN width and "
                     "pre-norm were read from query_embed and the layer keys): is the checkpoint truncated or edited?")
    if any(k.startswith(("query_embed.", "presence.", "input_proj.")) for k in bad) and not hints:
        hints.append("the query / presence / input_proj weights do not fit: check d_model (--hidden_dim)")
    return "Fix: " + "; ".join(hints or ["check the backbone option"])
