"""Invalid arguments raise ValueError naming the argument."""

from __future__ import annotations

import numpy as np
import pytest

from mlpframe import nn

CASES = [
    ("in_features", lambda: nn.Linear(0, 3)),
    ("out_features", lambda: nn.Linear(3, -1)),
    ("init", lambda: nn.Linear(3, 2, init="orthogonal")),
    ("dtype", lambda: nn.Linear(3, 2, dtype="float16")),
    ("p", lambda: nn.Dropout(1.0)),
    ("p", lambda: nn.Dropout(-0.1)),
    ("hidden", lambda: nn.MLP(4, [8, 0], 2)),
    ("activation", lambda: nn.MLP(4, [8], 2, activation="swish")),
    ("norm", lambda: nn.MLP(4, [8], 2, norm="group")),
    ("dropout", lambda: nn.MLP(4, [8], 2, dropout=1.5)),
    ("num_features", lambda: nn.BatchNorm1d(0)),
    ("momentum", lambda: nn.BatchNorm1d(3, momentum=2.0)),
    ("eps", lambda: nn.LayerNorm(3, eps=0.0)),
    ("label_smoothing", lambda: nn.CrossEntropyLoss(label_smoothing=1.5)),
    ("alpha", lambda: nn.ELU(alpha=-1.0)),
    ("negative_slope", lambda: nn.LeakyReLU(-0.1)),
    ("activation", lambda: nn.get_activation("softplus")),
]


@pytest.mark.parametrize("argument,make", CASES, ids=[f"{a}-{i}" for i, (a, _) in enumerate(CASES)])
def test_bad_constructor_argument_is_named(argument, make):
    with pytest.raises(ValueError, match=rf"^{argument}:"):
        make()


def test_mismatched_input_shape_is_named():
    with pytest.raises(ValueError, match=r"^x: expected shape \(N, 4\), got \(2, 5\)"):
        nn.Linear(4, 3, rng=0)(np.zeros((2, 5), dtype=np.float32))
    with pytest.raises(ValueError, match=r"^x:"):
        nn.BatchNorm1d(4)(np.zeros((2, 5), dtype=np.float32))


def test_mismatched_targets_are_named():
    logits = np.zeros((3, 4), dtype=np.float32)
    with pytest.raises(ValueError, match="^targets: expected 3 labels"):
        nn.CrossEntropyLoss()(logits, np.zeros(2, dtype=np.int64))
    with pytest.raises(ValueError, match="^targets:"):
        nn.CrossEntropyLoss()(logits, np.zeros((3, 5), dtype=np.float32))
    with pytest.raises(ValueError, match="^targets:"):
        nn.MSELoss()(logits, np.zeros((3, 3), dtype=np.float32))


def test_boundary_values_that_are_allowed():
    """The edges of each range that are valid: a slope of 0 (ReLU), no dropout, no smoothing."""
    x = np.array([[-2.0, 0.0, 3.0]], dtype=np.float32)
    np.testing.assert_array_equal(nn.LeakyReLU(0.0)(x), [[0.0, 0.0, 3.0]])
    np.testing.assert_array_equal(nn.Dropout(0.0)(x), x)
    nn.CrossEntropyLoss(label_smoothing=0.0)
