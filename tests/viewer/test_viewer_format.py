"""The viewer's data format and what each kind of PATH puts into a view (no browser)."""
import json

import numpy as np
import pytest
import torch

from conftest import IMAGES
from seethrough.viewer import write_view
from seethrough.viewer.format import FORMAT_VERSION, decode_map, encode_map
from seethrough.viewer.sources import inspect


def _read(path, prefix):
    text = path.read_text()
    assert text.startswith(prefix) and text.rstrip().endswith(");")
    body = text[len(prefix):text.rstrip().rindex(")")]
    return json.loads(body[body.index("{"):] if prefix.endswith("chunk(") else body)


def test_maps_are_min_max_scaled_uint8_at_their_own_resolution():
    values = torch.tensor([[0.0, 1.0, 2.0], [3.0, float("nan"), 6.0]])
    encoded = encode_map(values)
    assert (encoded["h"], encoded["w"]) == (2, 3)
    assert decode_map(encoded).tolist() == [[0, 42, 85], [128, 0, 255]]
    assert decode_map(encode_map(np.full((2, 2), 7.0))).tolist() == [[0, 0], [0, 0]]
    with pytest.raises(ValueError, match="h×w"):
        encode_map(torch.zeros(2, 2, 2))


def test_a_view_of_runs_holds_every_model_its_maps_and_extras(run_view):
    manifest = _read(run_view / "data" / "manifest.js", "SEETHROUGH.manifest(")
    assert manifest["format"] == "seethrough-view" and manifest["version"] == FORMAT_VERSION
    assert [m["name"] for m in manifest["models"]] == ["fc", "intr", "castream", "scouter"]
    assert [m["sign"] for m in manifest["models"]] == [1, 1, 1, -1]
    assert manifest["explainers"] == ["native", "random"] and len(manifest["samples"]) == IMAGES
    assert manifest["models"][0]["map_size"]["native"] == [6, 6]
    sample = manifest["samples"][0]
    assert (run_view / sample["thumb"]).is_file() and len(sample["models"]["fc"]["top"]) == 4
    chunk = _read(run_view / "data" / "chunk-00000.js", "SEETHROUGH.chunk(")[sample["id"]]
    stored = {int(c) for c in chunk["maps"]["fc"]["native"]}
    assert sample["label"] in stored and {c for c, _ in sample["models"]["fc"]["top"]} <= stored
    assert decode_map(chunk["maps"]["fc"]["native"][str(sample["label"])]).shape == (6, 6)
    assert list(chunk["maps"]["fc"]["random"]) == ["*"]              # the same for every class: stored once
    assert len(chunk["extras"]["intr"]["heads"][str(sample["label"])]) == 2          # one map per head
    assert set(chunk["extras"]["castream"]["taps"]) >= {"layer1", "features"}
    for name in ("index.html", "viewer.js", "viewer.css"):
        assert (run_view / name).is_file()


def test_a_view_of_an_evaluation_shows_its_images_metrics_and_curves(evaluate_output, tmp_path):
    assert inspect(evaluate_output).kind == "evaluate"
    write_view([evaluate_output], tmp_path)
    manifest = _read(tmp_path / "data" / "manifest.js", "SEETHROUGH.manifest(")
    assert [m["name"] for m in manifest["models"]] == ["fc", "intr"]
    assert [s["id"] for s in manifest["samples"]] == [str(i) for i in range(6)]
    assert manifest["explainers"] == ["native", "random"]
    assert set(manifest["metrics"]) == {"insertion", "deletion", "single_deletion"}
    assert manifest["lower_is_better"] == ["deletion"]
    value = manifest["samples"][0]["metrics"]["fc"]["native"]["insertion"]
    assert 0 <= value <= 1
    chunk = _read(tmp_path / "data" / "chunk-00000.js", "SEETHROUGH.chunk(")["0"]
    assert len(chunk["curves"]["fc"]["native"]["insertion"]) == 5


def test_paths_that_are_no_view_source_are_refused_with_what_to_give(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        inspect(tmp_path / "missing")
    with pytest.raises(ValueError, match="not a run, a model dir"):
        inspect(tmp_path)


def test_serve_hands_out_the_view_over_http(run_view):
    import threading
    import urllib.request

    from seethrough.viewer import make_server

    server = make_server(run_view, port=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}/"
        assert b"viewer.js" in urllib.request.urlopen(base + "index.html").read()
        assert urllib.request.urlopen(base + "data/chunk-00000.js").read().startswith(b"SEETHROUGH.chunk(0, ")
    finally:
        server.shutdown()
        server.server_close()
    with pytest.raises(FileNotFoundError, match="holds no view"):
        make_server(run_view / "img")


def test_the_view_command_prints_the_path_and_names_a_bad_path(model_dirs, tmp_path):
    from typer.testing import CliRunner

    from seethrough.cli import app

    runner = CliRunner()
    result = runner.invoke(app, ["view", str(model_dirs["fc"]), "--out", str(tmp_path / "v"), "--limit", "3",
                                 "--data", "synthetic", "--data-opt", "num_samples=4", "--data-opt", "img_size=48"])
    assert result.exit_code == 0, result.output
    assert "viewer:" in result.output and (tmp_path / "v" / "index.html").is_file()
    bad = runner.invoke(app, ["view", str(tmp_path / "nothing"), "--out", str(tmp_path / "w")])
    # the error is wrapped to the terminal's width: compare its words
    assert bad.exit_code == 2 and "does not exist" in " ".join(bad.output.split())


def test_large_maps_are_area_averaged_down_and_small_ones_kept():
    from seethrough.viewer.collect import shrink

    maps = torch.arange(2 * 3 * 48 * 32, dtype=torch.float32).reshape(2, 3, 48, 32)
    small = shrink(maps, 24)
    assert small.shape == (2, 3, 24, 16)
    assert torch.allclose(small[0, 0, 0, 0], maps[0, 0, :2, :2].mean())
    assert shrink(maps[..., :7, :7], 24).shape == (2, 3, 7, 7)
    with pytest.raises(ValueError, match="positive"):
        shrink(maps, 0)
