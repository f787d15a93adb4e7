"""The layout a model reads, and data.shuffle_positions (the MNIST-1D paper's shuffled row)."""

from __future__ import annotations

import numpy as np
import pytest

from mlpframe.data import DataError, load_dataset
from mlpframe.data.layout import arrange_array, position_permutation


def test_layouts_of_a_signal(mnist1d_session):
    root, _, _ = mnist1d_session
    flat = load_dataset("mnist1d", root=root, layout="flat")
    chan = load_dataset("mnist1d", root=root, layout="channels")
    seq = load_dataset("mnist1d", root=root, layout="sequence")
    assert flat.input_shape == (40,) and chan.input_shape == (1, 40) and seq.input_shape == (40, 1)
    for s in ("train", "val", "test"):
        x = getattr(flat, s)[0]
        np.testing.assert_array_equal(getattr(chan, s)[0][:, 0, :], x)
        np.testing.assert_array_equal(getattr(seq, s)[0][:, :, 0], x)


def test_layouts_of_images():
    x = np.arange(2 * 3 * 4 * 5, dtype=np.float32).reshape(2, 3, 4, 5)  # (N, C, H, W)
    assert arrange_array(x, "flat").shape == (2, 60)
    assert arrange_array(x, "channels") is x
    seq = arrange_array(x, "sequence")
    assert seq.shape == (2, 4, 15)  # H rows of W pixels * C channels, pixel-major
    np.testing.assert_array_equal(seq[1, 2, 3 * 3:3 * 3 + 3], x[1, :, 2, 3])
    with pytest.raises(DataError, match="layout"):
        arrange_array(x, "graph")


def test_shuffle_positions_is_one_permutation_for_every_split(mnist1d_session):
    root, _, _ = mnist1d_session
    plain = load_dataset("mnist1d", root=root, seed=5)
    shuffled = load_dataset("mnist1d", root=root, seed=5, shuffle_positions=True, positions_seed=3)
    perm = position_permutation(plain, 3)
    assert sorted(perm) == list(range(40)) and not np.array_equal(perm, np.arange(40))
    for s in ("train", "val", "test"):
        x, y = getattr(plain, s)
        xs, ys = getattr(shuffled, s)
        assert not np.array_equal(xs, x)  # the data change...
        np.testing.assert_array_equal(xs, x[:, perm])  # ...by the same permutation in every split
        np.testing.assert_array_equal(ys, y)


def test_shuffle_is_seeded_and_independent_of_the_run_seed(mnist1d_session):
    root, _, _ = mnist1d_session
    kw = {"root": root, "normalize": False, "shuffle_positions": True}  # (the standardiser follows the split)
    a = load_dataset("mnist1d", seed=1, positions_seed=0, **kw)
    b = load_dataset("mnist1d", seed=2, positions_seed=0, **kw)
    c = load_dataset("mnist1d", seed=1, positions_seed=1, **kw)
    np.testing.assert_array_equal(a.test[0], b.test[0])  # the run seed moves the val split, not the permutation
    assert not np.array_equal(a.test[0], c.test[0])


def test_shuffle_before_layout_and_images_keep_their_channels_together():
    pytest.importorskip("sklearn")
    plain = load_dataset("digits", flatten=False, seed=0)
    shuffled = load_dataset("digits", flatten=False, seed=0, shuffle_positions=True)
    perm = position_permutation(plain, 0)
    assert len(perm) == 64
    np.testing.assert_array_equal(shuffled.test[0].reshape(-1, 64), plain.test[0].reshape(-1, 64)[:, perm])
    seq = load_dataset("digits", seed=0, shuffle_positions=True, layout="sequence")
    np.testing.assert_array_equal(seq.test[0], shuffled.test[0][:, 0])
