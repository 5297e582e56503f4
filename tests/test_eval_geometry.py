"""Input geometry of converted checkpoints (audit B4), its overrides, RUN/last, and models with
outputs the data does not use (audit B5), through ``seethrough eval``."""
from __future__ import annotations

import csv
import json

import pytest
from typer.testing import CliRunner

import seethrough
from seethrough.cli import app
from seethrough.engine import train
from seethrough.models.loading import load_for_inference
from seethrough.models.official.geometry import MNIST_MEAN, original_geometry
from seethrough.validation import validate

TINY = "test_efficientnet"


@pytest.mark.parametrize("kind, size", [("scouter", 260), ("protopnet", 224), ("lvw", 224), ("castream", 224)])
def test_each_square_original_records_its_size_resize_and_statistics(kind, size):
    model = seethrough.create_model("fc", num_classes=3, backbone=TINY)
    geometry = original_geometry(kind, model)
    assert geometry == {"img_size": size, "resize": "pil-bilinear", "mean": [0.485, 0.456, 0.406],
                        "std": [0.229, 0.224, 0.225]}


def test_mnist_scouter_records_one_channel_and_mnist_statistics():
    model = seethrough.create_model("scouter", num_classes=10, backbone="resnet18", in_chans=1, stem="mnist")
    assert original_geometry("scouter", model)["mean"] == list(MNIST_MEAN)
    assert original_geometry("intr", model)["resize"] == "detr"


def test_the_card_is_used_and_overrides_win(tmp_path):
    model = seethrough.create_model("fc", num_classes=3, backbone=TINY)
    model.save_pretrained(tmp_path / "m", **original_geometry("scouter", model))
    loaded = load_for_inference(tmp_path / "m")
    assert (loaded.img_size, loaded.resize, loaded.mean) == (260, "pil-bilinear", (0.485, 0.456, 0.406))
    assert type(loaded.transform(square=True).geometric.transforms[0]).__name__ == "PilBilinearResize"
    other = load_for_inference(tmp_path / "m", img_size=64, mean=[0.5, 0.5, 0.5], std=[0.25, 0.25, 0.25])
    assert (other.img_size, other.mean, other.std) == (64, (0.5,) * 3, (0.25,) * 3)
    with pytest.raises(ValueError, match=r"--mean needs one value per input channel .* \(3\), got 1"):
        load_for_inference(tmp_path / "m", mean=[0.5])


@pytest.fixture(scope="module")
def run(tmp_path_factory, tiny_config_factory):
    cfg = tiny_config_factory(tmp_path_factory.mktemp("geo") / "run", epochs=1)
    train(cfg)
    return cfg.out


def test_run_last_reads_last_ckpt_and_run_means_best(run, tmp_path):
    assert load_for_inference(f"{run}/last").model.config["backbone"] == TINY
    assert load_for_inference(run).model.config == load_for_inference(f"{run}/best").model.config
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"last.ckpt not found; RUN/last reads the run's last.ckpt"):
        load_for_inference(tmp_path / "empty" / "last")


def test_eval_cli_predictions_and_overrides(run, tmp_path):
    data = "synthetic"
    args = ["eval", f"{run}/last", "--data", data, "--data-opt", "num_samples=12", "--data-opt", "img_size=32",
            "--data-opt", "num_classes=3", "--workers", "0", "--accelerator", "cpu",
            "--predictions", str(tmp_path / "p.csv"), "--img-size", "40", "--out", str(tmp_path / "r.json")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader((tmp_path / "p.csv").open()))
    assert list(rows[0]) == ["sample_id", "label", "pred", "pred_name", "prob", "top5", "top5_prob"]
    assert len(rows) == 12 and len(rows[0]["top5"].split()) == 3   # 3 classes: the top-k is capped
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["input"]["img_size"] == 40 and report["samples"] == 12
    bad = CliRunner().invoke(app, args[:-4] + ["--mean", "a,b"])
    assert bad.exit_code == 2 and "--mean expects comma-separated numbers" in bad.output


def test_extra_outputs_of_a_converted_model_are_named_and_count_as_wrong(tmp_path):
    """Official Con-Text checkpoints: 30 outputs for 28 classes (audit B5)."""
    model = seethrough.create_model("fc", num_classes=5, backbone=TINY)
    model.save_pretrained(tmp_path / "m", img_size=32)
    report = validate(str(tmp_path / "m"), "synthetic", data_options={"num_samples": 8, "img_size": 32,
                                 "num_classes": 3}, workers=0, accelerator="cpu",
                                 predictions=tmp_path / "p.csv")
    assert report["unused_outputs"] == [3, 4] and report["samples"] == 8


def test_a_trained_model_of_another_class_count_is_still_refused(run):
    with pytest.raises(ValueError, match=r"trained on 3 classes but --data synthetic has 4"):
        validate(run, "synthetic", data_options={"num_samples": 8, "img_size": 32, "num_classes": 4},
                            workers=0, accelerator="cpu")
