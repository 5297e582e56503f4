"""render_gallery and this_looks_like_that on a tiny pushed ProtoPNet."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from prototype_fixtures import IMG_SIZE, MEAN, NUM_PROTOTYPES, STD, make_loader, make_model
from torch.nn import functional as F

from seethrough.prototypes import (
    high_activation_box,
    measure_receptive_field,
    push_prototypes,
    render_gallery,
    this_looks_like_that,
)


@pytest.fixture(scope="module")
def pushed(dataset, tmp_path_factory):
    """(model, push result, gallery dict, gallery folder), rendered once for the module."""
    torch.set_num_threads(1)
    model = make_model()
    result = push_prototypes(model, make_loader(dataset))
    out = tmp_path_factory.mktemp("gallery")
    gallery = render_gallery(model, dataset, result, out, mean=MEAN, std=STD, batch_size=3)
    return model, result, gallery, out


def upsampled_map(model, dataset, index: int, j: int) -> np.ndarray:
    """Prototype j's similarity map on image ``index``, through the model's own forward."""
    with torch.no_grad():
        output = model(dataset[index]["image"][None])
    heat = output.extras["prototype_similarity"][:, j:j + 1]
    return F.interpolate(heat, size=(IMG_SIZE, IMG_SIZE), mode="bicubic", align_corners=False)[0, 0].numpy()


def test_files_exist_with_the_right_sizes(pushed):
    _, _, gallery, out = pushed
    saved = json.loads((out / "gallery.json").read_text())
    assert saved == gallery and len(saved["prototypes"]) == NUM_PROTOTYPES
    for row in saved["prototypes"]:
        x0, y0, x1, y1 = row["crop_box"]
        sizes = {"source": (IMG_SIZE, IMG_SIZE), "overlay": (IMG_SIZE, IMG_SIZE), "crop": (x1 - x0, y1 - y0)}
        for kind, size in sizes.items():
            with Image.open(out / row["files"][kind]) as picture:
                assert picture.format == "PNG" and picture.size == size, (row["prototype"], kind)


def test_json_agrees_with_the_push_and_the_dataset(pushed, dataset):
    model, result, gallery, _ = pushed
    field = measure_receptive_field(model, IMG_SIZE)
    for j, row in enumerate(gallery["prototypes"]):
        sample = dataset[row["index"]]
        assert row["prototype"] == j
        assert (row["index"], row["y"], row["x"]) == (int(result.index[j]), int(result.y[j]), int(result.x[j]))
        assert row["distance"] == pytest.approx(float(result.distance[j]))
        assert row["label"] == sample["label"] == row["prototype_class"]  # class-specific push
        assert row["sample_id"] == sample["id"] and row["class_name"] == dataset.classes[row["label"]]
        assert row["rf_box"] == list(field.box(row["y"], row["x"]))
        x0, y0, x1, y1 = row["crop_box"]
        assert 0 <= x0 < x1 <= IMG_SIZE and 0 <= y0 < y1 <= IMG_SIZE
    assert gallery["box_format"].startswith("xyxy") and gallery["latent_size"] == [4, 4]


def test_crop_box_holds_the_peak_of_the_similarity_map(pushed, dataset):
    model, result, gallery, _ = pushed
    for j, row in enumerate(gallery["prototypes"]):
        heat = upsampled_map(model, dataset, row["index"], j)
        peak_y, peak_x = np.unravel_index(np.argmax(heat), heat.shape)
        x0, y0, x1, y1 = row["crop_box"]
        assert x0 <= peak_x < x1 and y0 <= peak_y < y1, j
        assert tuple(row["crop_box"]) == high_activation_box(heat)  # recomputed independently


def test_source_picture_is_the_denormalized_image_with_the_box(pushed, dataset):
    _, _, gallery, out = pushed
    row = gallery["prototypes"][0]
    image = dataset[row["index"]]["image"]
    expected = ((image * torch.tensor(STD)[:, None, None] + torch.tensor(MEAN)[:, None, None]).clamp(0, 1) * 255)
    expected = expected.round().to(torch.uint8).permute(1, 2, 0).numpy()
    with Image.open(out / row["files"]["source"]) as picture:
        source = np.asarray(picture.convert("RGB"))
    x0, y0, x1, y1 = row["rf_box"]
    inside = np.zeros(source.shape[:2], bool)
    inside[y0 + 1:y1 - 1, x0 + 1:x1 - 1] = True  # away from the outline
    outside = np.ones(source.shape[:2], bool)
    outside[max(y0 - 1, 0):y1 + 1, max(x0 - 1, 0):x1 + 1] = False
    assert np.array_equal(source[inside], expected[inside]) and np.array_equal(source[outside], expected[outside])
    assert np.all(source[y0, x0:x1] == (255, 255, 0)), "the box outline is drawn"


def test_high_activation_box_of_a_block():
    heat = np.zeros((10, 10))
    heat[2:5, 5:8] = 1.0  # 9 % of the pixels: all at or above the 95th percentile
    assert high_activation_box(heat) == (5, 2, 8, 5)
    with pytest.raises(ValueError, match="finite"):
        high_activation_box(np.full((4, 4), np.nan))


def test_render_refuses_a_result_of_another_model(pushed, dataset, tmp_path):
    _, result, _, _ = pushed
    other = make_model()
    other.prototypes.data = other.prototypes.data[:3]
    with pytest.raises(ValueError, match="describes 6 prototypes but the model has 3"):
        render_gallery(other, dataset, result, tmp_path, mean=MEAN, std=STD)


def test_this_looks_like_that(pushed, dataset, tmp_path):
    """The top-2 prototypes by similarity, with their weights to the predicted class, in one PNG."""
    model, _, gallery, out = pushed
    image = dataset[1]["image"]
    explanation = this_looks_like_that(model, image, out, tmp_path / "tllt.png", k=2, mean=MEAN, std=STD,
                                       classes=dataset.classes)
    with Image.open(tmp_path / "tllt.png") as picture:
        assert picture.format == "PNG" and picture.size == (750, 500)  # 2 rows of 3 panels of 2.5 in at 100 dpi
    with torch.no_grad():
        output = model(image[None])
    predicted = int(output.logits.argmax())
    scores = torch.log((output.extras["min_distances"][0] + 1) / (output.extras["min_distances"][0] + 1e-4))
    assert explanation["predicted"] == predicted and explanation["predicted_name"] == dataset.classes[predicted]
    assert [row["prototype"] for row in explanation["prototypes"]] == scores.topk(2).indices.tolist()
    assert len(explanation["prototypes"]) == 2
    for row in explanation["prototypes"]:
        j = row["prototype"]
        assert row["similarity"] == pytest.approx(float(scores[j]), rel=1e-5)
        assert row["weight"] == pytest.approx(float(model.last_layer.weight.detach()[predicted, j]))
        assert row["gallery_crop"].endswith(gallery["prototypes"][j]["files"]["crop"])


def test_this_looks_like_that_needs_a_gallery(dataset, tmp_path):
    with pytest.raises(FileNotFoundError, match="render the gallery first"):
        this_looks_like_that(make_model(), dataset[0]["image"], tmp_path, tmp_path / "x.png", mean=MEAN, std=STD)
