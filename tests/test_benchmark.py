"""seethrough benchmark: bootstrap intervals, "can this metric tell?", the leaderboard, end to end."""
import json
import math

import numpy as np
import pytest
from typer.testing import CliRunner

import seethrough
from seethrough.benchmark import Budget, benchmark
from seethrough.benchmark.leaderboard import FAMILIES, family_values, leaderboard, leaderboard_markdown
from seethrough.benchmark.validity import Interval, bootstrap_interval, can_tell, read_samples, separated
from seethrough.cli import app


def test_bootstrap_interval_contains_the_mean_and_shrinks_with_more_samples():
    rng = np.random.default_rng(0)
    small = bootstrap_interval(rng.normal(1.0, 1.0, 20))
    large = bootstrap_interval(rng.normal(1.0, 1.0, 2000))
    assert small.low < small.mean < small.high and large.low < large.mean < large.high
    assert (large.high - large.low) < (small.high - small.low) / 5
    assert abs(large.mean - 1.0) < 0.1 and large.count == 2000
    # the percentile interval of the bootstrap mean ≈ mean ± 1.96 σ/√n for a normal sample
    assert large.high - large.low == pytest.approx(2 * 1.96 / math.sqrt(2000), rel=0.15)
    empty = bootstrap_interval([math.nan, math.nan])
    assert empty.count == 0 and math.isnan(empty.mean)
    assert bootstrap_interval([1.0, math.nan, 3.0]).mean == 2.0


def test_separation_respects_the_metric_direction():
    high, low = Interval(0.8, 0.7, 0.9, 10), Interval(0.3, 0.2, 0.4, 10)
    assert separated(high, low, "single_deletion") and not separated(low, high, "single_deletion")
    assert separated(low, high, "deletion") and not separated(high, low, "deletion")
    overlapping = Interval(0.5, 0.35, 0.75, 10)
    assert not separated(high, overlapping, "single_deletion")


def test_can_tell_needs_every_model_and_real_explainer_to_beat_every_baseline():
    good, bad = Interval(0.9, 0.85, 0.95, 9), Interval(0.5, 0.4, 0.6, 9)
    intervals = {("m", "native", "a"): good, ("m", "random", "a"): bad, ("m", "center", "a"): bad,
                 ("m", "native", "b"): good, ("m", "random", "b"): good, ("m", "center", "b"): bad,
                 ("m", "native", "background_independence"): good}
    verdict = can_tell(intervals, real=["native"], baselines=["random", "center"])
    assert verdict["a"]["tells"] and verdict["a"]["separated"] == 2
    assert not verdict["b"]["tells"] and verdict["b"]["failures"] == ["m/native vs random"]
    assert "background_independence" not in verdict                   # a model property


def test_family_values_average_the_metrics_per_image_with_deletion_flipped():
    samples = {("m", "e", "insertion"): {"0": 0.8, "1": 0.6}, ("m", "e", "deletion"): {"0": 0.2, "1": math.nan}}
    assert family_values(samples, "m", "e", "faithfulness") == [pytest.approx(0.8), pytest.approx(0.6)]
    rows = leaderboard({**samples, ("m", "r", "insertion"): {"0": 0.1, "1": 0.2}})
    assert [row["explainer"] for row in rows] == ["e", "r"]
    text = leaderboard_markdown(rows, {"insertion": {"tells": True, "separated": 1, "pairs": 1, "failures": []}},
                                {"m": 0.9})
    assert "| 1 | m | e |" in text and "| insertion | yes | 1/1 |" in text
    assert set(FAMILIES) == {"completeness", "correctness", "contrastivity", "faithfulness", "localization"}


@pytest.mark.slow
def test_benchmark_of_a_given_run_writes_the_leaderboard_and_validity(tmp_path):
    model = seethrough.create_model("fc", num_classes=4, backbone="test_efficientnet")
    model.save_pretrained(tmp_path / "tiny", img_size=32)

    @seethrough.register_explainer("benchmark-test-ones")
    def ones(model, images, targets):
        return images.new_ones(images.shape[0], *images.shape[-2:])

    budget = Budget(models=(), train_samples=0, epochs=0, eval_samples=4)
    summary = benchmark([tmp_path / "tiny"], explainers=["native", "benchmark-test-ones"], out=tmp_path / "out",
                        budget=budget, progress=False)
    explainers = summary["models"]["tiny"]["explainers"]
    assert list(explainers) == ["native", "benchmark-test-ones", "random", "center", "edges"]
    assert "single_deletion" in explainers["native"] and explainers["native"]["single_deletion"]["total"] == 4
    result = summary["benchmark"]
    assert set(result["validity"]) >= {"single_deletion", "insertion", "deletion_check"}
    assert {row["explainer"] for row in result["leaderboard"]} == set(explainers)
    assert (tmp_path / "out" / "leaderboard.md").read_text().startswith("# seethrough benchmark")
    assert (tmp_path / "out" / "figures" / "radar_tiny.png").is_file()
    assert json.loads((tmp_path / "out" / "results.json").read_text())["benchmark"]["budget"]["eval_samples"] == 4
    # its viewer: the leaderboard, the radar, and each image with every part removed
    from seethrough.viewer import write_view

    write_view([tmp_path / "out"], tmp_path / "view")
    manifest = (tmp_path / "view" / "data" / "manifest.js").read_text()
    body = json.loads(manifest[len("SEETHROUGH.manifest("):manifest.rindex(")")])
    assert len(body["benchmark"]["leaderboard"]) == 5 and list(body["benchmark"]["radar"]) == ["tiny"]
    chunk = (tmp_path / "view" / "data" / "chunk-00000.js").read_text()
    samples = json.loads(chunk[chunk.index("{"):chunk.rindex(")")])
    removals = samples["0"]["interventions"]
    assert removals and all("tiny" in r["delta"] and (tmp_path / "view" / r["thumb"]).is_file() for r in removals)
    samples = read_samples(tmp_path / "out" / "samples.csv")
    assert ("tiny", "random", "single_deletion") in samples


def test_benchmark_cli_errors_name_the_fix(tmp_path):
    result = CliRunner().invoke(app, ["benchmark", "--models", "resnet", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "neither a run directory nor a recipe" in result.output
    result = CliRunner().invoke(app, ["benchmark", str(tmp_path), "--models", "fc", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "not both" in result.output


def test_benchmark_recipes_are_the_demos_on_the_benchmark_data_with_scouters_original_hyperparameters(tmp_path):
    from seethrough.benchmark import QUICK, recipe_config

    fc = recipe_config("fc", QUICK, tmp_path / "fc")
    assert fc.model == "fc" and fc.epochs == QUICK.epochs
    assert fc.data_options["difficulty"] == "benchmark" and fc.data_options["num_samples"] == QUICK.train_samples
    negative = recipe_config("scouter-", QUICK, tmp_path / "neg", use_pre=str(tmp_path / "fc"))
    # the original train.py's slots per class, area power, area weight and learning rate (the demo's
    # 1 slot, power 1 and lr 1e-3 put the slots on the background of the shape pairs)
    options = negative.model_options
    assert options["sign"] == -1
    assert (options["slots_per_class"], options["power"], options["lambda_value"], negative.lr) == (3, 2.0, 1.0, 1e-4)
    assert fc.lr == 1e-3
    assert negative.use_pre == str(tmp_path / "fc")


def test_the_leaderboard_lists_the_prototype_check_with_its_interval_and_chance():
    check = {"prototypes": 8, "chance": 0.125, "interval": bootstrap_interval([1.0] * 6 + [0.0] * 2)}
    text = leaderboard_markdown([], {}, {"protopnet": 0.8}, {"protopnet": check})
    line = next(row for row in text.splitlines() if row.startswith("| protopnet |"))
    assert "| 8 | 0.750 [" in line and line.endswith("| 0.125 |")
    assert "## Prototypes on evidence" in text
    assert "## Prototypes on evidence" not in leaderboard_markdown([], {}, {"fc": 0.8})
