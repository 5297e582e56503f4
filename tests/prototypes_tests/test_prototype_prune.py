"""Pruning (k nearest images, threshold τ) and the pruned model."""
import pytest
import torch

import seethrough
from seethrough.prototypes.prune import find_prunable, nearest_image_labels, pruned_model

CLASSES, SIZE = 2, 64


def _loader(images, labels, batch=3):
    return [{"image": images[i:i + batch], "label": labels[i:i + batch]} for i in range(0, len(images), batch)]


def _setup():
    torch.manual_seed(0)
    model = seethrough.create_model("protopnet", num_classes=CLASSES, backbone="test_resnet", num_prototypes=4,
                                    prototype_dim=8).eval()
    images = torch.randn(8, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(1))
    labels = torch.tensor([0, 1, 0, 1, 0, 1, 1, 1])
    return model, images, labels


def test_nearest_images_are_the_brute_force_ones():
    model, images, labels = _setup()
    with torch.no_grad():
        d = model(images).extras["min_distances"]
    expected = labels[d.argsort(dim=0)[:3]].t()
    assert torch.equal(nearest_image_labels(model, _loader(images, labels), k=3), expected)


def test_prototypes_with_too_few_own_class_neighbours_are_pruned_and_the_rest_kept_exactly():
    model, images, labels = _setup()
    result = find_prunable(model, _loader(images, labels), k=6, tau=3)
    own = model.prototype_class_identity.argmax(1)
    for j in range(4):
        count = sum(label == own[j].item() for label in result.nearest_labels[j])
        assert count == result.own_class_counts[j]
        assert (j in result.keep) == (count >= 3)
    assert sorted(result.keep + result.pruned) == [0, 1, 2, 3]
    keep = result.keep or [0]
    small = pruned_model(model, keep).eval()
    assert small.num_prototypes == len(keep)
    assert small.prototype_class_identity.argmax(1).tolist() == own[keep].tolist()
    with torch.no_grad():
        full, pruned = model(images), small(images)
    torch.testing.assert_close(pruned.extras["min_distances"], full.extras["min_distances"][:, keep])
    expected_logits = full.extras["prototype_similarity"].flatten(2).max(-1).values[:, keep] @ \
        model.last_layer.weight[:, keep].t()
    torch.testing.assert_close(pruned.logits, expected_logits, atol=1e-4, rtol=1e-4)


def test_pruned_model_round_trips(tmp_path):
    model, _, _ = _setup()
    small = pruned_model(model, [0, 2, 3])
    small.save_pretrained(tmp_path / "p")
    loaded = seethrough.from_pretrained(tmp_path / "p")
    assert loaded.config["prototype_classes"] == [0, 1, 1] and loaded.num_prototypes == 3


def test_bad_pruning_settings_are_refused():
    model, images, labels = _setup()
    with pytest.raises(ValueError, match="--tau must be between 1 and --k"):
        find_prunable(model, _loader(images, labels), k=3, tau=4)
    with pytest.raises(ValueError, match="at least k=20 images"):
        find_prunable(model, _loader(images, labels), k=20, tau=3)
    with pytest.raises(ValueError, match="remove every prototype"):
        pruned_model(model, [])


def test_prune_command_writes_the_pruned_model_and_its_report(tmp_path):
    import json

    from typer.testing import CliRunner

    from seethrough.cli import app

    model, _, _ = _setup()
    model.save_pretrained(tmp_path / "m", classes=["a", "b"], img_size=SIZE)
    result = CliRunner().invoke(app, ["prototypes", "prune", str(tmp_path / "m"), "--out", str(tmp_path / "p"),
                                      "--data", "synthetic", "--data-opt", "num_samples=12",
                                      "--data-opt", f"img_size={SIZE}", "--data-opt", "num_classes=2",
                                      "--k", "4", "--tau", "2", "--last-layer-epochs", "0"])
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "p" / "prune.json").read_text())
    assert sorted(report["kept"] + report["pruned"]) == [0, 1, 2, 3] and report["k"] == 4
    pruned = seethrough.from_pretrained(tmp_path / "p")
    assert pruned.num_prototypes == len(report["kept"]) and report["last_layer_losses"] == []
    # audit P3: run_pruning.py retrains the last layer after pruning (100 epochs by default; 3 here)
    retrained = CliRunner().invoke(app, ["prototypes", "prune", str(tmp_path / "m"), "--out", str(tmp_path / "r"),
                                         "--data", "synthetic", "--data-opt", "num_samples=12",
                                         "--data-opt", f"img_size={SIZE}", "--data-opt", "num_classes=2",
                                         "--k", "4", "--tau", "2", "--last-layer-epochs", "3"])
    assert retrained.exit_code == 0, retrained.output
    report_r = json.loads((tmp_path / "r" / "prune.json").read_text())
    assert report_r["last_layer_epochs"] == 3 and len(report_r["last_layer_losses"]) == 3
    again = seethrough.from_pretrained(tmp_path / "r")
    assert not torch.equal(again.last_layer.weight, pruned.last_layer.weight)
    assert torch.equal(again.prototypes, pruned.prototypes)   # only the last layer trained
    fc = seethrough.create_model("fc", num_classes=2, backbone="test_resnet")
    fc.save_pretrained(tmp_path / "fc", classes=["a", "b"], img_size=SIZE)
    refused = CliRunner().invoke(app, ["prototypes", "prune", str(tmp_path / "fc"), "--out", str(tmp_path / "x"),
                                       "--data", "synthetic", "--data-opt", "num_classes=2"])
    assert refused.exit_code != 0 and "pruning applies to prototype models" in refused.output
