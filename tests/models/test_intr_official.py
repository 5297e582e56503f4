"""``from_official("detr")`` and ``from_official("intr")`` on state dicts named like the originals.

The official code is not part of this repository. The state dicts below carry the parameter
names of facebookresearch/detr's ``DETR`` and Imageomics/INTR's ``INTR`` (both built from the
same modules): ``backbone.0.body.<torchvision ResNet>`` (FrozenBatchNorm2d: weight, bias,
running_mean, running_var), ``input_proj.*``, ``query_embed.weight``,
``transformer.{encoder,decoder}.layers.<i>.*``, ``transformer.decoder.norm.*``, plus DETR's
``class_embed.*`` and ``bbox_embed.layers.{0,1,2}.*`` or INTR's ``presence_vector.*``.
``official_forward`` re-implements the official INTR forward from that description
(sequence-first tensors, torchvision's ResNet with frozen BatchNorm as DETR's backbone, DETR's
masked sine encoding), independently of seethrough's model.
"""
from __future__ import annotations

import argparse
import logging
import math

import pytest
import torch
import torchvision
from torch import nn
from torch.nn import functional as F
from torchvision.ops import FrozenBatchNorm2d

import seethrough
from seethrough.models.official import list_official
from seethrough.models.official.intr import NOISE_FRAC

BACKBONE = "resnet18"
D_MODEL, NHEADS, FFN = 32, 4, 64
#: DETR's object-query count (the released detr-r50 checkpoint has 100).
DETR_QUERIES = 100
#: DETR's class_embed: 91 COCO classes + "no object".
DETR_COCO_LOGITS = 92
BATCH = 2
#: Non-square input so the y/x order of the position encoding matters: resnet18 → 2×3 features.
SIZE = (64, 96)
TOL = 1e-5
SMALL = dict(backbone=BACKBONE, d_model=D_MODEL, nheads=NHEADS, num_encoder_layers=1, num_decoder_layers=2,
             dim_feedforward=FFN)


pytestmark = pytest.mark.usefixtures("one_thread")


# --------------------------------------------------------------------------- official-named weights
def source_model(num_classes: int, *, pre_norm: bool = False, seed: int = 0) -> nn.Module:
    """A seethrough INTR with non-trivial frozen-BN statistics, biases and LayerNorms."""
    torch.manual_seed(seed)
    model = seethrough.create_model("intr", num_classes=num_classes, pre_norm=pre_norm, **SMALL)
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for key, value in model.state_dict().items():
            if key.endswith("running_var"):
                value.copy_(torch.rand(value.shape, generator=g) + 0.5)
            elif value.is_floating_point() and not key.endswith("weight") or ".norm" in key:
                value.add_(torch.randn(value.shape, generator=g) * 0.1)
    return model.eval()


def official_names(model: nn.Module, kind: str) -> dict[str, torch.Tensor]:
    """Our state dict under the original's names: INTR's, or DETR's with its detection heads."""
    out = {}
    for key, value in model.state_dict().items():
        if key.startswith("backbone.body."):
            key = "backbone.0.body." + key[len("backbone.body."):]
        elif key.startswith("presence."):
            if kind == "detr":
                continue
            key = "presence_vector." + key[len("presence."):]
        out[key] = value.clone()
    if kind == "detr":
        g = torch.Generator().manual_seed(7)
        out["class_embed.weight"] = torch.randn(DETR_COCO_LOGITS, D_MODEL, generator=g)
        out["class_embed.bias"] = torch.randn(DETR_COCO_LOGITS, generator=g)
        for i, width in enumerate((D_MODEL, D_MODEL, 4)):  # DETR's MLP(d, d, 4, num_layers=3)
            out[f"bbox_embed.layers.{i}.weight"] = torch.randn(width, D_MODEL, generator=g)
            out[f"bbox_embed.layers.{i}.bias"] = torch.randn(width, generator=g)
    return out


# --------------------------------------------------------------------------- reference forward
def _resnet_features(sd: dict, x: torch.Tensor) -> torch.Tensor:
    """DETR's backbone: torchvision's ResNet with FrozenBatchNorm2d, up to layer4."""
    net = getattr(torchvision.models, BACKBONE)(weights=None, norm_layer=FrozenBatchNorm2d)
    body = {k[len("backbone.0.body."):]: v for k, v in sd.items() if k.startswith("backbone.0.body.")}
    missing, unexpected = net.load_state_dict(body, strict=False)
    assert not unexpected and all(k.startswith("fc.") for k in missing)
    net.eval()
    x = net.maxpool(net.relu(net.bn1(net.conv1(x))))
    return net.layer4(net.layer3(net.layer2(net.layer1(x))))


def _masked_sine(mask: torch.Tensor, dim: int) -> torch.Tensor:
    """DETR's PositionEmbeddingSine(dim/2, normalize=True): cumulative counts of unpadded positions."""
    feats = dim // 2
    not_mask = (~mask).float()
    y_embed, x_embed = not_mask.cumsum(1), not_mask.cumsum(2)
    y_embed = y_embed / (y_embed[:, -1:, :] + 1e-6) * 2 * math.pi
    x_embed = x_embed / (x_embed[:, :, -1:] + 1e-6) * 2 * math.pi
    dim_t = 10000 ** (2 * (torch.arange(feats, dtype=torch.float32) // 2) / feats)
    px, py = x_embed[..., None] / dim_t, y_embed[..., None] / dim_t
    px = torch.stack((px[..., 0::2].sin(), px[..., 1::2].cos()), dim=4).flatten(3)
    py = torch.stack((py[..., 0::2].sin(), py[..., 1::2].cos()), dim=4).flatten(3)
    return torch.cat((py, px), dim=3).permute(0, 3, 1, 2)


def _mha(sd: dict, prefix: str, q, k, v, mask):
    """nn.MultiheadAttention (sequence-first) from its state-dict entries; weights per head."""
    return F.multi_head_attention_forward(
        q, k, v, D_MODEL, NHEADS, sd[prefix + "in_proj_weight"], sd[prefix + "in_proj_bias"], None, None, False,
        0.0, sd[prefix + "out_proj.weight"], sd[prefix + "out_proj.bias"], training=False, key_padding_mask=mask,
        need_weights=True, average_attn_weights=False)


def _ln(sd, prefix, x):
    return F.layer_norm(x, (D_MODEL,), sd[prefix + "weight"], sd[prefix + "bias"])


def _ffn(sd, prefix, x):
    hidden = F.relu(F.linear(x, sd[prefix + "linear1.weight"], sd[prefix + "linear1.bias"]))
    return F.linear(hidden, sd[prefix + "linear2.weight"], sd[prefix + "linear2.bias"])


@torch.no_grad()
def official_forward(sd: dict, x: torch.Tensor, padding_mask: torch.Tensor | None = None, *, pre_norm=False):
    """INTR's ``query_logits`` B×C and ``attention_scores`` L×B×heads×C×N, in eval mode."""
    feats = _resnet_features(sd, x)
    if padding_mask is None:
        padding_mask = torch.zeros(x.shape[0], *x.shape[-2:], dtype=torch.bool)
    mask = F.interpolate(padding_mask[None].float(), size=feats.shape[-2:]).to(torch.bool)[0]
    pos = _masked_sine(mask, D_MODEL).flatten(2).permute(2, 0, 1)          # N×B×d
    src = F.conv2d(feats, sd["input_proj.weight"], sd["input_proj.bias"]).flatten(2).permute(2, 0, 1)
    mask = mask.flatten(1)
    for i in range(len({k.split(".")[3] for k in sd if k.startswith("transformer.encoder.layers.")})):
        p = f"transformer.encoder.layers.{i}."
        if pre_norm:
            s = _ln(sd, p + "norm1.", src)
            src = src + _mha(sd, p + "self_attn.", s + pos, s + pos, s, mask)[0]
            src = src + _ffn(sd, p, _ln(sd, p + "norm2.", src))
        else:
            src = _ln(sd, p + "norm1.", src + _mha(sd, p + "self_attn.", src + pos, src + pos, src, mask)[0])
            src = _ln(sd, p + "norm2.", src + _ffn(sd, p, src))
    memory = _ln(sd, "transformer.encoder.norm.", src) if pre_norm else src
    query_pos = sd["query_embed.weight"][:, None].repeat(1, x.shape[0], 1)  # C×B×d
    tgt, attention = torch.zeros_like(query_pos), []
    for i in range(len({k.split(".")[3] for k in sd if k.startswith("transformer.decoder.layers.")})):
        p = f"transformer.decoder.layers.{i}."
        if pre_norm:
            t = _ln(sd, p + "norm1.", tgt)
            tgt = tgt + _mha(sd, p + "self_attn.", t + query_pos, t + query_pos, t, None)[0]
            out, weights = _mha(sd, p + "multihead_attn.", _ln(sd, p + "norm2.", tgt) + query_pos, memory, memory, mask)
            tgt = tgt + out
            tgt = tgt + _ffn(sd, p, _ln(sd, p + "norm3.", tgt))
        else:
            q = tgt + query_pos
            tgt = _ln(sd, p + "norm1.", tgt + _mha(sd, p + "self_attn.", q, q, tgt, None)[0])
            out, weights = _mha(sd, p + "multihead_attn.", tgt + query_pos, memory, memory, mask)  # keys: no pos
            tgt = _ln(sd, p + "norm2.", tgt + out)
            tgt = _ln(sd, p + "norm3.", tgt + _ffn(sd, p, tgt))
        attention.append(weights)
    hs = _ln(sd, "transformer.decoder.norm.", tgt).transpose(0, 1)             # B×C×d
    logits = F.linear(hs, sd["presence_vector.weight"], sd["presence_vector.bias"]).squeeze(-1)
    return logits, torch.stack(attention)


def _images(seed: int = 3) -> torch.Tensor:
    return torch.randn(BATCH, 3, *SIZE, generator=torch.Generator().manual_seed(seed))


# --------------------------------------------------------------------------- INTR checkpoints
def test_kinds_registered():
    assert {"detr", "intr", "scouter"} <= set(list_official())


@pytest.mark.parametrize("pre_norm", [False, True])
def test_intr_round_trip_matches_source_and_official_forward(pre_norm):
    source = source_model(5, pre_norm=pre_norm)
    sd = official_names(source, "intr")
    model = seethrough.from_official("intr", sd, nheads=NHEADS).eval()
    assert model.config["num_classes"] == 5 and model.config["backbone"] == BACKBONE  # resnet18 from its blocks
    for key in ("d_model", "num_encoder_layers", "num_decoder_layers", "dim_feedforward", "pre_norm", "nheads"):
        assert model.config[key] == source.config[key], key
    x = _images()
    with torch.no_grad():
        ours, theirs = model(x), source(x)
    logits, attention = official_forward(sd, x, pre_norm=pre_norm)
    torch.testing.assert_close(ours.logits, theirs.logits, rtol=0, atol=TOL)
    torch.testing.assert_close(ours.extras["attention"], theirs.extras["attention"], rtol=0, atol=TOL)
    torch.testing.assert_close(ours.logits, logits, rtol=0, atol=TOL)
    torch.testing.assert_close(ours.extras["attention"], attention, rtol=0, atol=TOL)
    torch.testing.assert_close(ours.maps.flatten(2), attention[-1].mean(1), rtol=0, atol=TOL)


def test_intr_padded_batch_matches_official_forward():
    sd = official_names(source_model(4), "intr")
    model = seethrough.from_official("intr", sd, nheads=NHEADS).eval()
    x = _images()
    padding = torch.zeros(BATCH, *SIZE, dtype=torch.bool)
    padding[1, 40:, :] = True  # DETR pads bottom/right
    padding[1, :, 64:] = True
    x[1][:, padding[1]] = 0
    logits, attention = official_forward(sd, x, padding)
    with torch.no_grad():
        out = model(x, padding_mask=padding)
    torch.testing.assert_close(out.logits, logits, rtol=0, atol=TOL)
    torch.testing.assert_close(out.extras["attention"], attention, rtol=0, atol=TOL)


def test_intr_checkpoint_file_with_args(tmp_path):
    """The layout main.py saves; nheads and backbone come from ``args``."""
    source = source_model(3)
    args = argparse.Namespace(backbone=BACKBONE, nheads=NHEADS, hidden_dim=D_MODEL, enc_layers=1, dec_layers=2,
                              dim_feedforward=FFN, dropout=0.1, pre_norm=False, dilation=False,
                              position_embedding="sine", num_queries=3, dataset_name="cub")
    path = tmp_path / "checkpoint.pth"
    torch.save({"model": official_names(source, "intr"), "optimizer": {"state": {}, "param_groups": []},
                "lr_scheduler": {"step_size": 80, "last_epoch": 5}, "epoch": 4, "args": args}, path)
    model = seethrough.from_official("intr", path, num_queries=3, hidden_dim=D_MODEL).eval()
    x = _images()
    with torch.no_grad():
        torch.testing.assert_close(model(x).logits, source(x).logits, rtol=0, atol=TOL)
    assert model.config["nheads"] == NHEADS and model.config["dropout"] == 0.1


# --------------------------------------------------------------------------- DETR initialization
def test_detr_initializes_intr_as_intr_does(caplog):
    detr = source_model(DETR_QUERIES)
    sd = official_names(detr, "detr")
    classes, seed = 250, 11
    state_before = torch.random.get_rng_state()
    with caplog.at_level(logging.INFO, logger="seethrough.models.official.intr"):
        model = seethrough.from_official("detr", {"model": sd}, num_classes=classes, seed=seed, nheads=NHEADS)
    assert torch.equal(torch.random.get_rng_state(), state_before)  # seeded on a forked generator
    assert "class_embed.weight" in caplog.text and "bbox_embed.layers.2.bias" in caplog.text
    assert model.config["num_classes"] == classes and model.config["backbone"] == BACKBONE
    own = model.state_dict()
    for key, value in detr.state_dict().items():  # backbone (frozen-BN buffers too), input_proj, transformer
        if not key.startswith(("query_embed.", "presence.")):
            assert torch.equal(own[key], value), key

    # INTR's util/misc.py load_model, written out: tile 100 → C, noise on the new rows, then the presence vector
    queries = sd["query_embed.weight"]
    torch.manual_seed(seed)
    noise = torch.randn(classes - DETR_QUERIES, D_MODEL) * NOISE_FRAC
    presence = nn.init.xavier_uniform_(torch.empty(1, D_MODEL))
    tiled = torch.cat([queries, queries, queries[:classes - 2 * DETR_QUERIES]])
    assert torch.equal(own["query_embed.weight"][:DETR_QUERIES], queries)  # DETR's queries kept exactly
    torch.testing.assert_close(own["query_embed.weight"][DETR_QUERIES:], tiled[DETR_QUERIES:] + noise, rtol=0, atol=0)
    added = own["query_embed.weight"][DETR_QUERIES:] - tiled[DETR_QUERIES:]
    assert 0.08 < added.std().item() < 0.12 and abs(added.mean().item()) < 0.02
    assert torch.equal(own["presence.weight"], presence) and torch.equal(own["presence.bias"], torch.zeros(1))

    again = seethrough.from_official("detr", sd, num_classes=classes, seed=seed, nheads=NHEADS)
    other = seethrough.from_official("detr", sd, num_classes=classes, seed=seed + 1, nheads=NHEADS)
    assert torch.equal(again.query_embed.weight, model.query_embed.weight)
    assert not torch.equal(other.query_embed.weight, model.query_embed.weight)
    with torch.no_grad():
        out = model.eval()(_images())
    assert out.logits.shape == (BATCH, classes) and torch.isfinite(out.logits).all()


@pytest.mark.parametrize("classes", [30, DETR_QUERIES])
def test_detr_truncates_or_keeps_queries_without_noise(classes):
    sd = official_names(source_model(DETR_QUERIES), "detr")
    model = seethrough.from_official("detr", sd, num_classes=classes, seed=0, nheads=NHEADS)
    assert torch.equal(model.query_embed.weight, sd["query_embed.weight"][:classes])


def test_detr_panoptic_and_unfrozen_batchnorm():
    """DETRsegm wraps DETR under ``detr.``; with frozen_bn=False the BN counters come from the new model."""
    sd = official_names(source_model(DETR_QUERIES), "detr")
    panoptic = {"detr." + k: v for k, v in sd.items()}
    panoptic["bbox_attention.q_linear.weight"] = torch.zeros(D_MODEL, D_MODEL)
    panoptic["mask_head.lay1.weight"] = torch.zeros(8, D_MODEL + NHEADS, 3, 3)
    model = seethrough.from_official("detr", panoptic, num_classes=7, nheads=NHEADS, frozen_bn=False)
    assert isinstance(model.backbone.body.bn1, nn.BatchNorm2d) and model.config["frozen_bn"] is False
    assert torch.equal(model.backbone.body.bn1.running_var, sd["backbone.0.body.bn1.running_var"])


# --------------------------------------------------------------------------- bad input
@pytest.fixture(scope="module")
def intr_sd() -> dict:
    return official_names(source_model(7), "intr")


@pytest.mark.parametrize("options, words", [
    (dict(num_classes=5), ["num_classes=5", "query_embed.weight", "(7, 32)", "(5, 32)"]),
    (dict(hidden_dim=64), ["d_model=64", "query_embed.weight", "(7, 32)", "(7, 64)"]),
    (dict(num_decoder_layers=6), ["num_decoder_layers=6", "2 transformer.decoder.layers"]),
    (dict(dim_feedforward=2048), ["dim_feedforward=2048", "linear1.weight", "(64, 32)"]),
    (dict(pre_norm=True), ["pre_norm=True", "transformer.encoder.norm"]),
    (dict(pretrained=True), ["pretrained"]),
    (dict(dilation=True, output_stride=8), ["dilation=True", "output_stride=16"]),
    (dict(seed=0), ["unknown options", "seed"]),
])
def test_intr_options_checked_against_checkpoint(intr_sd, options, words):
    with pytest.raises(ValueError) as err:
        seethrough.from_official("intr", intr_sd, nheads=NHEADS, **options)
    for word in words:
        assert word in str(err.value)


def test_intr_dilation_means_output_stride_16(intr_sd):
    """DETR's DC5 (--dilation): layer4's stride becomes a dilation; same weights, twice the grid."""
    model = seethrough.from_official("intr", intr_sd, nheads=NHEADS, dilation=True).eval()
    assert model.config["output_stride"] == 16
    with torch.no_grad():
        assert model(_images()).maps.shape[-2:] == (SIZE[0] // 16, SIZE[1] // 16)


def test_intr_missing_unexpected_and_backbone_mismatch(intr_sd):
    missing = {k: v for k, v in intr_sd.items() if k != "transformer.decoder.layers.1.norm3.weight"}
    with pytest.raises(ValueError, match=r"(?s)1 missing keys.*layers\.1\.norm3\.weight.*Fix: the transformer weights"):
        seethrough.from_official("intr", missing, nheads=NHEADS)
    extra = {**intr_sd, "aux_head.weight": torch.zeros(1)}
    with pytest.raises(ValueError, match=r"unexpected keys.*aux_head\.weight"):
        seethrough.from_official("intr", extra, nheads=NHEADS)
    with pytest.raises(ValueError, match=r"those of resnet18\) do not fit backbone='resnet34'"):
        seethrough.from_official("intr", intr_sd, nheads=NHEADS, backbone="resnet34")


def test_checkpoints_of_another_kind(intr_sd):
    detr_sd = official_names(source_model(DETR_QUERIES), "detr")
    with pytest.raises(ValueError, match=r"DETR checkpoint.*from_official\('detr'"):
        seethrough.from_official("intr", detr_sd)
    with pytest.raises(ValueError, match=r"INTR checkpoint.*from_official\('intr'"):
        seethrough.from_official("detr", intr_sd, num_classes=3)
    with pytest.raises(ValueError, match="needs num_classes=C"):
        seethrough.from_official("detr", detr_sd)
    with pytest.raises(ValueError, match="SCOUTER"):
        seethrough.from_official("intr", {"slot.initial_slots": torch.zeros(1, 3, 8)})
    own = source_model(3).state_dict()
    with pytest.raises(ValueError, match="seethrough state dict"):
        seethrough.from_official("intr", own)
    learned = {**intr_sd, "backbone.1.row_embed.weight": torch.zeros(50, D_MODEL // 2)}
    with pytest.raises(ValueError, match="learned position encoding"):
        seethrough.from_official("intr", learned)


def test_convert_command_records_detrs_evaluation_resize(tmp_path):
    """``seethrough convert intr`` writes a model directory evaluated with DETR's resize."""
    from typer.testing import CliRunner

    from seethrough.cli import app
    from seethrough.models.loading import load_for_inference

    source = source_model(3)
    torch.save({"model": official_names(source, "intr")}, tmp_path / "intr.pth")
    result = CliRunner().invoke(app, ["convert", "intr", str(tmp_path / "intr.pth"), "--out", str(tmp_path / "m"),
                                      "--opt", f"backbone={BACKBONE}", "--opt", f"nheads={NHEADS}"])
    assert result.exit_code == 0, result.output
    loaded = load_for_inference(tmp_path / "m")
    assert loaded.resize == "detr"
    x = _images()
    with torch.no_grad():
        torch.testing.assert_close(loaded.model(x).logits, source(x).logits, rtol=0, atol=TOL)
