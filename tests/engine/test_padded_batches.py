"""Padded batches of differently sized images (resize "detr"): collate, the mask's way to the model."""
from __future__ import annotations

import functools
from pathlib import Path

import pytest
import torch

import seethrough
from seethrough.core.checkpoint import load_checkpoint, save_checkpoint
from seethrough.data import build_dataset
from seethrough.data.base import PADDING_MASK, collate
from seethrough.engine import train
from seethrough.engine.trainer import check_padding_support
from seethrough.engine.validate import accepts_padding_mask, forward_batch
from seethrough.models.heads.intr import INTR

#: DETR's recipe shrunk to 32–64 px synthetic images (a stride-32 backbone sees 1–2 positions a side).
TINY_DETR = dict(scales=[48, 64], max_size=96, crop_scales=[40, 48], crop_min_size=32, crop_max_size=40,
                 eval_size=48)
TINY_INTR = dict(d_model=32, nheads=2, num_encoder_layers=1, num_decoder_layers=1, dim_feedforward=64)
SYNTHETIC = {"num_samples": 16, "img_size": 32, "num_classes": 3}


def sample(height: int, width: int, index: int, *, mask: bool = True) -> dict:
    item = {"image": torch.randn(3, height, width), "label": index % 2, "index": index, "id": f"s{index}",
            "boxes": torch.tensor([[1.0, 2.0, width - 1.0, height - 1.0]])}
    if mask:
        item["mask"] = torch.ones(height, width, dtype=torch.bool)
    return item


# -- collate --------------------------------------------------------------------------------------

def test_collate_pads_bottom_right_and_marks_the_padding():
    samples = [sample(4, 6, 0), sample(6, 5, 1), None]
    batch = collate(samples)
    assert batch["skipped"] == 1 and batch["image"].shape == (2, 3, 6, 6)
    assert torch.equal(batch["image"][0, :, :4, :6], samples[0]["image"])
    assert torch.equal(batch["image"][1, :, :6, :5], samples[1]["image"])
    assert not batch["image"][0, :, 4:].any() and not batch["image"][1, :, :, 5:].any()  # zeros
    padding = batch[PADDING_MASK]
    assert padding.dtype == torch.bool and padding.shape == (2, 6, 6)
    expected = torch.ones(2, 6, 6, dtype=torch.bool)
    expected[0, :4, :6] = False
    expected[1, :6, :5] = False
    assert torch.equal(padding, expected)
    assert torch.equal(batch["mask"], ~expected)  # ground-truth masks padded with False
    for boxes, original in zip(batch["boxes"], samples[:2]):
        assert torch.equal(boxes, original["boxes"])  # the origin stays at the top left


def test_collate_of_one_size_is_unchanged_and_has_no_padding_mask():
    samples = [sample(5, 7, i) for i in range(3)]
    batch = collate(samples)
    assert PADDING_MASK not in batch
    assert torch.equal(batch["image"], torch.stack([s["image"] for s in samples]))
    assert torch.equal(batch["mask"], torch.stack([s["mask"] for s in samples]))


def test_collate_without_masks_pads_only_the_images():
    batch = collate([sample(4, 4, 0, mask=False), sample(3, 5, 1, mask=False)])
    assert "mask" not in batch and batch["image"].shape == (2, 3, 4, 5)
    assert batch[PADDING_MASK].sum().item() == (20 - 16) + (20 - 15)


# -- the model side ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def fc():
    return seethrough.create_model("fc", num_classes=3, backbone="test_efficientnet").eval()


def test_a_model_without_padding_mask_is_refused_a_padded_batch(fc):
    assert not accepts_padding_mask(fc)
    assert accepts_padding_mask(seethrough.create_model("intr", num_classes=3, backbone="test_efficientnet",
                                                        **TINY_INTR))
    same = collate([sample(32, 32, 0), sample(32, 32, 1)])
    assert forward_batch(fc, same).logits.shape == (2, 3)
    padded = collate([sample(32, 32, 0), sample(64, 32, 1)])
    with pytest.raises(ValueError, match="cannot ignore padding.*resize: square"):
        forward_batch(fc, padded)


def test_the_trainer_refuses_such_a_model_before_reading_data(tiny_config, fc):
    cfg = tiny_config(model="fc", resize="detr", resize_options=TINY_DETR, batch_size=4)
    with pytest.raises(ValueError, match="--model fc cannot ignore padding"):
        check_padding_support(fc, cfg)
    check_padding_support(fc, tiny_config(model="fc", resize="detr", batch_size=1))
    check_padding_support(fc, tiny_config(model="fc"))


@pytest.mark.slow
def test_intr_trains_on_padded_batches_and_receives_the_mask(tiny_config, monkeypatch):
    calls: list[dict] = []
    original = INTR.forward

    @functools.wraps(original)
    def spy(self, images, padding_mask=None):
        calls.append({"training": self.training, "shape": tuple(images.shape),
                      "mask": None if padding_mask is None else padding_mask.clone()})
        return original(self, images, padding_mask=padding_mask)

    monkeypatch.setattr(INTR, "forward", spy)
    cfg = tiny_config(model="intr", model_options=TINY_INTR, data_options=SYNTHETIC, resize="detr",
                      augment="detr", resize_options=TINY_DETR, batch_size=4, epochs=1, lr=1e-4)
    summary = train(cfg)
    assert summary["steps"] == 4 and summary["val_loss"] is not None
    padded = [c for c in calls if c["training"] and c["mask"] is not None]
    assert padded, "no training batch was padded"
    for call in padded:
        b, _, h, w = call["shape"]
        assert call["mask"].shape == (b, h, w) and call["mask"].any()
        assert not call["mask"][:, 0, 0].any()  # every image starts at the top left
    # evaluation: shorter side 48 of square synthetic images, one size, so no padding
    assert all(c["shape"][-2:] == (48, 48) and c["mask"] is None for c in calls if not c["training"])
    card = (Path(cfg.out) / "best" / "config.json").read_text()
    assert '"resize": "detr"' in card and '"eval_size": 48' in card


# -- fixed-size runs as before ------------------------------------------------------------------

@pytest.mark.slow
def test_square_runs_resume_from_checkpoints_that_predate_resize(tiny_config):
    cfg = tiny_config(epochs=1, data_options=SYNTHETIC)
    train(cfg)
    path = Path(cfg.out) / "last.ckpt"
    ckpt = load_checkpoint(path)
    for key in ("resize", "resize_options"):
        del ckpt["config"][key]
    save_checkpoint(ckpt, path)
    summary = train(tiny_config(epochs=2, data_options=SYNTHETIC, resume=True))
    assert summary["epochs"] == 2


@pytest.mark.slow
def test_inference_keeps_the_detr_geometry_and_eval_runs(tiny_config, tmp_path):
    """A ``resize: detr`` run is evaluated as trained; explanations use the square fallback."""
    from seethrough.models.loading import load_for_inference
    from seethrough.validation import validate

    cfg = tiny_config(model="intr", model_options=TINY_INTR, data_options=SYNTHETIC, resize="detr",
                      augment="detr", resize_options=TINY_DETR, batch_size=4, epochs=1, lr=1e-4)
    train(cfg)
    for source in (Path(cfg.out), Path(cfg.out) / "last.ckpt"):
        loaded = load_for_inference(source)
        assert loaded.resize == "detr" and loaded.resize_options["eval_size"] == 48
    dataset = build_dataset("synthetic", "val", **SYNTHETIC)
    dataset.transform = loaded.transform()
    assert dataset[0]["image"].shape[-2:] == (48, 48)
    dataset.transform = loaded.transform(square=True)
    assert dataset[0]["image"].shape[-2:] == (32, 32)
    result = validate(str(cfg.out), "synthetic", data_options=SYNTHETIC, batch_size=4, workers=0,
                                 accelerator="cpu")
    assert result["samples"] == 16
