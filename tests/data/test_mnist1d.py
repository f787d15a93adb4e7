"""MNIST-1D: generated offline once, cached, split and standardised."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from mlpframe.data import DataError, default_root, load_dataset
from mlpframe.data import mnist1d as mnist1d_module


def test_standard_shapes_and_splits(mnist1d_session):
    _, ds, _ = mnist1d_session
    assert ds.name == "mnist1d" and ds.num_features == 40 and ds.num_classes == 10
    assert [len(s[1]) for s in (ds.train, ds.val, ds.test)] == [3500, 500, 1000]
    for x, y in (ds.train, ds.val, ds.test):
        assert x.dtype == np.float32 and y.dtype == np.int64 and x.shape == (len(y), 40)
        assert set(np.unique(y)) <= set(range(10))
    # standardised with the training split's statistics
    np.testing.assert_allclose(ds.train[0].mean(axis=0), 0, atol=1e-4)
    np.testing.assert_allclose(ds.train[0].std(axis=0), 1, atol=1e-3)
    assert abs(float(ds.val[0].mean())) < 0.2


def test_generation_leaves_global_rngs_alone(mnist1d_session):
    assert mnist1d_session[2]


def test_second_load_reads_the_cache(mnist1d_session, monkeypatch):
    root, first, _ = mnist1d_session

    def must_not_run():
        raise AssertionError("the generator ran although the cache exists")

    monkeypatch.setattr(mnist1d_module, "generate_mnist1d", must_not_run)
    again = load_dataset("mnist1d", root=root, url="ignored", md5=None, flatten=True, download=False)
    for s in ("train", "val", "test"):
        np.testing.assert_array_equal(getattr(first, s)[0], getattr(again, s)[0])
        np.testing.assert_array_equal(getattr(first, s)[1], getattr(again, s)[1])


def test_corrupt_cache_is_regenerated(mnist1d_session, monkeypatch, tmp_path):
    root, first, _ = mnist1d_session
    copy = tmp_path / "copy"
    shutil.copytree(root, copy)
    (cache,) = copy.glob("mnist1d-*.npz")
    with np.load(cache) as npz:
        raw = {k: npz[k] for k in npz.files}
    cache.write_bytes(b"not a zip file")
    calls = []
    monkeypatch.setattr(mnist1d_module, "generate_mnist1d", lambda: calls.append(1) or raw)
    again = load_dataset("mnist1d", root=copy)
    assert calls == [1]
    np.testing.assert_array_equal(first.test[0], again.test[0])
    with np.load(cache) as npz:  # rewritten whole
        np.testing.assert_array_equal(npz["x"], raw["x"])


def test_split_follows_seed_and_val_size(mnist1d_session):
    root, first, _ = mnist1d_session
    same = load_dataset("mnist1d", root=root, seed=42)
    other = load_dataset("mnist1d", root=root, seed=7)
    bigger = load_dataset("mnist1d", root=root, val_size=1000, normalize=False)
    np.testing.assert_array_equal(first.val[1], same.val[1])
    assert not np.array_equal(first.val[0], other.val[0])
    assert len(bigger.val[1]) == 1000 and len(bigger.train[1]) == 3000
    with pytest.raises(DataError, match="val_size"):
        load_dataset("mnist1d", root=root, val_size=4000)


def test_unnormalised_keeps_the_generated_values(mnist1d_session):
    root, _, _ = mnist1d_session
    (cache,) = root.glob("mnist1d-*.npz")
    ds = load_dataset("mnist1d", root=root, normalize=False)
    with np.load(cache) as npz:
        np.testing.assert_allclose(ds.test[0], npz["x_test"], rtol=1e-6)
        np.testing.assert_array_equal(ds.test[1], npz["y_test"])


def test_default_root_follows_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("MLPFRAME_DATA", str(tmp_path / "d"))
    assert default_root("mnist1d") == tmp_path / "d" / "mnist1d"
    monkeypatch.delenv("MLPFRAME_DATA")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "c"))
    assert default_root("cifar10") == tmp_path / "c" / "mlpframe" / "data" / "cifar10"
