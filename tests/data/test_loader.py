"""DataLoader: batch sizes, seeded shuffling, set_epoch determinism, backends alike."""

from __future__ import annotations

import numpy as np
import pytest

from mlpframe.backend import get_backend
from mlpframe.data import DataLoader

N, D = 103, 5


def make_data(n: int = N, d: int = D):
    # row i holds i in every feature, so a batch shows which samples it took
    X = np.repeat(np.arange(n, dtype=np.float32)[:, None], d, axis=1)
    y = np.arange(n, dtype=np.int64) % 7
    return X, y


def epoch_rows(loader: DataLoader) -> list[np.ndarray]:
    be = loader.backend
    return [be.to_numpy(xb)[:, 0].astype(np.int64) for xb, _ in loader]


@pytest.mark.parametrize("drop_last", [False, True])
@pytest.mark.parametrize("batch_size", [1, 10, 103, 200])
def test_batch_count_and_sizes(batch_size, drop_last):
    X, y = make_data()
    loader = DataLoader(X, y, batch_size, get_backend("numpy"), shuffle=True, drop_last=drop_last)
    sizes = [len(xb) for xb, _ in loader]
    full, rest = divmod(N, batch_size)
    expected = [batch_size] * full + ([rest] if rest and not drop_last else [])
    assert sizes == expected
    assert len(loader) == len(expected)
    assert loader.num_samples == N


def test_every_sample_once_per_epoch_and_labels_follow_rows():
    X, y = make_data()
    loader = DataLoader(X, y, 16, get_backend("numpy"), shuffle=True, seed=3)
    seen = []
    for xb, yb in loader:
        rows = xb[:, 0].astype(np.int64)
        np.testing.assert_array_equal(yb, y[rows])
        seen.append(rows)
    seen = np.concatenate(seen)
    np.testing.assert_array_equal(np.sort(seen), np.arange(N))
    assert not np.array_equal(seen, np.arange(N))  # actually shuffled


def test_unshuffled_is_in_order():
    X, y = make_data()
    loader = DataLoader(X, y, 10, get_backend("numpy"))
    np.testing.assert_array_equal(np.concatenate(epoch_rows(loader)), np.arange(N))
    np.testing.assert_array_equal(np.concatenate(epoch_rows(loader)), np.arange(N))


def test_order_is_a_function_of_seed_and_epoch():
    X, y = make_data()
    be = get_backend("numpy")
    a = DataLoader(X, y, 8, be, shuffle=True, seed=5)
    first = [epoch_rows(a) for _ in range(3)]  # iter() advances the epoch
    assert not np.array_equal(np.concatenate(first[0]), np.concatenate(first[1]))

    b = DataLoader(X, y, 8, be, shuffle=True, seed=5)
    b.set_epoch(2)  # resuming at the start of epoch 2 replays it exactly
    for got, want in zip(epoch_rows(b), first[2], strict=True):
        np.testing.assert_array_equal(got, want)
    assert b.epoch == 3

    c = DataLoader(X, y, 8, be, shuffle=True, seed=6)
    assert not np.array_equal(np.concatenate(epoch_rows(c)), np.concatenate(first[0]))


def test_state_dict_round_trip():
    X, y = make_data()
    be = get_backend("numpy")
    a = DataLoader(X, y, 8, be, shuffle=True, seed=9)
    for _ in range(2):
        epoch_rows(a)
    state = a.state_dict()
    b = DataLoader(X, y, 8, be, shuffle=True, seed=0)
    b.load_state_dict(state)
    np.testing.assert_array_equal(np.concatenate(epoch_rows(b)), np.concatenate(epoch_rows(a)))


@pytest.mark.parametrize("shuffle", [True, False])
@pytest.mark.parametrize("drop_last", [True, False])
def test_numpy_and_array_api_strict_give_identical_batches(shuffle, drop_last):
    pytest.importorskip("array_api_strict")
    X, y = make_data()
    loaders = [DataLoader(X, y, 16, get_backend(name), shuffle=shuffle, drop_last=drop_last, seed=11)
               for name in ("numpy", "array_api_strict")]
    for loader in loaders:
        loader.set_epoch(4)
    strict = get_backend("array_api_strict")
    pairs = list(zip(*loaders, strict=True))
    assert len(pairs) == (N // 16 if drop_last else -(-N // 16))
    for (xn, yn), (xs, ys) in pairs:
        assert type(xs).__module__.startswith("array_api_strict")
        assert xs.dtype == strict.xp.float32 and ys.dtype == strict.xp.int64
        np.testing.assert_array_equal(xn, strict.to_numpy(xs))
        np.testing.assert_array_equal(yn, strict.to_numpy(ys))


def test_batches_are_float32_and_int64_on_numpy():
    X, y = make_data()
    xb, yb = next(iter(DataLoader(X.astype(np.float64), y.astype(np.int32), 4, get_backend("numpy"),
                                  shuffle=True)))
    assert xb.dtype == np.float32 and yb.dtype == np.int64


def test_whole_split_is_moved_once():
    X, y = make_data()
    be = get_backend("numpy")
    loader = DataLoader(X, y, 10, be, shuffle=True)
    assert loader.on_device
    assert np.shares_memory(loader.X, X)  # float32 NumPy input: no copy at all


class _TinyDevice:
    """A backend whose device refuses anything larger than a few batches."""

    def __init__(self, limit: int) -> None:
        self._be = get_backend("numpy")
        self.name, self.xp, self.limit, self.transfers = "tiny", np, limit, 0

    def asarray(self, a, dtype=None):
        if np.asarray(a).size > self.limit:
            raise MemoryError("out of device memory")
        self.transfers += 1
        return self._be.asarray(a, dtype=dtype)

    def to_numpy(self, a):
        return np.asarray(a)

    def free_memory(self) -> None:
        pass


def test_falls_back_to_host_batches_when_the_split_does_not_fit():
    X, y = make_data()
    tiny = _TinyDevice(limit=16 * D)
    host = DataLoader(X, y, 16, tiny, shuffle=True, seed=2)
    ref = DataLoader(X, y, 16, get_backend("numpy"), shuffle=True, seed=2)
    assert not host.on_device and ref.on_device
    for (xa, ya), (xb, yb) in zip(host, ref, strict=True):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)
    assert tiny.transfers == 2 * len(ref)


@pytest.mark.parametrize("bad", [0, -3, 2.5, True])
def test_bad_batch_size(bad):
    X, y = make_data()
    with pytest.raises(ValueError, match="batch_size"):
        DataLoader(X, y, bad, get_backend("numpy"))


def test_length_mismatch():
    X, y = make_data()
    with pytest.raises(ValueError, match="samples"):
        DataLoader(X, y[:-1], 4, get_backend("numpy"))
