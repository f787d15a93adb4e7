"""Unpickling the CIFAR-10 batches without letting a pickle run code.

A pickle is a program: ``pickle.load`` imports and calls whatever the file names.
The CIFAR-10 batches need exactly three callables (NumPy rebuilding a uint8
array), so :func:`restricted_loads` allows those and nothing else; every other
global, in particular ``os.system``, ``builtins.eval`` or ``builtins.open``, is
refused before it is looked up. Everything else in the file can only be plain
data (dict, list, bytes, str, int, float, tuple, bool, None).

This is the second line of defence: a batch is only ever unpickled when its
bytes were verified against a checksum first (see :mod:`mlpframe.data.cifar10`).
"""

from __future__ import annotations

import io
import pickle
import struct

import numpy as np

from mlpframe.data.errors import DataError

# The array constructor pickles reference; its module moved in NumPy 2
# (numpy.core -> numpy._core), so take it from an array instead of importing it.
_RECONSTRUCT = np.ndarray.__reduce__(np.zeros(0, dtype=np.uint8))[0]

_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> object:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed") from None


def restricted_loads(data: bytes, *, source: str) -> object:
    """Unpickle ``data`` (a Python 2 pickle; byte strings stay ``bytes``) allowing only plain data.

    Raises DataError naming ``source`` for a pickle that asks for anything else or
    is malformed.
    """
    try:
        return _RestrictedUnpickler(io.BytesIO(data), encoding="bytes").load()
    except pickle.UnpicklingError as exc:
        raise DataError(f"{source} is not a plain CIFAR-10 batch ({exc}); refusing to load it") from None
    except (EOFError, ValueError, TypeError, IndexError, AttributeError, struct.error) as exc:
        raise DataError(
            f"{source} is corrupt ({exc.__class__.__name__}: {exc}); delete it so it is re-extracted"
        ) from None

