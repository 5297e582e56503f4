"""Each format says when its "val" split is the dataset's test split (``test_split``), so a run
that selects ``best/`` on it can say so; a true validation split says nothing."""
import shutil

import pytest

from seethrough.data import build_dataset


@pytest.mark.parametrize("kind, words", [("cub", "CUB-200-2011's official test split"),
                                         ("imagenet", "ILSVRC-2012 validation set"),
                                         ("context", "held-out 20 %"),
                                         ("pets", "test split")])
def test_val_split_that_is_the_test_split_says_so(request, kind, words):
    fixture = {"cub": "cub_root", "imagenet": "imagenet_root", "context": "context_root", "pets": "pets_root"}[kind]
    root = request.getfixturevalue(fixture)
    root = root[0] if isinstance(root, tuple) else root
    path = root.parent if kind == "context" else root
    assert words in build_dataset(f"{kind}:{path}", "val").test_split
    assert build_dataset(f"{kind}:{path}", "train").test_split is None


def test_mnist_val_is_its_test_set(mnist_root):
    assert "MNIST test set" in build_dataset(f"mnist:{mnist_root}", "val").test_split
    assert build_dataset(f"mnist:{mnist_root}", "train").test_split is None


def test_folder_val_is_a_validation_split_and_test_is_not(folder_root):
    root, _ = folder_root
    assert build_dataset(f"folder:{root}", "val").test_split is None
    shutil.move(root / "val", root / "test")
    assert build_dataset(f"folder:{root}", "val").test_split.startswith("the test/ folder")


def test_synthetic_has_no_test_split():
    assert build_dataset("synthetic", "val", num_samples=2).test_split is None
