"""ProtoPNet / LVW model: eqs. (1)-(4) of heads/prototype.py and the losses of prototype_losses.py."""
import pytest
import torch
from torch import nn

import seethrough
from seethrough.models.heads.prototype import add_on_layers, similarity, squared_distances
from seethrough.models.prototype_losses import (
    alignment_loss,
    alignment_map,
    class_agnostic_cluster_cost,
    cluster_cost,
    l1_cost,
)

CLASSES, BATCH, SIZE = 3, 2, 64


def _model(name="protopnet", **options):
    torch.manual_seed(0)
    return seethrough.create_model(name, num_classes=CLASSES, backbone="test_resnet", **options).eval()


def test_distance_maps_equal_a_direct_computation():
    g = torch.Generator().manual_seed(0)
    latent, prototypes = torch.rand(2, 8, 3, 4, generator=g), torch.rand(5, 8, 1, 1, generator=g)
    direct = ((latent[:, None] - prototypes[None, :, :, 0, 0, None, None]) ** 2).sum(dim=2)
    torch.testing.assert_close(squared_distances(latent, prototypes), direct, atol=1e-5, rtol=1e-5)


def test_similarity_decreases_with_distance():
    d = torch.linspace(0, 50, 101)
    for activation in ("log", "linear"):
        s = similarity(d, activation)
        assert (s[1:] < s[:-1]).all()
    assert similarity(torch.zeros(1), "log").item() == pytest.approx(torch.log(torch.tensor(1 / 1e-4)).item())


def test_last_layer_starts_at_plus_one_for_own_class_and_minus_half_elsewhere():
    model = _model(num_prototypes=6)
    expected = torch.tensor([[1, 1, -0.5, -0.5, -0.5, -0.5], [-0.5, -0.5, 1, 1, -0.5, -0.5],
                             [-0.5, -0.5, -0.5, -0.5, 1, 1]])
    assert torch.equal(model.last_layer.weight, expected)
    assert model.last_layer.bias is None
    assert model.prototypes.min() >= 0 and model.prototypes.max() < 1


def test_forward_outputs_and_maps_are_the_weighted_similarity_maps():
    model = _model(num_prototypes=6)
    out = model(torch.randn(BATCH, 3, SIZE, SIZE))
    sim, dist = out.extras["prototype_similarity"], out.extras["prototype_distances"]
    assert dist.shape == (BATCH, 6, 2, 2) and (dist >= 0).all()
    torch.testing.assert_close(out.extras["min_distances"], dist.flatten(2).min(-1).values)
    torch.testing.assert_close(out.logits, similarity(out.extras["min_distances"]) @ model.last_layer.weight.t())
    torch.testing.assert_close(out.maps, torch.einsum("cp,bphw->bchw", model.last_layer.weight, sim))


def test_add_on_layers_regular_and_bottleneck():
    regular = add_on_layers(512, 128, "regular")
    assert [type(m) for m in regular] == [nn.Conv2d, nn.ReLU, nn.Conv2d, nn.Sigmoid]
    bottleneck = add_on_layers(512, 128, "bottleneck")
    convs = [(m.in_channels, m.out_channels) for m in bottleneck if isinstance(m, nn.Conv2d)]
    assert convs == [(512, 256), (256, 256), (256, 128), (128, 128)]
    assert isinstance(bottleneck[-1], nn.Sigmoid) and isinstance(bottleneck[3], nn.ReLU)
    assert all(m.bias.abs().sum() == 0 for m in bottleneck if isinstance(m, nn.Conv2d))


def test_cluster_and_separation_costs_on_a_hand_made_case():
    # 2 images, 4 prototypes (2 per class), labels 0 and 1
    d = torch.tensor([[1.0, 3.0, 0.5, 2.0], [4.0, 1.5, 2.5, 0.25]])
    own = torch.tensor([[1.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 1.0]])
    assert cluster_cost(d, own, 10.0).item() == pytest.approx((1.0 + 0.25) / 2)        # nearest own prototype
    assert cluster_cost(d, 1 - own, 10.0).item() == pytest.approx((0.5 + 1.5) / 2)     # nearest other one
    assert class_agnostic_cluster_cost(d).item() == pytest.approx((0.5 + 0.25) / 2)
    identity = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    weight = torch.tensor([[1.0, 2.0, -3.0, 4.0], [-5.0, 6.0, 7.0, 8.0]])
    assert l1_cost(weight, identity).item() == pytest.approx(3 + 4 + 5 + 6)
    assert l1_cost(weight, None).item() == pytest.approx(36)


def test_protopnet_loss_combines_the_terms_with_the_paper_weights():
    model = _model(num_prototypes=6)
    out = model(torch.randn(BATCH, 3, SIZE, SIZE))
    terms = model.compute_loss(out, torch.tensor([0, 2]))
    expected = terms["ce"] + 0.8 * terms["cluster"] - 0.08 * terms["separation"] + 1e-4 * terms["l1"]
    torch.testing.assert_close(terms["loss"], expected)


def test_lvw_alignment_is_zero_when_the_maps_agree_and_positive_otherwise():
    g = torch.Generator().manual_seed(0)
    sim, d = torch.rand(2, 12, 4, 4, generator=g), torch.rand(2, 12, generator=g)
    target = alignment_map(sim, d, (16, 16), top_k=3)
    assert alignment_loss(sim, d, target, top_k=3).item() == pytest.approx(0.0, abs=1e-12)
    assert alignment_loss(sim, d, torch.zeros_like(target), top_k=3).item() > 0
    assert target.flatten(1).max(1).values.tolist() == pytest.approx([1.0, 1.0], abs=1e-4)   # ÷ (max + 1e-5)
    # only the k nearest words count: changing a far word's map changes nothing
    far = d.argmax(dim=1)
    changed = sim.clone()
    changed[0, far[0]] = 100.0
    torch.testing.assert_close(alignment_map(changed, d, (16, 16), top_k=3)[0], target[0])


def test_lvw_needs_the_gradcam_maps_after_warm_up():
    model = _model("lvw")
    assert model.config["class_specific"] is False and model.num_prototypes == 5 * CLASSES
    out = model(torch.randn(BATCH, 3, SIZE, SIZE))
    with pytest.raises(ValueError, match="no 'attention_map'"):
        model.compute_loss(out, torch.tensor([0, 1]), batch={})
    model.stage = "warm"
    assert "alignment" not in model.compute_loss(out, torch.tensor([0, 1]), batch={})
    model.stage = "joint"
    terms = model.compute_loss(out, torch.tensor([0, 1]), batch={"attention_map": torch.rand(BATCH, SIZE, SIZE)})
    expected = terms["ce"] + 0.8 * terms["cluster"] + 1e-4 * terms["l1"] + 10 * terms["alignment"]
    torch.testing.assert_close(terms["loss"], expected)


def test_bad_options_are_refused_clearly():
    with pytest.raises(ValueError, match="num_prototypes=7 is not divisible by num_classes=3"):
        _model(num_prototypes=7)
    with pytest.raises(ValueError, match="unknown loss_weights"):
        _model(loss_weights={"alignment": 1.0})
    with pytest.raises(ValueError, match="add_on must be one of"):
        _model(add_on="wide")


def test_save_and_load_round_trip(tmp_path):
    model = _model("lvw", prototype_dim=16)
    model.save_pretrained(tmp_path / "m")
    loaded = seethrough.from_pretrained(tmp_path / "m").eval()
    images = torch.randn(BATCH, 3, SIZE, SIZE)
    torch.testing.assert_close(loaded(images).logits, model(images).logits)
    assert torch.equal(loaded.prototype_class_identity, model.prototype_class_identity)


def test_lvw_alignment_upsamples_as_the_original_unless_half_pixel():
    """Audit P5: LVW's train_and_test.py:117,120 upsamples with align_corners=True and divides by
    (max + 1e-5); the half-pixel variant differs."""
    torch.manual_seed(0)
    sim, d = torch.rand(2, 6, 4, 4), torch.rand(2, 6)
    original = alignment_map(sim, d, (16, 16), top_k=3)
    index = d.topk(3, dim=1, largest=False).indices
    chosen = sim.gather(1, index[:, :, None, None].expand(-1, -1, 4, 4))
    fused = torch.nn.functional.interpolate(chosen, size=(16, 16), mode="bilinear", align_corners=True).amax(1)
    reference = fused / (fused.flatten(1).amax(1)[:, None, None] + 1e-5)
    torch.testing.assert_close(original, reference)
    assert not torch.allclose(alignment_map(sim, d, (16, 16), top_k=3, upsample="half_pixel"), original, atol=1e-3)
    assert seethrough.create_model("lvw", num_classes=2, backbone="test_resnet").config["alignment_upsample"] == "original"
    with pytest.raises(ValueError, match="alignment_upsample must be one of original, half_pixel"):
        seethrough.create_model("lvw", num_classes=2, backbone="test_resnet", alignment_upsample="nearest")
