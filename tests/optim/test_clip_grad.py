"""clip_grad_norm_: the global L2 norm, in-place scaling, a device-side coefficient."""

from __future__ import annotations

import numpy as np
import pytest

from mlpframe import optim
from mlpframe.nn import Parameter

SHAPES = [(5, 4), (4,), (3, 2, 2)]


def make(be, dtype, scale=1.0, seed=0):
    rng = np.random.default_rng(seed)
    host = [scale * rng.standard_normal(s) for s in SHAPES]
    params = []
    for h in host:
        p = Parameter(be.asarray(np.zeros(h.shape), dtype=dtype))
        p.grad = be.asarray(h.copy(), dtype=dtype)  # (NumPy float64 would alias h)
        params.append(p)
    return params, host


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("max_norm", [0.5, 1e6, float("inf")])
def test_matches_closed_form(be, dtype, max_norm):
    params, host = make(be, dtype)
    total = np.sqrt(sum(np.sum(h**2) for h in host))
    coef = min(1.0, max_norm / (total + 1e-6))
    norm = optim.clip_grad_norm_(params, max_norm)
    rtol = 1e-5 if dtype == "float32" else 1e-12
    np.testing.assert_allclose(be.to_numpy(norm), total, rtol=rtol)
    for i, (p, h) in enumerate(zip(params, host)):
        assert p.grad.dtype == be.dtype(dtype)
        np.testing.assert_allclose(be.to_numpy(p.grad), h * coef, rtol=rtol, err_msg=f"grad {i}")


@pytest.mark.torch
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("max_norm", [0.1, 3.0, 100.0])
def test_matches_torch(be, dtype, max_norm):
    torch = pytest.importorskip("torch")
    params, host = make(be, dtype, scale=0.7, seed=3)
    tparams = []
    for h in host:
        t = torch.zeros(h.shape, dtype=getattr(torch, dtype), requires_grad=True)
        t.grad = torch.tensor(h, dtype=getattr(torch, dtype))
        tparams.append(t)
    expected_norm = torch.nn.utils.clip_grad_norm_(tparams, max_norm)
    norm = optim.clip_grad_norm_(params, max_norm)
    rtol = 1e-6 if dtype == "float32" else 1e-13
    np.testing.assert_allclose(be.to_numpy(norm), expected_norm.numpy(), rtol=rtol)
    for i, (p, t) in enumerate(zip(params, tparams)):
        np.testing.assert_allclose(be.to_numpy(p.grad), t.grad.numpy(), rtol=rtol, atol=1e-7, err_msg=f"grad {i}")


def test_returns_a_0d_device_array_not_a_float(be):
    params, _ = make(be, "float32")
    grads = [p.grad for p in params]
    norm = optim.clip_grad_norm_(params, 1.0)
    assert not isinstance(norm, (float, np.generic))
    assert type(norm) is type(grads[0])  # the gradients' array type: it stays on the device
    assert norm.shape == () and norm.dtype == be.dtype("float32")
    assert all(p.grad is g for p, g in zip(params, grads))  # scaled in place


def test_skips_missing_grads_and_accepts_a_single_parameter(be):
    params, host = make(be, "float64")
    params[1].grad = None
    norm = optim.clip_grad_norm_(params, 1e9)
    np.testing.assert_allclose(be.to_numpy(norm), np.sqrt(np.sum(host[0] ** 2) + np.sum(host[2] ** 2)))
    norm = optim.clip_grad_norm_(params[0], 1e-3)
    np.testing.assert_allclose(be.to_numpy(norm), np.linalg.norm(host[0]))
    np.testing.assert_allclose(np.linalg.norm(be.to_numpy(params[0].grad)), 1e-3, rtol=1e-5)
    assert optim.clip_grad_norm_([Parameter(np.zeros(2))], 1.0) == 0.0


@pytest.mark.parametrize("bad", [-1.0, float("nan"), "1", None, True])
def test_invalid_max_norm(bad):
    with pytest.raises(ValueError, match="^max_norm:"):
        optim.clip_grad_norm_([Parameter(np.zeros(2))], bad)
