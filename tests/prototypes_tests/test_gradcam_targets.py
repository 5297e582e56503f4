"""LVW's Grad-CAM targets: computed once from a base model, keyed by sample id (never order),
missing ids named, and a tiny LVW trains end to end on them with the alignment term logged."""
import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from torch.utils.data import DataLoader

import seethrough
from seethrough.data import ImageDataset, build_dataset, collate
from seethrough.data.transforms import IMAGENET_MEAN, IMAGENET_STD, build_transform
from seethrough.models.loading import load_for_inference
from seethrough.prototypes.gradcam_targets import (
    CLASS_KEY,
    MAX_NAMED_MISSING,
    MissingAttentionMapError,
    WithAttentionTargets,
    compute_gradcam_targets,
    load_gradcam_targets,
)

#: The base model's input (smaller than the data's 64 px: maps are resized to the raw image).
BASE_SIZE, DATA_SIZE, NUM_CLASSES, NUM_SAMPLES = 32, 64, 3, 16
DATA_OPTIONS = {"num_samples": NUM_SAMPLES, "img_size": DATA_SIZE, "num_classes": NUM_CLASSES}
#: float16 storage of values in [0, 1].
STORE_TOL = 1e-3


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory) -> Path:
    """A tiny FC base model (random weights are enough: its maps differ from image to image)."""
    torch.manual_seed(0)
    model = seethrough.create_model("fc", num_classes=NUM_CLASSES, backbone="test_resnet", output_stride=8)
    directory = tmp_path_factory.mktemp("base") / "fc"
    model.save_pretrained(directory, img_size=BASE_SIZE, classes=[str(c) for c in range(NUM_CLASSES)],
                          mean=list(IMAGENET_MEAN), std=list(IMAGENET_STD))
    return directory


@pytest.fixture(scope="module")
def targets_file(base_dir) -> Path:
    return compute_gradcam_targets(base_dir, "synthetic", data_options=DATA_OPTIONS,
                                   out=base_dir.parent / "maps.safetensors", batch_size=5)


class Reversed(ImageDataset):
    """The same samples in reverse order (what a sort-order pairing would get wrong)."""

    def __init__(self, dataset: ImageDataset) -> None:
        super().__init__()
        self.dataset, self.classes = dataset, dataset.classes

    def __len__(self) -> int:
        return len(self.dataset)

    def load(self, index: int):
        return self.dataset.load(len(self.dataset) - 1 - index)


def _base_maps(base_dir: Path, dataset: ImageDataset) -> dict[str, torch.Tensor]:
    """Grad-CAM of the base model, computed here in ``dataset``'s order, by sample id."""
    loaded = load_for_inference(base_dir)
    dataset.transform = loaded.transform(square=True)
    maps = {}
    for batch in DataLoader(dataset, batch_size=3, collate_fn=collate):
        explained = seethrough.explain(loaded.model, batch["image"], batch["label"], method="gradcam",
                                       normalize="minmax", upsample="bilinear")
        maps.update(zip(batch["id"], explained))
    return maps


def test_the_file_holds_one_minmax_map_per_sample_at_the_base_size_with_its_provenance(targets_file, base_dir):
    targets = load_gradcam_targets(targets_file)
    assert targets.maps.shape == (NUM_SAMPLES, BASE_SIZE, BASE_SIZE) and targets.maps.dtype == torch.float16
    assert targets.img_size == BASE_SIZE and targets.target == "gt"
    assert targets.sample_ids == tuple(f"synthetic/train/{i}" for i in range(NUM_SAMPLES))
    maps = targets.maps.float()
    # min-max on the 4×4 grid, then bilinear: each map's peak is 1 between output pixels, just under 1 on them
    assert maps.min() >= 0 and maps.max() <= 1 and (maps.flatten(1).amax(1) > 0.9).all()
    meta = targets.metadata
    assert (meta["base"], meta["data"], meta["split"], meta["method"], meta["target_layer"]) == (
        str(base_dir), "synthetic", "train", "gradcam", "backbone")
    assert json.loads(meta["data_options"]) == DATA_OPTIONS
    with safe_open(str(targets_file), framework="pt") as handle:        # gt policy: the labels are explained
        assert handle.get_tensor(CLASS_KEY).tolist() == [i % NUM_CLASSES for i in range(NUM_SAMPLES)]


def test_maps_follow_the_sample_id_whatever_the_dataset_order(targets_file, base_dir):
    targets = load_gradcam_targets(targets_file)
    reversed_data = Reversed(build_dataset("synthetic", "train", **DATA_OPTIONS))
    fresh = _base_maps(base_dir, reversed_data)                         # recomputed in reverse order
    for sample_id, expected in fresh.items():
        assert torch.allclose(targets.get(sample_id), expected, atol=STORE_TOL), sample_id
    wrapped = WithAttentionTargets(Reversed(build_dataset("synthetic", "train", **DATA_OPTIONS)), targets)
    for index in (0, 5, NUM_SAMPLES - 1):
        raw = wrapped.load(index)
        assert raw.sample_id == f"synthetic/train/{NUM_SAMPLES - 1 - index}"
        assert torch.equal(raw.attention_map, targets.get(raw.sample_id))
        assert not torch.allclose(raw.attention_map, targets.maps[index].float(), atol=0.05)   # not by position


def test_the_wrapper_is_the_dataset_with_maps_and_transforms_them(targets_file):
    data = build_dataset("synthetic", "train", **DATA_OPTIONS)
    wrapped = WithAttentionTargets(data, load_gradcam_targets(targets_file))
    wrapped.transform = build_transform(DATA_SIZE, train=False)
    assert data.transform is wrapped.transform and wrapped.classes == data.classes and len(wrapped) == NUM_SAMPLES
    assert wrapped.scene(2) == data.scene(2)                            # format-specific attributes pass through
    sample = wrapped[2]
    assert sample["attention_map"].shape == (DATA_SIZE, DATA_SIZE) and sample["id"] == "synthetic/train/2"
    upsampled = torch.nn.functional.interpolate(wrapped.targets.get("synthetic/train/2")[None, None],
                                                size=(DATA_SIZE, DATA_SIZE), mode="bilinear", align_corners=False)[0, 0]
    assert (sample["attention_map"] - upsampled).abs().max() < 0.02


def test_the_pred_policy_explains_the_base_model_prediction(base_dir, tmp_path):
    path = compute_gradcam_targets(base_dir, "synthetic", data_options=DATA_OPTIONS, out=tmp_path / "pred.safetensors",
                                   target="pred", batch_size=8)
    loaded = load_for_inference(base_dir)
    dataset = build_dataset("synthetic", "train", **DATA_OPTIONS, transform=loaded.transform(square=True))
    images = collate([dataset[i] for i in range(NUM_SAMPLES)])["image"]
    with torch.no_grad():
        predicted = loaded.model(images).logits.argmax(1)
    assert load_gradcam_targets(path).target == "pred"
    with safe_open(str(path), framework="pt") as handle:
        assert torch.equal(handle.get_tensor(CLASS_KEY), predicted)
    with pytest.raises(ValueError, match="'least'.*gt, pred"):
        compute_gradcam_targets(base_dir, "synthetic", data_options=DATA_OPTIONS, out=tmp_path / "x.safetensors",
                                target="least")


def test_missing_ids_are_named_with_their_count(targets_file):
    targets = load_gradcam_targets(targets_file)
    with pytest.raises(MissingAttentionMapError, match=r"1 sample id\(s\): 'synthetic/val/3'.*attention-maps"):
        targets.get("synthetic/val/3")
    absent = [f"other/{i}" for i in range(MAX_NAMED_MISSING + 2)]
    with pytest.raises(MissingAttentionMapError, match=r"12 sample id\(s\): 'other/0'.*'other/9' and 2 more") as err:
        targets.get(["synthetic/train/1", *absent])
    assert "'other/10'" not in str(err.value)
    wrapped = WithAttentionTargets(build_dataset("synthetic", "val", **DATA_OPTIONS), targets)
    with pytest.raises(MissingAttentionMapError, match="synthetic/val/0"):
        wrapped[0]
    larger = build_dataset("synthetic", "train", **{**DATA_OPTIONS, "num_samples": NUM_SAMPLES + 4})
    with pytest.raises(MissingAttentionMapError, match=f"{NUM_SAMPLES} maps but the data has {NUM_SAMPLES + 4}"):
        WithAttentionTargets(larger, targets)


def test_files_that_are_not_targets_are_refused_naming_the_command(tmp_path, base_dir):
    with pytest.raises(FileNotFoundError, match="seethrough attention-maps"):
        load_gradcam_targets(tmp_path / "absent.safetensors")
    with pytest.raises(ValueError, match="not a Grad-CAM targets file"):
        load_gradcam_targets(base_dir / "model.safetensors")
    with pytest.raises(ValueError, match=r"\*\.safetensors"):
        compute_gradcam_targets(base_dir, "synthetic", data_options=DATA_OPTIONS, out=tmp_path / "maps.npy")


def test_a_tiny_lvw_trains_on_the_targets_and_logs_the_alignment(targets_file, tiny_config):
    from seethrough.engine import train

    cfg = tiny_config(model="lvw", backbone="test_resnet", img_size=DATA_SIZE, attention_maps=str(targets_file),
                      data_options=DATA_OPTIONS, model_options={"num_prototypes": 6, "prototype_dim": 16},
                      stage_options={"warm_epochs": 0, "push_start": 100}, epochs=1, batch_size=4, augment="crop-flip",
                      log_every=1)
    train(cfg)
    events = [json.loads(line) for line in (Path(cfg.out) / "metrics.jsonl").read_text().splitlines()]
    steps = [e for e in events if e["event"] == "train_step"]
    assert len(steps) == NUM_SAMPLES // 4
    assert all(e["alignment"] > 0 for e in steps)
    assert [e["stage"] for e in events if e["event"] == "epoch"] == ["joint"]


def test_training_refuses_a_photometric_augment_with_attention_maps(targets_file, tiny_config):
    from seethrough.engine.data import build_run_data

    cfg = tiny_config(model="lvw", backbone="test_resnet", img_size=DATA_SIZE, attention_maps=str(targets_file),
                      data_options=DATA_OPTIONS, augment="scouter")
    with pytest.raises(ValueError, match="--augment scouter has photometric ops"):
        build_run_data(cfg)
