"""Writers for the official file formats, to build stand-in data sets.

Tests and benchmarks cannot download CIFAR-10 or MNIST, so they write small (or
full-size) random data sets byte-for-byte in the official layouts:

* CIFAR-10 "python version": ``cifar-10-python.tar.gz`` holding
  ``cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta, readme.html}``,
  each batch a dict with bytes keys pickled by Python 2's cPickle (protocol 2:
  byte strings as ``BINSTRING``, the images as a pickled ``numpy.ndarray`` uint8
  ``(N, 3072)`` in channel-major order, the labels as a list of ints).
* MNIST / Fashion-MNIST: gzipped IDX files (big-endian header with magic number
  2051 for images, 2049 for labels).
"""

from __future__ import annotations

import gzip
import io
import pickle
import struct
import tarfile
from pathlib import Path

import numpy as np

CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


# ------------------------------------------------------ Python 2 pickle bytes
def _py2_str(b: bytes) -> bytes:
    """A Python 2 ``str`` as cPickle wrote it (loads as ``bytes`` with encoding='bytes')."""
    if len(b) < 256:
        return pickle.SHORT_BINSTRING + bytes([len(b)]) + b
    return pickle.BINSTRING + struct.pack("<i", len(b)) + b


def _py2_int(i: int) -> bytes:
    if 0 <= i < 256:
        return pickle.BININT1 + bytes([i])
    return pickle.BININT + struct.pack("<i", i)


def _py2_global(module: str, name: str) -> bytes:
    return pickle.GLOBAL + f"{module}\n{name}\n".encode()


def _py2_value(v: object) -> bytes:
    if isinstance(v, bytes):
        return _py2_str(v)
    if isinstance(v, bool):
        return pickle.NEWTRUE if v else pickle.NEWFALSE
    if isinstance(v, int):
        return _py2_int(v)
    if isinstance(v, list):
        body = b"".join(_py2_value(e) for e in v)
        return pickle.EMPTY_LIST + (pickle.MARK + body + pickle.APPENDS if v else b"")
    if isinstance(v, np.ndarray):
        return _py2_ndarray(v)
    raise TypeError(f"cannot write {type(v).__name__} as a Python 2 pickle")


def _py2_ndarray(a: np.ndarray) -> bytes:
    """A C-contiguous uint8 array as NumPy 1.x on Python 2 pickled it."""
    if a.dtype != np.uint8:
        raise TypeError("only uint8 arrays are written")
    shape = b"".join(_py2_int(s) for s in a.shape)
    dtype_state = (
        pickle.MARK + _py2_int(3) + _py2_str(b"|") + pickle.NONE * 3
        + pickle.BININT + struct.pack("<i", -1) + pickle.BININT + struct.pack("<i", -1)
        + _py2_int(0) + pickle.TUPLE
    )
    dtype = _py2_global("numpy", "dtype") + _py2_str(b"u1") + _py2_int(0) + _py2_int(1) + pickle.TUPLE3 \
        + pickle.REDUCE + dtype_state + pickle.BUILD
    state = (
        pickle.MARK + _py2_int(1) + pickle.MARK + shape + pickle.TUPLE + dtype + pickle.NEWFALSE
        + _py2_str(np.ascontiguousarray(a).tobytes()) + pickle.TUPLE
    )
    return (
        _py2_global("numpy.core.multiarray", "_reconstruct") + _py2_global("numpy", "ndarray")
        + _py2_int(0) + pickle.TUPLE1 + _py2_str(b"b") + pickle.TUPLE3 + pickle.REDUCE
        + state + pickle.BUILD
    )


def py2_pickle_dict(d: dict[bytes, object]) -> bytes:
    """``d`` (bytes keys; values bytes, int, list, uint8 ndarray) as a Python 2 protocol-2 pickle."""
    items = b"".join(_py2_str(k) + _py2_value(v) for k, v in d.items())
    return pickle.PROTO + bytes([2]) + pickle.EMPTY_DICT + pickle.MARK + items + pickle.SETITEMS + pickle.STOP


# ------------------------------------------------------------------ CIFAR-10
def cifar10_batch(data: np.ndarray, labels: np.ndarray, batch_label: str) -> bytes:
    """One pickled CIFAR-10 batch: ``data`` uint8 (N, 3072), ``labels`` ints in [0, 10)."""
    n = len(labels)
    return py2_pickle_dict({
        b"batch_label": batch_label.encode(),
        b"labels": [int(v) for v in labels],
        b"data": np.ascontiguousarray(data, dtype=np.uint8).reshape(n, 3072),
        b"filenames": [f"img_{i:05d}.png".encode() for i in range(n)],
    })


def cifar10_meta(per_batch: int) -> bytes:
    return py2_pickle_dict({
        b"num_cases_per_batch": per_batch,
        b"label_names": [c.encode() for c in CIFAR10_CLASSES],
        b"num_vis": 3072,
    })


def random_cifar10(n_train: int, n_test: int, seed: int = 0) -> tuple[np.ndarray, ...]:
    """Random ``(x_train, y_train, x_test, y_test)`` uint8 images and labels, a learnable stand-in.

    Each class gets its own mean colour so a small model can beat chance.
    """
    rng = np.random.default_rng(seed)
    out = []
    for n in (n_train, n_test):
        y = rng.integers(0, 10, size=n)
        x = rng.integers(0, 128, size=(n, 3072), dtype=np.uint8)
        x += (y * 12).astype(np.uint8)[:, None]
        out += [x, y]
    return tuple(out)


def write_cifar10_archive(
    path: Path | str,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    *,
    extra_members: dict[str, bytes] | None = None,
    replace_members: dict[str, bytes] | None = None,
    compresslevel: int = 9,
) -> Path:
    """Write ``cifar-10-python.tar.gz`` in the official layout (5 training batches).

    ``replace_members`` swaps a member's bytes (e.g. a planted pickle);
    ``extra_members`` adds members under arbitrary names (e.g. ``../escape``);
    a low ``compresslevel`` makes full-size stand-ins quick to write.
    """
    path = Path(path)
    members: dict[str, bytes] = {}
    parts = np.array_split(np.arange(len(y_train)), 5)
    for i, idx in enumerate(parts, start=1):
        members[f"data_batch_{i}"] = cifar10_batch(x_train[idx], y_train[idx], f"training batch {i} of 5")
    members["test_batch"] = cifar10_batch(x_test, y_test, "testing batch 1 of 1")
    members["batches.meta"] = cifar10_meta(len(parts[0]))
    members["readme.html"] = b"<html>stand-in</html>\n"
    members.update(replace_members or {})
    full = {f"cifar-10-batches-py/{k}": v for k, v in members.items()}
    full.update(extra_members or {})
    with tarfile.open(path, "w:gz", compresslevel=compresslevel) as tar:
        folder = tarfile.TarInfo("cifar-10-batches-py")
        folder.type, folder.mode = tarfile.DIRTYPE, 0o755
        tar.addfile(folder)
        for name, data in full.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    return path


# ---------------------------------------------------------------------- IDX
def idx_bytes(a: np.ndarray) -> bytes:
    """``a`` (uint8, 1-D labels or 3-D images) as an uncompressed IDX file."""
    a = np.ascontiguousarray(a, dtype=np.uint8)
    magic = {1: 2049, 3: 2051}[a.ndim]
    return struct.pack(f">i{a.ndim}i", magic, *a.shape) + a.tobytes()


def write_idx_gz(path: Path | str, a: np.ndarray) -> Path:
    path = Path(path)
    path.write_bytes(gzip.compress(idx_bytes(a), compresslevel=1, mtime=0))
    return path


def write_mnist_files(folder: Path | str, n_train: int, n_test: int, seed: int = 0) -> dict[str, Path]:
    """The four gzipped IDX files of an MNIST-format data set with random 28x28 images."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    files = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        y = rng.integers(0, 10, size=n).astype(np.uint8)
        x = rng.integers(0, 160, size=(n, 28, 28), dtype=np.uint8) + (y * 9)[:, None, None]
        files[f"{prefix}-images-idx3-ubyte.gz"] = write_idx_gz(folder / f"{prefix}-images-idx3-ubyte.gz", x)
        files[f"{prefix}-labels-idx1-ubyte.gz"] = write_idx_gz(folder / f"{prefix}-labels-idx1-ubyte.gz", y)
    return files
