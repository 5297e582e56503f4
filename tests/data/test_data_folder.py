import shutil

import dataset_writers as w
import numpy as np
import pytest

from seethrough.data import build_dataset, build_transform
from seethrough.data.folder import FolderDataset


def test_lengths_labels_and_ids(folder_root):
    root, layout = folder_root
    train = FolderDataset(root, split="train")
    val = FolderDataset(root, split="val")
    assert train.classes == w.FOLDER_CLASSES
    assert val.classes == w.FOLDER_CLASSES
    # notes.txt and .hidden.jpg are not images; mixed-case extensions and sub-folders are
    assert sorted(train.load(i).sample_id for i in range(len(train))) == sorted(layout["train"])
    assert len(train) == 9 and len(val) == 6
    for i in range(len(train)):
        raw = train.load(i)
        assert raw.label == w.FOLDER_CLASSES.index(raw.sample_id.split("/")[1])
        assert raw.image.size == (w.WIDTH, w.HEIGHT) and raw.image.mode == "RGB"
        assert raw.boxes.shape == (0, 4) and raw.mask is None
    assert val.labels.tolist() == [0, 0, 1, 1, 2, 2]


def test_test_folder_used_when_val_is_absent(folder_root):
    root, _ = folder_root
    (root / "val").rename(root / "test")
    val = FolderDataset(root, split="val")
    assert len(val) == 6 and val.load(0).sample_id.startswith("test/")


def test_val_uses_train_class_list(folder_root):
    root, _ = folder_root
    shutil.rmtree(root / "val" / "cat")
    val = FolderDataset(root, split="val")
    assert val.classes == w.FOLDER_CLASSES
    assert sorted(set(val.labels.tolist())) == [1, 2]


def test_unknown_val_class_is_named(folder_root):
    root, _ = folder_root
    w.save(w.scene(w.left_box(0)), root / "val" / "unicorn" / "u.jpg")
    with pytest.raises(ValueError, match="unicorn"):
        FolderDataset(root, split="val")


def test_missing_and_empty_folders(tmp_path, folder_root):
    with pytest.raises(FileNotFoundError, match="train"):
        FolderDataset(tmp_path / "nowhere", split="train")
    root, _ = folder_root
    shutil.rmtree(root / "val")
    with pytest.raises(FileNotFoundError, match="val/ nor test/"):
        FolderDataset(root, split="val")
    empty = tmp_path / "empty"
    (empty / "train" / "a").mkdir(parents=True)
    with pytest.raises(ValueError, match="no images found for split 'train'"):
        FolderDataset(empty, split="train")
    with pytest.raises(ValueError, match="split must be one of"):
        FolderDataset(root, split="test")


def test_transform_gives_tensors(folder_root):
    root, _ = folder_root
    ds = build_dataset(f"folder:{root}", "train", transform=build_transform(16, train=False))
    sample = ds[0]
    assert sample["image"].shape == (3, 16, 16)
    assert sample["label"] == 0 and sample["index"] == 0
    assert np.isfinite(sample["image"].numpy()).all()


def test_an_empty_class_folder_is_named_unless_allowed(folder_root):
    """Issue #12 item 9: an empty class folder trained silently as a class without samples."""
    root, _ = folder_root
    shutil.rmtree(root / "train" / "zebra")
    (root / "train" / "zebra").mkdir()
    with pytest.raises(ValueError, match=r"class folders without images: .*train/zebra.*allow_empty=true"):
        FolderDataset(root, split="train")
    with pytest.raises(ValueError, match="train/zebra"):
        build_dataset(f"folder:{root}", "train")
    kept = build_dataset(f"folder:{root}", "train", allow_empty=True)
    assert kept.classes == w.FOLDER_CLASSES and len(kept) == 6 and 2 not in set(kept.labels.tolist())


def test_push_data_reads_its_own_train_split_and_checks_the_classes(tmp_path):
    """Audit P2: ProtoPNet trains on train_cropped_augmented and pushes onto the unaugmented train_cropped."""
    from seethrough.config import TrainConfig
    from seethrough.engine.data import build_push_data

    augmented, plain = tmp_path / "augmented", tmp_path / "plain"
    w.make_folder(augmented)
    w.make_folder(plain)
    shutil.rmtree(plain / "train" / "cat" / "sub", ignore_errors=True)
    extra = plain / "train" / "dog" / "extra.jpg"
    shutil.copy(next((plain / "train" / "dog").glob("*.jpg")), extra)
    cfg = TrainConfig(data=f"folder:{augmented}", push_data=f"folder:{plain}")
    pushed = build_push_data(cfg, (0.5,) * 3, (0.5,) * 3, classes=w.FOLDER_CLASSES)
    ids = {pushed.load(i).sample_id for i in range(len(pushed))}
    assert "train/dog/extra.jpg" in ids and pushed.root == plain
    default = build_push_data(TrainConfig(data=f"folder:{augmented}"), (0.5,) * 3, (0.5,) * 3)
    assert default.root == augmented
    with pytest.raises(ValueError, match=r"--push-data folder:.* has classes .* push onto the same classes"):
        build_push_data(cfg, (0.5,) * 3, (0.5,) * 3, classes=["a", "b"])
