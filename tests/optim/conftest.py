"""Fixtures shared by the optimizer tests: one backend per case, CuPy skipped visibly without a GPU."""

from __future__ import annotations

import numpy as np
import pytest

from mlpframe.backend import cupy_available, get_backend
from mlpframe.nn import Parameter

# every optimizer test runs on each of these; CuPy shows as *skipped* where it cannot run
BACKEND_NAMES = ["numpy", "array_api_strict", pytest.param("cupy", marks=pytest.mark.cupy)]


@pytest.fixture(params=BACKEND_NAMES)
def be(request):
    if request.param == "cupy" and not cupy_available():
        pytest.skip("CuPy backend unavailable here (no CuPy or no CUDA GPU)")
    return get_backend(request.param)


SHAPES = [(4, 3), (4,), (2, 3, 2)]


@pytest.fixture
def make_params():
    """``make_params(be, dtype, seed=0, shapes=SHAPES)`` -> (list of Parameters, list of host float64 copies)."""

    def make(be, dtype, seed=0, shapes=SHAPES):
        rng = np.random.default_rng(seed)
        host = [rng.standard_normal(s) for s in shapes]
        return [Parameter(be.asarray(h, dtype=dtype)) for h in host], [h.copy() for h in host]

    return make
