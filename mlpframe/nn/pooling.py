"""Max and average pooling over windows, and the global average pool."""

from __future__ import annotations

import math
from collections.abc import Sequence

from mlpframe.backend import Array, array_namespace
from mlpframe.nn import windows
from mlpframe.nn.module import Module


class _PoolNd(Module):
    """Windows of ``kernel_size`` every ``stride`` (default: the kernel size) over ``padding``-padded input."""

    dims = 0
    pad_value = 0.0

    def __init__(self, kernel_size: int | Sequence[int], stride: int | Sequence[int] | None = None,
                 padding: int | Sequence[int] = 0) -> None:
        super().__init__()
        self.kernel_size = windows.as_tuple("kernel_size", kernel_size, self.dims, 1)
        self.stride = windows.as_tuple("stride", kernel_size if stride is None else stride, self.dims, 1)
        self.padding = windows.as_tuple("padding", padding, self.dims, 0)
        if any(2 * p > k for p, k in zip(self.padding, self.kernel_size)):
            # PyTorch's rule: a window must never lie wholly in the padding
            raise ValueError(f"padding: expected at most half the kernel size {self.kernel_size}, got {padding!r}")
        self.dilation = (1,) * self.dims

    def _windows(self, x: Array, xp) -> tuple[Array, list[windows.Slices]]:
        """The padded input and one tuple of spatial slices per kernel offset."""
        spatial = windows.check_input(type(self).__name__, x, None, self.dims, self.kernel_size, self.padding,
                                      self.dilation)
        out = tuple(windows.output_size(L, k, s, p) for L, k, s, p in
                    zip(spatial, self.kernel_size, self.stride, self.padding))
        x_pad = windows.pad(x, self.padding, self.pad_value, xp)
        self.cache.update(padded=tuple(x_pad.shape))
        return x_pad, windows.offsets(self.kernel_size, out, self.stride, self.dilation)

    def _col2im(self, parts, like: Array, xp) -> Array:
        """``grad_x``: each kernel offset's gradient added into its strided slice of a zero buffer, cropped."""
        grad_pad = xp.zeros(self.cached("padded"), dtype=like.dtype, device=like.device)
        for s, part in parts:
            grad_pad[(..., *s)] += part
        return windows.crop(grad_pad, self.padding)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class _MaxPoolNd(_PoolNd):
    r"""``y = max_k x_pad[..., p s + k]`` over each window; padding is -inf, as in PyTorch.

    Backward: the whole of ``grad_y`` goes to the window's maximum. On a tie it goes
    to the first maximum in row-major window order, where PyTorch sends it (its
    kernels replace the running maximum only on a strictly greater value)::

        first_k  = [x_pad[slice_k] == y] and no earlier offset was        # (N, C, *out), bool
        grad_x   = crop(sum_k  slice_k <- grad_y ⊙ first_k)              # K strided in-place adds

    The masks are found in backward from the cached input and output (no index
    array is kept); ``maximum`` and comparisons are used rather than ``where``,
    which costs several times more per element in NumPy.
    """

    pad_value = -math.inf

    def forward(self, x: Array) -> Array:
        xp = array_namespace(x)
        x_pad, slices = self._windows(x, xp)
        y = x_pad[(..., *slices[0])]
        for s in slices[1:]:
            y = xp.maximum(y, x_pad[(..., *s)])
        self.cache.update(x_pad=x_pad, y=y, slices=slices)
        return y

    def backward(self, grad_y: Array) -> Array:
        xp = array_namespace(grad_y)
        x_pad, y, slices = self.cached("x_pad"), self.cached("y"), self.cached("slices")

        def parts():
            taken = None  # the windows whose maximum an earlier offset already holds
            for s in slices:
                first = x_pad[(..., *s)] == y
                if taken is None:
                    taken = first
                else:
                    first = xp.logical_and(first, xp.logical_not(taken))
                    taken = xp.logical_or(taken, first)
                yield s, grad_y * xp.astype(first, grad_y.dtype)

        return self._col2im(parts(), grad_y, xp)


class _AvgPoolNd(_PoolNd):
    r"""``y = (1/K) sum_k x_pad[..., p s + k]``: zero padding counted in the mean (``count_include_pad=True``).

    Backward: every element of a window receives ``grad_y / K``::

        grad_x = crop(sum_k  slice_k <- grad_y / K)
    """

    def forward(self, x: Array) -> Array:
        xp = array_namespace(x)
        x_pad, slices = self._windows(x, xp)
        y = x_pad[(..., *slices[0])] * 1.0  # a new array: the sum below adds into it
        for s in slices[1:]:
            y += x_pad[(..., *s)]
        y *= 1.0 / len(slices)
        self.cache.update(slices=slices)
        return y

    def backward(self, grad_y: Array) -> Array:
        xp = array_namespace(grad_y)
        slices = self.cached("slices")
        share = grad_y * (1.0 / len(slices))
        return self._col2im(((s, share) for s in slices), grad_y, xp)


class MaxPool1d(_MaxPoolNd):
    """Max pooling on (N, C, L) -> (N, C, L_out), ``L_out = floor((L + 2p - k) / s) + 1``."""

    __doc__ += _MaxPoolNd.__doc__
    dims = 1


class MaxPool2d(_MaxPoolNd):
    """Max pooling on (N, C, H, W) -> (N, C, H_out, W_out); kernel, stride and padding ints or pairs."""

    __doc__ += _MaxPoolNd.__doc__
    dims = 2


class AvgPool1d(_AvgPoolNd):
    """Average pooling on (N, C, L) -> (N, C, L_out)."""

    __doc__ += _AvgPoolNd.__doc__
    dims = 1


class AvgPool2d(_AvgPoolNd):
    """Average pooling on (N, C, H, W) -> (N, C, H_out, W_out)."""

    __doc__ += _AvgPoolNd.__doc__
    dims = 2


class GlobalAvgPool(Module):
    r"""Mean over every spatial axis: (N, C, *spatial) -> (N, C) (PyTorch: ``AdaptiveAvgPool(1)`` + flatten).

    Forward: ``y[n, c] = (1/P) sum_p x[n, c, p]`` over the P spatial positions.
    Backward: ``grad_x[n, c, p] = grad_y[n, c] / P``.
    """

    def forward(self, x: Array) -> Array:
        xp = array_namespace(x)
        if x.ndim < 3:
            raise ValueError(f"x: GlobalAvgPool expects shape (N, C, *spatial) with one or more spatial axes, "
                             f"got {tuple(x.shape)}")
        self.cache["shape"] = tuple(x.shape)
        return xp.mean(x, axis=tuple(range(2, x.ndim)))

    def backward(self, grad_y: Array) -> Array:
        xp = array_namespace(grad_y)
        shape = self.cached("shape")
        grad_x = xp.zeros(shape, dtype=grad_y.dtype, device=grad_y.device)
        grad_x += xp.reshape(grad_y * (1.0 / math.prod(shape[2:])), (*shape[:2], *(1,) * (len(shape) - 2)))
        return grad_x
