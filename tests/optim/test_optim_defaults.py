"""Optimizer defaults pinned to PyTorch's documented ones, and clipping's allowed edge."""

from __future__ import annotations

import numpy as np
import pytest

from mlpframe import nn, optim


def params():
    return nn.Linear(3, 2, rng=np.random.default_rng(0)).parameters()


@pytest.mark.parametrize("cls, expected", [
    (optim.Adam, dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)),
    (optim.AdamW, dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2)),
])
def test_adam_defaults_are_pytorch_s(cls, expected):
    group = cls(params()).param_groups[0]
    assert {k: (tuple(group[k]) if k == "betas" else group[k]) for k in expected} == expected


def test_sgd_defaults_are_pytorch_s():
    group = optim.SGD(params(), lr=0.1).param_groups[0]
    assert (group["momentum"], group["dampening"], group["nesterov"], group["weight_decay"]) == (0.0, 0.0, False, 0.0)


def test_clipping_to_zero_is_allowed_and_zeroes_the_gradients():
    p = list(params())
    for q in p:
        q.grad = np.ones_like(q.data)
    total = optim.clip_grad_norm_(p, 0.0)
    assert float(total) == pytest.approx(np.sqrt(8.0))
    assert all(not q.grad.any() for q in p)
