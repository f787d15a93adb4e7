"""Convolution layers (PyTorch's cross-correlation): im2col as K strided slices and one GEMM."""

from __future__ import annotations

import math
from collections.abc import Sequence

from mlpframe.backend import Array, array_namespace
from mlpframe.nn import init as initializers
from mlpframe.nn import windows
from mlpframe.nn.module import Module, Parameter


def _channels_first(x: Array, xp) -> Array:
    """(N, C, *spatial) <-> (C, N, *spatial): a view; the GEMM wants channels as the outer axis."""
    return xp.permute_dims(x, (1, 0, *range(2, x.ndim)))


class _ConvNd(Module):
    r"""``y[n, o, p] = b[o] + sum_{c, k} W[o, c, k] x_pad[n, c, p s + k d]`` over the spatial positions p.

    Forward (im2col): for each of the K kernel offsets ``k`` take the strided slice
    of the padded input that offset reads at every output position, and stack the K
    slices into ``cols`` (C_in K, N P) — K slices, one copy. Then one GEMM::

        cols   = stack_k x_pad[:, :, k d : ... : s]      # (C_in, K, N, *out) -> (C_in K, N P)
        y      = W_mat @ cols + b                        # (C_out, C_in K) @ (C_in K, N P) -> (C_out, N P)

    with ``W_mat = W.reshape(C_out, C_in K)``. Backward, with ``grad_y`` as (C_out, N P)::

        grad_W    = (cols @ grad_y^T)^T                  # (C_out, C_in K), one GEMM
        grad_b    = sum_{n, p} grad_y                    # (C_out,)
        grad_cols = W_mat^T @ grad_y                     # (C_in K, N P), one GEMM
        grad_x    = crop(sum_k  slice_k <- grad_cols[:, k])   # col2im: K strided in-place adds

    The layer keeps channels as the outer axis in memory (C, N, *spatial) and returns
    ``y`` as an (N, C_out, *out) view of it, so a following convolution reads its
    input without a transpose copy. ``backward_params`` skips the ``grad_cols`` GEMM
    and the col2im (a first layer's input needs no gradient).
    """

    dims = 0  # spatial axes, set by the subclass

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | Sequence[int],
                 stride: int | Sequence[int] = 1, padding: int | Sequence[int] = 0,
                 dilation: int | Sequence[int] = 1, bias: bool = True, *, rng: initializers.RngLike = None,
                 dtype: str = "float32", init: str = "kaiming", nonlinearity: str = "relu") -> None:
        super().__init__()
        for name, value in (("in_channels", in_channels), ("out_channels", out_channels)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name}: expected a positive int, got {value!r}")
        if init not in initializers.INITS:
            raise ValueError(f"init: unknown {init!r} (choose from {sorted(initializers.INITS)})")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size = windows.as_tuple("kernel_size", kernel_size, self.dims, 1)
        self.stride = windows.as_tuple("stride", stride, self.dims, 1)
        self.padding = windows.as_tuple("padding", padding, self.dims, 0)
        self.dilation = windows.as_tuple("dilation", dilation, self.dims, 1)
        fan_in = in_channels * math.prod(self.kernel_size)
        rng = initializers.as_rng(rng)
        # drawn as the (C_out, C_in K) matrix the GEMM uses: fan_in = C_in K, as PyTorch counts it
        w = initializers.INITS[init]((out_channels, fan_in), rng, dtype, nonlinearity)
        self.weight = Parameter(w.reshape(out_channels, in_channels, *self.kernel_size))
        self.bias = None
        if bias:
            b = initializers.torch_bias(fan_in, out_channels, rng, dtype) if init == "torch" else \
                initializers.zeros((out_channels,), dtype)
            self.bias = Parameter(b)

    def forward(self, x: Array) -> Array:
        xp = array_namespace(x)
        name = type(self).__name__
        spatial = windows.check_input(name, x, self.in_channels, self.dims, self.kernel_size, self.padding,
                                      self.dilation)
        out = tuple(windows.output_size(L, k, s, p, d) for L, k, s, p, d in
                    zip(spatial, self.kernel_size, self.stride, self.padding, self.dilation))
        N = x.shape[0]
        x_pad = windows.pad(_channels_first(x, xp), self.padding, 0.0, xp)  # (C_in, N, *padded)
        slices = windows.offsets(self.kernel_size, out, self.stride, self.dilation)
        cols = xp.stack([x_pad[(slice(None), slice(None), *s)] for s in slices], axis=1)  # (C_in, K, N, *out)
        cols = xp.reshape(cols, (-1, N * math.prod(out)))  # (C_in K, N P)
        W_mat = xp.reshape(self.weight.data, (self.out_channels, -1))  # (C_out, C_in K)
        y = W_mat @ cols  # (C_out, N P)
        if self.bias is not None:
            y += self.bias.data[:, None]
        self.cache.update(cols=cols, padded=tuple(x_pad.shape), slices=slices, out=out)
        return _channels_first(xp.reshape(y, (self.out_channels, N, *out)), xp)  # (N, C_out, *out) view

    def backward(self, grad_y: Array) -> Array:
        xp = array_namespace(grad_y)
        g = self._params_backward(grad_y, xp)  # (C_out, N P)
        W_mat = xp.reshape(self.weight.data, (self.out_channels, -1))
        out, slices = self.cached("out"), self.cached("slices")
        K = len(slices)
        grad_cols = xp.reshape(W_mat.T @ g, (self.in_channels, K, grad_y.shape[0], *out))  # (C_in, K, N, *out)
        grad_pad = xp.zeros(self.cached("padded"), dtype=grad_y.dtype, device=grad_y.device)  # (C_in, N, *padded)
        for k, s in enumerate(slices):
            grad_pad[(slice(None), slice(None), *s)] += grad_cols[:, k, ...]
        return _channels_first(windows.crop(grad_pad, self.padding), xp)  # (N, C_in, *spatial) view

    def backward_params(self, grad_y: Array) -> None:
        """``grad_W`` and ``grad_b`` only (a first layer's input needs no ``grad_x``)."""
        self._params_backward(grad_y, array_namespace(grad_y))

    def _params_backward(self, grad_y: Array, xp) -> Array:
        cols = self.cached("cols")
        g = xp.reshape(_channels_first(grad_y, xp), (self.out_channels, -1))  # (C_out, N P)
        # as cols @ grad_y^T: the same product as grad_y @ cols^T, which two-threaded OpenBLAS ran 2-5x slower
        # (146 against 28 ms at a (64, 32768) @ (32768, 288) CIFAR-10 layer; one thread: the same speed)
        grad_W = (cols @ g.T).T  # (C_out, C_in K) view
        self.weight.accumulate_grad(xp.reshape(grad_W, tuple(self.weight.data.shape)))
        if self.bias is not None:
            self.bias.accumulate_grad(xp.sum(g, axis=1))
        return g

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
                f"padding={self.padding}, dilation={self.dilation}, bias={self.bias is not None}")


class Conv1d(_ConvNd):
    """1-D convolution: x (N, C_in, L) -> y (N, C_out, L_out), ``L_out = floor((L + 2p - d (k-1) - 1) / s) + 1``.

    Attributes:
        weight: (C_out, C_in, k), drawn by ``init`` with fan_in = C_in k ("kaiming": N(0, 2 / fan_in);
            "torch": PyTorch's default U(-1/sqrt(fan_in), 1/sqrt(fan_in)); "xavier").
        bias: (C_out,), zeros ("torch": U(-1/sqrt(fan_in), 1/sqrt(fan_in)) as PyTorch).

    """

    __doc__ += _ConvNd.__doc__
    dims = 1


class Conv2d(_ConvNd):
    """2-D convolution: x (N, C_in, H, W) -> y (N, C_out, H_out, W_out); each of ``kernel_size``,
    ``stride``, ``padding``, ``dilation`` an int or an (h, w) pair.

    Attributes:
        weight: (C_out, C_in, kh, kw), drawn by ``init`` with fan_in = C_in kh kw (see :class:`Conv1d`).
        bias: (C_out,), zeros ("torch": as PyTorch).

    """

    __doc__ += _ConvNd.__doc__
    dims = 2
