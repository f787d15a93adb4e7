"""The matrix products of one mlpframe training step, alone: the step's physical limit.

On GEMM-bound shapes no framework's step can be faster than its GEMMs on the same
BLAS, so ``step time / GEMM time`` says how close a step comes to that limit, and
the figure compares across machines where raw samples/s do not. The list follows
the layers' docstrings (mlpframe/nn/linear.py, mlpframe/nn/conv.py), with the
operands in the layouts the layers pass to ``@`` (a transposed view stays a view):

- Linear, x (N, D_in) -> (N, D_out): ``x @ W^T``, ``grad_y^T @ x``, ``grad_y @ W``
- Conv, cols (C_in K, N P) -> (C_out, N P): ``W_mat @ cols``, ``cols @ grad_y^T``, ``W_mat^T @ grad_y``

The first layer's input gradient is not computed (``backward_params``), as in the step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from mlpframe import get_backend, nn

Operand = tuple[tuple[int, int], bool]  # (stored shape, used transposed)


@dataclass(frozen=True)
class Gemm:
    a: Operand
    b: Operand

    @property
    def flops(self) -> int:
        (m, k) = self.a[0][::-1] if self.a[1] else self.a[0]
        n = self.b[0][0] if self.b[1] else self.b[0][1]
        return 2 * m * k * n


def step_gemms(model: nn.Sequential, input_shape: tuple[int, ...], batch: int) -> list[Gemm]:
    """The GEMMs of one forward + ``backward_params`` of ``model`` on a (batch, *input_shape) input."""
    h = np.zeros((batch, *input_shape), dtype=np.float32)
    out: list[Gemm] = []
    first = True
    for layer in model.layers:
        y = layer(h)
        if isinstance(layer, nn.Linear):
            n, d_in, d_out = h.shape[0], layer.in_features, layer.out_features
            out += [Gemm(((n, d_in), False), ((d_out, d_in), True)),   # x @ W^T
                    Gemm(((n, d_out), True), ((n, d_in), False))]      # grad_W = grad_y^T @ x
            if not first:
                out.append(Gemm(((n, d_out), False), ((d_out, d_in), False)))  # grad_x = grad_y @ W
            first = False
        elif isinstance(layer, (nn.Conv1d, nn.Conv2d)):
            ck = layer.in_channels * math.prod(layer.kernel_size)
            npos = y.shape[0] * math.prod(y.shape[2:])
            c_out = layer.out_channels
            out += [Gemm(((c_out, ck), False), ((ck, npos), False)),   # W_mat @ cols
                    Gemm(((ck, npos), False), ((c_out, npos), True))]  # grad_W^T = cols @ grad_y^T
            if not first:
                out.append(Gemm(((c_out, ck), True), ((c_out, npos), False)))  # grad_cols = W_mat^T @ grad_y
            first = False
        h = y
    return out


def gemm_runner(gemms: list[Gemm], backend: str = "numpy", seed: int = 0):
    """``(step, sync)``: ``step()`` runs every GEMM of the list once on float32 operands of the backend."""
    be = get_backend(backend)
    rng = np.random.default_rng(seed)

    def operand(spec: Operand):
        shape, transposed = spec
        a = be.asarray(rng.standard_normal(shape, dtype=np.float32))
        return a.T if transposed else a

    pairs = [(operand(g.a), operand(g.b)) for g in gemms]

    def step() -> None:
        for a, b in pairs:
            a @ b

    return step, be.synchronize
