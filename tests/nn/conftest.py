"""Fixtures shared by the layer tests: every available backend, CuPy skipped visibly."""

from __future__ import annotations

import pytest

from mlpframe.backend import cupy_available

BACKENDS = [
    "numpy",
    "array_api_strict",
    pytest.param("cupy", marks=pytest.mark.skipif(not cupy_available(), reason="CuPy needs a CUDA GPU")),
]


@pytest.fixture(params=BACKENDS)
def backend_name(request) -> str:
    """Each backend name; the CuPy case shows as skipped where no GPU is usable."""
    return request.param
