"""LVW's IoU evaluation: word map fusion and IoU against reference maps, both conventions."""
import pytest
import torch

import seethrough
from seethrough.prototypes.iou import lvw_iou, word_map

SIZE = 64


def _model():
    torch.manual_seed(0)
    return seethrough.create_model("lvw", num_classes=2, backbone="test_resnet", prototype_dim=8).eval()


def test_word_map_is_min_max_normalized_at_image_size():
    maps = word_map(_model(), torch.randn(2, 3, SIZE, SIZE))
    assert maps.shape == (2, SIZE, SIZE)
    assert maps.flatten(1).min(1).values.tolist() == pytest.approx([0, 0], abs=1e-6)
    assert maps.flatten(1).max(1).values.tolist() == pytest.approx([1, 1])


def test_iou_is_one_against_its_own_maps_and_reports_chance_for_both_conventions():
    model = _model()
    images = torch.randn(4, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(2))
    ids = [f"img{i}" for i in range(4)]
    own = {i: m for i, m in zip(ids, word_map(model, images))}
    batches = [{"image": images[:2], "id": ids[:2]}, {"image": images[2:], "id": ids[2:]}]
    result = lvw_iou(model, batches, lambda keys: torch.stack([own[k] for k in keys]))
    for convention in ("top", "bottom"):
        assert result[convention]["mean"] == pytest.approx(1.0)
        assert result[convention]["chance"] == pytest.approx(1 / 3, abs=0.01)   # percentile 50
        assert result[convention]["count"] == 4
    flipped = lvw_iou(model, batches, lambda keys: 1 - torch.stack([own[k] for k in keys]), percentile=70)
    assert flipped["top"]["mean"] == pytest.approx(0.0)
    assert flipped["bottom"]["chance"] > flipped["top"]["chance"]     # the released code's convention inflates
