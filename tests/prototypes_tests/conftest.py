"""Shared fixtures of the prototype push / gallery tests (helpers in prototype_fixtures.py)."""
from __future__ import annotations

import pytest
import torch
from prototype_fixtures import make_dataset


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny convolutions: one thread is faster on a busy 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def dataset():
    return make_dataset()
