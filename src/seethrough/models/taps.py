"""Taps: named modules of a timm backbone whose outputs a stream reads in the same forward pass.

CA-Stream (Torres et al., CVPR-W 2024, Sec. 3) updates its CLS token after several stages of the
backbone. A tap is the dotted name of a module of the timm model (``model.backbone.body``); its
output, a ``B×d×h×w`` feature map, is recorded by a forward hook while the backbone runs
unchanged. The backbone's final feature map (what global average pooling reads) is always the
last tap, called :data:`FINAL_TAP`; the ``taps`` option lists the ones before it.

Tap sets:

* ``"paper"``: the paper's, for ResNets (after the stem's max-pool, layer1, layer2, layer3, then
  layer4 = the final map) and ConvNeXts (stem, after downsample 1, after downsample 2, then the
  last stage = the final map);
* ``"feature_info"``: every stage timm lists in ``feature_info`` except the last one (whose
  output is, or leads to, the final map);
* an explicit list of module names.
"""
from __future__ import annotations

from typing import Sequence

import torch
from timm.models.convnext import ConvNeXt
from timm.models.resnet import ResNet
from torch import nn

#: Name of the last tap: the backbone's final feature map (the input of global average pooling).
FINAL_TAP = "features"
#: The paper's taps before the final map, per backbone family (timm module names).
PAPER_TAPS: dict[str, tuple[str, ...]] = {
    "resnet": ("maxpool", "layer1", "layer2", "layer3"),
    "convnext": ("stem", "stages.1.downsample", "stages.2.downsample"),
}
#: Tap-set keywords accepted by the ``taps`` option.
TAP_SETS = ("paper", "feature_info")
_FAMILIES: tuple[tuple[type[nn.Module], str], ...] = ((ResNet, "resnet"), (ConvNeXt, "convnext"))


def backbone_family(body: nn.Module) -> str | None:
    """``"resnet"`` / ``"convnext"`` for the families the paper taps, else ``None``."""
    return next((family for cls, family in _FAMILIES if isinstance(body, cls)), None)


def feature_info_taps(body: nn.Module) -> list[str]:
    """Module names of timm's ``feature_info`` stages, the last one left out."""
    info = getattr(body, "feature_info", None)
    if not info:
        return []
    entries = info if isinstance(info, list) else info.get_dicts()
    return [entry["module"] for entry in entries][:-1]


def resolve_taps(body: nn.Module, taps: str | Sequence[str] | None, *, backbone: str) -> list[str]:
    """The module names to tap before the final map.

    ``None`` means ``"paper"`` for ResNets and ConvNeXts and ``"feature_info"`` otherwise.
    Unknown names raise ``ValueError`` listing valid choices.
    """
    family = backbone_family(body)
    if taps is None:
        taps = "paper" if family else "feature_info"
    if isinstance(taps, str):
        if taps == "paper":
            if family is None:
                raise ValueError(f"taps 'paper' are defined for ResNet and ConvNeXt backbones, not {backbone!r}; "
                                 f"use taps 'feature_info' ({', '.join(feature_info_taps(body)) or 'none'}) "
                                 "or a list of module names")
            return list(PAPER_TAPS[family])
        if taps == "feature_info":
            return feature_info_taps(body)
        taps = [name.strip() for name in taps.split(",") if name.strip()]
    names = list(taps)
    modules = dict(body.named_modules())
    unknown = [name for name in names if name not in modules or name == ""]
    if unknown:
        suggested = list(dict.fromkeys([*PAPER_TAPS.get(family or "", ()), *feature_info_taps(body)]))
        raise ValueError(
            f"taps {unknown} are not modules of backbone {backbone!r}; valid taps are its module names, e.g. "
            f"{', '.join(suggested) or ', '.join(list(modules)[1:6])} (print(model.backbone.body) lists them "
            f"all), or a tap set: {', '.join(TAP_SETS)}. The final feature map ({FINAL_TAP!r}) is always tapped last")
    if len(set(names)) != len(names):
        raise ValueError(f"taps {names} name a module twice; each tap updates the token once")
    return names


class TapRecorder:
    """Context manager recording the outputs of ``names`` during one forward of ``body``.

    Outputs are kept with their in-place version counter so that a backbone modifying a tapped
    tensor afterwards (an in-place activation, say) is caught instead of read silently.
    """

    def __init__(self, body: nn.Module, names: Sequence[str]) -> None:
        modules = dict(body.named_modules())
        self.names = list(names)
        self._modules = [modules[name] for name in self.names]
        self._outputs: dict[str, tuple[torch.Tensor, int]] = {}
        self._handles: list = []

    def __enter__(self) -> "TapRecorder":
        for name, module in zip(self.names, self._modules):
            self._handles.append(module.register_forward_hook(self._hook(name)))
        return self

    def _hook(self, name: str):
        def record(_module, _inputs, output):
            if not torch.is_tensor(output):
                raise ValueError(f"tap {name!r} returns {type(output).__name__}, not a tensor; tap a module "
                                 "whose output is a B×d×h×w feature map")
            self._outputs[name] = (output, output._version)
        return record

    def __exit__(self, *exc) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def outputs(self) -> list[torch.Tensor]:
        """The recorded maps in tap order; raises if one did not run or was modified in place."""
        result = []
        for name in self.names:
            if name not in self._outputs:
                raise ValueError(f"tap {name!r} did not run in the backbone's forward_features; tap a module "
                                 "on the path to the final feature map")
            output, version = self._outputs[name]
            if output._version != version:
                raise ValueError(f"the backbone modified tap {name!r}'s output in place after it was recorded; "
                                 "tap the module after the in-place operation")
            if output.ndim != 4:
                raise ValueError(f"tap {name!r} gives a {output.ndim}-d output of shape {tuple(output.shape)}; "
                                 "a tap must give a B×d×h×w feature map")
            result.append(output)
        return result
