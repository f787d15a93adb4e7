"""Interleaved spirals in the plane: an instant, seeded data set for quick runs and tests.

Class ``k`` of ``K`` is the arm ``r = t``, ``angle = turns * 2 pi t + 2 pi k / K``
for ``t`` uniform in [0, 1), plus Gaussian noise of std ``noise``. Not linearly
separable for ``K >= 2``, yet an MLP with one hidden layer learns it in seconds.
"""

from __future__ import annotations

import numpy as np

from mlpframe.data.dataset import Dataset, apply_affine, check_val_size, label_array, standardizer
from mlpframe.data.errors import DataError
from mlpframe.data.source import DataSource

NAME = "synthetic"


def make_spirals(n: int, num_classes: int, noise: float, turns: float, rng: np.random.Generator
                 ) -> tuple[np.ndarray, np.ndarray]:
    """``n`` points ``(n, 2)`` float64 and their labels, classes balanced up to one sample."""
    y = np.arange(n) % num_classes
    rng.shuffle(y)
    t = rng.random(n)
    angle = 2.0 * np.pi * (turns * t + y / num_classes)
    x = np.stack([t * np.cos(angle), t * np.sin(angle)], axis=1)  # (n, 2)
    x += noise * rng.standard_normal(x.shape)
    return x, y


def load_synthetic(
    *,
    n_samples: int = 3000,
    num_classes: int = 2,
    noise: float = 0.05,
    turns: float = 1.0,
    test_size: int | None = None,
    val_size: int | None = None,
    seed: int = 42,
    normalize: bool = True,
) -> Dataset:
    """``n_samples`` spiral points split into train / val / test, all drawn from ``seed``.

    ``val_size`` and ``test_size`` default to 10 % and 20 % of ``n_samples``; the rest
    is the training set. With ``normalize`` both features are standardised with
    the training split's statistics.
    """
    if isinstance(n_samples, bool) or not isinstance(n_samples, (int, np.integer)) or n_samples < 10:
        raise DataError(f"{NAME}: n_samples={n_samples!r} must be a whole number of at least 10")
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or num_classes < 2:
        raise DataError(f"{NAME}: num_classes={num_classes!r} must be a whole number of at least 2")
    if not 0 <= noise < float("inf"):
        raise DataError(f"{NAME}: noise={noise!r} must be a finite number >= 0")
    if not abs(turns) < float("inf"):  # NaN fails too
        raise DataError(f"{NAME}: turns={turns!r} must be a finite number")
    test_size = n_samples // 5 if test_size is None else test_size
    val_size = n_samples // 10 if val_size is None else val_size
    if isinstance(test_size, bool) or not isinstance(test_size, (int, np.integer)) or not 0 < test_size < n_samples:
        raise DataError(f"{NAME}: test_size={test_size!r} must be between 1 and {n_samples - 1}")
    val_size = check_val_size(NAME, val_size, n_samples - test_size)

    x, y = make_spirals(n_samples, num_classes, float(noise), float(turns), np.random.default_rng(seed))
    n_train = n_samples - test_size - val_size
    parts = np.split(np.arange(n_samples), [n_train, n_train + val_size])  # x is already in random order
    mean, std = standardizer(x[parts[0]]) if normalize else (np.zeros(2), np.ones(2))

    def split(idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        # x_float = (x - mean) / std
        return apply_affine(x, 1.0 / std, -mean / std, index=idx), label_array(y[idx])

    return Dataset(NAME, split(parts[0]), split(parts[1]), split(parts[2]), num_classes=int(num_classes),
                   class_names=[f"arm {k}" for k in range(num_classes)])


class SyntheticSource(DataSource):
    """The spirals, drawn from the run's seed (nothing to fetch or cache)."""

    name = NAME
    shape = (2,)
    options = ("n_samples", "num_classes", "noise", "turns", "test_size")
    cached = False

    def class_names(self, num_classes: int = 2, **_: object) -> list[str]:
        return [f"arm {k}" for k in range(num_classes)]

    def fetch(self, root: object, **_: object) -> None:
        return None

    def preprocess(self, raw: None, *, val_size: int | None, seed: int, normalize: bool,
                   **options: object) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        ds = load_synthetic(val_size=val_size, seed=seed, normalize=normalize, **options)
        return {"train": ds.train, "val": ds.val, "test": ds.test}


SOURCES = {NAME: SyntheticSource()}
