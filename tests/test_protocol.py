"""Evaluation protocols: presets load and validate, selections and overrides, clear errors."""
from __future__ import annotations

import pytest

from seethrough.protocol import list_protocols, load_protocol


def test_every_preset_loads_and_records_full_parameters():
    assert {"default", "quick", "scouter-reproduction", "castream"} <= set(list_protocols())
    for name in list_protocols():
        protocol = load_protocol(name)
        record = protocol.as_dict()
        assert record["name"] == name and record["metrics"]
        for params in record["metrics"].values():
            assert "return_details" not in params and "masks" not in params


def test_castream_preset_is_the_papers_table_protocol():
    record = load_protocol("castream").as_dict()
    assert list(record["explainers"]) == ["gradcam", "gradcam++", "scorecam-original"]
    assert all(options["target_layer"] == "castream" for options in record["explainers"].values())
    assert record["metrics"]["insertion"]["blur_kernel"] == "rise" and record["metrics"]["insertion"]["sigma"] == 5.0
    assert record["metrics"]["average_drop"]["map_normalization"] == "none"
    assert record["metrics"]["insertion"]["steps"] == 28 and record["metrics"]["insertion"]["kernel_size"] == 5
    assert record["metrics"]["deletion"]["substrate"] == "zero"
    assert set(record["metrics"]) == {"average_drop", "increase_in_confidence", "average_gain", "insertion", "deletion"}


def test_scouter_reproduction_preset_uses_joint_native_maps_and_rescience_robustness():
    record = load_protocol("scouter-reproduction").as_dict()
    assert record["normalize"] == "joint" and list(record["explainers"]) == ["native"]
    assert record["metrics"]["infidelity"]["num_perturbations"] == 100
    assert record["metrics"]["infidelity"]["score"] == "log_prob"
    assert record["metrics"]["max_sensitivity"]["num_samples"] == 50
    assert record["metrics"]["infidelity"]["perturbation"] == "yeh"
    assert record["metrics"]["infidelity"]["space"] == record["metrics"]["max_sensitivity"]["space"] == "pixel"
    assert record["metrics"]["area_size"]["resolution"] == "map" and record["metrics"]["area_size"]["quantize"] == "uint8"
    assert record["metrics"]["insertion"]["score_target"] == record["metrics"]["deletion"]["score_target"] == "predicted"
    assert record["negative_targets"] == "next"


def test_metrics_all_selects_every_registered_metric_keeping_the_protocols_parameters():
    from seethrough.metrics import METRIC_NAMES

    protocol = load_protocol("castream", metrics=["all"])
    assert list(protocol.metrics) == list(METRIC_NAMES)
    assert protocol.metrics["insertion"]["steps"] == 28
    with pytest.raises(ValueError, match="'all' selects every metric; give it alone"):
        load_protocol("quick", metrics=["all", "insertion"])


def test_class_map_file_as_target_policy(tmp_path):
    path = tmp_path / "lsc_label_id.json"
    path.write_text('{"0": 2, "1": 2, "2": 0}')
    protocol = load_protocol("quick", negative_targets=str(path), targets="next")
    assert protocol.as_dict()["negative_targets"] == str(path) and protocol.targets == "next"
    with pytest.raises(FileNotFoundError, match="class-map file .*missing.json does not exist"):
        load_protocol("quick", targets=str(tmp_path / "missing.json"))


def test_selections_and_overrides_apply_in_order(tmp_path):
    protocol = load_protocol("default", explainers=["gradcam"], metrics=["insertion", "pointing_game"],
                             overrides=["insertion.steps=7", "pointing_game.tolerance=3", "gradcam.batch_size=2"],
                             targets="pred", negative_targets="gt")
    assert list(protocol.explainers) == ["gradcam"] and list(protocol.metrics) == ["insertion", "pointing_game"]
    record = protocol.as_dict()
    assert record["metrics"]["insertion"]["steps"] == 7 and record["metrics"]["pointing_game"]["tolerance"] == 3
    assert record["explainers"]["gradcam"] == {"batch_size": 2}
    assert record["targets"] == "pred" and record["negative_targets"] == "gt"


def test_protocol_from_a_yaml_file(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("targets: pred\nexplainers: {native: {}}\nmetrics: {deletion: {steps: 4}}\n")
    protocol = load_protocol(path)
    assert protocol.name == str(path) and protocol.targets == "pred"
    assert protocol.as_dict()["metrics"]["deletion"]["steps"] == 4


@pytest.mark.parametrize("kwargs, message", [
    ({"metrics": ["insertoin"]}, "metric 'insertoin' is not valid; valid: area_size"),
    ({"explainers": ["gradcom"]}, "explainer 'gradcom' is not valid"),
    ({"overrides": ["insertion.stepz=3"]}, r"unknown protocol parameter\(s\) stepz for metric 'insertion'"),
    ({"overrides": ["steps=3"]}, "expected metric.param=value"),
    ({"overrides": ["nothing.steps=3"]}, "'nothing' is not a metric or explainer of this protocol"),
    ({"targets": "best"}, "targets 'best' is not valid; valid: gt, pred, least, next, or a class-map FILE.json"),
])
def test_bad_choices_name_the_valid_ones(kwargs, message):
    with pytest.raises(ValueError, match=message):
        load_protocol("quick", **kwargs)


def test_joint_normalization_is_for_native_maps_only(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("normalize: joint\nexplainers: {gradcam: {}}\nmetrics: {area_size: {}}\n")
    with pytest.raises(ValueError, match="joint applies to native maps only"):
        load_protocol(path)


def test_unknown_preset_and_missing_file_and_unknown_key(tmp_path):
    with pytest.raises(ValueError, match="unknown protocol 'nope'; presets: benchmark, castream"):
        load_protocol("nope")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_protocol(tmp_path / "missing.yaml")
    path = tmp_path / "p.yaml"
    path.write_text("metric: {}\n")
    with pytest.raises(ValueError, match="unknown key\\(s\\) metric"):
        load_protocol(path)


def test_a_metric_subset_of_a_preset_with_a_table_keeps_the_columns_still_computed():
    narrowed = load_protocol("castream", metrics=["insertion", "pointing_game"])
    assert narrowed.table["metrics"] == ["insertion"] and set(narrowed.table["scale"]) == {"insertion"}
    assert load_protocol("castream", metrics=["pointing_game"]).table == {}
