"""Synthetic spirals: seeded, split, standardised, learnable."""

from __future__ import annotations

import numpy as np
import pytest

from mlpframe.data import DataError, load_dataset


def test_splits_and_types():
    ds = load_dataset("synthetic", n_samples=500, num_classes=3, seed=1)
    assert ds.num_features == 2 and ds.num_classes == 3 and len(ds.class_names) == 3
    assert [len(s[1]) for s in (ds.train, ds.val, ds.test)] == [350, 50, 100]
    for x, y in (ds.train, ds.val, ds.test):
        assert x.dtype == np.float32 and y.dtype == np.int64 and x.shape == (len(y), 2)
    counts = np.bincount(np.concatenate([ds.train[1], ds.val[1], ds.test[1]]))
    assert counts.max() - counts.min() <= 1
    np.testing.assert_allclose(ds.train[0].mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(ds.train[0].std(axis=0), 1, atol=1e-4)


def test_seeded():
    a = load_dataset("synthetic", seed=3, n_samples=200)
    b = load_dataset("synthetic", seed=3, n_samples=200)
    c = load_dataset("synthetic", seed=4, n_samples=200)
    np.testing.assert_array_equal(a.train[0], b.train[0])
    assert not np.array_equal(a.train[0], c.train[0])


def test_sizes_and_noise_options():
    ds = load_dataset("synthetic", n_samples=100, val_size=5, test_size=15, noise=0.0, normalize=False)
    assert [len(s[1]) for s in (ds.train, ds.val, ds.test)] == [80, 5, 15]
    radius = np.hypot(*ds.train[0].T)
    assert radius.max() <= 1.0 + 1e-6  # noiseless points stay on the unit-length arms


@pytest.mark.parametrize(
    "options",
    [{"n_samples": 5}, {"num_classes": 1}, {"noise": -1.0}, {"noise": float("nan")}, {"noise": float("inf")},
     {"turns": float("nan")}, {"turns": float("inf")}, {"test_size": 0}, {"val_size": 10_000}],
)
def test_bad_options(options):
    with pytest.raises(DataError):
        load_dataset("synthetic", **options)


def test_an_mlp_learns_it():
    from mlpframe import get_backend, nn, optim
    from mlpframe.data import DataLoader

    ds = load_dataset("synthetic", n_samples=1000, num_classes=2, seed=0)
    be = get_backend("numpy")
    model = nn.MLP(2, [32, 32], 2, activation="relu", rng=np.random.default_rng(0)).to(be)
    crit, opt = nn.CrossEntropyLoss(), optim.Adam(model.parameters(), lr=1e-2)
    loader = DataLoader(*ds.train, 50, be, shuffle=True, seed=0)
    for _ in range(30):
        for xb, yb in loader:
            model.zero_grad()
            crit(model(xb), yb)
            model.backward(crit.backward())
            opt.step()
    model.eval()
    accuracy = np.mean(np.argmax(model(be.asarray(ds.test[0])), axis=1) == ds.test[1])
    assert accuracy > 0.9
