"""INTR's per-head views: gt_query_heads / sim_query_heads from one forward pass."""
from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

import seethrough
from seethrough.explanations.heads import explain_heads, render_heads
from seethrough.explanations.render import denormalize


@pytest.fixture(scope="module")
def intr():
    torch.manual_seed(0)
    return seethrough.create_model("intr", num_classes=6, backbone="test_efficientnet", d_model=32, nheads=4,
                                   num_encoder_layers=1, num_decoder_layers=2, dim_feedforward=64).eval()


def test_ground_truth_first_then_look_alikes_and_every_head_plus_the_average(intr):
    images = torch.randn(2, 3, 64, 64)
    result = explain_heads(intr, images, labels=[4, 1], k=3, layer=0)
    assert result["classes"][:, 0].tolist() == [4, 1] and result["layer"] == 0
    logits = intr(images).logits
    for b in range(2):
        rest = result["classes"][b, 1:].tolist()
        order = [c for c in logits[b].argsort(descending=True).tolist() if c != result["classes"][b, 0]]
        assert rest == order[:2]
    assert result["heads"].shape == (2, 3, 4 + 1, 64, 64)
    assert result["heads"].min() >= 0 and result["heads"].max() <= 1
    # the average panel is the head mean of the same attention, upsampled and normalized
    attention = intr(images).extras["attention"][0]                      # B×heads×C×hw
    h, w = intr(images).maps.shape[-2:]
    mean = attention[0, :, 4].mean(0).reshape(1, 1, h, w)
    up = F.interpolate(mean, size=(64, 64), mode="bicubic", align_corners=False)
    up = (up - up.min()) / (up.max() - up.min())
    torch.testing.assert_close(result["heads"][0, 0, -1], up[0, 0].clamp(0, 1), atol=1e-5, rtol=0)


def test_without_labels_the_top_queries_and_errors(intr):
    images = torch.randn(1, 3, 64, 64)
    result = explain_heads(intr, images, k=2)
    assert result["classes"][0].tolist() == intr(images).logits[0].topk(2).indices.tolist()
    with pytest.raises(ValueError, match="layer 5 does not exist: the model has 2 decoder layers"):
        explain_heads(intr, images, layer=5)
    fc = seethrough.create_model("fc", num_classes=3, backbone="test_efficientnet")
    with pytest.raises(ValueError, match="no per-head attention"):
        explain_heads(fc, images)


def test_render_writes_a_strip_per_image_and_a_summary(intr, tmp_path):
    images = torch.randn(2, 3, 64, 64)
    result = explain_heads(intr, images, labels=[0, 2], k=2)
    pictures = denormalize(images, (0.5,) * 3, (0.25,) * 3)
    paths = render_heads(result, pictures, [f"class{i}" for i in range(6)], tmp_path, ["a", "b"])
    assert [p.name for p in paths] == ["a_heads.png", "b_heads.png", "heads.json"]
    summary = json.loads(paths[-1].read_text())
    assert summary["layer"] == 1 and summary["images"][1]["names"][0] == "class2"


def test_explain_heads_shows_five_queries_by_default_as_intrs_visualization(intr, tmp_path):
    """Audit I6: tools/visualization.py top_q = 5 (the true class and four look-alikes)."""
    import PIL.Image
    from typer.testing import CliRunner

    from seethrough.cli import app

    intr.save_pretrained(tmp_path / "m", img_size=64)
    PIL.Image.new("RGB", (64, 64), (120, 30, 200)).save(tmp_path / "x.png")
    result = CliRunner().invoke(app, ["explain", str(tmp_path / "m"), str(tmp_path / "x.png"), "--heads",
                                      "--label", "1", "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "out" / "heads.json").read_text())
    assert len(summary["images"][0]["names"]) == 5 and summary["images"][0]["names"][0] == "1"
