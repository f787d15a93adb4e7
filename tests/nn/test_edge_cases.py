"""Inputs the gradient checks do not reach: huge logits, an upstream gradient other than 1."""

from __future__ import annotations

import numpy as np
import pytest

from mlpframe import nn


def test_softmax_and_cross_entropy_stay_finite_for_huge_logits():
    # rows with very different scales: the max is subtracted per row, so neither overflows
    z = np.array([[1000.0, 999.0, -1000.0], [0.0, 1.0, 2.0]], dtype=np.float32)
    p = nn.Softmax()(z)
    e = np.exp(np.array([[1.0, 0.0, -2000.0], [-2.0, -1.0, 0.0]]))
    np.testing.assert_allclose(p, e / e.sum(axis=1, keepdims=True), rtol=1e-6, atol=1e-30)
    loss = nn.CrossEntropyLoss()(z, np.array([1, 0]))
    assert np.isfinite(loss) and float(loss) == pytest.approx((1.3132617 + 2.4076059) / 2, rel=1e-6)


@pytest.mark.parametrize("make", [nn.MSELoss, nn.CrossEntropyLoss, lambda: nn.CrossEntropyLoss(from_logits=False)])
def test_loss_backward_scales_with_the_upstream_gradient(make):
    rng = np.random.default_rng(0)
    x = rng.uniform(0.1, 1.0, size=(4, 3))
    x /= x.sum(axis=1, keepdims=True)
    crit = make()
    t = rng.uniform(size=(4, 3)) if isinstance(crit, nn.MSELoss) else np.array([0, 2, 1, 0])
    crit(x, t)
    np.testing.assert_allclose(crit.backward(2.5), 2.5 * crit.backward(), rtol=1e-12)
