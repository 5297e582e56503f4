"""Protocol ``variants`` and ``table``: CA-Stream's GAP-vs-CA comparison from one evaluate call."""
from __future__ import annotations

import pytest
import torch

import seethrough
from seethrough.protocol import load_protocol

SYNTHETIC_OPTS = {"num_samples": 16, "img_size": 64, "num_classes": 3}
LIMIT = 4


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("variants")
    torch.manual_seed(0)
    seethrough.create_model("castream", num_classes=3, backbone="test_resnet").save_pretrained(root / "ca", img_size=64)
    seethrough.create_model("fc", num_classes=3, backbone="test_resnet").save_pretrained(root / "fc", img_size=64)
    return root


def test_castream_protocol_evaluates_gap_and_ca_and_writes_the_papers_table(models, tmp_path):
    protocol = load_protocol("castream", explainers=["gradcam"], overrides=["insertion.steps=4", "deletion.steps=4"])
    assert protocol.variants == {"pooling": ["gap", "ca"]}
    out = tmp_path / "eval"
    summary = seethrough.evaluate([models / "ca", models / "fc"], data="synthetic", data_options=SYNTHETIC_OPTS,
                                  protocol=protocol, out=out, limit=LIMIT, batch_size=LIMIT, progress=False)
    assert list(summary["models"]) == ["ca [pooling=gap]", "ca [pooling=ca]", "fc"]
    gap, ca = summary["models"]["ca [pooling=gap]"], summary["models"]["ca [pooling=ca]"]
    assert gap["variant"] == {"pooling": "gap"} and gap["base"] == "ca" and summary["models"]["fc"]["variant"] == {}
    drop = [m["explainers"]["gradcam"]["average_drop"]["mean"] for m in (gap, ca)]
    assert drop[0] != drop[1]                                    # same weights, different pooling
    table = summary["table"]
    assert table["metrics"] == ["average_drop", "average_gain", "increase_in_confidence", "insertion", "deletion"]
    first, fc_row = table["rows"]
    assert first["model"] == "ca" and first["variants"] == ["gap", "ca"] and first["explainer"] == "gradcam"
    assert first["values"]["average_drop"] == pytest.approx(drop)
    insertion = [m["explainers"]["gradcam"]["insertion"]["mean"] * 100 for m in (gap, ca)]
    assert first["values"]["insertion"] == pytest.approx(insertion)   # AUCs ×100 as the paper prints them
    assert fc_row["model"] == "fc" and len(fc_row["values"]["deletion"]) == 1
    text = (out / "table.md").read_text()
    assert "| ca | gradcam | gap / ca | " in text and "average_drop ↓" in text
    assert "Comparison table" in (out / "report.html").read_text()


def test_table_naming_a_metric_the_protocol_does_not_compute_is_refused(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("explainers: {native: {}}\nmetrics: {deletion: {}}\ntable: {metrics: [insertion]}\n")
    with pytest.raises(ValueError, match=r"table names metrics \['insertion'\]"):
        load_protocol(path)
    path.write_text("explainers: {native: {}}\nmetrics: {deletion: {}}\nvariants: {pooling: gap}\n")
    with pytest.raises(ValueError, match="variants.pooling must be a non-empty list"):
        load_protocol(path)


def test_an_invalid_variant_value_names_the_valid_ones(models):
    protocol = load_protocol("quick", explainers=["native"], metrics=["sparseness"])
    protocol.variants = {"pooling": ["max"]}
    with pytest.raises(ValueError, match="pooling must be one of ca, gap, got 'max'"):
        seethrough.evaluate([models / "ca"], data="synthetic", data_options=SYNTHETIC_OPTS, protocol=protocol,
                            limit=LIMIT, batch_size=LIMIT, progress=False)
