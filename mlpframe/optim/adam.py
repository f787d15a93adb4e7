"""Adam (Kingma & Ba, 2015) and AdamW (Loshchilov & Hutter, 2019)."""

from __future__ import annotations

import math
from typing import Any

from mlpframe.backend import Array, array_namespace
from mlpframe.nn.module import Parameter
from mlpframe.optim.optimizer import Optimizer, ParamGroup, Params, check_number


class Adam(Optimizer):
    r"""Adam, PyTorch's algorithm (``torch.optim.Adam``, ``amsgrad=False``) step for step.

    With learning rate :math:`\gamma`, betas :math:`(\beta_1, \beta_2)`, :math:`\epsilon`
    and weight decay :math:`\lambda`, for each parameter :math:`\theta` with gradient
    :math:`g_t` at its step :math:`t = 1, 2, \dots`::

        g_t     <- g_t + lambda * theta_{t-1}                  (L2 penalty; AdamW decays theta instead)
        m_t     <- beta1 * m_{t-1} + (1 - beta1) * g_t
        v_t     <- beta2 * v_{t-1} + (1 - beta2) * g_t^2
        m_hat   =  m_t / (1 - beta1^t)
        v_hat   =  v_t / (1 - beta2^t)
        theta_t <- theta_{t-1} - gamma * m_hat / (sqrt(v_hat) + eps)

    As in PyTorch (and unlike the paper's eps-hat variant), eps is added to
    ``sqrt(v_hat)``, and the update is computed as
    ``theta -= (gamma / (1 - beta1^t)) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)``. The
    bias corrections are Python floats computed on the host from the integer step
    count, so a step never waits for the device.

    Args:
        params: parameters or param-group dicts (see :class:`Optimizer`).
        lr: :math:`\gamma >= 0`.
        betas: :math:`(\beta_1, \beta_2)`, each in [0, 1).
        eps: :math:`\epsilon >= 0`.
        weight_decay: :math:`\lambda >= 0`.

    State per parameter: ``step`` (:math:`t`, a Python int), ``m`` and ``v`` (the
    parameter's shape and dtype).
    """

    state_arrays = frozenset({"m", "v"})
    state_scalars = frozenset({"step"})
    # AdamW sets this: decay theta directly instead of adding lambda * theta to g
    decoupled_weight_decay = False

    def __init__(self, params: Params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0) -> None:
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay))

    def _check(self, group: ParamGroup) -> None:
        check_number("lr", group["lr"], low_open=True)
        betas = group["betas"]
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise ValueError(f"betas: expected a pair (beta1, beta2), got {betas!r}")
        check_number("betas[0]", betas[0], high=1.0, high_open=True)
        check_number("betas[1]", betas[1], high=1.0, high_open=True)
        group["betas"] = (float(betas[0]), float(betas[1]))
        check_number("eps", group["eps"])
        check_number("weight_decay", group["weight_decay"])

    def _update(self, p: Parameter, g: Array, state: dict[str, Any], group: ParamGroup) -> None:
        lr, (beta1, beta2), eps, lam = group["lr"], group["betas"], group["eps"], group["weight_decay"]
        theta = p.data
        if not state:
            xp = array_namespace(theta)
            state["step"] = 0
            state["m"] = xp.zeros_like(theta)
            state["v"] = xp.zeros_like(theta)
        m, v = state["m"], state["v"]
        t = state["step"] = state["step"] + 1
        if lam != 0:
            if self.decoupled_weight_decay:
                # θ = θ (1 - γ λ)
                theta *= 1 - lr * lam
            else:
                # g = g + λ θ
                g = g + lam * theta
        # m_t = β1 m_{t-1} + (1 - β1) g_t
        m *= beta1
        m += (1 - beta1) * g
        # v_t = β2 v_{t-1} + (1 - β2) g_t²
        g2 = g * g
        g2 *= 1 - beta2
        v *= beta2
        v += g2
        bias_correction1 = 1 - beta1**t  # host floats: t is a Python int
        bias_correction2 = 1 - beta2**t
        step_size = lr / bias_correction1
        # denom = sqrt(v_t) / sqrt(1 - β2^t) + ε  =  sqrt(v_hat) + ε
        denom = array_namespace(v).sqrt(v)
        denom /= math.sqrt(bias_correction2)
        denom += eps
        # θ_t = θ_{t-1} - γ / (1 - β1^t) · m_t / denom  =  θ_{t-1} - γ m_hat / (sqrt(v_hat) + ε)
        update = m / denom
        update *= step_size
        theta -= update


class AdamW(Adam):
    r"""AdamW: Adam with decoupled weight decay (``torch.optim.AdamW``).

    The decay shrinks the weights directly before the Adam step, instead of being
    added to the gradient (where Adam's per-coordinate scaling would weaken it)::

        theta_{t-1} <- theta_{t-1} * (1 - gamma * lambda)
        then the Adam update of :class:`Adam` with lambda = 0

    As in PyTorch the decay is multiplied by the current learning rate ``gamma``
    (the paper uses a separate schedule multiplier). Default ``weight_decay=1e-2``.
    """

    decoupled_weight_decay = True

    def __init__(self, params: Params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 1e-2) -> None:
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
