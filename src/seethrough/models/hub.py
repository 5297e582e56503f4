"""``save_pretrained`` / ``from_pretrained``: config.json + model.safetensors + model card.

No pickle: weights are safetensors, the architecture is plain JSON, so loading a file
downloaded from elsewhere cannot execute code.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, cast

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from .._version import __version__
from .registry import create_model

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
CARD_NAME = "README.md"


def save_pretrained(model: nn.Module, directory: str | Path, **card) -> Path:
    """Write ``model`` to ``directory`` (created if needed) and return the directory.

    ``card`` entries (e.g. ``dataset="synthetic"``, ``val_acc1=0.93``) go into the model card
    and ``config.json`` under ``"card"``.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    model_config = cast(dict[str, Any], model.config)   # a seethrough model's config (see models.base)
    config = {"seethrough_version": __version__, "model": model_config, "card": card}
    (directory / CONFIG_NAME).write_text(json.dumps(config, indent=2, sort_keys=True))
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    save_file(state, str(directory / WEIGHTS_NAME), metadata={"format": "pt"})
    (directory / CARD_NAME).write_text(_model_card(model_config, card))
    return directory


def read_config(directory: str | Path) -> dict:
    """The ``model`` section of ``directory/config.json``, with a clear error if absent."""
    path = Path(directory) / CONFIG_NAME
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} not found: a seethrough model directory holds {CONFIG_NAME} and "
            f"{WEIGHTS_NAME} (written by model.save_pretrained)"
        )
    try:
        return json.loads(path.read_text())["model"]
    except (json.JSONDecodeError, KeyError) as err:
        raise ValueError(f"{path} is not a seethrough config (expected a 'model' section): {err}") from err


def from_pretrained(source: str | Path, *, map_location: str | torch.device = "cpu", **overrides) -> nn.Module:
    """Load a model saved by ``save_pretrained`` from a local directory or a Hugging Face Hub id.

    ``overrides`` replace config entries that do not change parameter shapes
    (e.g. ``freeze_layers``).
    """
    directory = Path(source)
    if not directory.exists():
        directory = _download(str(source))
    config = {**read_config(directory), **overrides}
    weights = directory / WEIGHTS_NAME
    if not weights.is_file():
        raise FileNotFoundError(f"{weights} not found next to {directory / CONFIG_NAME}")
    name = config.pop("name")
    model = create_model(name, pretrained=False, **config)
    load_state_dict_checked(model, read_weights(weights, map_location), source=str(weights))
    return model


def read_weights(path: Path, map_location: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """The tensors of a ``model.safetensors``; a truncated or corrupt file is a clear error naming
    it (safetensors' own error is a bare ``SafetensorError`` traceback)."""
    try:
        return load_file(str(path), device=str(map_location))
    except (SafetensorError, OSError, RuntimeError) as err:
        raise ValueError(
            f"{path} is truncated or corrupt ({err}); the model directory cannot be loaded. Write it again "
            "(model.save_pretrained, seethrough convert, or the run's best/ from its last.ckpt with "
            "--resume), or download it again if it came from the Hub."
        ) from err


def load_state_dict_checked(model: nn.Module, state: dict[str, torch.Tensor], *, source: str) -> None:
    """``load_state_dict(strict=True)`` whose error names the file and what does not match."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = [
        f"{k}: file {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
        for k in sorted(set(own) & set(state)) if state[k].shape != own[k].shape
    ]
    if missing or unexpected or shapes:
        parts = []
        if shapes:
            parts.append("shape mismatches (another class count or backbone?): " + "; ".join(shapes[:5]))
        if missing:
            parts.append(f"{len(missing)} missing keys, e.g. {missing[:3]}")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys, e.g. {unexpected[:3]}")
        cfg = getattr(model, "config", {})
        raise ValueError(
            f"{source} does not fit model {cfg.get('name')!r} "
            f"(backbone {cfg.get('backbone')!r}, {cfg.get('num_classes')} classes): "
            + " | ".join(parts)
            + ". Use the same --model, --backbone and class count the checkpoint was trained with."
        )
    model.load_state_dict(state)


def _download(repo_id: str) -> Path:
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id, allow_patterns=[CONFIG_NAME, WEIGHTS_NAME, CARD_NAME]))
    except Exception as err:  # hub errors are many; the message is what matters
        raise FileNotFoundError(
            f"{repo_id!r} is neither a local directory nor a downloadable Hugging Face Hub repo: {err}"
        ) from err


def _model_card(config: dict, card: dict) -> str:
    rows = "\n".join(f"| {k} | {v} |" for k, v in sorted({**config, **card}.items()))
    return (
        "---\nlibrary_name: seethrough\ntags:\n- image-classification\n- interpretability\n---\n\n"
        f"# seethrough `{config.get('name')}` on `{config.get('backbone')}`\n\n"
        "An interpretable-by-design image classifier: its forward pass returns logits and "
        "per-class evidence maps.\n\n"
        "```python\nimport seethrough\nmodel = seethrough.from_pretrained(\"<this directory or hub id>\")\n"
        "out = model(images)  # out.logits B×C, out.maps B×C×h×w\n```\n\n"
        f"| field | value |\n|---|---|\n{rows}\n"
    )
