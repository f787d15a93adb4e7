"""Losses: a forward that returns a 0-d array and a backward that needs no argument.

``loss = crit(inputs, targets)`` caches what ``crit.backward()`` needs to return
``d loss / d inputs``; like PyTorch, the loss is the mean over the batch.
"""

from __future__ import annotations

from mlpframe.backend import Array, array_namespace
from mlpframe.nn.module import Module


def _targets_as_probabilities(targets: Array, shape: tuple[int, ...], dtype, xp,
                              class_major: bool = False) -> Array:
    """Integer labels (N,) as one-hot rows (N, C); probability targets (N, C) as they are.

    ``class_major=True`` gives the transpose, (C, N).
    """
    N, C = shape
    if targets.ndim == 1:
        if targets.shape[0] != N:
            raise ValueError(f"targets: expected {N} labels, got shape {tuple(targets.shape)}")
        if xp.isdtype(targets.dtype, "real floating"):
            raise ValueError("targets: 1-d targets must be integer class labels")
        classes = xp.arange(C, dtype=targets.dtype, device=targets.device)
        # one-hot by comparison: the standard has no one_hot and no integer-array setitem
        if class_major:
            return xp.astype(classes[:, None] == targets[None, :], dtype)  # (C, N)
        return xp.astype(targets[:, None] == classes[None, :], dtype)  # (N, C)
    if tuple(targets.shape) != (N, C):
        raise ValueError(f"targets: expected labels (N,) or probabilities {(N, C)}, got {tuple(targets.shape)}")
    t = xp.astype(targets, dtype) if targets.dtype != dtype else targets
    return xp.permute_dims(t, (1, 0)) if class_major else t


def _class_major(x: Array, xp) -> Array:
    """``x`` (N, C) transposed to a row-major (C, N) array (a copy, unless ``x`` is column-major).

    Reductions over the classes then run along the long axis, which NumPy
    vectorises; over a short last axis (C = 10) it loops row by row, ~5x slower.
    """
    N, C = x.shape
    # flattening the transposed view lays it out class by class
    return xp.reshape(xp.reshape(xp.permute_dims(x, (1, 0)), (C * N,)), (C, N))


class CrossEntropyLoss(Module):
    r"""Cross-entropy averaged over the batch:

    .. math::

        L = -\frac{1}{N} \sum_n \sum_c t_{nc} \log p_{nc}

    :math:`t` is the one-hot of integer labels (N,) or a given probability matrix (N, C);
    with ``label_smoothing`` :math:`= \varepsilon` it becomes :math:`(1 - \varepsilon) t + \varepsilon / C`
    (PyTorch's definition: :math:`\varepsilon / C` on every class, the true class included).

    ``from_logits=True`` (default): inputs are logits :math:`z` and :math:`p = \mathrm{softmax}(z)`.
    The softmax Jacobian and :math:`\partial L / \partial p` fold into the seed's closed form
    (Question 1 e, :math:`\alpha = 1/S`, :math:`M = Y - T`), using :math:`\sum_c t_{nc} = 1`:

    .. math::

        \bar z = \frac{\partial L}{\partial z} = \frac{1}{N} \left(\mathrm{softmax}(z) - t\right)
        \qquad \text{(N, C)}

    ``from_logits=False``: inputs are probabilities :math:`p` (the course homework's
    CrossEntropy after an explicit Softmax) and, the seed's :math:`\partial L / \partial Y`,

    .. math::

        \bar p = -\frac{1}{N} \, \frac{t}{p} \qquad \text{(element-wise, (N, C))}

    In the code: ``grad_z = (p - t) / N`` and ``grad_p = -(t / p) / N``.

    ``p`` is floored at the dtype's smallest normal number only to avoid ``log(0)``.

    Integer labels equal to ``ignore_index`` (PyTorch's -100) add nothing and the mean is
    over the other ``N_valid`` samples (``/ N_valid`` in place of ``/ N`` above). Any other
    label outside ``0..C-1`` makes the loss NaN: PyTorch raises there, but a raise would need
    the labels on the host at every step; the trainer's next sync reports the NaN, and
    ``mlpframe train`` checks a data set's labels once when it loads it.
    """

    def __init__(self, from_logits: bool = True, label_smoothing: float = 0.0, ignore_index: int = -100) -> None:
        super().__init__()
        if not 0.0 <= label_smoothing <= 1.0:
            raise ValueError(f"label_smoothing: expected a value in [0, 1], got {label_smoothing!r}")
        self.from_logits = bool(from_logits)
        self.label_smoothing = float(label_smoothing)
        self.ignore_index = int(ignore_index)

    def forward(self, inputs: Array, targets: Array) -> Array:
        xp = array_namespace(inputs)
        if inputs.ndim != 2:
            raise ValueError(f"inputs: expected shape (N, C), got {tuple(inputs.shape)}")
        N, C = inputs.shape
        # from logits, everything is computed class-major, (C, N): see _class_major
        t = _targets_as_probabilities(targets, (N, C), inputs.dtype, xp, class_major=self.from_logits)
        if self.label_smoothing:
            t = (1.0 - self.label_smoothing) * t + self.label_smoothing / C
        count = xp.asarray(N, dtype=inputs.dtype, device=inputs.device)  # the samples the mean is over
        penalty = xp.asarray(0.0, dtype=inputs.dtype, device=inputs.device)
        if targets.ndim == 1:
            kept = targets != self.ignore_index  # (N,)
            outside = kept & ((targets < 0) | (targets >= C))
            weight = xp.astype(kept, inputs.dtype)
            t = t * (weight[None, :] if self.from_logits else weight[:, None])  # ignored rows add nothing
            count = xp.sum(weight)
            nan = xp.asarray(xp.nan, dtype=inputs.dtype, device=inputs.device)
            penalty = xp.where(xp.any(outside), nan, penalty)
        if self.from_logits:
            # log_softmax and softmax from one exp: log p = (z - max) - log(sum exp(z - max))
            z = _class_major(inputs, xp)  # (C, N)
            log_p = z - xp.max(z, axis=0)  # shifted: a new array, updated in place below
            p = xp.exp(log_p)
            s = xp.sum(p, axis=0)  # (N,)
            log_p -= xp.log(s)
            p /= s
        else:
            p = xp.maximum(inputs, xp.finfo(inputs.dtype).smallest_normal)
            log_p = xp.log(p)
        if targets.ndim == 1:  # the gradient of an ignored row is 0, not p
            p_grad = p * (weight[None, :] if self.from_logits else 1.0)
        else:
            p_grad = p
        self.cache["p"], self.cache["t"], self.cache["count"] = p_grad, t, count
        return -xp.sum(t * log_p) / count + penalty

    def backward(self, grad_loss: Array | float = 1.0) -> Array:
        p, t, N = self.cached("p"), self.cached("t"), self.cached("count")
        if self.from_logits:
            grad = p - t  # (C, N)
            grad *= grad_loss / N
            # back to (N, C): a transposed view, which BLAS and column sums read as it is
            return array_namespace(grad).permute_dims(grad, (1, 0))
        return (t / p) * (-grad_loss / N)

    def extra_repr(self) -> str:
        return f"from_logits={self.from_logits}, label_smoothing={self.label_smoothing}, ignore_index={self.ignore_index}"


class MSELoss(Module):
    r"""Mean squared error over all :math:`M` elements of ``x``.

    .. math::

        L = \frac{1}{M} \sum (x - t)^2, \qquad \bar x = \frac{2}{M} (x - t)
    """

    def forward(self, inputs: Array, targets: Array) -> Array:
        xp = array_namespace(inputs)
        if tuple(targets.shape) != tuple(inputs.shape):
            raise ValueError(f"targets: expected shape {tuple(inputs.shape)}, got {tuple(targets.shape)}")
        diff = inputs - targets
        self.cache["diff"] = diff
        return xp.sum(diff * diff) / diff.size

    def backward(self, grad_loss: Array | float = 1.0) -> Array:
        diff = self.cached("diff")
        return diff * (2.0 * grad_loss / diff.size)
