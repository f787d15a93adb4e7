r"""The long short-term memory layer, with backpropagation through time written out."""

from __future__ import annotations

from mlpframe.backend import Array, array_namespace
from mlpframe.nn.gru import _sigmoid_
from mlpframe.nn.recurrent import RecurrentBase


class LSTM(RecurrentBase):
    r"""One LSTM layer, batch first: ``x`` (N, T, I) -> ``y`` (N, T, D*H); PyTorch's equations.

    Forward, per direction, from ``h_{-1} = h0``, ``c_{-1} = c0`` (zeros unless given)::

        a   = x_t W_ih^T + b_ih + b_hh + h_{t-1} W_hh^T   # (N, 4H); x-part for all t at once
        i   = sigma(a_i)     f = sigma(a_f)     g = tanh(a_g)     o = sigma(a_o)
                                                  # gate rows [0,H) [H,2H) [2H,3H) [3H,4H)
        c_t = f * c_{t-1} + i * g
        h_t = o * tanh(c_t)

    ``y[:, t]`` is ``h_t`` of the forward direction, concatenated with the reverse
    direction's (run on the sequence reversed in time) when ``bidirectional``.
    Forward caches per step ``s = sigma(a)`` (all four slots; the ``g`` slot unused),
    ``g``, ``c_{t-1}`` and ``tanh(c_t)``.

    Backward through time, for ``t = T-1 … 0``; ``grad_h``, ``grad_c`` reach ``h_t``, ``c_t``
    from ``y`` and from step ``t+1``::

        grad_h   = grad_y[:, t] + grad_h_next
        grad_c   = grad_c_next + grad_h * o * (1 - tanh(c_t)^2)
        grad_a_i = grad_c * g       * i (1 - i)
        grad_a_f = grad_c * c_{t-1} * f (1 - f)
        grad_a_g = grad_c * i       * (1 - g^2)
        grad_a_o = grad_h * tanh(c_t) * o (1 - o)
        grad_a   = [grad_a_i, grad_a_f, grad_a_g, grad_a_o]   # (N, 4H), kept for every t
        grad_h_next = grad_a @ W_hh                            # (N, 4H) @ (4H, H)
        grad_c_next = grad_c * f                  # after t = 0: grad_h0, grad_c0

    then, with ``grad_a`` stacked over ``t`` (one GEMM each)::

        grad_W_ih = grad_a^T @ x        grad_b_ih = grad_b_hh = sum_{t,n} grad_a
        grad_W_hh = grad_a^T @ h_prev   grad_x    = grad_a @ W_ih

    Shapes: ``weight_ih`` (4H, I), ``weight_hh`` (4H, H), ``bias_ih``, ``bias_hh`` (4H,);
    the reverse direction's are ``weight_ih_reverse`` … Init: PyTorch's U(-1/sqrt(H), 1/sqrt(H)).
    ``forward(x, h0=None, c0=None)``: each (D, N, H) as PyTorch's ``(h0, c0)``; after
    backward, ``grad_h0`` and ``grad_c0`` hold their gradients.
    """

    GATES = 4
    STATES = ("h0", "c0")

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.grad_h0: Array | None = None
        self.grad_c0: Array | None = None

    def forward(self, x: Array, h0: Array | None = None, c0: Array | None = None) -> Array:
        return super().forward(x, h0=h0, c0=c0)

    def _forward_loop(self, gi: Array, initial: list[Array], W_hhT: Array, b_hh: Array | None) -> Array:
        xp = array_namespace(gi)
        T, D, N, _ = gi.shape
        H = self.hidden_size
        if b_hh is not None:
            gi = gi + b_hh  # b_hh adds to every step like b_ih: folded in once, outside the loop
        h, c = initial
        out = xp.empty((T, D, N, H), dtype=gi.dtype, device=gi.device)
        steps = []
        for t in range(T):
            a = gi[t, ...] + h @ W_hhT  # (D, N, 4H): both directions in one batched matmul
            g = xp.tanh(a[..., 2 * H: 3 * H])
            s = _sigmoid_(a, xp)  # in place: a is ours, and g has been read
            c_prev, c = c, s[..., H: 2 * H] * c + s[..., :H] * g
            tanh_c = xp.tanh(c)
            h = s[..., 3 * H:] * tanh_c
            out[t, ...] = h
            steps.append((s, g, c_prev, tanh_c))
        self.cache["steps"] = steps
        return out

    def _backward_loop(self, grad_out: Array) -> tuple[Array, Array]:
        xp = array_namespace(grad_out)
        steps, W_hh = self.cached("steps"), self.cache["W_hh"]
        T, D, N, H = grad_out.shape
        grad_a = xp.empty((T, D, N, 4 * H), dtype=grad_out.dtype, device=grad_out.device)
        grad_h = grad_out[T - 1, ...]
        grad_c = xp.zeros((D, N, H), dtype=grad_out.dtype, device=grad_out.device)
        for t in range(T - 1, -1, -1):
            s, g, c_prev, tanh_c = steps[t]
            i, f, o = s[..., :H], s[..., H: 2 * H], s[..., 3 * H:]
            if t < T - 1:
                grad_h = grad_h + grad_out[t, ...]
            grad_c = grad_c + grad_h * o * (1.0 - tanh_c * tanh_c)
            ds = s * (1.0 - s)  # sigma'(a) in all four slots; the g slot is not used
            grad_a[t, ..., :H] = grad_c * g * ds[..., :H]
            grad_a[t, ..., H: 2 * H] = grad_c * c_prev * ds[..., H: 2 * H]
            grad_a[t, ..., 2 * H: 3 * H] = grad_c * i * (1.0 - g * g)
            grad_a[t, ..., 3 * H:] = grad_h * tanh_c * ds[..., 3 * H:]
            grad_h = grad_a[t, ...] @ W_hh  # (D, N, 4H) @ (D, 4H, H)
            grad_c = grad_c * f
        self.grad_h0, self.grad_c0 = grad_h, grad_c
        return grad_a, grad_a
