"""The multi-layer perceptron builder."""

from __future__ import annotations

from collections.abc import Sequence

from mlpframe.nn import init as initializers
from mlpframe.nn.activations import ACTIVATIONS, get_activation
from mlpframe.nn.dropout import Dropout
from mlpframe.nn.linear import Linear
from mlpframe.nn.module import Module, Sequential
from mlpframe.nn.normalization import BatchNorm1d, LayerNorm

NORMS = {"batch": BatchNorm1d, "layer": LayerNorm}


class MLP(Sequential):
    """``[Linear -> norm? -> activation -> Dropout?] * len(hidden) -> Linear``, producing logits.

    With ``hidden=[128]``, ``activation="elu"``, ``norm=None`` this is the course
    homework's network (append :class:`~mlpframe.nn.Softmax` to get its probabilities).
    Weights are drawn from ``rng`` in layer order, so one seed gives one network on
    every backend. Children are numbered like ``nn.Sequential``: ``"0.weight"``, …
    """

    def __init__(self, in_features: int, hidden: Sequence[int] = (128,), out_features: int = 10,
                 activation: str = "elu", norm: str | None = None, dropout: float = 0.0, *,
                 rng: initializers.RngLike = None, dtype: str = "float32", init: str = "kaiming") -> None:
        hidden = list(hidden)
        for i, h in enumerate(hidden):
            if not isinstance(h, int) or isinstance(h, bool) or h < 1:
                raise ValueError(f"hidden: every width must be a positive int, got {h!r} at position {i}")
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation: unknown {activation!r} (choose from {', '.join(ACTIVATIONS)})")
        if norm not in (None, *NORMS):
            raise ValueError(f"norm: expected None, 'batch' or 'layer', got {norm!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout: probability must be in [0, 1), got {dropout!r}")
        rng = initializers.as_rng(rng)
        gain_name = activation if activation in initializers.GAINS else "relu"
        layers: list[Module] = []
        width = in_features
        for h in hidden:
            layers.append(Linear(width, h, rng=rng, dtype=dtype, init=init, nonlinearity=gain_name))
            if norm is not None:
                layers.append(NORMS[norm](h, dtype=dtype))
            layers.append(get_activation(activation))
            if dropout > 0:
                layers.append(Dropout(dropout))
            width = h
        layers.append(Linear(width, out_features, rng=rng, dtype=dtype, init=init, nonlinearity="linear"))
        super().__init__(*layers)
        self.in_features, self.hidden, self.out_features = in_features, hidden, out_features
