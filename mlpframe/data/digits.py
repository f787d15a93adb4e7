"""scikit-learn's bundled handwritten digits: 1,797 images of 8x8 pixels (0..16), 10 classes.

Real data that needs no download: the UCI "optical recognition of handwritten
digits" test set, shipped inside scikit-learn (``pip install "mlpframe[digits]"``).
There is no official test split, so one is drawn once: ``TEST_SIZE`` images chosen by
a permutation seeded with ``TEST_SEED`` (the same for every run, so test accuracies
compare across seeds), then ``val_size`` of the rest (default 10 %) by the run's seed.
With ``normalize`` pixels are standardised with the training split's mean and std
(one channel: one pair), else scaled to [0, 1].
"""

from __future__ import annotations

import numpy as np

from mlpframe.data.dataset import apply_affine, check_val_size, label_array, split_indices
from mlpframe.data.errors import DataError
from mlpframe.data.source import DataSource

NAME = "digits"
TEST_SIZE = 360  # 20 % of 1,797
TEST_SEED = 0
MAX_PIXEL = 16.0


def read_digits() -> tuple[np.ndarray, np.ndarray]:
    """The 1,797 images as uint8 ``(N, 64)`` (0..16) and their labels."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise DataError(f"{NAME}: the digits data set ships with scikit-learn, which is not installed; "
                        'pip install "mlpframe[digits]" (or pip install scikit-learn)') from None
    bunch = load_digits()
    return np.asarray(bunch.data, dtype=np.uint8), np.asarray(bunch.target)


class DigitsSource(DataSource):
    name = NAME
    shape = (1, 8, 8)
    cached = False  # a 1,797-image split takes a millisecond

    def fetch(self, root: object, **_: object) -> tuple[np.ndarray, np.ndarray]:
        return read_digits()

    def preprocess(self, raw: tuple[np.ndarray, np.ndarray], *, val_size: int | None, seed: int,
                   normalize: bool) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        x, y = raw
        rest, test = split_indices(len(y), TEST_SIZE, TEST_SEED)
        val_size = len(rest) // 10 if val_size is None else val_size
        val_size = check_val_size(NAME, val_size, len(rest))
        train_pos, val_pos = split_indices(len(rest), val_size, seed)
        train, val = rest[train_pos], rest[val_pos]
        if normalize:
            # x_float = (x - mean) / std, one mean and std over the training pixels (one channel)
            pixels = x[train].astype(np.float64)
            mean, std = pixels.mean(), max(pixels.std(), 1e-8)
        else:
            mean, std = 0.0, MAX_PIXEL
        scale, shift = np.float64(1.0 / std), np.float64(-mean / std)
        return {s: (apply_affine(x, scale, shift, index=idx), label_array(y[idx]))
                for s, idx in (("train", train), ("val", val), ("test", test))}


SOURCES = {NAME: DigitsSource()}
