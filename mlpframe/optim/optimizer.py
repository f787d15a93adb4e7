"""The optimizer base class: parameter groups, per-parameter state, checkpoints.

Subclasses hold only the math: :meth:`Optimizer._check` validates one group's
hyperparameters and :meth:`Optimizer._update` applies one step to one parameter,
in place, on its own device. Everything else — groups, skipping parameters without
a gradient, ``zero_grad``, ``state_dict``/``load_state_dict`` — lives here.

A parameter group is a dict ``{"params": [Parameter, ...], "lr": ..., ...}`` as in
PyTorch; a scheduler changes ``group["lr"]`` between steps and ``step()`` reads it
each time. Per-parameter state is a dict of arrays of the parameter's shape,
backend and dtype, plus Python scalars (such as Adam's step count ``step``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from mlpframe.backend import Array, array_namespace, backend_of
from mlpframe.nn.module import Parameter

ParamGroup = dict[str, Any]
Params = Iterable[Parameter] | Iterable[ParamGroup]
_SCALARS = (bool, int, float, str, type(None))


class Optimizer:
    """Base class of every optimizer.

    Args:
        params: an iterable of :class:`~mlpframe.nn.Parameter`, or a list of
            parameter-group dicts ``{"params": [...], "lr": 0.1, ...}`` whose keys
            override ``defaults`` for that group.
        defaults: the hyperparameters of every group that does not set its own.

    Attributes:
        param_groups: list of dicts, each with ``"params"`` and every hyperparameter.
        state: ``{Parameter: {name: array or Python scalar}}``, filled lazily by ``step()``.
        state_arrays: names of the arrays (of the parameter's shape) a subclass keeps
            in each parameter's state; ``state_scalars``: names of its Python numbers.
            A loaded ``state_dict`` is checked against both.
    """

    state_arrays: frozenset[str] = frozenset()
    state_scalars: frozenset[str] = frozenset()

    def __init__(self, params: Params, defaults: dict[str, Any]) -> None:
        self.defaults = dict(defaults)
        self.param_groups: list[ParamGroup] = []
        self.state: dict[Parameter, dict[str, Any]] = {}
        if isinstance(params, (Parameter, dict)):
            raise ValueError(
                "params: expected an iterable of Parameters or of param-group dicts, "
                f"got a single {type(params).__name__} (wrap it in a list)"
            )
        if hasattr(params, "parameters") and not hasattr(params, "__iter__"):
            raise ValueError(f"params: got a {type(params).__name__}; pass model.parameters()")
        groups = list(params)
        if not groups:
            raise ValueError("params: the optimizer got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)

    # ------------------------------------------------------------------ groups
    def add_param_group(self, group: ParamGroup) -> None:
        """Add a group (a dict with ``"params"``); missing hyperparameters come from ``defaults``."""
        if not isinstance(group, dict) or "params" not in group:
            raise ValueError(f"params: a param group must be a dict with a 'params' key, got {group!r}")
        params = group["params"]
        params = [params] if isinstance(params, Parameter) else list(params)
        for i, p in enumerate(params):
            if not isinstance(p, Parameter):
                raise ValueError(f"params: item {i} is a {type(p).__name__}, not a Parameter")
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        if len({id(p) for p in params}) != len(params) or seen & {id(p) for p in params}:
            raise ValueError("params: a parameter appears more than once across the param groups")
        new = {**self.defaults, **group, "params": params}
        for key, value in new.items():
            if key != "params" and _is_real(value):
                new[key] = _py_scalar(value)  # no NumPy float64 scalars: they would promote float32 arrays
        self._check(new)
        self.param_groups.append(new)

    def _check(self, group: ParamGroup) -> None:
        """Raise ``ValueError`` naming the argument if a hyperparameter of ``group`` is invalid."""

    # -------------------------------------------------------------------- step
    def step(self) -> None:
        """One update of every parameter that has a gradient (``p.grad is None`` ones are skipped)."""
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state.get(p)
                if state is None:
                    state = self.state[p] = {}
                self._update(p, p.grad, state, group)

    def _update(self, p: Parameter, g: Array, state: dict[str, Any], group: ParamGroup) -> None:
        """Update ``p.data`` in place from its gradient ``g``; may read and write ``state``."""
        raise NotImplementedError

    def zero_grad(self) -> None:
        """Drop every gradient (``p.grad = None``): the next backward writes a fresh one."""
        for group in self.param_groups:
            for p in group["params"]:
                p.grad = None

    # ------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        """The optimizer's state as plain data: str keys, Python scalars/lists/tuples, host NumPy arrays.

        ``{"state": {"0": {"step": 3, "m": ndarray, "v": ndarray}, ...},
        "param_groups": [{"lr": 0.1, ..., "params": [0, 1]}, ...]}`` — parameters are
        numbered in group order, as in PyTorch. Arrays are copies: later steps do
        not change a saved state dict. Safe to write without pickle.
        """
        index = {}
        groups = []
        for group in self.param_groups:
            for p in group["params"]:
                index[id(p)] = len(index)
            saved = {k: _copy_plain(v) for k, v in group.items() if k != "params"}
            saved["params"] = [index[id(p)] for p in group["params"]]
            groups.append(saved)
        state = {}
        for group in self.param_groups:
            for p in group["params"]:
                if self.state.get(p):
                    state[str(index[id(p)])] = {k: _to_host(v) for k, v in self.state[p].items()}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` saved; arrays go to each parameter's backend and dtype.

        Group count, parameters per group, state names and array shapes must match
        this optimizer; otherwise ``ValueError`` says what differs, and nothing changes.
        """
        if not isinstance(state_dict, dict) or set(state_dict) != {"state", "param_groups"}:
            keys = sorted(state_dict) if isinstance(state_dict, dict) else type(state_dict).__name__
            raise ValueError(f"state_dict: expected the keys ['param_groups', 'state'], got {keys}")
        saved_groups = list(state_dict["param_groups"])
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(
                f"state_dict: has {len(saved_groups)} param group(s), this optimizer has {len(self.param_groups)}"
            )
        by_index: dict[int, Parameter] = {}
        new_groups = []
        for i, (group, saved) in enumerate(zip(self.param_groups, saved_groups)):
            ids = list(saved.get("params", ()))
            if len(ids) != len(group["params"]):
                raise ValueError(
                    f"state_dict: param group {i} has {len(ids)} parameter(s), "
                    f"this optimizer's has {len(group['params'])}"
                )
            by_index.update(zip((int(j) for j in ids), group["params"]))
            # hyperparameters the checkpoint lacks keep their current values
            new = {k: v for k, v in group.items() if k != "params"}
            new.update((k, _from_plain(v, group.get(k))) for k, v in saved.items() if k != "params")
            new["params"] = group["params"]
            self._check(new)
            new_groups.append(new)
        new_state: dict[Parameter, dict[str, Any]] = {}
        for key, saved in dict(state_dict["state"]).items():
            p = by_index.get(int(key))
            if p is None:
                raise ValueError(f"state_dict: state for parameter {key}, which no param group lists")
            expected = self.state_arrays | self.state_scalars
            if set(saved) != expected:
                raise ValueError(
                    f"state_dict: parameter {key} has state {sorted(saved)}, "
                    f"{type(self).__name__} keeps {sorted(expected)}"
                )
            new_state[p] = {
                name: _to_device(v, p, f"{key}.{name}") if name in self.state_arrays
                else _to_scalar(v, f"{key}.{name}")
                for name, v in saved.items()
            }
        self.param_groups = new_groups
        self.state = new_state

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for i, group in enumerate(self.param_groups):
            hp = ", ".join(f"{k}={v}" for k, v in group.items() if k != "params")
            lines.append(f"  group {i}: {len(group['params'])} params, {hp}")
        return "\n".join(lines) + "\n)"


# --------------------------------------------------------------------- helpers
def check_number(name: str, value: Any, low: float = 0.0, high: float = math.inf, *,
                 low_open: bool = False, high_open: bool = False) -> None:
    """``ValueError`` naming ``name`` unless ``low <= value <= high`` (``<`` where that end is open).

    The one statement of each hyperparameter's range: the config schemas of
    :mod:`mlpframe.cli.config` check a value by building the object, so they ask these.
    """
    if not _is_real(value) or isinstance(value, bool):
        raise ValueError(f"{name}: expected a number, got {value!r}")
    ok = (low < value if low_open else low <= value) and (value < high if high_open else value <= high)
    if not ok or not math.isfinite(value):
        bound = f"{'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
        raise ValueError(f"{name}: must be a finite number in {bound}, got {value!r}")


def _is_real(value: Any) -> bool:
    """A Python or 0-d real number (bools included), not a string or a sized array."""
    if isinstance(value, (str, bytes, list, tuple, dict)) or getattr(value, "ndim", 0) != 0:
        return False
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


def _py_scalar(value: Any) -> Any:
    # type(), not isinstance: numpy.float64 subclasses float but promotes float32 arrays
    if type(value) in (bool, int, float):
        return value
    return value.item() if hasattr(value, "item") else float(value)


def _is_array(value: Any) -> bool:
    return not isinstance(value, _SCALARS + (list, tuple, dict)) and hasattr(value, "shape")


def _to_host(value: Any) -> Any:
    if _is_array(value):
        return backend_of(value).to_numpy(value).copy()  # host sync: checkpoints only
    return _copy_plain(value)


def _copy_plain(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return type(value)(_copy_plain(v) for v in value)
    return value


def _from_plain(value: Any, current: Any) -> Any:
    """A saved hyperparameter as plain Python; a tuple again if it was one (JSON turns tuples into lists)."""
    if isinstance(value, (list, tuple)):
        items = [_from_plain(v, None) for v in value]
        return tuple(items) if isinstance(current, tuple) else items
    if _is_real(value):
        return _py_scalar(value)  # a NumPy scalar from an .npz or similar becomes a Python one
    return value


def _to_scalar(value: Any, where: str) -> Any:
    if not _is_real(value):
        raise ValueError(f"state_dict: state {where} is a {type(value).__name__}, expected a number")
    return _py_scalar(value)


def _to_device(value: Any, p: Parameter, where: str) -> Array:
    if not hasattr(value, "shape"):
        raise ValueError(f"state_dict: state {where} is a {type(value).__name__}, expected an array")
    if tuple(value.shape) != tuple(p.data.shape):
        raise ValueError(
            f"state_dict: state {where} has shape {tuple(value.shape)}, its parameter has {tuple(p.data.shape)}"
        )
    a = backend_of(p.data).asarray(value, dtype=p.data.dtype)
    # own the memory: later in-place steps must not write into the caller's state dict
    return array_namespace(a).asarray(a, copy=True)
