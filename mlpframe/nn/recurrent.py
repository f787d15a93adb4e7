r"""What GRU and LSTM share: parameters, the batched input projection, both directions
in one loop, the weight gradients after the loop; and :class:`LastStep`.

A recurrent layer of ``G`` gates on ``(N, T, I)`` (batch first) computes, per direction,
the pre-activations of all gates at step ``t`` as ``a_t = x_t W_ih^T + b_ih + h_{t-1} W_hh^T
(+ b_hh)``. Only the second term depends on the recurrence, so the first is computed for
all steps at once, before the loop::

    gi = x (T*N, I) @ W_ih^T (I, D*G*H)        # one GEMM for every step and direction

and after the backward loop has left the gate gradients of every step in a buffer
``grad_gi`` (T, N, D*G*H), the input-side gradients are one GEMM each::

    grad_W_ih = grad_gi^T @ x                  # (D*G*H, T*N) @ (T*N, I)
    grad_x    = grad_gi @ W_ih                 # (T*N, D*G*H) @ (D*G*H, I): directions summed
    grad_W_hh = grad_gh^T @ h_prev             # per direction: (G*H, T*N) @ (T*N, H)

Directions. The reverse direction is the forward recurrence run on the time-reversed
sequence. Rather than two loops, both directions share one: arrays in *loop order*
have shape (T, D, N, ...) and hold step ``s`` of the forward direction and step
``T-1-s`` of the reverse one (``_loop_order``, its own inverse). The state is
``h`` (D, N, H) and the recurrent weights are stacked (D, G*H, H), so each loop step
is one batched matmul for both directions: the Python cost per step, which bounds
these layers on small hidden sizes, is paid once, not twice.
"""

from __future__ import annotations

import math

from mlpframe.backend import Array, array_namespace
from mlpframe.nn import init as initializers
from mlpframe.nn.module import Module, Parameter

PARAMETER_NAMES = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")


def _loop_order(a: Array, xp) -> Array:
    """(T, D, ...) in time order <-> loop order: the reverse direction (d = 1) flipped in time."""
    if a.shape[1] == 1:
        return a
    return xp.stack([a[:, 0, ...], xp.flip(a[:, 1, ...], axis=0)], axis=1)


def _positive_int(name: str, value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name}: expected a positive int, got {value!r}")
    return value


class RecurrentBase(Module):
    """A one-layer recurrent network of ``GATES`` gates; subclasses write the loop in time.

    Subclasses implement ``_forward_loop(gi, state, W_hhT, b_hh)`` and
    ``_backward_loop(grad_out)``; this class does everything before and after them.
    """

    GATES = 0  # gates per direction: 3 for GRU, 4 for LSTM
    STATES = ("h0",)  # names of the initial states forward() takes

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, bidirectional: bool = False, *,
                 rng: initializers.RngLike = None, dtype: str = "float32") -> None:
        super().__init__()
        self.input_size = _positive_int("input_size", input_size)
        self.hidden_size = H = _positive_int("hidden_size", hidden_size)
        for name, value in (("bias", bias), ("bidirectional", bidirectional)):
            if not isinstance(value, bool):
                raise ValueError(f"{name}: expected True or False, got {value!r}")
        initializers.check_dtype(dtype)
        self.bias, self.bidirectional = bias, bidirectional
        self.num_directions = 2 if bidirectional else 1
        # PyTorch's default for every recurrent parameter: U(-1/sqrt(H), 1/sqrt(H)), drawn
        # in PyTorch's parameter order (weight_ih, weight_hh, bias_ih, bias_hh, then _reverse)
        r, bound, G = initializers.as_rng(rng), 1.0 / math.sqrt(H), self.GATES
        shapes = {"weight_ih": (G * H, input_size), "weight_hh": (G * H, H), "bias_ih": (G * H,),
                  "bias_hh": (G * H,)}
        for suffix in self.suffixes():
            for name in PARAMETER_NAMES if bias else PARAMETER_NAMES[:2]:
                value = r.uniform(-bound, bound, size=shapes[name]).astype(dtype)
                setattr(self, name + suffix, Parameter(value))

    def suffixes(self) -> tuple[str, ...]:
        """Parameter name suffixes, one per direction: ``("",)`` or ``("", "_reverse")``."""
        return ("", "_reverse")[: self.num_directions]

    def _params(self, name: str) -> list[Parameter]:
        return [getattr(self, name + s) for s in self.suffixes()]

    # ----------------------------------------------------------------- forward
    def forward(self, x: Array, **states: Array | None) -> Array:
        xp = array_namespace(x)
        I, H, D, G = self.input_size, self.hidden_size, self.num_directions, self.GATES
        layer = f"{type(self).__name__}(input_size={I}, hidden_size={H})"
        if x.ndim != 3 or x.shape[2] != I or x.shape[1] < 1:
            raise ValueError(f"x: {layer} expected shape (N, T, {I}) with T >= 1, got {tuple(x.shape)}")
        N, T = x.shape[0], x.shape[1]
        initial = []
        for name in self.STATES:
            s = states.pop(name, None)
            if s is None:
                s = xp.zeros((D, N, H), dtype=x.dtype, device=x.device)
            elif tuple(s.shape) != (D, N, H):
                raise ValueError(f"{name}: {layer} expected shape ({D}, {N}, {H}) (directions, N, hidden), "
                                 f"got {tuple(s.shape)}")
            initial.append(s)
        if states:
            raise TypeError(f"{type(self).__name__}.forward() got unexpected arguments {sorted(states)}")

        x_2d = xp.reshape(xp.permute_dims(x, (1, 0, 2)), (T * N, I))  # (T*N, I), time major
        W_ih = self._stacked("weight_ih", xp)  # (D*G*H, I)
        gi = x_2d @ W_ih.T  # (T*N, D*G*H): the input projection of every step, both directions
        b_hh = None
        if self.bias:
            gi += xp.concat([p.data for p in self._params("bias_ih")])
            b_hh = xp.reshape(xp.concat([p.data for p in self._params("bias_hh")]), (D, 1, G * H))
        gi = _loop_order(xp.permute_dims(xp.reshape(gi, (T, N, D, G * H)), (0, 2, 1, 3)), xp)  # (T, D, N, G*H)
        W_hh = xp.stack([p.data for p in self._params("weight_hh")])  # (D, G*H, H)
        out = self._forward_loop(gi, initial, xp.permute_dims(W_hh, (0, 2, 1)), b_hh)  # (T, D, N, H)
        self.cache.update(x_2d=x_2d, W_ih=W_ih, W_hh=W_hh, out=out, h0=initial[0], shape=(N, T))
        y = xp.permute_dims(_loop_order(out, xp), (2, 0, 1, 3))  # (N, T, D, H)
        return xp.reshape(y, (N, T, D * H))

    def _stacked(self, name: str, xp) -> Array:
        ps = self._params(name)
        return ps[0].data if len(ps) == 1 else xp.concat([p.data for p in ps], axis=0)

    # ---------------------------------------------------------------- backward
    def backward(self, grad_y: Array) -> Array:
        xp = array_namespace(grad_y)
        grad_gi = self._backward_common(grad_y, xp)
        N, T = self.cache["shape"]
        grad_x = grad_gi @ self.cache["W_ih"]  # (T*N, I): both directions' contributions summed
        return xp.permute_dims(xp.reshape(grad_x, (T, N, self.input_size)), (1, 0, 2))

    def backward_params(self, grad_y: Array) -> None:
        """Parameter gradients (and the initial states') without ``grad_x``: one GEMM fewer."""
        self._backward_common(grad_y, array_namespace(grad_y))

    def _backward_common(self, grad_y: Array, xp) -> Array:
        """Run the loop backwards, add the parameter gradients; returns ``grad_gi`` (T*N, D*G*H)."""
        out, h0 = self.cached("out"), self.cache["h0"]
        N, T = self.cache["shape"]
        D, H, G = self.num_directions, self.hidden_size, self.GATES
        if tuple(grad_y.shape) != (N, T, D * H):
            raise ValueError(f"grad_y: expected shape {(N, T, D * H)}, got {tuple(grad_y.shape)}")
        grad_out = _loop_order(xp.permute_dims(xp.reshape(grad_y, (N, T, D, H)), (1, 2, 0, 3)), xp)
        grad_gi, grad_gh = self._backward_loop(grad_out)  # (T, D, N, G*H) each, loop order

        # grad_W_hh[d] = sum_s grad_gh[s, d]^T @ h_prev[s, d]: one batched GEMM over (s, n)
        h_prev = xp.concat([h0[None, ...], out[:-1, ...]], axis=0)  # (T, D, N, H)
        h_prev = xp.reshape(xp.permute_dims(h_prev, (1, 0, 2, 3)), (D, T * N, H))
        gh = xp.reshape(xp.permute_dims(grad_gh, (1, 0, 2, 3)), (D, T * N, G * H))
        grad_W_hh = xp.permute_dims(gh, (0, 2, 1)) @ h_prev  # (D, G*H, H)
        grad_gi = xp.reshape(xp.permute_dims(_loop_order(grad_gi, xp), (0, 2, 1, 3)), (T * N, D * G * H))
        grad_W_ih = grad_gi.T @ self.cache["x_2d"]  # (D*G*H, I)
        for d, s in enumerate(self.suffixes()):
            getattr(self, "weight_ih" + s).accumulate_grad(grad_W_ih[d * G * H:(d + 1) * G * H, :])
            getattr(self, "weight_hh" + s).accumulate_grad(grad_W_hh[d, ...])
        if self.bias:
            grad_b_ih = xp.sum(grad_gi, axis=0)  # (D*G*H,)
            grad_b_hh = xp.sum(gh, axis=1)  # (D, G*H)
            for d, s in enumerate(self.suffixes()):
                getattr(self, "bias_ih" + s).accumulate_grad(grad_b_ih[d * G * H:(d + 1) * G * H])
                getattr(self, "bias_hh" + s).accumulate_grad(grad_b_hh[d, ...])
        return grad_gi

    def _forward_loop(self, gi: Array, initial: list[Array], W_hhT: Array, b_hh: Array | None) -> Array:
        raise NotImplementedError

    def _backward_loop(self, grad_out: Array) -> tuple[Array, Array]:
        raise NotImplementedError

    def extra_repr(self) -> str:
        return (f"input_size={self.input_size}, hidden_size={self.hidden_size}, bias={self.bias}, "
                f"bidirectional={self.bidirectional}")


class LastStep(Module):
    """The output at the last time step: ``y = x[:, -1, :]``, PyTorch users' ``out[:, -1]``.

    ``x`` (N, T, F) -> ``y`` (N, F). Backward puts ``grad_y`` at the last step and zeros
    elsewhere: ``grad_x[:, -1, :] = grad_y``, ``grad_x[:, t, :] = 0`` for ``t < T - 1``.

    After a bidirectional layer the last step holds the forward direction's final state
    and the reverse direction's *first* step (which has seen only ``x[:, -1]``), exactly
    as ``out[:, -1]`` does in PyTorch.
    """

    def forward(self, x: Array) -> Array:
        if x.ndim != 3 or x.shape[1] < 1:
            raise ValueError(f"x: LastStep expected shape (N, T, F) with T >= 1, got {tuple(x.shape)}")
        self.cache["shape"] = tuple(x.shape)
        return x[:, -1, :]

    def backward(self, grad_y: Array) -> Array:
        xp = array_namespace(grad_y)
        N, T, F = self.cached("shape")
        grad_x = xp.zeros((N, T, F), dtype=grad_y.dtype, device=grad_y.device)
        grad_x[:, -1, :] = grad_y
        return grad_x
