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

    Forward, per direction, from :math:`h_{-1}` = ``h0`` (zeros unless given); the gates
    take rows [0, H) (reset :math:`r`), [H, 2H) (update :math:`z`) and [2H, 3H) (candidate
    :math:`n`) of the weights and of :math:`g^i_t`, :math:`g^h_t` (N, 3H):

    .. math::

        g^i_t &= x_t W_{ih}^\top + b_{ih} \qquad \text{(all } t \text{ at once, see recurrent.py)} \\
        g^h_t &= h_{t-1} W_{hh}^\top + b_{hh} \qquad \text{(in the loop)} \\
        r &= \sigma(g^i_r + g^h_r), \qquad z = \sigma(g^i_z + g^h_z) \\
        n &= \tanh(g^i_n + r \odot g^h_n) \\
        h_t &= (1 - z) \odot n + z \odot h_{t-1} = n + z \odot d, \qquad d = h_{t-1} - n

    ``y[:, t]`` is ``h_t`` of the forward direction, concatenated with the reverse
    direction's (run on the sequence reversed in time) when ``bidirectional``.
    Forward caches per step ``rz = [r, z]``, ``gh_n``, ``n`` and ``d``; the outputs double
    as the ``h_{t-1}`` of the weight gradient.

    Backward through time (:mod:`mlpframe.nn.recurrent`), for :math:`t = T-1, \dots, 0`,
    with :math:`\bar h_t` the gradient reaching :math:`h_t` from :math:`y_t` and from step
    :math:`t+1`. Writing :math:`a_n = g^i_n + r \odot g^h_n` and :math:`a_r`, :math:`a_z`
    for the arguments of the sigmoids (:math:`\sigma' = \sigma (1 - \sigma)`):

    .. math::

        \bar n &= \bar h_t \odot (1 - z), \qquad \bar z = \bar h_t \odot d \\
        \bar a_n &= \bar n \odot (1 - n^2) = \bar g^i_n \\
        \bar r &= \bar a_n \odot g^h_n \\
        \bar a_r &= \bar r \odot r (1 - r), \qquad \bar a_z = \bar z \odot z (1 - z)
            \qquad (= \bar g^i_{r,z} = \bar g^h_{r,z}) \\
        \bar g^h_t &= [\bar a_r, \bar a_z, \bar a_n \odot r], \qquad
        \bar g^i_t = [\bar a_r, \bar a_z, \bar a_n] \qquad \text{(N, 3H), kept for every } t \\
        \bar h_{t-1} &= \bar y_{t-1} + \bar h_t \odot z + \bar g^h_t \, W_{hh}
            \qquad \text{(after } t = 0\text{: } \bar h_0 \text{, the gradient of h0)}

    then, with the per-step gradients stacked over :math:`t`, one GEMM each:

    .. math::

        \bar W_{ih} = (\bar g^i)^\top X, \quad \bar W_{hh} = (\bar g^h)^\top H_\text{prev}, \quad
        \bar b_{ih} = \textstyle\sum_{t,n} \bar g^i, \quad \bar b_{hh} = \sum_{t,n} \bar g^h, \quad
        \bar X = \bar g^i \, W_{ih}

    In the code: ``grad_h``, ``grad_a_n``, ``grad_rz`` (:math:`[\bar a_r, \bar a_z]`),
    ``grad_gh``, ``grad_gi``; ``grad_h = grad_h * z + grad_gh @ W_hh`` carries the state.

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
