"""Weight initialisers: drawn on the host from a seeded ``numpy.random.Generator``.

Initialising on the host and moving with ``model.to(backend)`` gives the same
starting weights on NumPy, CuPy and array_api_strict for the same seed.
"""

from __future__ import annotations

import math

import numpy as np

DTYPES = ("float32", "float64")
RngLike = np.random.Generator | int | None

# gain = sqrt(2 / (1 + a^2)) for ReLU-like activations (He et al., 2015); ELU, GELU and
# SiLU are close enough to ReLU that the same gain keeps activations at unit scale.
GAINS = {"relu": math.sqrt(2.0), "elu": math.sqrt(2.0), "gelu": math.sqrt(2.0),
          "silu": math.sqrt(2.0), "leaky_relu": math.sqrt(2.0 / (1 + 0.01**2)),
          "tanh": 5.0 / 3.0, "sigmoid": 1.0, "identity": 1.0, "linear": 1.0}


def check_dtype(dtype: str) -> str:
    if dtype not in DTYPES:
        raise ValueError(f"dtype: expected one of {DTYPES}, got {dtype!r}")
    return dtype


def as_rng(rng: RngLike) -> np.random.Generator:
    """``rng`` itself, a Generator seeded with ``rng`` when it is an int, or a fresh one."""
    if isinstance(rng, np.random.Generator):
        return rng
    return np.random.default_rng(rng)


def gain(nonlinearity: str) -> float:
    """The recommended gain for the activation that follows a layer."""
    try:
        return GAINS[nonlinearity]
    except KeyError:
        raise ValueError(f"nonlinearity: unknown {nonlinearity!r} (choose from {sorted(GAINS)})") from None


def kaiming_normal(shape: tuple[int, int], rng: np.random.Generator, dtype: str = "float32",
                   nonlinearity: str = "relu") -> np.ndarray:
    """``W ~ N(0, gain^2 / fan_in)`` with ``fan_in = shape[1]`` (He et al., 2015)."""
    std = gain(nonlinearity) / math.sqrt(shape[1])
    return rng.normal(0.0, std, size=shape).astype(check_dtype(dtype))


def xavier_uniform(shape: tuple[int, int], rng: np.random.Generator, dtype: str = "float32",
                   nonlinearity: str = "linear") -> np.ndarray:
    """``W ~ U(-a, a)``, ``a = gain * sqrt(6 / (fan_in + fan_out))`` (Glorot & Bengio, 2010)."""
    a = gain(nonlinearity) * math.sqrt(6.0 / (shape[0] + shape[1]))
    return rng.uniform(-a, a, size=shape).astype(check_dtype(dtype))


def torch_default(shape: tuple[int, int], rng: np.random.Generator, dtype: str = "float32",
                  nonlinearity: str = "linear") -> np.ndarray:
    """PyTorch's ``nn.Linear`` default: ``W ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in))``."""
    bound = 1.0 / math.sqrt(shape[1])
    return rng.uniform(-bound, bound, size=shape).astype(check_dtype(dtype))


def torch_bias(fan_in: int, n: int, rng: np.random.Generator, dtype: str = "float32") -> np.ndarray:
    """PyTorch's default bias of ``nn.Linear`` and ``nn.Conv*d``: ``b ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in))``."""
    bound = 1.0 / math.sqrt(fan_in)
    return rng.uniform(-bound, bound, size=(n,)).astype(check_dtype(dtype))


INITS = {"kaiming": kaiming_normal, "xavier": xavier_uniform, "torch": torch_default}


def zeros(shape: tuple[int, ...], dtype: str = "float32") -> np.ndarray:
    return np.zeros(shape, dtype=check_dtype(dtype))


def ones(shape: tuple[int, ...], dtype: str = "float32") -> np.ndarray:
    return np.ones(shape, dtype=check_dtype(dtype))
