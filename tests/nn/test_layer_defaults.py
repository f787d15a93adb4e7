"""Default arguments and the values at kinks, pinned to PyTorch's documented ones (the DESIGN's contract)."""

from __future__ import annotations

import numpy as np
import pytest

from mlpframe import nn


def test_layer_defaults_are_pytorch_s():
    bn, ln = nn.BatchNorm1d(3), nn.LayerNorm(3)
    assert (bn.eps, bn.momentum, ln.eps) == (1e-5, 0.1, 1e-5)
    assert nn.LeakyReLU().negative_slope == 0.01 and nn.ELU().alpha == 1.0
    ce = nn.CrossEntropyLoss()
    assert ce.from_logits is True and ce.label_smoothing == 0.0


def test_gradients_at_the_kink_are_pytorch_s():
    """At x = 0 exactly: ReLU and LeakyReLU take the negative side's slope, as torch does."""
    x = np.array([[-1.0, 0.0, 2.0]], dtype=np.float32)
    for layer, slope in ((nn.ReLU(), 0.0), (nn.LeakyReLU(0.2), 0.2)):
        layer(x)
        np.testing.assert_allclose(layer.backward(np.ones_like(x)), [[slope, slope, 1.0]], rtol=1e-6)


def test_batch_norm_trains_on_two_rows_and_refuses_one():
    bn = nn.BatchNorm1d(2)
    y = bn(np.array([[1.0, 2.0], [3.0, 6.0]], dtype=np.float32))
    np.testing.assert_allclose(y, [[-1.0, -1.0], [1.0, 1.0]], atol=1e-3)
    with pytest.raises(ValueError, match="^x: BatchNorm1d needs at least 2 values per channel"):
        bn(np.ones((1, 2), dtype=np.float32))
