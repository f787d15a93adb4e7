"""MNIST-1D, generated offline by the ``mnist1d`` package and cached.

``mnist1d.data.make_dataset`` with its default arguments yields the standard
4,000 training and 1,000 test signals of 40 features in 10 classes, the same on
every machine (it seeds NumPy's global RNG with 42). Generation takes about a
second; the arrays are cached as ``mnist1d-<settings>.npz`` under ``root`` so
later runs only read a small file.

``val_size`` training signals (default 500) become the validation set, chosen by
a permutation seeded with ``seed``. With ``normalize`` each feature is
standardised with the training split's mean and std.
"""

from __future__ import annotations

import importlib.metadata
import logging
import os
import random
import zipfile
from pathlib import Path

import numpy as np

from mlpframe.data.dataset import (
    Dataset,
    apply_affine,
    cache_key,
    check_val_size,
    label_array,
    resolve_root,
    split_indices,
    standardizer,
)
from mlpframe.atomic import atomic_open
from mlpframe.data.errors import DataError

log = logging.getLogger(__name__)

NAME = "mnist1d"
DEFAULT_VAL_SIZE = 500
_RAW_KEYS = ("x", "y", "x_test", "y_test")


def generate_mnist1d() -> dict[str, np.ndarray]:
    """The standard MNIST-1D arrays ``{x, y, x_test, y_test}``, leaving global RNG state untouched.

    ``make_dataset`` reseeds NumPy's and Python's global generators; their states
    are restored afterwards so generating data never changes what other code draws.
    """
    try:
        import mnist1d.data
    except ImportError as exc:
        raise DataError(f"{NAME}: the mnist1d package is needed to generate MNIST-1D ({exc}); pip install mnist1d"
                        ) from None
    np_state, py_state = np.random.get_state(), random.getstate()
    try:
        data = mnist1d.data.make_dataset(mnist1d.data.get_dataset_args())
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)
    return {k: np.asarray(data[k]) for k in _RAW_KEYS}


def _raw_cache_path(root: Path) -> Path:
    # keyed by the generator's version: read from metadata, since importing mnist1d.data pulls in matplotlib
    try:
        version = importlib.metadata.version("mnist1d")
    except importlib.metadata.PackageNotFoundError:
        version = "not installed"
    return root / f"mnist1d-{cache_key(generator='make_dataset(get_dataset_args())', version=version)}.npz"


def _load_raw(path: Path) -> dict[str, np.ndarray] | None:
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as npz:
            raw = {k: npz[k] for k in _RAW_KEYS}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        log.warning("ignoring unreadable MNIST-1D cache %s (%s); generating it again", path, exc)
        return None
    if raw["x"].ndim != 2 or len(raw["x"]) != len(raw["y"]) or len(raw["x_test"]) != len(raw["y_test"]):
        log.warning("ignoring MNIST-1D cache %s with inconsistent arrays; generating it again", path)
        return None
    return raw


def load_mnist1d(
    root: str | os.PathLike | None = None,
    *,
    val_size: int | None = None,
    seed: int = 42,
    normalize: bool = True,
) -> Dataset:
    """MNIST-1D as float32 splits: ``(N, 40)`` signals, 10 classes (see the module docstring)."""
    root = resolve_root(NAME, root)
    path = _raw_cache_path(root)
    raw = _load_raw(path)
    if raw is None:
        log.info("generating MNIST-1D (once; cached as %s)", path)
        raw = generate_mnist1d()
        try:
            with atomic_open(path) as f:
                np.savez(f, **raw)
        except OSError as exc:
            log.warning("could not cache MNIST-1D in %s (%s); it is generated again next time", path, exc)

    x_all, y_all = raw["x"], raw["y"]
    val_size = check_val_size(NAME, DEFAULT_VAL_SIZE if val_size is None else val_size, len(y_all))
    train_idx, val_idx = split_indices(len(y_all), val_size, seed)
    if normalize:
        # x_float = (x - mean) / std with the training split's statistics only
        mean, std = standardizer(x_all[train_idx])
        scale, shift = 1.0 / std, -mean / std
    else:
        scale, shift = np.ones(x_all.shape[1]), np.zeros(x_all.shape[1])

    def split(x: np.ndarray, y: np.ndarray, idx: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        return apply_affine(x, scale, shift, index=idx), label_array(y if idx is None else y[idx])

    return Dataset(
        NAME,
        train=split(x_all, y_all, train_idx),
        val=split(x_all, y_all, val_idx),
        test=split(raw["x_test"], raw["y_test"]),
        num_classes=10,
        class_names=[str(d) for d in range(10)],
    )
