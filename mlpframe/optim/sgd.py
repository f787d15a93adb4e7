"""Stochastic gradient descent with momentum, Nesterov momentum and L2 weight decay."""

from __future__ import annotations

from typing import Any

from mlpframe.backend import Array, array_namespace
from mlpframe.nn.module import Parameter
from mlpframe.optim.optimizer import Optimizer, ParamGroup, Params, check_number


class SGD(Optimizer):
    r"""SGD, PyTorch's algorithm (``torch.optim.SGD``) step for step.

    With learning rate :math:`\gamma`, momentum :math:`\mu`, dampening :math:`\tau`
    and weight decay :math:`\lambda`, for each parameter :math:`\theta` with gradient :math:`g_t`::

        g_t <- g_t + lambda * theta_{t-1}                    if lambda != 0
        b_t <- g_t                                           if mu != 0 and t == 1
        b_t <- mu * b_{t-1} + (1 - tau) * g_t                if mu != 0 and t > 1
        g_t <- g_t + mu * b_t  (nesterov)   or   g_t <- b_t  if mu != 0
        theta_t <- theta_{t-1} - gamma * g_t

    Like PyTorch, and unlike Sutskever et al. (2013), the learning rate multiplies the
    whole velocity at the update, not each gradient as it enters the buffer: the two
    agree for a constant learning rate and differ when a scheduler changes it.
    The buffer starts at the first gradient itself (not at zero), so dampening has no
    effect on the first step.

    Args:
        params: parameters or param-group dicts (see :class:`Optimizer`).
        lr: learning rate :math:`\gamma >= 0`.
        momentum: :math:`\mu >= 0`; 0 is plain SGD (and keeps no state).
        dampening: :math:`\tau` in [0, 1].
        nesterov: use Nesterov momentum; needs ``momentum > 0`` and ``dampening == 0``.
        weight_decay: :math:`\lambda >= 0`, an L2 penalty added to the gradient.

    State per parameter: ``momentum_buffer`` (:math:`b`, the parameter's shape and dtype)
    when ``momentum != 0``.
    """

    state_arrays = frozenset({"momentum_buffer"})

    def __init__(self, params: Params, lr: float, momentum: float = 0.0, dampening: float = 0.0,
                 nesterov: bool = False, weight_decay: float = 0.0) -> None:
        defaults = dict(lr=lr, momentum=momentum, dampening=dampening, nesterov=nesterov,
                        weight_decay=weight_decay)
        super().__init__(params, defaults)

    def _check(self, group: ParamGroup) -> None:
        check_number("lr", group["lr"], low_open=True)
        check_number("momentum", group["momentum"], high=1.0, high_open=True)  # 1 and above never decays
        check_number("dampening", group["dampening"], high=1.0)
        check_number("weight_decay", group["weight_decay"])
        if not isinstance(group["nesterov"], bool):
            raise ValueError(f"nesterov: expected True or False, got {group['nesterov']!r}")
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise ValueError(
                "nesterov: Nesterov momentum needs momentum > 0 and dampening == 0, "
                f"got momentum={group['momentum']}, dampening={group['dampening']}"
            )

    def _update(self, p: Parameter, g: Array, state: dict[str, Any], group: ParamGroup) -> None:
        lr, mu, tau, lam = group["lr"], group["momentum"], group["dampening"], group["weight_decay"]
        theta = p.data
        owned = False  # True once g is a temporary of ours (p.grad itself is never modified)
        if lam != 0:
            # g = g + λ θ
            g = g + lam * theta
            owned = True
        if mu != 0:
            b = state.get("momentum_buffer")
            if b is None:
                # b_1 = g_1
                b = state["momentum_buffer"] = g if owned else array_namespace(g).asarray(g, copy=True)
            else:
                # b_t = μ b_{t-1} + (1 - τ) g_t
                b *= mu
                b += g if tau == 0 else (1 - tau) * g
            if group["nesterov"]:
                # g = g + μ b
                g = g + mu * b
                owned = True
            else:
                g = b
                owned = False  # g is the buffer: it must survive this step
        if owned:
            # θ = θ - γ g   (scaling our own temporary saves an allocation)
            g *= lr
            theta -= g
        else:
            # θ = θ - γ g
            theta -= lr * g
