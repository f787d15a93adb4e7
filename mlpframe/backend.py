"""The array-library shim: the only module that knows NumPy from CuPy.

Layer, loss and optimizer code takes its namespace from the data
(``xp = array_namespace(x)``) and uses only the Python array API standard, so the
same code runs on NumPy, CuPy and ``array_api_strict``. Everything that is *not*
in the standard lives here: device choice, random numbers, host transfer,
synchronisation and memory pools.

    >>> be = get_backend("numpy")
    >>> x = be.asarray([[1.0, 2.0]], dtype="float32")
    >>> be.to_numpy(be.xp.sum(x))
    array(3., dtype=float32)
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

import array_api_compat
import numpy as np

Array = Any  # an array of whichever library the backend wraps
Namespace = Any

BACKENDS = ("numpy", "cupy", "array_api_strict")
_CUPY_HINT = 'install CuPy for your CUDA version: pip install "mlpframe[cuda12]" (or "mlpframe[cuda13]")'


class BackendUnavailableError(RuntimeError):
    """A backend was asked for that cannot run here (not installed, no driver, no GPU).

    The message is one line that says which, and how to fix it.
    """


@functools.cache
def _namespace_for_type(array_type: type) -> Namespace | None:
    # NumPy >= 2 implements the standard in its own namespace: using it directly
    # skips array-api-compat's wrapper functions on the CPU hot path.
    if array_type is np.ndarray and np.lib.NumpyVersion(np.__version__) >= "2.0.0":
        return np
    return None


def array_namespace(*xs: Array) -> Namespace:
    """The array-API namespace of ``xs`` (a cached lookup on the array type)."""
    xp = _namespace_for_type(type(xs[0]))
    if xp is not None:
        return xp
    return array_api_compat.array_namespace(*xs)


def _resolve_dtype(xp: Namespace, dtype: Any) -> Any:
    if dtype is None or not isinstance(dtype, str):
        return dtype
    try:
        return getattr(xp, dtype)
    except AttributeError:
        raise ValueError(f"dtype: unknown dtype {dtype!r} (use 'float32' or 'float64')") from None


@dataclass
class Backend:
    """One array library and one device, with a seeded random source.

    Attributes:
        name: ``"numpy"``, ``"cupy"`` or ``"array_api_strict"``.
        xp: the array-API namespace used by layer code.
        device: the device arrays are created on (the library's own device object).
    """

    name: str
    xp: Namespace
    device: Any = None
    _lib: Any = field(default=None, repr=False)
    _rng: Any = field(default=None, repr=False)

    # ----------------------------------------------------------------- arrays
    def asarray(self, a: Any, dtype: Any = None, copy: bool | None = None) -> Array:
        """``a`` (host data or an array of this backend) as an array on this device.

        ``copy=True`` always copies; the default copies only when it must.
        """
        dtype = _resolve_dtype(self.xp, dtype)
        if self.name == "cupy":
            return self._lib.array(a, dtype=dtype, copy=bool(copy))
        if self.name == "array_api_strict" and not isinstance(a, type(self.xp.empty(0))):
            # strict takes NumPy arrays only through the buffer protocol: give it a contiguous one
            a = np.ascontiguousarray(a)
        return self.xp.asarray(a, dtype=dtype, device=self.device, copy=copy)

    def to_numpy(self, a: Array) -> np.ndarray:
        """A host NumPy copy of ``a`` (a device-to-host transfer on CuPy)."""
        if self.name == "cupy":
            return self._lib.asnumpy(a)
        return np.asarray(a)

    def dtype(self, name: str) -> Any:
        """The namespace's dtype object for ``"float32"``/``"float64"``/``"int64"``…"""
        return _resolve_dtype(self.xp, name)

    def synchronize(self) -> None:
        """Wait until queued device work is done (a no-op on the CPU)."""
        if self.name == "cupy":
            self._lib.cuda.get_current_stream().synchronize()

    # ----------------------------------------------------------------- random
    def seed(self, seed: int) -> None:
        """Re-seed this backend's random source (dropout masks, device-side sampling)."""
        if self.name == "cupy":
            self._rng = self._lib.random.default_rng(seed)
        else:
            self._rng = np.random.default_rng(seed)

    def uniform(self, shape: tuple[int, ...], dtype: Any = "float32") -> Array:
        """Samples from U[0, 1) of ``shape``, drawn on the device where it can."""
        if self._rng is None:
            self.seed(0)
        dtype = _resolve_dtype(self.xp, dtype)
        if self.name == "cupy":
            return self._rng.random(shape, dtype=dtype)
        u = self._rng.random(shape, dtype=np.float64 if dtype == self.xp.float64 else np.float32)
        return u if self.name == "numpy" else self.asarray(u)

    def rng_state(self) -> dict[str, Any] | None:
        """The random stream's position as JSON-able data (NumPy's bit-generator state).

        ``None`` where it cannot be read back (CuPy's generators): a checkpoint can then
        restore the stream only at the next re-seed.
        """
        if isinstance(self._rng, np.random.Generator):
            return self._rng.bit_generator.state
        return None

    def set_rng_state(self, state: dict[str, Any] | None) -> bool:
        """Put back a stream saved by :meth:`rng_state`; False when this backend cannot take it."""
        if state is None or not isinstance(self._rng, np.random.Generator):
            return False
        try:
            self._rng.bit_generator.state = state
        except (TypeError, ValueError, KeyError, IndexError, OverflowError):
            return False
        return True

    # ------------------------------------------------------------ bookkeeping
    def memory_info(self) -> dict[str, int]:
        """Bytes held by the device memory pool (empty on the CPU)."""
        if self.name == "cupy":
            pool = self._lib.get_default_memory_pool()
            return {"used_bytes": int(pool.used_bytes()), "total_bytes": int(pool.total_bytes())}
        return {}

    def free_memory(self) -> None:
        """Give cached device memory back (between the jobs of a sweep)."""
        if self.name == "cupy":
            self._lib.get_default_memory_pool().free_all_blocks()
            self._lib.get_default_pinned_memory_pool().free_all_blocks()


def _cupy_backend(device_id: int | None) -> Backend:
    try:
        import cupy
    except ImportError:
        raise BackendUnavailableError(f"CuPy is not installed: {_CUPY_HINT}") from None
    try:
        n_devices = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # CUDARuntimeError: no driver or an old one
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise BackendUnavailableError(
            f"CuPy is installed but no usable NVIDIA driver was found ({reason}); "
            "run on a machine with a CUDA GPU and driver, or use backend=numpy"
        ) from None
    if n_devices == 0:
        raise BackendUnavailableError("CuPy found no CUDA GPU on this machine; use backend=numpy")
    device_id = 0 if device_id is None else device_id
    if not 0 <= device_id < n_devices:
        raise BackendUnavailableError(
            f"backend.device={device_id} but this machine has {n_devices} GPU(s) (0..{n_devices - 1})"
        )
    device = cupy.cuda.Device(device_id)
    device.use()
    xp = array_api_compat.array_namespace(cupy.empty(0))
    return Backend(name="cupy", xp=xp, device=device, _lib=cupy)


@functools.cache
def get_backend(name: str = "numpy", device: int | None = None) -> Backend:
    """The :class:`Backend` called ``name``: ``"numpy"``, ``"cupy"`` or ``"array_api_strict"``.

    One instance per (name, device) and process. Raises
    :class:`BackendUnavailableError` when CuPy cannot run here, ``ValueError`` for an
    unknown name.
    """
    if name == "numpy":
        return Backend(name="numpy", xp=np, device="cpu", _lib=np)
    if name == "array_api_strict":
        try:
            import array_api_strict
        except ImportError:
            raise BackendUnavailableError(
                'array_api_strict is not installed: pip install "mlpframe[test]"'
            ) from None
        return Backend(name=name, xp=array_api_strict, device=array_api_strict.Device("CPU_DEVICE"))
    if name == "cupy":
        return _cupy_backend(device)
    raise ValueError(f"backend: unknown backend {name!r} (choose from {', '.join(BACKENDS)})")


def backend_of(x: Array) -> Backend:
    """The backend whose arrays are of ``x``'s kind (for code handed a bare array)."""
    xp = array_namespace(x)
    if xp is np or array_api_compat.is_numpy_namespace(xp):
        return get_backend("numpy")
    if array_api_compat.is_cupy_namespace(xp):
        return get_backend("cupy")
    if xp.__name__ == "array_api_strict":
        return get_backend("array_api_strict")
    raise ValueError(f"no mlpframe backend for arrays of {type(x).__name__}")


def cupy_available() -> bool:
    """True when the CuPy backend can run here (for tests that skip without a GPU)."""
    try:
        get_backend("cupy")
    except BackendUnavailableError:
        return False
    return True
