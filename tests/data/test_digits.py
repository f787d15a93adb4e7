"""data=digits: scikit-learn's bundled 8x8 digits, a fixed test split and a seeded validation split."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from mlpframe.data import DataError, load_dataset

pytest.importorskip("sklearn", reason="the digits extra (scikit-learn) is not installed")


def test_splits_shapes_and_types():
    ds = load_dataset("digits", flatten=False, seed=0)
    assert [len(s[1]) for s in (ds.train, ds.val, ds.test)] == [1294, 143, 360]  # 1797 in all
    assert ds.train[0].shape[1:] == (1, 8, 8) and ds.train[0].dtype == np.float32 and ds.train[1].dtype == np.int64
    assert ds.num_classes == 10 and ds.class_names == [str(d) for d in range(10)]
    assert set(np.unique(ds.test[1])) == set(range(10))
    flat = load_dataset("digits", seed=0)
    assert flat.train[0].shape == (1294, 64)
    np.testing.assert_array_equal(flat.train[0], ds.train[0].reshape(1294, 64))


def _rows(x: np.ndarray) -> set[bytes]:
    return {r.tobytes() for r in x.reshape(len(x), -1)}


def test_the_seed_moves_the_validation_split_not_the_test_split():
    a, b, c = (load_dataset("digits", seed=s, normalize=False) for s in (1, 1, 2))
    np.testing.assert_array_equal(a.val[0], b.val[0])
    assert not np.array_equal(a.val[1], c.val[1])
    np.testing.assert_array_equal(a.test[0], c.test[0])
    np.testing.assert_array_equal(a.test[1], c.test[1])
    # the three splits are disjoint pieces of the 1,797 images (a few images are duplicates of others)
    from sklearn.datasets import load_digits

    raw = load_digits().data / 16.0
    union = np.concatenate([a.train[0], a.val[0], a.test[0]])
    assert len(union) == len(raw) and _rows(union.astype(np.float32)) == _rows(raw.astype(np.float32))


def test_normalize_uses_training_statistics():
    ds = load_dataset("digits", seed=3)
    assert abs(float(ds.train[0].mean())) < 1e-4 and abs(float(ds.train[0].std()) - 1.0) < 1e-3
    raw = load_dataset("digits", seed=3, normalize=False)
    assert float(raw.train[0].min()) == 0.0 and float(raw.train[0].max()) == 1.0


def test_val_size_is_checked():
    assert len(load_dataset("digits", val_size=0).val[1]) == 0
    with pytest.raises(DataError, match="val_size"):
        load_dataset("digits", val_size=1437)


def test_missing_scikit_learn_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)  # import fails as if not installed
    with pytest.raises(DataError, match=r'pip install "mlpframe\[digits\]"'):
        load_dataset("digits")
