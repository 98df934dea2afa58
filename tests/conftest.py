"""Shared test setup: make ``tests/`` importable so tests can ``import oracle``."""

import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

import pytest  # noqa: E402


@pytest.fixture
def only_path(tmp_path, monkeypatch):
    """PATH = one empty folder (returned), and no fallback folders: nothing is installed."""
    import boards.registry

    folder = tmp_path / "bin"
    folder.mkdir()
    monkeypatch.setenv("PATH", str(folder))
    monkeypatch.setattr(boards.registry, "_extra_dirs", lambda: [])
    return folder


@pytest.fixture(scope="module")
def torch_one_thread():
    """torch on one thread for a module: tiny tensors on a shared, loaded 2-core
    machine ran ~10x slower with 2 OpenMP threads than with 1."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory):
    """A tiny learnable Fashion-MNIST stand-in (48 train / 16 test IDX images), read-only."""
    from sim.data import write_synthetic_dataset

    return write_synthetic_dataset(tmp_path_factory.mktemp("fmnist"), n_train=48, n_test=16)
