"""Fixtures of the cluster tests."""

import pytest


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """One intra-op thread: these small workloads only lose to thread start-up and, on a busy
    shared machine, to oversubscription; the previous setting is restored afterwards."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
