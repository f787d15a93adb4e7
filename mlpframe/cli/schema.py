"""How a config schema states its rules: field helpers that record a constraint, and one checker.

A component's schema (:mod:`mlpframe.cli.config`) is a dataclass: OmegaConf uses it
as a Hydra structured config, so keys and types are checked while the config is
composed (``optimizer.lr=fast``, ``trainer.max_epoch=3``). What a type cannot
say (``lr > 0``, a choice taken from a registry) is recorded in the field itself
with :func:`integer`, :func:`number` or :func:`one_of`, and :meth:`Schema.validate`
is the one place that checks it, for a command line and for a checkpoint's
config alike. A schema adds cross-field rules by overriding :meth:`Schema.check`.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable, Iterable
from typing import Any


class ConfigError(ValueError):
    """A config value that is well-typed but not allowed; the message starts with its key."""

    def __init__(self, key: str, problem: str) -> None:
        self.key = key
        super().__init__(f"{key}: {problem}")


def require(cond: bool, key: str, problem: str) -> None:
    if not cond:
        raise ConfigError(key, problem)


def library_rules(key: str, make: Callable[[], Any]) -> None:
    """Check values whose rules the library states, by building its object: the constructor's
    ``ValueError("<arg>: <problem>")`` becomes a :class:`ConfigError` naming ``<key>.<arg>``."""
    try:
        make()
    except ValueError as exc:
        arg, sep, problem = str(exc).partition(": ")
        if sep and re.fullmatch(r"[A-Za-z_][\w\[\]]*", arg):
            raise ConfigError(f"{key}.{arg}", problem) from None
        raise ConfigError(key, str(exc)) from None


def _field(default: Any, rule: dict[str, Any]) -> Any:
    if isinstance(default, (list, dict)):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata={"rule": rule})
    return dataclasses.field(default=default, metadata={"rule": rule})


def integer(default: Any, low: int = 0) -> Any:
    """An int field (or ``None`` where the type is Optional) that must be ``>= low``."""
    return _field(default, {"kind": "int", "low": low})


def number(default: Any, low: float = 0.0, high: float = math.inf, *, low_open: bool = False,
           high_open: bool = True) -> Any:
    """A finite number in ``[low, high)`` (the ends open or closed as asked)."""
    return _field(default, {"kind": "number", "low": low, "high": high, "low_open": low_open,
                            "high_open": high_open})


def one_of(default: Any, choices: Iterable[Any] | Callable[[], Iterable[Any]]) -> Any:
    """One of ``choices``: a tuple, or a function returning a registry's names (read when checked)."""
    return _field(default, {"kind": "choice", "choices": choices})


def check_int(value: Any, key: str, low: int = 0) -> None:
    require(isinstance(value, int) and not isinstance(value, bool) and value >= low, key,
            f"must be an integer >= {low}, got {value!r}")


def check_number(value: Any, key: str, low: float = 0.0, high: float = math.inf, *, low_open: bool = False,
                 high_open: bool = True) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if ok:
        ok = (value > low if low_open else value >= low) and (value < high if high_open else value <= high)
    lo, hi = f"{'(' if low_open else '['}{low}", f"{high}{')' if high_open else ']'}"
    require(ok, key, f"must be a number in {lo}, {hi}, got {value!r}")


def check_choice(value: Any, key: str, choices: Iterable[Any] | Callable[[], Iterable[Any]]) -> None:
    options = tuple(choices() if callable(choices) else choices)
    require(value in options, key, f"must be one of {', '.join(map(str, options))}; got {value!r}")


def check_field(rule: dict[str, Any], value: Any, key: str) -> None:
    """Check ``value`` against one field's recorded rule (``None`` passes: Optional fields mean "off");
    a list is checked element by element (``model.hidden[1]``)."""
    kind = rule["kind"]
    if isinstance(value, (list, tuple)) and kind != "choice":
        for i, v in enumerate(value):
            check_field(rule, v, f"{key}[{i}]")
        return
    if kind == "choice":
        check_choice(value, key, rule["choices"])
    elif value is None:
        return
    elif kind == "int":
        check_int(value, key, rule["low"])
    else:
        check_number(value, key, rule["low"], rule["high"], low_open=rule["low_open"], high_open=rule["high_open"])


def rule_of(cls: type, name: str) -> dict[str, Any] | None:
    """The rule of field ``name``: a subclass that only changes a default keeps its base's rule."""
    for klass in cls.__mro__:
        f = getattr(klass, "__dataclass_fields__", {}).get(name)
        if f is not None and "rule" in f.metadata:
            return f.metadata["rule"]
    return None


class Schema:
    """Base of every component schema: :meth:`validate` checks each field's rule, then :meth:`check`."""

    def validate(self, key: str) -> None:
        """Raise :class:`ConfigError` naming ``<key>.<field>`` for the first value not allowed."""
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            rule = rule_of(type(self), f.name)
            if rule is not None:
                check_field(rule, getattr(self, f.name), f"{key}.{f.name}" if key else f.name)
        self.check(key)

    def check(self, key: str) -> None:
        """Rules across fields (e.g. Nesterov needs momentum); none by default."""

    def kwargs(self, *exclude: str) -> dict[str, Any]:
        """The fields as keyword arguments, without ``name`` and ``exclude``."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)  # type: ignore[arg-type]
                if f.name not in ("name", *exclude)}
