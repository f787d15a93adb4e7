"""The backend shim: names, conversions, random source, and what happens without a GPU."""

from __future__ import annotations

import builtins
import sys

import numpy as np
import pytest

from mlpframe import backend as backend_mod
from mlpframe.backend import BackendUnavailableError, backend_of, get_backend


@pytest.mark.parametrize("name", ["numpy", "array_api_strict"])
def test_round_trip_and_dtypes(name):
    be = get_backend(name)
    assert be.name == name and get_backend(name) is be
    a = be.asarray(np.arange(6.0).reshape(2, 3), dtype="float32")
    assert a.dtype == be.xp.float32 and be.dtype("float32") == be.xp.float32
    host = be.to_numpy(a)
    assert isinstance(host, np.ndarray) and host.dtype == np.float32
    np.testing.assert_array_equal(host, np.arange(6.0).reshape(2, 3))
    assert backend_of(a) is be
    be.synchronize()


def test_asarray_copy_flag():
    be = get_backend("numpy")
    a = np.ones(3, dtype=np.float32)
    assert be.asarray(a) is a
    b = be.asarray(a, copy=True)
    b[0] = 5
    assert a[0] == 1


@pytest.mark.parametrize("name", ["numpy", "array_api_strict"])
def test_seeded_uniform_is_reproducible_and_in_range(name):
    be = get_backend(name)
    be.seed(123)
    u1 = be.to_numpy(be.uniform((1000,), dtype="float32"))
    be.seed(123)
    u2 = be.to_numpy(be.uniform((1000,), dtype="float32"))
    np.testing.assert_array_equal(u1, u2)
    assert u1.dtype == np.float32 and 0 <= u1.min() and u1.max() < 1 and abs(u1.mean() - 0.5) < 0.05
    be.seed(124)
    assert not np.array_equal(be.to_numpy(be.uniform((1000,), dtype="float32")), u1)


def test_unknown_backend_names_the_choices():
    with pytest.raises(ValueError, match="backend: unknown backend 'jax'.*numpy, cupy, array_api_strict"):
        get_backend("jax")


def test_bad_dtype_name():
    with pytest.raises(ValueError, match="dtype: unknown dtype 'float8'"):
        get_backend("numpy").asarray([1.0], dtype="float8")


def test_cupy_not_installed_says_how_to_install(monkeypatch):
    real_import = builtins.__import__

    def no_cupy(name, *args, **kwargs):
        if name == "cupy" or name.startswith("cupy."):
            raise ImportError("No module named 'cupy'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setitem(sys.modules, "cupy", None)
    monkeypatch.setattr(builtins, "__import__", no_cupy)
    with pytest.raises(BackendUnavailableError, match=r'CuPy is not installed.*pip install "mlpframe\[cuda12\]"'):
        get_backend("cupy")


def test_cupy_without_driver_says_so(monkeypatch):
    class FakeRuntimeError(Exception):
        pass

    class FakeRuntime:
        @staticmethod
        def getDeviceCount():
            raise FakeRuntimeError("cudaErrorInsufficientDriver: CUDA driver version is insufficient")

    fake = type(sys)("cupy")
    fake.cuda = type(sys)("cupy.cuda")
    fake.cuda.runtime = FakeRuntime
    monkeypatch.setitem(sys.modules, "cupy", fake)
    with pytest.raises(BackendUnavailableError) as info:
        get_backend("cupy")
    message = str(info.value)
    assert "no usable NVIDIA driver" in message and "cudaErrorInsufficientDriver" in message
    assert "\n" not in message
    assert not backend_mod.cupy_available()


def test_cupy_without_gpu_says_so(monkeypatch):
    fake = type(sys)("cupy")
    fake.cuda = type(sys)("cupy.cuda")
    fake.cuda.runtime = type("R", (), {"getDeviceCount": staticmethod(lambda: 0)})
    monkeypatch.setitem(sys.modules, "cupy", fake)
    with pytest.raises(BackendUnavailableError, match="no CUDA GPU"):
        get_backend("cupy")



def test_rng_state_round_trip_continues_the_stream():
    be = get_backend("numpy")
    be.seed(7)
    be.uniform((3,))
    state = be.rng_state()
    expected = be.to_numpy(be.uniform((5,)))
    be.seed(99)
    assert be.set_rng_state(state)
    np.testing.assert_array_equal(be.to_numpy(be.uniform((5,))), expected)
    assert not be.set_rng_state({"bit_generator": "nonsense"})
    assert not be.set_rng_state(None)
