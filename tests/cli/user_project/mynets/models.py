"""Model callables for ``_target_`` in conf/model/*.yaml."""

from __future__ import annotations

import math

from mlpframe import nn
from mynets.layers import Gain

NOT_CALLABLE = 16
ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU}


def gain_net(input_shape, num_classes, width=16, activation="tanh", *, rng, dtype):
    """``Linear -> Gain -> activation -> Linear``: mlpframe passes input_shape, num_classes, rng and dtype."""
    if activation not in ACTIVATIONS:  # a ValueError is the config's problem: one line, exit status 2
        raise ValueError(f"activation: unknown {activation!r} (choose from {', '.join(ACTIVATIONS)})")
    D = math.prod(input_shape)
    act = ACTIVATIONS[activation]
    return nn.Sequential(nn.Linear(D, width, rng=rng, dtype=dtype), Gain(width, dtype=dtype), act(),
                         nn.Linear(width, num_classes, rng=rng, dtype=dtype))


def not_a_model(width=16, activation="tanh"):
    return [width]
