"""The convolutional network builder: 1-D or 2-D, following the input's shape."""

from __future__ import annotations

import math
from collections.abc import Sequence

from mlpframe.nn import init as initializers
from mlpframe.nn import windows
from mlpframe.nn.activations import ACTIVATIONS, get_activation
from mlpframe.nn.conv import Conv1d, Conv2d
from mlpframe.nn.dropout import Dropout
from mlpframe.nn.flatten import Flatten
from mlpframe.nn.linear import Linear
from mlpframe.nn.module import Module, Sequential
from mlpframe.nn.normalization import BatchNorm1d, BatchNorm2d
from mlpframe.nn.pooling import AvgPool1d, AvgPool2d, GlobalAvgPool, MaxPool1d, MaxPool2d

LAYERS = {  # spatial dims -> (conv, batch norm, {pool name: pool})
    1: (Conv1d, BatchNorm1d, {"max": MaxPool1d, "avg": AvgPool1d}),
    2: (Conv2d, BatchNorm2d, {"max": MaxPool2d, "avg": AvgPool2d}),
}
HEADS = ("flatten", "global_avg")


def _per_block(name: str, value, blocks: int) -> list:
    """A list is one value per block; anything else (an int, an (h, w) tuple, None) is every block's."""
    if isinstance(value, list):
        if len(value) != blocks:
            raise ValueError(f"{name}: expected one value or a list of {blocks} (one per block), got {value!r}")
        return value
    return [value] * blocks


class CNN(Sequential):
    """``[Conv -> norm? -> activation -> pool?] * len(channels) -> head -> Dropout? -> Linear``, producing logits.

    ``input_shape`` is one example's (C, L) or (C, H, W): it picks 1-D or 2-D layers.
    ``kernel_size``, ``stride``, ``padding`` and ``pool`` are one value for every block
    (an int, or an (h, w) tuple in 2-D) or a list with one per block; ``padding=None`` keeps
    the size at stride 1 (k // 2);
    ``pool`` is a pooling window (stride the same) or None. The head is ``"flatten"``
    (every position's features into the Linear layer) or ``"global_avg"`` (the mean of
    each channel). Weights are drawn from ``rng`` in layer order, as :class:`MLP`'s.

    The MNIST-1D paper's CNN is ``CNN((1, 40), [25, 25, 25], kernel_size=[5, 3, 3],
    stride=2, padding=1, activation="relu")``.
    """

    def __init__(self, input_shape: Sequence[int], channels: Sequence[int] = (32, 64), out_features: int = 10,
                 kernel_size: int | Sequence[int] = 3, stride: int | Sequence[int] = 1,
                 padding: int | None | Sequence[int | None] = None, pool: int | None | Sequence[int | None] = None,
                 pool_type: str = "max", norm: str | None = None, activation: str = "relu", head: str = "flatten",
                 dropout: float = 0.0, *, rng: initializers.RngLike = None, dtype: str = "float32",
                 init: str = "kaiming") -> None:
        input_shape = tuple(input_shape)
        if len(input_shape) not in (2, 3) or any(not isinstance(n, int) or n < 1 for n in input_shape):
            raise ValueError(f"input_shape: expected (C, L) or (C, H, W) of positive ints, got {input_shape!r}")
        channels = list(channels)
        if not channels or any(not isinstance(c, int) or isinstance(c, bool) or c < 1 for c in channels):
            raise ValueError(f"channels: expected a non-empty list of positive ints, got {channels!r}")
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation: unknown {activation!r} (choose from {', '.join(ACTIVATIONS)})")
        if norm not in (None, "batch"):
            raise ValueError(f"norm: expected None or 'batch', got {norm!r}")
        if head not in HEADS:
            raise ValueError(f"head: expected one of {HEADS}, got {head!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout: probability must be in [0, 1), got {dropout!r}")
        dims = len(input_shape) - 1
        conv, batch_norm, pools = LAYERS[dims]
        if pool_type not in pools:
            raise ValueError(f"pool_type: expected one of {sorted(pools)}, got {pool_type!r}")
        n = len(channels)
        kernels, strides = _per_block("kernel_size", kernel_size, n), _per_block("stride", stride, n)
        paddings, pooling = _per_block("padding", padding, n), _per_block("pool", pool, n)
        rng = initializers.as_rng(rng)
        gain_name = activation if activation in initializers.GAINS else "relu"
        layers: list[Module] = []
        c, spatial = input_shape[0], input_shape[1:]
        for i, (c_out, k, s, p, pl) in enumerate(zip(channels, kernels, strides, paddings, pooling)):
            k = windows.as_tuple("kernel_size", k, dims, 1)
            p = tuple(kk // 2 for kk in k) if p is None else windows.as_tuple("padding", p, dims, 0)
            layer = conv(c, c_out, k, s, p, bias=norm is None, rng=rng, dtype=dtype, init=init,
                         nonlinearity=gain_name)
            spatial = tuple(windows.output_size(L, kk, ss, pp) for L, kk, ss, pp in
                            zip(spatial, k, layer.stride, p))
            layers.append(layer)
            if norm == "batch":
                layers.append(batch_norm(c_out, dtype=dtype))
            layers.append(get_activation(activation))
            if pl is not None:
                pool_layer = pools[pool_type](pl)
                spatial = tuple(windows.output_size(L, kk, ss, 0) for L, kk, ss in
                                zip(spatial, pool_layer.kernel_size, pool_layer.stride))
                layers.append(pool_layer)
            if min(spatial) < 1:
                raise ValueError(f"input_shape: {input_shape} is too small for block {i} (kernel {k}, stride {s}, "
                                 f"padding {p}, pool {pl}): nothing is left of it")
            c = c_out
        layers.append(GlobalAvgPool() if head == "global_avg" else Flatten())
        if dropout > 0:
            layers.append(Dropout(dropout))
        width = c if head == "global_avg" else c * math.prod(spatial)
        layers.append(Linear(width, out_features, rng=rng, dtype=dtype, init=init, nonlinearity="linear"))
        super().__init__(*layers)
        self.input_shape, self.channels, self.out_features = input_shape, channels, out_features
