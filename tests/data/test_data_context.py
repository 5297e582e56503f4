import dataset_writers as w
import numpy as np
import pytest
from sklearn.model_selection import train_test_split

from seethrough.data import build_dataset
from seethrough.data.context import ConTextDataset, original_split


@pytest.mark.parametrize("n", list(range(2, 120)) + [997, 1000, 2003])
def test_original_split_equals_sklearn(n):
    train, val = original_split(n)
    ref_train, ref_val = train_test_split(np.arange(n), train_size=0.8, random_state=1)
    np.testing.assert_array_equal(train, ref_train)
    np.testing.assert_array_equal(val, ref_val)


def test_dataset_split_equals_the_original(context_root):
    # the original: sorted(file names of the folder) → train_test_split(…, 0.8, random_state=1)
    names = sorted(w.CONTEXT_FILES)
    ref_train, ref_val = train_test_split(names, train_size=0.8, random_state=1)
    train = ConTextDataset(context_root, split="train")
    val = ConTextDataset(context_root, split="val")
    assert train.names == ref_train and val.names == ref_val
    assert [train.load(i).sample_id for i in range(3)] == ref_train[:3]
    assert (len(train), len(val)) == (19, 5)
    # code-point order: capitalised categories before lower-case ones
    assert train.classes == val.classes == ["Bakery", "Pharmacy", "Theatre", "barber"]
    for ds in (train, val):
        for name, label in zip(ds.names, ds.labels.tolist()):
            assert ds.classes[label] == name.split("_")[0]


def test_parent_folder_and_registry(context_root):
    assert build_dataset(f"context:{context_root.parent}", "val").names == \
        ConTextDataset(context_root, split="val").names


def test_stray_files(context_root, caplog):
    (context_root / "readme.txt").write_text("hello")
    (context_root / "sub").mkdir()
    with caplog.at_level("WARNING"):
        ds = ConTextDataset(context_root, split="train")
    assert "differs from SCOUTER" in caplog.text and len(ds) == 19
    w.save(w.scene(w.left_box(0)), context_root / "nounderscore.jpg")
    with pytest.raises(ValueError, match="nounderscore.jpg"):
        ConTextDataset(context_root, split="train")


def test_empty_and_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        ConTextDataset(tmp_path / "nowhere", split="train")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="empty: no images found"):
        ConTextDataset(tmp_path / "empty", split="val")
