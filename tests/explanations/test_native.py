"""explain_batch / render_batch with a real FC model (CAM maps) on random 32×32 images."""
import json

import numpy as np
import pytest
import torch
from PIL import Image

import seethrough
from seethrough.explanations import SUMMARY_FILENAME, denormalize, explain_batch, normalize, render_batch

NUM_CLASSES, SIZE, BATCH = 5, 32, 2
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
NAMES = ["cat", "dog/wolf", "über café", "fish", "bird"]


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return seethrough.create_model("fc", num_classes=NUM_CLASSES, backbone="resnet18")


@pytest.fixture(scope="module")
def images():
    return torch.randn(BATCH, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(1))


def test_shapes_probs_and_ranges(model, images):
    result = explain_batch(model, images, k=3)
    assert result["classes"].shape == (BATCH, 3) and result["probs"].shape == (BATCH, 3)
    assert result["maps"].shape == (BATCH, 3, SIZE, SIZE)
    assert result["logits"].shape == (BATCH, NUM_CLASSES)
    softmax = torch.softmax(result["logits"], dim=1)
    assert torch.allclose(result["probs"], softmax.gather(1, result["classes"]))
    assert (result["probs"][:, :-1] >= result["probs"][:, 1:]).all()  # "pred" is descending
    assert result["maps"].min() >= 0 and result["maps"].max() <= 1
    assert result["sign"] == 1 and result["normalize"] == "joint"


def test_joint_normalization_uses_all_classes_before_gathering(model, images):
    result = explain_batch(model, images, indices=[2], normalize="joint")
    with torch.no_grad():
        raw = model.eval()(images).maps
    expected = torch.nn.functional.interpolate(
        normalize(raw, "joint")[:, 2:3], size=(SIZE, SIZE), mode="bilinear", align_corners=False
    )
    assert torch.allclose(result["maps"], expected, atol=1e-6)
    per_class = explain_batch(model, images, indices=[2], normalize="minmax")
    assert not torch.allclose(result["maps"], per_class["maps"])


def test_training_mode_restored_per_module(model, images):
    model.train()
    model.backbone.eval()  # e.g. a frozen stage kept in eval mode on purpose
    explain_batch(model, images, policy="gt", labels=[0, 4])
    assert model.training and not model.backbone.training
    model.eval()
    explain_batch(model, images)
    assert not model.training


def test_sign_is_validated(model, images):
    assert explain_batch(model, images, k=1, sign=-1)["sign"] == -1
    with pytest.raises(ValueError, match="sign"):
        explain_batch(model, images, sign=2)


def test_render_batch_writes_pngs_and_round_tripping_json(model, images, tmp_path):
    result = explain_batch(model, images, indices=[1, 2])
    paths = render_batch(result, denormalize(images, MEAN, STD), NAMES, tmp_path, ["img/0", "img 1"])
    assert all(p.parent == tmp_path and p.exists() for p in paths)
    assert {p.name for p in paths} == {
        "img_0_explanation.png", "img_0_dog_wolf.png", "img_0_über_café.png",
        "img_1_explanation.png", "img_1_dog_wolf.png", "img_1_über_café.png", SUMMARY_FILENAME,
    }
    for path in paths[:-1]:
        with Image.open(path) as png:
            png.load()
            if not path.name.endswith("_explanation.png"):
                assert png.size == (SIZE, SIZE)

    summary = json.loads((tmp_path / SUMMARY_FILENAME).read_text(encoding="utf-8"))
    assert summary["policy"] == "explicit" and summary["normalize"] == "joint"
    for i, record in enumerate(summary["images"]):
        assert record["classes"] == [1, 2]
        assert record["names"] == ["dog/wolf", "über café"]
        assert np.allclose(record["probs"], result["probs"][i].tolist())
        assert (tmp_path / record["grid"]).exists()
        assert all((tmp_path / name).exists() for name in record["overlays"])


def test_render_batch_errors(model, images, tmp_path):
    result = explain_batch(model, images, k=2)
    pictures = denormalize(images, MEAN, STD)
    with pytest.raises(ValueError, match="stems"):
        render_batch(result, pictures, NAMES, tmp_path, ["only-one"])
    with pytest.raises(ValueError, match="has no name"):
        render_batch(result, pictures, NAMES[:0], tmp_path, ["a", "b"])
    assert not any(tmp_path.iterdir())  # nothing written on bad input
