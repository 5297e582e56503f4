"""Part metrics (FunnyBirds' protocols) against hand-made models and maps whose answers are known."""
import math

import pytest
import torch
from torch import nn

from seethrough.data import build_transform
from seethrough.data.interventions import PartInterventions
from seethrough.data.synthetic import COLOURS, PARTS, SyntheticDataset
from seethrough.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from seethrough.metrics import parts as P

SIZE = 48
#: Largest RGB distance (0–1 scale) at which a pixel counts as a part's colour.
COLOUR_TOLERANCE = 0.08
#: Logit scale of the colour detector (fraction of matching pixels × this).
LOGIT_SCALE = 100.0


class ColourDetector(nn.Module):
    """Logit of class c = share of pixels having the colour of one of c's parts (× a scale), plus
    a small bias towards class 0 so an image without any class colour predicts class 0."""

    def __init__(self, data: SyntheticDataset, *, brightness_weight: float = 0.0) -> None:
        super().__init__()
        colours = [[COLOURS[PARTS[p][0]] for p in parts] for parts in data.class_parts]
        self.register_buffer("colours", torch.tensor(colours, dtype=torch.float32) / 255)   # C×K×3
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))
        self.brightness_weight = brightness_weight

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        pixels = (images * self.std + self.mean).permute(0, 2, 3, 1)                  # B×H×W×3
        dist = (pixels[:, None, None] - self.colours[None, :, :, None, None]).norm(dim=-1)   # B×C×K×H×W
        share = (dist < COLOUR_TOLERANCE).float().mean(dim=(-2, -1)).sum(-1)          # B×C
        logits = LOGIT_SCALE * share
        logits[:, 0] += 1e-3
        return logits + self.brightness_weight * pixels.mean(dim=(1, 2, 3))[:, None] * torch.arange(
            logits.shape[1], device=images.device)


def _batch(difficulty: str, indices, num_classes: int = 4):
    data = SyntheticDataset(split="val", difficulty=difficulty, img_size=SIZE, num_samples=16,
                            num_classes=num_classes)
    transform = build_transform(SIZE, train=False)
    parts = PartInterventions.for_samples(data, indices, transform, (SIZE, SIZE))
    images = parts.images(parts.scenes)
    return data, parts, images


def _evidence_maps(parts: PartInterventions) -> torch.Tensor:
    evidence = parts.role_mask("evidence")
    return (parts.masks & evidence[:, :, None, None]).any(1).float()


def test_part_importance_of_a_map_that_is_one_parts_mask():
    _, parts, _ = _batch("easy", [1, 2])
    evidence = parts.role_mask("evidence")
    maps = _evidence_maps(parts)
    importance = P.part_importance(maps, parts, dilation=1)
    for b in range(2):
        slot = int(evidence[b].nonzero()[0])
        assert importance[b, slot] == parts.masks[b, slot].sum()                # Σ of a 0/1 map on its mask
        others = parts.valid[b].clone()
        others[slot] = False
        assert (importance[b][others] == 0).all()
        assert math.isnan(importance[b][~parts.valid[b]].sum()) or (~parts.valid[b]).sum() == 0
    dilated = P.part_importance(maps, parts)                                     # FunnyBirds' 5×5 dilation
    assert (dilated[parts.valid] >= importance[parts.valid]).all()


def test_controlled_check_is_one_for_the_evidence_map_and_lower_inverted():
    _, parts, images = _batch("medium", [1, 2, 3, 5])
    maps = _evidence_maps(parts)
    targets = parts.labels
    good = P.controlled_synthetic_data_check(None, images, maps, targets, parts=parts, dilation=1)
    bad = P.controlled_synthetic_data_check(None, images, 1 - maps, targets, parts=parts, dilation=1)
    # by hand: each evidence part holds the share |M_p| / Σ|M| of the map; it is important at t < share
    thresholds = torch.tensor(P.THRESHOLDS)
    evidence = parts.role_mask("evidence")
    for b in range(4):
        sizes = parts.masks[b][evidence[b]].sum(dim=(-2, -1)).float()
        shares = sizes / sizes.sum()
        expected = (shares[None, :] > thresholds[:, None]).float().mean(1).mean()
        assert good[b].item() == pytest.approx(expected.item(), abs=1e-6)
        assert good[b] > 0.8
    assert (bad < good).all()


def test_a_model_that_ignores_a_part_deletion_preservation_distractibility_and_correctness():
    data, parts, images = _batch("easy", [1, 2, 3, 5, 6, 7])
    model = ColourDetector(data).eval()
    assert torch.equal(model(images).argmax(1), parts.labels)               # it reads the evidence colour
    targets = parts.labels
    maps = _evidence_maps(parts)
    inverted = 1 - maps
    # removing the evidence changes the prediction; removing the grey distractors never does
    assert torch.allclose(P.deletion_check(model, images, maps, targets, parts=parts), torch.ones(6))
    assert (P.deletion_check(model, images, inverted, targets, parts=parts) < 1).all()
    assert torch.allclose(P.preservation_check(model, images, maps, targets, parts=parts), torch.ones(6))
    assert (P.preservation_check(model, images, inverted, targets, parts=parts) < 1).all()
    assert torch.allclose(P.distractibility(model, images, maps, targets, parts=parts), torch.ones(6))
    assert (P.distractibility(model, images, inverted, targets, parts=parts) < 1).all()
    good = P.single_deletion(model, images, maps, targets, parts=parts)
    worse = P.single_deletion(model, images, inverted, targets, parts=parts)
    finite = torch.isfinite(good)
    assert finite.any() and (good[finite] > 0.9).all() and (worse[finite] < good[finite]).all()


def test_target_sensitivity_with_an_oracle_explainer_and_its_inverse():
    data, parts, images = _batch("medium", [1, 2, 3, 5], num_classes=6)
    model = ColourDetector(data).eval()

    def oracle(model, images, classes):        # the pixels of each class's colours
        pixels = (images * model.std + model.mean).permute(0, 2, 3, 1)
        colours = model.colours[classes]                                               # B×K×3
        dist = (pixels[:, None] - colours[:, :, None, None]).norm(dim=-1)
        return (dist < COLOUR_TOLERANCE).any(1).float()

    good = P.target_sensitivity(model, images, None, parts.labels, parts=parts, explainer=oracle)
    bad = P.target_sensitivity(model, images, None, parts.labels, parts=parts,
                               explainer=lambda m, x, c: 1 - oracle(m, x, c))
    finite = torch.isfinite(good)
    assert finite.any()
    assert torch.allclose(good[finite], torch.ones(int(finite.sum())))
    assert (bad[finite] < good[finite]).all()


def test_background_independence_catches_a_model_that_reads_the_background():
    data, parts, images = _batch("easy", [1, 2, 3, 5])
    ignores = ColourDetector(data).eval()
    reads = ColourDetector(data, brightness_weight=50.0).eval()
    targets = parts.labels
    assert torch.allclose(P.background_independence(ignores, images, None, targets, parts=parts, variants=2),
                          torch.ones(4))
    assert P.background_independence(reads, images, None, targets, parts=parts, variants=2).mean() < 1


def test_threshold_and_dilation_parameters_are_checked():
    _, parts, images = _batch("easy", [1])
    with pytest.raises(ValueError, match="dilation must be a positive odd"):
        P.part_importance(_evidence_maps(parts), parts, dilation=4)
    with pytest.raises(ValueError, match="variants must be at least 1"):
        P.background_independence(nn.Identity(), images, None, parts.labels, parts=parts, variants=0)


def test_the_absent_substrate_is_the_scene_without_its_evidence_and_separates_good_from_inverted_maps():
    from seethrough.metrics import deletion, insertion

    data, parts, images = _batch("easy", [1, 2, 3, 5])
    model = ColourDetector(data).eval()
    targets = parts.labels
    maps = _evidence_maps(parts)
    opts = dict(parts=parts, substrate="absent", steps=8)
    good_ins, bad_ins = insertion(model, images, maps, targets, **opts), insertion(model, images, 1 - maps, targets, **opts)
    good_del, bad_del = deletion(model, images, maps, targets, **opts), deletion(model, images, 1 - maps, targets, **opts)
    assert (good_ins > bad_ins).all() and (good_del < bad_del).all()
    # the curve ends (deletion) / starts (insertion) at the score of the scene without its evidence
    _, details = deletion(model, images, maps, targets, return_details=True, **opts)
    absent = torch.softmax(model(parts.remove(parts.role_mask("evidence"))), 1).gather(1, targets[:, None])[:, 0]
    torch.testing.assert_close(details["curve"][:, -1], absent)
    with pytest.raises(ValueError, match="needs parts="):
        deletion(model, images, maps, targets, substrate="absent")
