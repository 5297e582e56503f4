"""Which classes to explain: ground truth, predicted, least likely, the next label, a class
map or an explicit list.

Who explains which class for a negative ("why not") SCOUTER model:

- SCOUTER's official ``test.py:41`` (``cal_area_size``): ``label + 1`` (policy ``"next"``;
  the original has no wrap-around — for the last class it opens ``slot_{C}.png``, which does
  not exist, and fails; here the last class wraps around to class 0);
- the ReScience reproduction (``eval.py:126-137``): a fixed class per label, the WordNet
  least-similar class of ``lsc_label_id.json`` (a class-map file, :func:`load_class_map`);
- the FACT-2022 reproduction (``engine.py:111``): the argmin of the logits (``"least"``);
  FACT explains the argmax for positive models (``"pred"``).

Every choice is a policy here, so a metric or a picture can record which one it used.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Mapping, Sequence

import torch

#: The target policies, by name, everywhere (``explain``, ``explain_batch``, the CLI, protocols).
#: Besides a name, a policy can be a class-map file (``FILE.json``, :func:`load_class_map`);
#: explicit classes are given as indices instead of a policy.
TARGET_POLICIES: tuple[str, ...] = ("gt", "pred", "least", "next")
#: Suffix that marks a target policy given as a class-map file (``--targets FILE.json``).
CLASS_MAP_SUFFIX = ".json"


def is_class_map_file(policy: str) -> bool:
    """Whether a target policy string names a class-map file (``*.json``)."""
    return str(policy).lower().endswith(CLASS_MAP_SUFFIX)


def load_class_map(path: str | Path, num_classes: int | None = None) -> dict[int, int]:
    """Read a class-map file: label → class to explain.

    The format is ReScience's ``lsc_label_id.json`` (kayatb/reproduce_SCOUTER): a JSON object
    whose keys are labels as strings and whose values are class indices,
    ``{"0": 72, "1": 72, ...}``; a JSON list (entry ``i`` for label ``i``) is accepted too.

    Raises:
        FileNotFoundError / ValueError: naming the file and what is wrong with it.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"class-map file {path} does not exist (--targets FILE.json: a JSON mapping "
                                'label → class to explain, e.g. {"0": 72, "1": 72})')
    try:
        raw = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"class-map file {path} is not valid JSON: {error}") from error
    if isinstance(raw, list):
        raw = dict(enumerate(raw))
    if not isinstance(raw, Mapping):
        raise ValueError(f"class-map file {path} must hold a JSON object label → class (or a list), "
                         f"got {type(raw).__name__}")
    mapping: dict[int, int] = {}
    for key, value in raw.items():
        try:
            label, target = int(key), int(value)
        except (TypeError, ValueError):
            raise ValueError(f"class-map file {path}: entry {key!r}: {value!r} is not an integer label → "
                             "integer class") from None
        mapping[label] = target
    if num_classes is not None:
        bad = [(k, v) for k, v in mapping.items() if not (0 <= v < num_classes)]
        if bad:
            raise ValueError(f"class-map file {path}: label {bad[0][0]} maps to class {bad[0][1]}, out of range "
                             f"for a model with {num_classes} classes")
    return mapping


def select_classes(
    logits: torch.Tensor,
    policy: str | None = "pred",
    *,
    k: int = 1,
    labels: torch.Tensor | Sequence[int] | None = None,
    indices: Sequence[int] | torch.Tensor | None = None,
    class_map: Mapping[int, int] | None = None,
) -> torch.Tensor:
    """Class indices to explain for every image, as a ``B×K`` LongTensor.

    Args:
        logits: ``B×C`` class scores.
        policy: one of :data:`TARGET_POLICIES` or a class-map file:

            - ``"gt"``: the ground-truth class (``labels``, length ``B``); ``K = 1``, ``k`` ignored.
            - ``"pred"``: the ``k`` highest logits, most likely first.
            - ``"least"``: the ``k`` lowest logits, least likely first.
            - ``"next"``: ``(label + 1) mod C`` (official SCOUTER ``test.py:41`` for negative
              models, without the wrap-around; needs ``labels``); ``K = 1``.
            - ``"FILE.json"``: ``class_map[label]`` (:func:`load_class_map`; ReScience's
              least-similar classes); ``K = 1``. ``class_map`` is that file's mapping when the
              caller has read it already.

            ``None`` with ``indices``: explicit classes.
        k: how many classes for "pred" and "least" (``1 <= k <= C``).
        labels: ground-truth class per image, required by "gt", "next" and class maps.
        indices: the same distinct class indices for every image, in the given order
            (``K = len(indices)``); ``policy`` must then be ``None``.
        class_map: label → class, for a class-map policy (read from the file when not given).

    Raises:
        ValueError: unknown policy, missing ``labels``, ``k`` or an index out of range.
    """
    if logits.ndim != 2:
        raise ValueError(f"expected logits of shape B×C, got {tuple(logits.shape)}")
    batch, num_classes = logits.shape
    device = logits.device
    if indices is not None:
        if policy is not None:
            raise ValueError(f"explicit class indices {list(indices)} replace the policy; pass policy=None, "
                             f"not {policy!r}")
        chosen = torch.as_tensor(indices, dtype=torch.long, device=device).reshape(-1)
        if chosen.numel() == 0:
            raise ValueError("explicit classes need at least one class index")
        _check_range(chosen, num_classes, what="class index")
        if chosen.unique().numel() != chosen.numel():
            raise ValueError(f"explicit class indices must be distinct, got {chosen.tolist()}")
        return chosen[None, :].expand(batch, -1).clone()
    if policy is None:
        raise ValueError("give a target policy or explicit class indices (indices=)")
    if policy in ("pred", "least"):
        if not 1 <= k <= num_classes:
            raise ValueError(f"k must be between 1 and the class count {num_classes}, got {k}")
        return torch.topk(logits, k, dim=1, largest=policy == "pred", sorted=True).indices
    if policy not in TARGET_POLICIES and not is_class_map_file(policy):
        raise ValueError(f"unknown target policy {policy!r}; valid: {', '.join(TARGET_POLICIES)}, a class-map "
                         "file FILE.json, or explicit class indices")
    if labels is None:
        raise ValueError(f'target policy "{policy}" is defined from the ground-truth class and needs labels=')
    labels = torch.as_tensor(labels, dtype=torch.long, device=device).reshape(-1)
    if labels.numel() != batch:
        raise ValueError(f"got {labels.numel()} labels for a batch of {batch} images")
    _check_range(labels, num_classes, what="label")
    if policy == "gt":
        return labels[:, None]
    if policy == "next":
        return ((labels + 1) % num_classes)[:, None]
    class_map = load_class_map(policy, num_classes) if class_map is None else class_map
    missing = [int(v) for v in labels.tolist() if int(v) not in class_map]
    if missing:
        raise ValueError(f"the class map {policy} has no entry for label {missing[0]}")
    chosen = torch.tensor([int(class_map[int(v)]) for v in labels.tolist()], dtype=torch.long, device=device)
    _check_range(chosen, num_classes, what="mapped class")
    return chosen[:, None]


def _check_range(values: torch.Tensor, num_classes: int, *, what: str) -> None:
    """Raise a ValueError naming the first value outside ``[0, num_classes)``."""
    bad = (values < 0) | (values >= num_classes)
    if bool(bad.any()):
        first = int(values[bad][0])
        raise ValueError(
            f"{what} {first} is out of range for a model with {num_classes} classes "
            f"(valid: 0..{num_classes - 1})"
        )
