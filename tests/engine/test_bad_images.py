"""Corrupt images during training: an explicit policy, never a silently shorter epoch."""
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from seethrough.data import BadImageError
from seethrough.engine import train

#: trains models: deselect with -m "not slow" for the quick loop
pytestmark = pytest.mark.slow


@pytest.fixture
def folder_with_a_truncated_image(tmp_path):
    rng = np.random.default_rng(0)
    for split, count in (("train", 8), ("val", 4)):
        for label in range(2):
            folder = tmp_path / "data" / split / f"class{label}"
            folder.mkdir(parents=True)
            for i in range(count):
                Image.fromarray(rng.integers(0, 255, (20, 24, 3), dtype=np.uint8)).save(folder / f"{i}.jpg")
    bad = tmp_path / "data" / "train" / "class0" / "3.jpg"
    bad.write_bytes(bad.read_bytes()[:40])
    return tmp_path / "data", bad


def test_skip_policy_counts_bad_images_and_finishes(tiny_config, folder_with_a_truncated_image, caplog):
    root, bad = folder_with_a_truncated_image
    cfg = tiny_config(data=f"folder:{root}", data_options={}, batch_size=4, epochs=2, on_bad_image="skip")
    summary = train(cfg)
    assert summary["skipped_images"] == 2  # once per epoch
    assert str(bad) in caplog.text
    epochs = [json.loads(l) for l in (Path(cfg.out) / "metrics.jsonl").read_text().splitlines()
              if json.loads(l)["event"] == "epoch"]
    assert [e["train_samples"] for e in epochs] == [15, 15]


def test_error_policy_names_the_file_and_leaves_a_resumable_checkpoint(tiny_config, folder_with_a_truncated_image):
    root, bad = folder_with_a_truncated_image
    cfg = tiny_config(data=f"folder:{root}", data_options={}, batch_size=4, epochs=1)
    with pytest.raises(BadImageError, match=f"{bad}.*--on-bad-image skip"):
        train(cfg)
    assert (Path(cfg.out) / "last.ckpt").is_file()
