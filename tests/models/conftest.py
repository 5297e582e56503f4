"""Fixtures of the model tests."""
import pytest
import torch


@pytest.fixture
def one_thread():
    """Tiny convolutions: one thread is faster, and far faster on a busy 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
