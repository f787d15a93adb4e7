r"""The gated recurrent unit, with backpropagation through time written out."""

from __future__ import annotations

from mlpframe.backend import Array, array_namespace
from mlpframe.nn.recurrent import RecurrentBase


def _sigmoid_(a: Array, xp) -> Array:
    """sigma(a) = (1 + tanh(a/2)) / 2, in place on ``a``: one transcendental, no overflow."""
    a *= 0.5
    a = xp.tanh(a)
    a *= 0.5
    a += 0.5
    return a


class GRU(RecurrentBase):
    r"""One GRU layer, batch first: ``x`` (N, T, I) -> ``y`` (N, T, D*H); PyTorch's equations.

    Forward, per direction, from ``h_{-1} = h0`` (zeros unless given)::

        gi_t = x_t W_ih^T + b_ih                  # (N, 3H), all t at once (see recurrent.py)
        gh   = h_{t-1} W_hh^T + b_hh              # (N, 3H), in the loop
        r    = sigma(gi_r + gh_r)                 # reset gate       rows [0, H)   of W
        z    = sigma(gi_z + gh_z)                 # update gate      rows [H, 2H)
        n    = tanh(gi_n + r * gh_n)              # candidate state  rows [2H, 3H)
        h_t  = (1 - z) * n + z * h_{t-1}  =  n + z * d,   d = h_{t-1} - n

    ``y[:, t]`` is ``h_t`` of the forward direction, concatenated with the reverse
    direction's (run on the sequence reversed in time) when ``bidirectional``.
    Forward caches per step ``rz = [r, z]``, ``gh_n``, ``n`` and ``d``; the outputs double
    as the ``h_{t-1}`` of the weight gradient.

    Backward through time, for ``t = T-1 … 0``, with ``grad_h`` the gradient reaching
    ``h_t`` (from ``y`` and from step ``t+1``)::

        grad_h   = grad_y[:, t] + grad_h_next
        grad_n   = grad_h * (1 - z)
        grad_z   = grad_h * d
        grad_a_n = grad_n * (1 - n^2)             # through tanh: = grad_gi_n
        grad_r   = grad_a_n * gh_n
        grad_rz  = [grad_r, grad_z] * rz * (1 - rz)   # through sigma: = grad_gi_rz = grad_gh_rz
        grad_gh  = [grad_rz, grad_a_n * r]        # (N, 3H), kept for every t
        grad_gi  = [grad_rz, grad_a_n]            # (N, 3H), kept for every t
        grad_h_next = grad_h * z + grad_gh @ W_hh # (N, 3H) @ (3H, H); after t = 0: grad_h0

    then, with the per-step gradients stacked over ``t`` (one GEMM each)::

        grad_W_ih = grad_gi^T @ x       grad_b_ih = sum_{t,n} grad_gi
        grad_W_hh = grad_gh^T @ h_prev  grad_b_hh = sum_{t,n} grad_gh
        grad_x    = grad_gi @ W_ih

    Shapes: ``weight_ih`` (3H, I), ``weight_hh`` (3H, H), ``bias_ih``, ``bias_hh`` (3H,);
    the reverse direction's are ``weight_ih_reverse`` … Init: PyTorch's U(-1/sqrt(H), 1/sqrt(H)).
    ``forward(x, h0=None)``: ``h0`` (D, N, H) as PyTorch's; after backward, ``grad_h0``
    holds d loss / d h0 (also when ``h0`` was the default zeros).
    """

    GATES = 3
    STATES = ("h0",)

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.grad_h0: Array | None = None

    def forward(self, x: Array, h0: Array | None = None) -> Array:
        return super().forward(x, h0=h0)

    def _forward_loop(self, gi: Array, initial: list[Array], W_hhT: Array, b_hh: Array | None) -> Array:
        xp = array_namespace(gi)
        T, D, N, _ = gi.shape
        H = self.hidden_size
        h = initial[0]
        out = xp.empty((T, D, N, H), dtype=gi.dtype, device=gi.device)
        steps = []
        for t in range(T):
            a = gi[t, ...]  # (D, N, 3H)
            gh = h @ W_hhT  # (D, N, H) @ (D, H, 3H): both directions in one batched matmul
            if b_hh is not None:
                gh += b_hh
            rz = _sigmoid_(a[..., : 2 * H] + gh[..., : 2 * H], xp)  # (D, N, 2H)
            gh_n = gh[..., 2 * H:]
            n = xp.tanh(a[..., 2 * H:] + rz[..., :H] * gh_n)
            d = h - n
            h = n + rz[..., H:] * d
            out[t, ...] = h
            steps.append((rz, gh_n, n, d))
        self.cache["steps"] = steps
        return out

    def _backward_loop(self, grad_out: Array) -> tuple[Array, Array]:
        xp = array_namespace(grad_out)
        steps, W_hh = self.cached("steps"), self.cache["W_hh"]
        T, D, N, H = grad_out.shape
        grad_gh = xp.empty((T, D, N, 3 * H), dtype=grad_out.dtype, device=grad_out.device)
        grad_a_n_all = xp.empty((T, D, N, H), dtype=grad_out.dtype, device=grad_out.device)
        grad_h = grad_out[T - 1, ...]
        for t in range(T - 1, -1, -1):
            rz, gh_n, n, d = steps[t]
            if t < T - 1:
                grad_h = grad_h + grad_out[t, ...]
            grad_hz = grad_h * rz[..., H:]
            grad_a_n = (grad_h - grad_hz) * (1.0 - n * n)
            grad_rz = xp.concat([grad_a_n * gh_n, grad_h * d], axis=-1)
            grad_rz *= rz * (1.0 - rz)
            grad_gh[t, ..., : 2 * H] = grad_rz
            grad_gh[t, ..., 2 * H:] = grad_a_n * rz[..., :H]
            grad_a_n_all[t, ...] = grad_a_n
            grad_h = grad_hz + grad_gh[t, ...] @ W_hh  # (D, N, 3H) @ (D, 3H, H)
        self.grad_h0 = grad_h
        grad_gi = xp.concat([grad_gh[..., : 2 * H], grad_a_n_all], axis=-1)
        return grad_gi, grad_gh
