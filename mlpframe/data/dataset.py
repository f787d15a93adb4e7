"""The :class:`Dataset` container and the helpers every data set shares.

Splits, standardisation, the per-user data folder and the ``.npz`` cache of
preprocessed arrays live here so each data-set module only says where its raw
data comes from and how to read it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mlpframe.atomic import atomic_open
from mlpframe.data.errors import DataError

log = logging.getLogger(__name__)

Split = tuple[np.ndarray, np.ndarray]  # (X float32 (N, ...), y int64 (N,))
SPLITS = ("train", "val", "test")


@dataclass
class Dataset:
    """Train, validation and test splits of one data set, as host NumPy arrays.

    Attributes:
        name: the data set's name (one of ``DATASETS``).
        train, val, test: ``(X, y)`` with ``X`` float32 of shape ``(N, D)`` (or
            ``(N, C, H, W)`` for images loaded with ``flatten=False``) and ``y``
            int64 of shape ``(N,)`` holding class indices.
        num_classes: the number of classes ``C``.
        class_names: ``C`` readable class names.
        num_features: ``D``, the length of one flattened sample.
    """

    name: str
    train: Split
    val: Split
    test: Split
    num_classes: int
    class_names: list[str] = field(default_factory=list)

    @property
    def num_features(self) -> int:
        return int(np.prod(self.train[0].shape[1:], dtype=np.int64))

    @property
    def input_shape(self) -> tuple[int, ...]:
        """The shape of one sample (``(D,)`` when flattened)."""
        return tuple(int(s) for s in self.train[0].shape[1:])

    def __repr__(self) -> str:
        sizes = ", ".join(f"{s}={len(getattr(self, s)[1])}" for s in SPLITS)
        return f"Dataset({self.name!r}, {sizes}, input_shape={self.input_shape}, num_classes={self.num_classes})"


# ------------------------------------------------------------------- folders
def default_root(name: str) -> Path:
    """Where ``name``'s files live by default: ``$MLPFRAME_DATA/<name>``, else the user cache."""
    base = os.environ.get("MLPFRAME_DATA")
    if base:
        return Path(base).expanduser() / name
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join("~", ".cache")
    return Path(cache).expanduser() / "mlpframe" / "data" / name


def resolve_root(name: str, root: str | os.PathLike | None) -> Path:
    if root is None or str(root) == "":
        return default_root(name)
    return Path(root).expanduser()


# -------------------------------------------------------- splits and scaling
def check_val_size(name: str, val_size: int, n_train: int) -> int:
    if isinstance(val_size, bool) or not isinstance(val_size, (int, np.integer)):
        raise DataError(f"{name}: val_size={val_size!r} must be a whole number of samples")
    if not 0 <= val_size < n_train:
        raise DataError(
            f"{name}: val_size={val_size} must be between 0 and {n_train - 1} (the training set has {n_train})"
        )
    return int(val_size)


def split_indices(n: int, val_size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded ``(train_idx, val_idx)``: a permutation of ``range(n)`` cut ``val_size`` from the end.

    Each part is sorted, so the training set keeps the source order and the
    split depends only on ``(n, val_size, seed)``.
    """
    perm = np.random.default_rng(seed).permutation(n)
    cut = n - val_size
    return np.sort(perm[:cut]), np.sort(perm[cut:])


def standardizer(x_train: np.ndarray, eps: float = 1e-8) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature ``(mean, std)`` of the training set, float64, std floored at ``eps``."""
    x = x_train.reshape(len(x_train), -1).astype(np.float64)
    return x.mean(axis=0), np.maximum(x.std(axis=0), eps)


def apply_affine(x: np.ndarray, scale: np.ndarray, shift: np.ndarray, *, index: np.ndarray | None = None,
                 rows: int = 4096) -> np.ndarray:
    """``x[index] * scale + shift`` per feature as a new float32 ``(N, D)`` array, in row blocks.

    Gathering and converting block by block keeps the temporaries small: the
    result is the only full-size float array alive, and ``x[index]`` is never
    materialised whole.
    """
    x2 = x.reshape(len(x), -1)
    n = len(x2) if index is None else len(index)
    out = np.empty((n, x2.shape[1]), dtype=np.float32)
    scale = np.asarray(scale, dtype=np.float32)
    shift = np.asarray(shift, dtype=np.float32)
    for i in range(0, n, rows):
        src = x2[i:i + rows] if index is None else x2[index[i:i + rows]]
        block = out[i:i + rows]
        np.multiply(src, scale, out=block, dtype=np.float32, casting="unsafe")
        block += shift
    return out


def label_array(y: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(y, dtype=np.int64)


# --------------------------------------------------------------------- cache
def cache_key(**settings: object) -> str:
    """A short stable hash of the settings a cached file depends on."""
    text = json.dumps(settings, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


_CACHE_KEYS = tuple(f"{s}_{a}" for s in SPLITS for a in ("x", "y"))


def save_splits(path: Path, splits: dict[str, Split]) -> None:
    """Write the splits to an uncompressed ``.npz`` atomically; a failure only warns.

    The cache is an optimisation: a read-only data folder must not stop a run.
    """
    arrays = {f"{s}_{a}": v for s, (x, y) in splits.items() for a, v in (("x", x), ("y", y))}
    try:
        with atomic_open(path) as f:
            np.savez(f, **arrays)
    except OSError as exc:
        warnings.warn(f"could not write the data cache {path} ({exc.strerror or exc}); continuing without it",
                      stacklevel=3)


def load_splits(path: Path) -> dict[str, Split] | None:
    """The splits cached in ``path``, or None when it is missing or unreadable (then rebuilt)."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as npz:
            if set(npz.files) != set(_CACHE_KEYS):
                raise ValueError(f"unexpected arrays {sorted(npz.files)}")
            splits = {s: (npz[f"{s}_x"], npz[f"{s}_y"]) for s in SPLITS}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        log.warning("ignoring unreadable data cache %s (%s); rebuilding it", path, exc)
        return None
    for s, (x, y) in splits.items():
        if x.dtype != np.float32 or y.dtype != np.int64 or len(x) != len(y):
            log.warning("ignoring data cache %s with bad %s arrays; rebuilding it", path, s)
            return None
    return splits
