"""The fully connected layer."""

from __future__ import annotations

from mlpframe.backend import Array, array_namespace
from mlpframe.nn import init as initializers
from mlpframe.nn.module import Module, Parameter


class Linear(Module):
    r"""Affine map :math:`y = x W^\top + b`.

    Backward (seed derivation, Question 1 a–c), from :math:`\bar y = \partial L / \partial y`:

    .. math::

        \bar x &= \bar y \, W                 \qquad \text{(N, out) (out, in) → (N, in)} \\
        \bar W &= \bar y^\top x               \qquad \text{(out, N) (N, in) → (out, in)} \\
        \bar b &= \textstyle\sum_n \bar y_n   \qquad \text{column sums → (out,)}

    In the code: ``grad_x = grad_y @ W``, ``grad_W = grad_y.T @ x``, ``grad_b = grad_y.sum(0)``.

    Shapes: ``x`` (N, in_features) -> ``y`` (N, out_features).

    Attributes:
        weight: (out_features, in_features), initialised by ``init`` ("kaiming":
            N(0, 2/in_features) as in the course homework; "xavier"; "torch": PyTorch's default).
        bias: (out_features,), zeros.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, *,
                 rng: initializers.RngLike = None, dtype: str = "float32",
                 init: str = "kaiming", nonlinearity: str = "relu") -> None:
        super().__init__()
        for name, value in (("in_features", in_features), ("out_features", out_features)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name}: expected a positive int, got {value!r}")
        if init not in initializers.INITS:
            raise ValueError(f"init: unknown {init!r} (choose from {sorted(initializers.INITS)})")
        self.in_features, self.out_features = in_features, out_features
        draw = initializers.INITS[init]
        w = draw((out_features, in_features), initializers.as_rng(rng), dtype, nonlinearity)
        self.weight = Parameter(w)
        self.bias = Parameter(initializers.zeros((out_features,), dtype)) if bias else None

    def forward(self, x: Array) -> Array:
        if x.ndim != 2 or x.shape[1] != self.in_features:
            raise ValueError(f"x: expected shape (N, {self.in_features}), got {tuple(x.shape)}")
        self.cache["x"] = x
        y = x @ self.weight.data.T  # (N, out)
        if self.bias is not None:
            y += self.bias.data  # in place: one temporary fewer than x @ W.T + b
        return y

    def backward(self, grad_y: Array) -> Array:
        self.backward_params(grad_y)
        return grad_y @ self.weight.data

    def backward_params(self, grad_y: Array) -> None:
        """``grad_W`` and ``grad_b`` only (a first layer's input needs no ``grad_x``)."""
        x = self.cached("x")
        # grad_y.T is a strided view: BLAS reads it transposed, nothing is copied
        self.weight.accumulate_grad(grad_y.T @ x)
        if self.bias is not None:
            self.bias.accumulate_grad(array_namespace(grad_y).sum(grad_y, axis=0))

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"
