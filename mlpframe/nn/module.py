r"""Module, Parameter and Sequential: the bookkeeping every layer shares.

A module's ``forward`` computes its output and keeps what ``backward`` needs in
``self.cache``; ``backward(grad_y)`` returns ``grad_x`` and *adds* the gradients
of its parameters into ``p.grad``. There is no autograd graph: a model's backward
is the reverse walk written out by hand (see :class:`Sequential`). The contract a
layer of your own follows is in :class:`Module`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from mlpframe.backend import Array, Backend, backend_of, get_backend


class Parameter:
    """A trainable array and the gradient accumulated into it.

    Attributes:
        data: the value, an array of the module's backend.
        grad: ``None`` after ``zero_grad()``; otherwise d loss / d data, same shape and dtype.
    """

    __slots__ = ("data", "grad")

    def __init__(self, data: Array) -> None:
        self.data = data
        self.grad: Array | None = None

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.data.shape)

    def accumulate_grad(self, g: Array) -> None:
        """``grad += g``; the first call after ``zero_grad()`` takes ``g`` itself (no copy, no zeros)."""
        if self.grad is None:
            self.grad = g
        else:
            self.grad += g

    def __repr__(self) -> str:
        return f"Parameter(shape={self.shape}, dtype={self.data.dtype})"


def _move(a: Array, backend: Backend) -> Array:
    """``a`` on ``backend``; a no-op when it is already there."""
    if backend_of(a) is backend:
        return a
    return backend.asarray(backend_of(a).to_numpy(a))


class Module:
    r"""Base class of every layer, loss and model; a layer of your own subclasses it.

    **The contract.** A layer writes two methods, side by side:

    ``forward(x)``
        computes :math:`y = f(x;\, \theta)` and keeps in ``self.cache`` what
        ``backward`` needs, and nothing more (``self.cache["x"] = x``).

    ``backward(grad_y)``
        receives :math:`\bar y = \partial L / \partial y` (the shape of ``y``) and
        returns :math:`\bar x = \partial L / \partial x` (the shape of ``x``).
        It *adds* each parameter's gradient into ``p.grad`` with
        :meth:`Parameter.accumulate_grad`. Both are vector–Jacobian products,
        written out by hand; the Jacobian itself is never formed:

        .. math::

            \bar x_i = \sum_j \bar y_j \, \frac{\partial y_j}{\partial x_i},
            \qquad
            \bar\theta_k \mathrel{+}= \sum_j \bar y_j \, \frac{\partial y_j}{\partial \theta_k}.

        For an element-wise :math:`y = h(x)` the first sum has one term:
        :math:`\bar x = \bar y \odot h'(x)`. Read the cache with
        :meth:`cached` (``self.cached("x")``), which says clearly when backward
        came before forward.

    ``backward_params(grad_y)`` (optional)
        the parameter gradients without :math:`\bar x`, for a first layer whose
        input is data. The default calls ``backward`` and drops its result;
        override it when skipping :math:`\bar x` saves work, as
        :class:`~mlpframe.nn.Linear` does (one matmul in three).

    **State.** What the instance's attributes hold decides what the framework sees:

    - a :class:`Parameter` is trained: :meth:`named_parameters` finds it by its
      attribute name (in assignment order), :meth:`to` moves it,
      :meth:`state_dict` saves it, the optimizer updates it. Draw its value on the
      host from a seeded ``numpy.random.Generator`` in the layer's ``dtype``
      (take ``rng=`` and ``dtype="float32"`` keywords, as ``Linear`` does), so that
      the same seed gives the same weights on every backend;
    - a buffer is state that is saved and moved but not trained (BatchNorm's running
      statistics): an array attribute declared with :meth:`register_buffer`;
    - a child ``Module`` contributes its parameters under a dotted name
      (``"encoder.weight"``);
    - ``self.cache`` is scratch for one forward/backward pair; :meth:`to` empties it;
    - ``self.training`` is switched by :meth:`train` and :meth:`eval`.

    **One code path for NumPy, CuPy and** ``array_api_strict``. Take the namespace
    from the data, ``xp = array_namespace(x)`` (from :mod:`mlpframe.backend`), and
    use only functions of the Python array API standard: ``xp.exp``, ``xp.log1p``,
    ``xp.where``, ``xp.maximum``, ``xp.sum(a, axis=0)``, ``a @ b``,
    ``xp.reshape(a, shape)``, ``xp.astype(a, dtype)``, and creation functions with
    both ``dtype=`` and ``device=`` (``xp.zeros(shape, dtype=x.dtype,
    device=x.device)``). Not in the standard, so not in a layer: array methods
    (``a.sum()``, ``a.reshape()``, ``a.astype()``), ``out=``, ``np.add.at``,
    assignment through an integer array, NumPy scalars mixed with arrays (a Python
    ``float`` is fine), and any ``import numpy`` or ``import cupy`` in
    forward/backward. Nothing in forward or backward may wait for the device:
    no ``float(a)``, ``a.item()`` or ``if a:`` on an array. Random numbers come from
    the backend's seeded stream, ``self.backend.uniform(shape, dtype)``.

    **Check it** against finite differences on every backend before training with
    it: :func:`mlpframe.gradcheck.assert_gradients_match` in a test (or
    :func:`mlpframe.gradcheck.check_module` for the results).

    Example, a softplus :math:`y = \log(1 + e^x)` with
    :math:`\bar x = \bar y \odot \sigma(x)`::

        class Softplus(Module):
            def forward(self, x):
                xp = array_namespace(x)
                self.cache["x"] = x
                return xp.maximum(x, xp.zeros_like(x)) + xp.log1p(xp.exp(-xp.abs(x)))

            def backward(self, grad_y):
                xp = array_namespace(grad_y)
                return grad_y / (1 + xp.exp(-self.cached("x")))
    """

    def __init__(self) -> None:
        self.training = True
        self.backend: Backend = get_backend("numpy")
        self.cache: dict[str, Any] = {}
        self._buffers: list[str] = []

    # ---------------------------------------------------------------- compute
    def forward(self, x: Array) -> Array:
        raise NotImplementedError

    def backward(self, grad_y: Array) -> Array:
        raise NotImplementedError

    def backward_params(self, grad_y: Array) -> None:
        """:meth:`backward` without ``grad_x``: only adds into ``p.grad``; returns ``None``.

        For a model whose input is data that needs no gradient (PyTorch's
        ``requires_grad=False`` input). Layers that can skip computing ``grad_x``
        override this; :class:`~mlpframe.nn.Linear` saves one matmul in three.
        """
        self.backward(grad_y)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.forward(*args, **kwargs)

    def cached(self, key: str) -> Any:
        """What forward stored under ``key``; a clear error if backward came first."""
        try:
            return self.cache[key]
        except KeyError:
            raise RuntimeError(f"{type(self).__name__}.backward() called before forward()") from None

    # -------------------------------------------------------------- structure
    def register_buffer(self, name: str, value: Array) -> None:
        """Set ``self.<name> = value`` and declare it a buffer: moved by :meth:`to`, saved, not trained."""
        setattr(self, name, value)
        if name not in self._buffers:
            self._buffers.append(name)

    def named_children(self) -> Iterator[tuple[str, Module]]:
        for name, value in vars(self).items():
            if isinstance(value, Module):
                yield name, value

    def modules(self) -> Iterator[Module]:
        yield self
        for _, child in self.named_children():
            yield from child.modules()

    def named_parameters(self, prefix: str = "") -> Iterator[tuple[str, Parameter]]:
        for name, value in vars(self).items():
            if isinstance(value, Parameter):
                yield prefix + name, value
            elif isinstance(value, Module):
                yield from value.named_parameters(prefix + name + ".")

    def parameters(self) -> list[Parameter]:
        return [p for _, p in self.named_parameters()]

    def named_buffers(self, prefix: str = "") -> Iterator[tuple[str, Array]]:
        for name in self._buffers:
            yield prefix + name, getattr(self, name)
        for child_name, child in self.named_children():
            yield from child.named_buffers(prefix + child_name + ".")

    # ------------------------------------------------------------------ modes
    def train(self, mode: bool = True) -> Module:
        for m in self.modules():
            m.training = mode
        return self

    def eval(self) -> Module:
        return self.train(False)

    def zero_grad(self) -> None:
        for p in self.parameters():
            p.grad = None

    def to(self, backend: Backend | str) -> Module:
        """Move parameters, gradients and buffers to ``backend``; returns ``self``."""
        if isinstance(backend, str):
            backend = get_backend(backend)
        for m in self.modules():
            m.backend = backend
            m.cache = {}
            for name in m._buffers:
                setattr(m, name, _move(getattr(m, name), backend))
        for p in self.parameters():
            p.data = _move(p.data, backend)
            if p.grad is not None:
                p.grad = _move(p.grad, backend)
        return self

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        """Parameters and buffers as host NumPy arrays, keyed by dotted name."""
        state = {name: self.backend.to_numpy(p.data).copy() for name, p in self.named_parameters()}
        state.update({name: self.backend.to_numpy(b).copy() for name, b in self.named_buffers()})
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Copy ``state`` (from :meth:`state_dict`) in; names and shapes must match exactly."""
        if not isinstance(state, dict):
            raise ValueError(f"state_dict: expected a mapping of names to arrays, got {type(state).__name__}")
        params = dict(self.named_parameters())
        owners = {name: (m, attr) for name, m, attr in self._buffer_owners()}
        expected = set(params) | set(owners)
        missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
        if missing or unexpected:
            raise ValueError(f"state_dict: missing keys {missing}, unexpected keys {unexpected}")
        for name, value in state.items():
            current = params[name].data if name in params else getattr(*owners[name])
            if not hasattr(value, "shape"):
                raise ValueError(f"state_dict: {name} is a {type(value).__name__}, expected an array")
            if tuple(value.shape) != tuple(current.shape):
                raise ValueError(
                    f"state_dict: {name} has shape {tuple(value.shape)}, "
                    f"the model expects {tuple(current.shape)}"
                )
            # a copy: the optimizer updates parameters in place, and must not write into ``state``
            moved = self.backend.asarray(value, dtype=current.dtype, copy=True)
            if name in params:
                params[name].data = moved
            else:
                setattr(*owners[name], moved)

    def _buffer_owners(self, prefix: str = "") -> Iterator[tuple[str, Module, str]]:
        for name in self._buffers:
            yield prefix + name, self, name
        for child_name, child in self.named_children():
            yield from child._buffer_owners(prefix + child_name + ".")

    # ------------------------------------------------------------------ print
    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        children = list(self.named_children())
        if not children:
            return f"{type(self).__name__}({self.extra_repr()})"
        lines = [f"  ({name}): " + repr(child).replace("\n", "\n  ") for name, child in children]
        return f"{type(self).__name__}(\n" + "\n".join(lines) + "\n)"


class Sequential(Module):
    r"""Modules applied in order; backward walks them in reverse.

    forward, :math:`y = f_n(\cdots f_2(f_1(x)))`; backward, the chain rule as
    vector–Jacobian products from the last layer to the first,

    .. math::

        \bar x = J_1^\top \bigl( J_2^\top \cdots ( J_n^\top \bar y ) \bigr),
        \qquad J_k = \frac{\partial f_k}{\partial (\text{input of } f_k)},

    each :math:`J_k^\top(\cdot)` being child ``k``'s ``backward``.
    Children are named ``"0"``, ``"1"``, … as in PyTorch, so parameters are ``"0.weight"``.
    """

    def __init__(self, *modules: Module) -> None:
        super().__init__()
        for i, m in enumerate(modules):
            if not isinstance(m, Module):
                raise ValueError(f"modules: item {i} is {type(m).__name__}, not a Module")
            setattr(self, str(i), m)
        self.layers: tuple[Module, ...] = tuple(modules)

    def forward(self, x: Array) -> Array:
        for layer in self.layers:
            x = layer.forward(x)
        return x

    def backward(self, grad_y: Array) -> Array:
        for layer in reversed(self.layers):
            grad_y = layer.backward(grad_y)
        return grad_y

    def backward_params(self, grad_y: Array) -> None:
        """Parameter gradients only: the first layer does not compute the input's gradient."""
        layers = self.layers
        for layer in reversed(layers[1:]):
            grad_y = layer.backward(grad_y)
        if layers:
            layers[0].backward_params(grad_y)

    def __getitem__(self, i: int) -> Module:
        return self.layers[i]

    def __len__(self) -> int:
        return len(self.layers)

    def named_children(self) -> Iterator[tuple[str, Module]]:
        for i, m in enumerate(self.layers):
            yield str(i), m


class Identity(Module):
    """``y = x``; ``grad_x = grad_y``."""

    def forward(self, x: Array) -> Array:
        return x

    def backward(self, grad_y: Array) -> Array:
        return grad_y
