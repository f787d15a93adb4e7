"""Fixtures for the data tests: a local HTTP server, MNIST-1D generated once per session."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mlpframe.data import load_dataset

from .helpers import LocalServer


@pytest.fixture
def server(tmp_path: Path):
    folder = tmp_path / "served"
    folder.mkdir()
    srv = LocalServer(folder)
    yield srv
    srv.stop()


@pytest.fixture
def closed_port_url() -> str:
    """A URL on 127.0.0.1 where nothing listens (the network is "unreachable")."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture(scope="session")
def mnist1d_session(tmp_path_factory):
    """MNIST-1D generated once into a session folder, and whether that left the global RNGs alone."""
    import random

    root = tmp_path_factory.mktemp("mnist1d")
    np_before, py_before = np.random.get_state(), random.getstate()
    ds = load_dataset("mnist1d", root=root)
    np_after, py_after = np.random.get_state(), random.getstate()
    rng_untouched = py_before == py_after and all(
        np.array_equal(a, b) for a, b in zip(np_before, np_after, strict=True)
    )
    return root, ds, rng_untouched
