"""The benchmark's prototype check on a tiny pushed ProtoPNet: its pushed cells against the parts."""
import json

import pytest
import torch
import yaml
from prototype_fixtures import MEAN, STD, make_loader, make_model

from seethrough.data import build_dataset
from seethrough.data.interventions import PartInterventions
from seethrough.data.transforms import build_transform
from seethrough.metrics.prototype_parts import role_masks
from seethrough.prototypes import push_prototypes, render_gallery
from seethrough.prototypes.gallery import GALLERY_DIR, GALLERY_JSON
from seethrough.prototypes.part_check import cell_box, prototypes_on_parts

SIZE = 64
DATA = {"difficulty": "benchmark", "num_classes": 3, "num_samples": 6}


@pytest.fixture(scope="module")
def pushed(tmp_path_factory):
    out = tmp_path_factory.mktemp("pushed")
    dataset = build_dataset("synthetic", "train", img_size=SIZE, **DATA,
                            transform=build_transform(SIZE, train=False, mean=MEAN, std=STD))
    model = make_model()
    result = push_prototypes(model, make_loader(dataset))
    model.save_pretrained(out, classes=list(dataset.classes), mean=list(MEAN), std=list(STD), img_size=SIZE)
    render_gallery(model, dataset, result, out / GALLERY_DIR, mean=MEAN, std=STD)
    (out / "config.yaml").write_text(yaml.safe_dump({"data": "synthetic", "data_options": {**DATA, "img_size": SIZE}}))
    return out, dataset


def test_cells_of_the_push_are_scored_against_the_source_images_parts(pushed):
    out, dataset = pushed
    report = prototypes_on_parts(out)
    gallery = json.loads((out / GALLERY_DIR / GALLERY_JSON).read_text())
    assert report["prototypes"] == len(gallery["prototypes"]) == 6
    for row, entry in zip(report["per_prototype"], gallery["prototypes"]):
        assert row["index"] == entry["index"]
        assert row["box"] == cell_box(entry["y"], entry["x"], gallery["latent_size"], (SIZE, SIZE))
        assert sum(row["overlap"][k] for k in ("evidence", "decoy", "distractor", "background")) >= 1 - 1e-6
    assert report["on_evidence"] == pytest.approx(sum(r["on_evidence"] for r in report["per_prototype"]) / 6)
    assert 0 <= report["chance"] <= 1 and report["protocol"]["box"] == "cell"


def test_prototypes_moved_onto_evidence_cells_all_count(pushed, tmp_path):
    out, dataset = pushed
    gallery = json.loads((out / GALLERY_DIR / GALLERY_JSON).read_text())
    h, w = gallery["latent_size"]
    indices = [e["index"] for e in gallery["prototypes"]]
    parts = PartInterventions.for_samples(dataset, indices, dataset.transform, (SIZE, SIZE))
    evidence = role_masks(parts, "evidence")
    for j, entry in enumerate(gallery["prototypes"]):     # the cell most covered by evidence
        cover = torch.nn.functional.avg_pool2d(evidence[j].float()[None, None], SIZE // h)[0, 0]
        entry["y"], entry["x"] = [int(v) for v in divmod(int(cover.argmax()), w)]
    moved = tmp_path / "moved"
    moved.mkdir()
    for name in ("config.json", "model.safetensors", "config.yaml"):
        (moved / name).write_bytes((out / name).read_bytes())
    (moved / GALLERY_DIR).mkdir()
    (moved / GALLERY_DIR / GALLERY_JSON).write_text(json.dumps(gallery))
    report = prototypes_on_parts(moved)
    assert report["on_evidence"] == 1.0 and report["on_evidence"] > report["chance"]


def test_a_model_without_a_gallery_or_without_part_data_is_refused(pushed, tmp_path):
    with pytest.raises(FileNotFoundError, match="gallery.json"):
        prototypes_on_parts(tmp_path)
    with pytest.raises(ValueError, match="box must be one of"):
        prototypes_on_parts(pushed[0], box="peak")


def test_the_benchmark_checks_only_its_prototype_models(pushed, tmp_path):
    from seethrough.benchmark import prototype_checks

    checks = prototype_checks({"ppnet": pushed[0], "fc": tmp_path})
    assert list(checks) == ["ppnet"]
    assert checks["ppnet"]["interval"].mean == pytest.approx(checks["ppnet"]["on_evidence"])


def test_the_command_prints_the_share_and_writes_every_prototype(pushed, tmp_path):
    from typer.testing import CliRunner

    from seethrough.cli import app

    result = CliRunner().invoke(app, ["prototypes", "parts", str(pushed[0]), "--out", str(tmp_path / "p.json")])
    assert result.exit_code == 0, result.output
    assert "6 prototypes:" in result.output and "chance" in result.output
    assert len(json.loads((tmp_path / "p.json").read_text())["per_prototype"]) == 6
    missing = CliRunner().invoke(app, ["prototypes", "parts", str(tmp_path)])
    assert missing.exit_code == 2 and "gallery.json" in missing.output
