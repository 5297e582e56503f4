"""Prototype localization on parts: boxes whose answers are known by construction."""
import pytest
import torch

from seethrough.data import build_transform
from seethrough.data.interventions import PartInterventions
from seethrough.data.synthetic import SyntheticDataset
from seethrough.metrics import prototype_parts as PP

SIZE = 64


def _parts(indices=(0, 1, 2)):
    data = SyntheticDataset(split="train", difficulty="benchmark", img_size=SIZE, num_samples=8)
    return PartInterventions.for_samples(data, list(indices), build_transform(SIZE, train=False), (SIZE, SIZE))


def _box_inside(mask: torch.Tensor, side: int = 3) -> list[int]:
    """A side×side box entirely inside ``mask`` (its first fitting position)."""
    fits = torch.nn.functional.avg_pool2d(mask.float()[None, None], side, stride=1)[0, 0] == 1
    y, x = [int(v) for v in torch.nonzero(fits)[0]]
    return [x, y, x + side, y + side]


def test_a_box_on_an_evidence_part_is_on_evidence_and_one_on_the_background_is_not():
    parts = _parts()
    evidence = PP.role_masks(parts, "evidence", dilation=1)
    anything = PP.role_masks(parts, "evidence", dilation=PP.PART_DILATION) | PP.role_masks(
        parts, "distractor", dilation=PP.PART_DILATION)
    on = torch.tensor([_box_inside(evidence[b]) for b in range(3)])
    off = torch.tensor([_box_inside(~anything[b]) for b in range(3)])
    assert PP.prototype_on_evidence(on, parts).tolist() == [1.0, 1.0, 1.0]
    assert PP.prototype_on_evidence(off, parts).tolist() == [0.0, 0.0, 0.0]
    shares = PP.box_overlap(off, parts)
    assert shares["background"].tolist() == [1.0, 1.0, 1.0] and shares["evidence"].sum() == 0


def test_dilation_widens_the_part_and_min_overlap_is_a_threshold():
    parts = _parts([0])
    evidence = PP.role_masks(parts, "evidence", dilation=1)[0]
    ring = PP.role_masks(parts, "evidence", dilation=5)[0] & ~evidence       # within 2 px of the part
    y, x = [int(v) for v in torch.nonzero(ring)[0]]
    box = torch.tensor([[x, y, x + 1, y + 1]])
    assert PP.prototype_on_evidence(box, parts, dilation=5).item() == 1.0
    assert PP.prototype_on_evidence(box, parts, dilation=1).item() == 0.0
    half = PP.box_overlap(torch.tensor([[0, 0, SIZE, SIZE]]), parts)["evidence"].item()
    assert PP.prototype_on_evidence(torch.tensor([[0, 0, SIZE, SIZE]]), parts, min_overlap=half).item() == 1.0
    assert PP.prototype_on_evidence(torch.tensor([[0, 0, SIZE, SIZE]]), parts, min_overlap=half + 1e-3).item() == 0.0


def test_chance_is_the_share_of_positions_where_the_box_would_be_on_evidence():
    parts = _parts([0])
    evidence = PP.role_masks(parts, "evidence")[0]
    # a 1×1 box: chance = the evidence's share of the image, exactly
    assert PP.chance_on_evidence(torch.tensor([[5, 5, 6, 6]]), parts).item() == pytest.approx(evidence.float().mean().item())
    # the whole image fits in one place only
    whole = torch.tensor([[0, 0, SIZE, SIZE]])
    assert PP.chance_on_evidence(whole, parts).item() == PP.prototype_on_evidence(whole, parts).item()


def test_bad_boxes_and_parameters_are_refused_with_the_reason():
    parts = _parts([0])
    with pytest.raises(ValueError, match="inside the 64×64"):
        PP.prototype_on_evidence(torch.tensor([[0, 0, 65, 10]]), parts)
    with pytest.raises(ValueError, match="one xyxy box per prototype"):
        PP.prototype_on_evidence(torch.tensor([[0, 0, 5, 5], [0, 0, 5, 5]]), parts)
    with pytest.raises(ValueError, match="min_overlap"):
        PP.prototype_on_evidence(torch.tensor([[0, 0, 5, 5]]), parts, min_overlap=0)
