"""Interventions on the built-in synthetic data: the same scene re-rendered with parts removed,
a part swapped for another class's part, the background replaced, or a distractor added.

Every synthetic sample is a :class:`~.synthetic.Scene` — background seed plus parts (evidence,
decoy pairs, distractors) — and :meth:`~.synthetic.SyntheticDataset.render` draws the
background first and the parts over it, so removing a part from the scene draws the
background where it was (FunnyBirds' part removal, Hesse et al., ICCV 2023, Sec. 3). All
interventions are deterministic in the sample (its seed, split and index) and in the
intervention itself, so a metric re-rendering a sample in any batch, process or run gets the
same pixels.

:class:`PartInterventions` is what a dataset that supports interventions hands to the part
metrics (:mod:`seethrough.metrics.parts`) for one batch: per-part masks at the model's input
size, each part's role, and :meth:`PartInterventions.remove` / :meth:`~PartInterventions.images`
to re-render the batch after an intervention, through the same transform.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..core.calls import logits_of
from .base import RawSample
from .synthetic import COLOURS, PARTS, SPLIT_IDS, Part, Scene, SyntheticDataset, part_pixels, place_footprint

#: Roles a part can have in a scene: the class's evidence, a decoy pair's part, a distractor.
PART_ROLES: tuple[str, ...] = ("evidence", "decoy", "distractor")
#: Fourth word of the seed of a replaced background / an added distractor (after seed, split,
#: index), so interventions never reuse the sample's own random stream.
BACKGROUND_STREAM, DISTRACTOR_STREAM = 1, 2


def remove_parts(scene: Scene, drop: Sequence[int]) -> Scene:
    """``scene`` without the parts at positions ``drop`` of ``scene.parts``."""
    bad = [i for i in drop if not 0 <= i < len(scene.parts)]
    if bad:
        raise IndexError(f"part {bad[0]} does not exist: the scene has {len(scene.parts)} parts")
    dropped = set(drop)
    return dataclasses.replace(scene, parts=tuple(p for i, p in enumerate(scene.parts) if i not in dropped))


def swap_part(scene: Scene, position: int, vocabulary_part: int) -> Scene:
    """``scene`` with part ``position`` drawn as vocabulary part ``vocabulary_part`` (its colour
    and shape; same place, size, rotation, opacity and role)."""
    colour, shape = PARTS[vocabulary_part]
    old = scene.parts[position]
    new = dataclasses.replace(old, name=f"{colour}-{shape}", shape=shape, rgb=COLOURS[colour])
    return dataclasses.replace(scene, parts=scene.parts[:position] + (new,) + scene.parts[position + 1:])


def replace_background(dataset: SyntheticDataset, index: int, scene: Scene, variant: int = 0) -> Scene:
    """``scene`` over another background (and strokes and noise): the same parts, a texture
    seed drawn from ``(seed, split, index, BACKGROUND_STREAM, variant)``."""
    rng = np.random.default_rng([dataset.seed, SPLIT_IDS[dataset.split], index, BACKGROUND_STREAM, variant])
    return dataclasses.replace(scene, texture_seed=int(rng.integers(2**63)))


def add_distractor(dataset: SyntheticDataset, index: int, scene: Scene, vocabulary_part: int,
                   variant: int = 0) -> Scene:
    """``scene`` with one more distractor, vocabulary part ``vocabulary_part`` at the scene's part
    size, placed where it keeps the dataset's clearance to every part (drawn from
    ``(seed, split, index, DISTRACTOR_STREAM, variant)``); unchanged when no place is free."""
    rng = np.random.default_rng([dataset.seed, SPLIT_IDS[dataset.split], index, DISTRACTOR_STREAM, variant])
    colour, shape = PARTS[vocabulary_part]
    radius = float(np.median([p.radius for p in scene.parts])) if scene.parts else \
        dataset.settings.part_radius * dataset.img_size
    placed = [{"center": p.center, "radius": p.radius} for p in scene.parts]
    center = place_footprint(rng, radius, placed, float(dataset.img_size), dataset.settings.clearance)
    if center is None:
        return scene
    part = Part(name=f"{colour}-{shape}", shape=shape, rgb=COLOURS[colour], center=center, radius=radius,
                angle=0.0, alpha=float(np.mean(dataset.settings.part_alpha)), role="distractor")
    return dataclasses.replace(scene, parts=(part, *scene.parts))


def part_masks(scene: Scene, size: int) -> np.ndarray:
    """``P×size×size`` bool: the pixels each part of ``scene`` paints (parts never overlap)."""
    masks = np.zeros((len(scene.parts), size, size), bool)
    for i, part in enumerate(scene.parts):
        window, region = part_pixels(part, size)
        masks[i][window] |= region
    return masks


@dataclass
class PartInterventions:
    """Parts of a batch of synthetic samples and the means to re-render them.

    Attributes:
        masks: ``B×P×H×W`` bool at the model's input size (nearest-resized from the render);
            ``P`` is the largest part count in the batch, missing slots are all False.
        valid: ``B×P`` bool, which slots hold a part.
        roles: per sample, the role of each part (:data:`PART_ROLES`).
        names: per sample, the vocabulary name of each part.
        labels: ``B`` the class of each scene.
    """

    masks: torch.Tensor
    valid: torch.Tensor
    roles: list[list[str]]
    names: list[list[str]]
    labels: torch.Tensor
    dataset: SyntheticDataset
    indices: list[int]
    transform: Callable[[RawSample], dict]
    scenes: list[Scene]
    #: Logits of intervened samples by (model, sample, intervention), shared by every metric and
    #: explainer of the batch (the interventions do not depend on the explanation).
    cache: dict = field(default_factory=dict, repr=False)

    @classmethod
    def for_samples(cls, dataset: SyntheticDataset, indices: Sequence[int],
                    transform: Callable[[RawSample], dict], size: tuple[int, int]) -> "PartInterventions":
        """The parts of samples ``indices`` of ``dataset``; ``transform`` makes model inputs
        (the evaluation transform the batch went through), ``size`` is their ``H×W``."""
        scenes = [dataset.scene(int(i)) for i in indices]
        count = max([len(s.parts) for s in scenes] + [1])
        masks = torch.zeros(len(scenes), count, *size, dtype=torch.bool)
        valid = torch.zeros(len(scenes), count, dtype=torch.bool)
        for b, scene in enumerate(scenes):
            rendered = torch.from_numpy(part_masks(scene, dataset.img_size))
            if rendered.numel():
                resized = F.interpolate(rendered[None].float(), size=size, mode="nearest")[0] > 0
                masks[b, :len(scene.parts)] = resized
            valid[b, :len(scene.parts)] = True
        return cls(masks=masks, valid=valid, roles=[[p.role for p in s.parts] for s in scenes],
                   names=[[p.name for p in s.parts] for s in scenes],
                   labels=torch.tensor([s.label for s in scenes]), dataset=dataset,
                   indices=[int(i) for i in indices], transform=transform, scenes=scenes)

    def role_mask(self, role: str) -> torch.Tensor:
        """``B×P`` bool: the slots holding a part of ``role``."""
        if role not in PART_ROLES:
            raise ValueError(f"unknown part role {role!r}; valid: {', '.join(PART_ROLES)}")
        out = torch.zeros_like(self.valid)
        for b, roles in enumerate(self.roles):
            out[b, :len(roles)] = torch.tensor([r == role for r in roles], dtype=torch.bool)
        return out

    def images(self, scenes: Sequence[Scene]) -> torch.Tensor:
        """``scenes`` (one per sample, e.g. intervened) rendered and transformed: ``B×C×H×W``."""
        return torch.stack([self.transform(self.dataset.render(scene))["image"] for scene in scenes])

    def remove(self, drop: torch.Tensor) -> torch.Tensor:
        """The batch re-rendered without the parts marked in ``drop`` (``B×P`` bool)."""
        if drop.shape != self.valid.shape:
            raise ValueError(f"drop must be B×P = {tuple(self.valid.shape)}, got {tuple(drop.shape)}")
        return self.images([remove_parts(scene, [int(i) for i in torch.nonzero(row[:len(scene.parts)]).flatten()])
                            for scene, row in zip(self.scenes, drop.cpu())])

    def replace_background(self, variant: int = 0) -> torch.Tensor:
        """The batch with the same parts over other backgrounds."""
        return self.images([replace_background(self.dataset, i, scene, variant)
                            for i, scene in zip(self.indices, self.scenes)])

    def subset(self, rows: Sequence[int]) -> "PartInterventions":
        """The samples ``rows`` of the batch (sharing this batch's logits cache)."""
        rows = list(rows)
        return PartInterventions(masks=self.masks[rows], valid=self.valid[rows], roles=[self.roles[r] for r in rows],
                                 names=[self.names[r] for r in rows], labels=self.labels[rows], dataset=self.dataset,
                                 indices=[self.indices[r] for r in rows], transform=self.transform,
                                 scenes=[self.scenes[r] for r in rows], cache=self.cache)

    def removed_logits(self, model: torch.nn.Module, drop: torch.Tensor, device: torch.device | str) -> torch.Tensor:
        """``B×C`` logits of the batch without the parts in ``drop`` (``B×P`` bool), each
        (model, sample, removed set) forwarded once; the model must be in the mode wanted."""
        keys = [(id(model), self.indices[b], "remove", tuple(torch.nonzero(drop[b].cpu()).flatten().tolist()))
                for b in range(len(self.scenes))]
        return self._logits(model, keys, lambda rows: self.subset(rows).remove(drop[rows]), device)

    def background_logits(self, model: torch.nn.Module, variant: int, device: torch.device | str) -> torch.Tensor:
        """``B×C`` logits of the batch over background ``variant`` (cached as :meth:`removed_logits`)."""
        keys = [(id(model), index, "background", variant) for index in self.indices]
        return self._logits(model, keys, lambda rows: self.subset(rows).replace_background(variant), device)

    def _logits(self, model: torch.nn.Module, keys: list[tuple], render: Callable[[list[int]], torch.Tensor],
                device: torch.device | str) -> torch.Tensor:
        missing = [b for b, key in enumerate(keys) if key not in self.cache]
        if missing:
            with torch.no_grad():
                logits = logits_of(model, render(missing).to(device)).float().cpu()
            for b, row in zip(missing, logits):
                self.cache[keys[b]] = row
        return torch.stack([self.cache[key] for key in keys]).to(device)
