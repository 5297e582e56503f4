"""What every converter of an original checkpoint shares: the converter table, reading a
checkpoint file safely, unwrapping its state dict, comparing keys, and naming a torchvision
ResNet from its weights.

Checkpoint files are read with ``torch.load(weights_only=True)`` (no code runs while
loading). ``argparse.Namespace`` is allowed in addition, because SCOUTER's and DETR's
training scripts store their command line in the checkpoint; any other pickled Python object
is refused with instructions to re-save the weights once. ``.safetensors`` files are read
with safetensors.
"""
from __future__ import annotations

import argparse
import pickle
import re
from pathlib import Path
from typing import Any, Callable, Mapping

import torch
from torch import nn

Converter = Callable[..., nn.Module]
CONVERTERS: dict[str, Converter] = {}

#: Globals allowed while unpickling a checkpoint besides tensors and containers: the training
#: scripts of SCOUTER and DETR save their ``argparse`` arguments next to the weights.
SAFE_GLOBALS: list[Any] = [argparse.Namespace]


def register_converter(kind: str) -> Callable[[Converter], Converter]:
    """Decorator registering ``fn(checkpoint, **options) -> nn.Module`` under ``kind``.

    ``checkpoint`` is what the user passed, or what the file held: a state dict or a dict
    wrapping one (e.g. ``{"model": state_dict, "args": Namespace(...)}``).
    """

    def wrap(fn: Converter) -> Converter:
        if kind in CONVERTERS:
            raise ValueError(f"official converter {kind!r} is registered twice")
        CONVERTERS[kind] = fn
        return fn

    return wrap


def list_official() -> list[str]:
    """Kinds accepted by :func:`from_official`."""
    return sorted(CONVERTERS)


def load_checkpoint_file(path: str | Path) -> Any:
    """Read a checkpoint on CPU without executing pickled code (see the module docstring)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} not found")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path), device="cpu")
    try:
        with torch.serialization.safe_globals(SAFE_GLOBALS):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        found = re.search(r"GLOBAL ([\w.]+)", str(err))
        what = f" (it contains {found.group(1)})" if found else ""
        raise ValueError(
            f"{path} holds pickled Python objects besides tensors{what}, which seethrough does not "
            "unpickle because that can run arbitrary code. If you trust the file, re-save its weights "
            "once, e.g.\n"
            "    python -c \"import torch; ck = torch.load('IN.pth', map_location='cpu', weights_only=False); "
            "sd = ck.get('model', ck) if isinstance(ck, dict) else ck.state_dict(); "
            "torch.save(sd, 'OUT.pth')\"\n"
            "and pass OUT.pth (or the state dict itself) to from_official. A whole pickled model (ProtoPNet's "
            "and LVW's save.py write torch.save(model)) unpickles only where its classes import: run that "
            "command inside the original repository's directory."
        ) from err


def unwrap_state_dict(checkpoint: Mapping[str, Any],
                      keys: tuple[str, ...] = ("model", "state_dict")) -> dict[str, torch.Tensor]:
    """The state dict inside ``checkpoint`` (under one of ``keys``, or ``checkpoint`` itself),
    with a ``module.`` prefix (a model saved from inside DistributedDataParallel) removed."""
    for key in keys:
        if isinstance(checkpoint.get(key), Mapping):
            checkpoint = checkpoint[key]
            break
    state = dict(checkpoint)
    not_tensors = [k for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if not_tensors:
        raise ValueError("expected a state dict (names → tensors) or a dict with one under "
                         f"{' or '.join(map(repr, keys))}; found non-tensor entries {not_tensors[:5]}")
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    return state


def mismatched_keys(own: Mapping[str, torch.Tensor], state: Mapping[str, torch.Tensor]) -> set[str]:
    """Keys present on one side only, or with different shapes (what a converter's hint explains)."""
    return set(own) ^ set(state) | {k for k in set(own) & set(state) if own[k].shape != state[k].shape}


#: Where DETR's (and INTR's) checkpoints keep the torchvision ResNet's weights.
DETR_BACKBONE_PREFIX = "backbone.0.body."
#: torchvision ResNets (DETR's ``--backbone``) by block type and blocks per stage; timm has the
#: same parameter names under the same model names.
RESNETS: dict[tuple[str, tuple[int, ...]], str] = {
    ("basic", (2, 2, 2, 2)): "resnet18",
    ("basic", (3, 4, 6, 3)): "resnet34",
    ("bottleneck", (3, 4, 6, 3)): "resnet50",
    ("bottleneck", (3, 4, 23, 3)): "resnet101",
    ("bottleneck", (3, 8, 36, 3)): "resnet152",
}


def resnet_name(state: Mapping[str, torch.Tensor], prefix: str = DETR_BACKBONE_PREFIX) -> str | None:
    """The torchvision ResNet (DETR's ``--backbone``) whose blocks the backbone weights have, if any."""
    blocks = []
    for stage in range(1, 5):
        found = {int(m.group(1)) for k in state if (m := re.match(rf"{re.escape(prefix)}layer{stage}\.(\d+)\.", k))}
        blocks.append(len(found))
    block = "bottleneck" if f"{prefix}layer1.0.conv3.weight" in state else "basic"
    return RESNETS.get((block, tuple(blocks)))
