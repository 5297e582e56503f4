"""INTR (heads/intr.py, heads/intr_transformer.py) against independent re-derivations of the
paper's equations and DETR's conventions: shapes, one attention computation, the shared
presence vector, padding masks, bad input, frozen BatchNorm."""
import math

import pytest
import torch
from torch import nn
from torch.nn import functional as F

import seethrough
from seethrough.models import Backbone
from seethrough.models.heads.intr_transformer import sine_position_encoding_masked
from seethrough.models.position import sine_position_encoding

C, D, HEADS, LAYERS = 3, 32, 4, 2
TINY = dict(d_model=D, nheads=HEADS, num_encoder_layers=LAYERS, num_decoder_layers=LAYERS, dim_feedforward=64)


def make(**options):
    torch.manual_seed(0)
    values = {"backbone": "test_efficientnet", "output_stride": 8, **TINY, **options}
    return seethrough.create_model("intr", num_classes=C, **values).eval()


class SpaceToDepth(nn.Module):
    """A backbone without overlapping receptive fields: each ``stride×stride`` pixel cell becomes
    one feature position (space-to-depth), so padding whole cells leaves valid features exact."""

    def __init__(self, stride: int = 8, in_chans: int = 3) -> None:
        super().__init__()
        self.stride, self.name, self.num_features = stride, f"space_to_depth_{stride}", in_chans * stride**2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, s = x.shape[0], x.shape[1], self.stride
        h, w = x.shape[-2] // s, x.shape[-1] // s
        cells = x[..., : h * s, : w * s].reshape(b, c, h, s, w, s)
        return cells.permute(0, 1, 3, 5, 2, 4).reshape(b, c * s * s, h, w)


def make_cellwise(stride: int = 8, **options):
    """An INTR whose backbone is :class:`SpaceToDepth` (and a matching input_proj)."""
    model = make(**options)
    model.backbone = SpaceToDepth(stride)
    torch.manual_seed(1)
    model.input_proj = nn.Conv2d(model.backbone.num_features, D, kernel_size=1)
    return model.eval()


def capture(module: nn.Module, store: dict, key: str, *, inputs: bool = False):
    """Record a module's output (or positional + keyword inputs) under ``store[key]``."""
    if inputs:
        return module.register_forward_pre_hook(lambda m, args, kwargs: store.__setitem__(key, (args, kwargs)),
                                                with_kwargs=True)
    return module.register_forward_hook(lambda m, args, out: store.__setitem__(key, out))


def test_shapes_and_attention_rows_sum_to_one():
    model = make()
    out = model(torch.randn(2, 3, 64, 64))
    attn = out.extras["attention"]
    h, w = out.maps.shape[-2:]
    assert out.logits.shape == (2, C) and out.maps.shape == (2, C, 8, 8)
    assert attn.shape == (LAYERS, 2, HEADS, C, h * w)
    torch.testing.assert_close(attn.sum(-1), torch.ones(LAYERS, 2, HEADS, C))
    assert (attn >= 0).all()


def test_maps_are_the_last_layers_head_average_of_the_same_attention():
    model = make()
    out = model(torch.randn(2, 3, 64, 64))
    attn = out.extras["attention"]
    manual = sum(attn[-1, :, head] for head in range(HEADS)) / HEADS
    torch.testing.assert_close(out.maps, manual.reshape(out.maps.shape))


def test_logit_is_the_shared_presence_vector_on_the_final_layernormed_decoder_output():
    """s_c = wᵀ LN(z_c) + b with ONE w for all classes (the official hs[-1] → presence_vector)."""
    model = make()
    seen: dict = {}
    hooks = [capture(model.transformer.decoder.norm, seen, "z"),
             capture(model.transformer.decoder.layers[-1], seen, "last")]
    out = model(torch.randn(2, 3, 64, 64))
    for hook in hooks:
        hook.remove()
    z = seen["z"]
    assert z.shape == (2, C, D) and model.presence.weight.shape == (1, D)
    expected = z @ model.presence.weight[0] + model.presence.bias
    torch.testing.assert_close(out.logits, expected)
    torch.testing.assert_close(z, F.layer_norm(seen["last"][0], (D,), model.transformer.decoder.norm.weight,
                                               model.transformer.decoder.norm.bias))


def test_cross_attention_keys_are_the_encoder_memory_without_position_encoding():
    """Recompute the last layer's per-head cross-attention from its inputs: query = z + Q
    (Q = the class queries), key = value = encoder memory M (INTR: no position encoding)."""
    model = make()
    layer = model.transformer.decoder.layers[-1]
    seen: dict = {}
    hooks = [capture(model.transformer.encoder, seen, "memory"), capture(layer.norm1, seen, "z"),
             capture(layer.multihead_attn, seen, "cross", inputs=True),
             capture(model.transformer.decoder.layers[0], seen, "first", inputs=True)]
    out = model(torch.randn(2, 3, 64, 64))
    for hook in hooks:
        hook.remove()
    (query, key, value), _ = seen["cross"]
    memory = seen["memory"]
    assert torch.equal(key, memory) and torch.equal(value, memory)
    torch.testing.assert_close(query, seen["z"] + model.query_embed.weight)
    assert torch.equal(seen["first"][0][0], torch.zeros(2, C, D))  # z⁰ = 0
    w_q, w_k, _ = layer.multihead_attn.in_proj_weight.chunk(3)
    b_q, b_k, _ = layer.multihead_attn.in_proj_bias.chunk(3)
    dh = D // HEADS
    q = (query @ w_q.T + b_q).reshape(2, C, HEADS, dh).transpose(1, 2)
    k = (memory @ w_k.T + b_k).reshape(2, -1, HEADS, dh).transpose(1, 2)
    expected = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(dh), dim=-1)
    torch.testing.assert_close(out.extras["attention"][-1], expected, rtol=1e-4, atol=1e-6)


def test_encoder_attends_with_position_on_queries_and_keys_only():
    """q = k = F + P, v = F: the first encoder layer's self-attention gets those three."""
    model = make()
    seen: dict = {}
    hooks = [capture(model.transformer.encoder.layers[0].self_attn, seen, "attn", inputs=True),
             capture(model.input_proj, seen, "F")]
    model(torch.randn(1, 3, 64, 64))
    for hook in hooks:
        hook.remove()
    (q, k, v), kwargs = seen["attn"]
    feats = seen["F"].flatten(2).transpose(1, 2)
    pos = sine_position_encoding(8, 8, D).flatten(2).transpose(1, 2)
    assert torch.equal(q, k) and torch.equal(v, feats)
    torch.testing.assert_close(q, feats + pos)
    assert kwargs.get("need_weights") is False  # fused / memory-efficient SDPA path


def detr_sine(mask: torch.Tensor, dim: int) -> torch.Tensor:
    """DETR's PositionEmbeddingSine(dim/2, normalize=True), re-derived: sin of the even and cos
    of the odd frequencies interleaved by stacking, y features then x features."""
    feats = dim // 2
    valid = (~mask).float()
    y, x = valid.cumsum(1), valid.cumsum(2)
    y = y / (y[:, -1:, :] + 1e-6) * 2 * math.pi
    x = x / (x[:, :, -1:] + 1e-6) * 2 * math.pi
    dim_t = 10000 ** (2 * (torch.arange(feats) // 2) / feats)
    px, py = x[..., None] / dim_t, y[..., None] / dim_t
    px = torch.stack((px[..., 0::2].sin(), px[..., 1::2].cos()), dim=4).flatten(3)
    py = torch.stack((py[..., 0::2].sin(), py[..., 1::2].cos()), dim=4).flatten(3)
    return torch.cat((py, px), dim=3).permute(0, 3, 1, 2)


def test_masked_sine_encoding_is_detrs_and_ignores_bottom_right_padding():
    mask = torch.zeros(2, 5, 7, dtype=torch.bool)
    mask[1, 3:, :] = True
    mask[1, :, 4:] = True
    torch.testing.assert_close(sine_position_encoding_masked(mask, D), detr_sine(mask, D))
    torch.testing.assert_close(sine_position_encoding_masked(mask[:1], D), sine_position_encoding(5, 7, D))
    # the 3×4 valid corner of image 1 is encoded as an unpadded 3×4 map
    torch.testing.assert_close(sine_position_encoding_masked(mask, D)[1:, :, :3, :4], sine_position_encoding(3, 4, D))


def test_padded_feature_positions_do_not_change_logits():
    """Exact invariance at the transformer: extra positions masked as padding (any values) give
    the same logits and attention as the unpadded features; without the mask they would not."""
    model = make()
    feats = torch.randn(2, model.backbone.num_features, 5, 6)
    padded = torch.randn(2, model.backbone.num_features, 8, 8) * 10
    padded[..., :5, :6] = feats
    mask = torch.ones(2, 8, 8, dtype=torch.bool)
    mask[:, :5, :6] = False
    reference = model.head_forward(feats)
    out = model.head_forward(padded, mask)
    torch.testing.assert_close(out.logits, reference.logits, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out.maps[..., :5, :6], reference.maps, rtol=1e-5, atol=1e-6)
    assert out.maps[..., 5:, :].abs().max() == 0 and out.maps[..., :, 6:].abs().max() == 0
    unmasked = model.head_forward(padded)
    assert not torch.allclose(unmasked.logits, reference.logits, atol=1e-3)


def test_padding_an_image_with_a_padding_mask_keeps_its_logits():
    """Image level, batched with an image of another size. Exact only with a backbone whose
    receptive fields do not overlap (here space-to-depth, padding whole 8-px cells): a real CNN's
    convolutions let padded pixels leak into the features of nearby valid positions (and its
    BatchNorm/zero-padding see the new border), so pixel padding there is only approximately
    invariant — the masked transformer part is exact (previous test)."""
    model = make_cellwise()
    small, full = torch.randn(1, 3, 40, 48), torch.randn(1, 3, 64, 64)
    batch = torch.zeros(2, 3, 64, 64)
    batch[0, :, :40, :48], batch[1] = small[0], full[0]
    padding_mask = torch.ones(2, 64, 64, dtype=torch.bool)
    padding_mask[0, :40, :48] = False
    padding_mask[1] = False
    out = model(batch, padding_mask=padding_mask)
    torch.testing.assert_close(out.logits[:1], model(small).logits, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out.logits[1:], model(full).logits, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out.maps[:1, :, :5, :6], model(small).maps, rtol=1e-5, atol=1e-6)


def test_pre_norm_adds_the_encoder_norm_and_runs():
    post, pre = make(), make(pre_norm=True)
    assert post.transformer.encoder.norm is None and isinstance(pre.transformer.encoder.norm, nn.LayerNorm)
    out = pre(torch.randn(1, 3, 64, 64))
    torch.testing.assert_close(out.extras["attention"].sum(-1), torch.ones(LAYERS, 1, HEADS, C))


def test_names_mirror_detr_and_intr_for_checkpoint_conversion():
    keys = set(make().state_dict())
    for key in ["input_proj.weight", "query_embed.weight", "presence.weight", "presence.bias",
                "transformer.decoder.norm.weight", "transformer.encoder.layers.1.self_attn.in_proj_weight",
                "transformer.encoder.layers.0.linear1.weight", "transformer.encoder.layers.0.norm2.bias",
                "transformer.decoder.layers.1.multihead_attn.out_proj.weight",
                "transformer.decoder.layers.0.self_attn.in_proj_bias", "transformer.decoder.layers.0.norm3.weight"]:
        assert key in keys, key
    assert not any(k.startswith("transformer.encoder.norm") for k in keys)
    assert any(k.startswith("backbone.body.") for k in keys)


def test_defaults_are_intrs_and_the_init_is_detrs():
    model = seethrough.create_model("intr", num_classes=5, backbone="test_efficientnet")
    cfg = model.config
    assert (cfg["d_model"], cfg["nheads"], cfg["num_encoder_layers"], cfg["num_decoder_layers"],
            cfg["dim_feedforward"], cfg["dropout"], cfg["pre_norm"], cfg["frozen_bn"]) == (256, 8, 6, 6, 2048, 0.1,
                                                                                         False, True)
    assert len(model.transformer.encoder.layers) == 6 and len(model.transformer.decoder.layers) == 6
    in_proj = model.transformer.decoder.layers[0].multihead_attn.in_proj_weight  # 768×256
    bound = math.sqrt(6 / sum(in_proj.shape))  # Xavier-uniform
    assert in_proj.abs().max() <= bound and in_proj.abs().max() > 0.95 * bound
    presence = model.presence.weight   # nn.Linear's default (INTR without --finetune, audit I1)
    assert presence.abs().max() <= 1 / math.sqrt(256) and model.presence.bias.item() != 0
    assert cfg["presence_init"] == "default"


@pytest.mark.parametrize("options, message", [
    ({"nheads": 3}, r"nheads=3 does not divide d_model=32"),
    ({"d_model": 33, "nheads": 1}, r"d_model must be a positive even integer.*got 33"),
    ({"num_decoder_layers": 0}, "num_decoder_layers must be ≥ 1"),
    ({"dropout": 1.0}, r"dropout must be in \[0, 1\)"),
    ({"bogus": 1}, r"unknown options \['bogus'\]"),
])
def test_bad_options_are_refused_naming_the_value(options, message):
    with pytest.raises(ValueError, match=message):
        make(**options)


def test_images_smaller_than_the_stride_are_refused_naming_the_sizes():
    model = make_cellwise(stride=8)
    too_small = r"images of 6×20 px give a 0×2 feature map .*smaller than the backbone's stride"
    with pytest.raises(ValueError, match=too_small):
        model(torch.randn(1, 3, 6, 20))
    with pytest.raises(ValueError, match="0×0 feature map"):
        make().head_forward(torch.randn(1, 16, 0, 0))


def test_bad_padding_masks_are_refused():
    model = make_cellwise()
    with pytest.raises(ValueError, match=r"padding_mask must be B×H×W = \(1, 32, 32\)"):
        model(torch.randn(1, 3, 32, 32), padding_mask=torch.zeros(1, 16, 16, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"images \[0\] are padded everywhere"):
        model(torch.randn(1, 3, 32, 32), padding_mask=torch.ones(1, 32, 32, dtype=torch.bool))


def test_frozen_bn_keeps_batchnorm_fixed_through_a_training_step():
    model = make(dropout=0.0).train()
    bn_types = (nn.modules.batchnorm._BatchNorm,)
    assert not any(isinstance(m, bn_types) for m in model.backbone.modules())
    frozen = {name: buf.clone() for name, buf in model.backbone.named_buffers()}
    assert any(name.endswith("running_var") for name in frozen) and frozen
    before = {name: p.detach().clone() for name, p in model.backbone.named_parameters()}
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    loss = model.compute_loss(model(torch.randn(4, 3, 64, 64)), torch.tensor([0, 1, 2, 0]))["loss"]
    loss.backward()
    optimizer.step()
    for name, buf in model.backbone.named_buffers():
        assert torch.equal(buf, frozen[name]), name
    assert any(not torch.equal(p, before[name]) for name, p in model.backbone.named_parameters())


def test_frozen_bn_is_the_same_function_as_batchnorm_in_eval_and_off_by_default_elsewhere():
    torch.manual_seed(0)
    plain = Backbone("test_efficientnet")
    for module in plain.modules():  # non-trivial statistics and affine parameters
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.running_mean.uniform_(-1, 1), module.running_var.uniform_(0.5, 2)
            module.weight.data.uniform_(0.5, 1.5), module.bias.data.uniform_(-1, 1)
    frozen = Backbone("test_efficientnet", frozen_bn=True)
    frozen.load_state_dict(plain.state_dict())  # num_batches_tracked is dropped by the frozen layers
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(frozen.eval()(x), plain.eval()(x))
    fc = seethrough.create_model("fc", num_classes=C, backbone="test_efficientnet")
    assert fc.config["frozen_bn"] is False
    assert any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in fc.backbone.modules())


def test_save_and_load_round_trip(tmp_path):
    model = make()
    x = torch.randn(1, 3, 64, 64)
    loaded = seethrough.from_pretrained(model.save_pretrained(tmp_path / "intr")).eval()
    torch.testing.assert_close(loaded(x).logits, model(x).logits)


def test_a_thousand_classes_run():
    """1000 class queries (the O(C²) decoder self-attention) on a small image."""
    torch.manual_seed(0)
    model = seethrough.create_model("intr", num_classes=1000, backbone="test_efficientnet", **TINY).eval()
    out = model(torch.randn(1, 3, 32, 32))
    assert out.logits.shape == (1, 1000) and out.extras["attention"].shape[:4] == (LAYERS, 1, HEADS, 1000)


def test_presence_vector_keeps_torchs_init_unless_xavier_as_intrs_finetune():
    """Audit I1: INTR's util/misc.py:492-494 draws the presence vector Xavier/zero only when
    fine-tuning from DETR; otherwise nn.Linear's default init stays."""
    small = dict(num_classes=3, backbone="test_resnet", d_model=16, nheads=2, num_encoder_layers=1,
                 num_decoder_layers=1, dim_feedforward=16)
    torch.manual_seed(0)
    default = seethrough.create_model("intr", **small)
    torch.manual_seed(0)
    xavier = seethrough.create_model("intr", presence_init="xavier", **small)
    assert default.presence.bias.item() != 0.0 and xavier.presence.bias.item() == 0.0
    bound = 1 / 16 ** 0.5   # nn.Linear's default: U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    assert default.presence.weight.abs().max() <= bound
    with pytest.raises(ValueError, match="presence_init must be one of default, xavier"):
        seethrough.create_model("intr", presence_init="zeros", **small)
