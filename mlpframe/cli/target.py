"""User components named by ``_target_``: finding the callable, checking its keys, calling it, and when
a checkpoint may name one.

A model config of the user's own project (``conf/model/my_net.yaml``, found with
``--config-dir conf``) is ``_target_: pkg.module.callable`` plus the callable's
keyword arguments. mlpframe adds what only it knows, each only when the
callable's signature names it: :data:`FRAMEWORK_ARGS`.

A checkpoint is data from anywhere, so ``evaluate`` imports a target it names only
when the user names that target too (:func:`check_allowed`), as PyTorch's
``weights_only`` loading does with its allow-list of globals. That matters more
than it seems: ``python -m`` puts the current folder first on ``sys.path``, so a
module named only by a checkpoint could be any file lying next to it.
"""

from __future__ import annotations

import importlib
import inspect
import re
from collections.abc import Callable, Iterable
from typing import Any

from mlpframe.cli.schema import ConfigError, require

# what mlpframe passes to a target whose signature takes it: one example's shape (a tuple), the class
# count, the dtype name ("float32"), a numpy Generator seeded from the run's seed
FRAMEWORK_ARGS = ("input_shape", "num_classes", "dtype", "rng")

_DOTTED = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)+")


def check_path(target: Any, key: str) -> str:
    require(isinstance(target, str) and _DOTTED.fullmatch(target) is not None, key,
            f"must be a dotted path pkg.module.callable, got {target!r:.80}")
    return target


def locate(target: str, key: str) -> Callable[..., Any]:
    """Import the longest module prefix of ``target`` and follow the rest as attributes.

    Every failure (no such module, an error while the module imports, no such
    attribute, not callable) is a :class:`ConfigError` naming ``key``.
    """
    parts = check_path(target, key).split(".")
    for i in range(len(parts) - 1, 0, -1):
        name = ".".join(parts[:i])
        try:
            obj: Any = importlib.import_module(name)
            break
        except ModuleNotFoundError as exc:
            if exc.name is not None and (name + ".").startswith(exc.name + "."):
                continue  # this prefix (or a package above it) does not exist: try a shorter one
            raise ConfigError(key, f"importing {name} failed: {type(exc).__name__}: {exc}") from None
        except Exception as exc:  # the user's module raised while importing (SyntaxError included)
            raise ConfigError(key, f"importing {name} failed: {type(exc).__name__}: {exc}") from None
    else:
        raise ConfigError(key, f"no module named {parts[0]!r} for {target}: run from the folder that holds "
                               "your package, or add its folder to PYTHONPATH")
    for j in range(i, len(parts)):
        if not hasattr(obj, parts[j]):
            raise ConfigError(key, f"{'.'.join(parts[:j])} has no attribute {parts[j]!r}")
        obj = getattr(obj, parts[j])
    require(callable(obj), key, f"{target} is not callable (a {type(obj).__name__})")
    return obj


def signature(fn: Callable[..., Any]) -> inspect.Signature | None:
    try:
        return inspect.signature(fn)
    except (TypeError, ValueError):  # some builtins have none
        return None


def framework_names(fn: Callable[..., Any]) -> tuple[str, ...]:
    """The :data:`FRAMEWORK_ARGS` that ``fn``'s signature names (a ``**kwargs`` takes none of them)."""
    sig = signature(fn)
    named = {n for n, p in sig.parameters.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)} \
        if sig is not None else set()
    return tuple(n for n in FRAMEWORK_ARGS if n in named)


def check_keys(fn: Callable[..., Any], target: str, params: dict[str, Any], key: str) -> None:
    """The config's keys (with the framework's) bind to ``fn``'s signature, as a call would."""
    for name in FRAMEWORK_ARGS:
        require(name not in params, f"{key}.{name}", f"mlpframe passes {name} to {target}; remove it from the "
                                                    "model config")
    sig = signature(fn)
    if sig is None:
        return
    try:
        sig.bind(**params, **{name: None for name in framework_names(fn)})
    except TypeError as exc:
        takes = ", ".join(sig.parameters) or "nothing"
        raise ConfigError(key, f"{target} rejects the config's keys ({exc}); it takes: {takes}") from None


def call(fn: Callable[..., Any], target: str, params: dict[str, Any], framework: dict[str, Any], key: str) -> Any:
    """``fn(**params, **framework args it names)``, which must return an :class:`mlpframe.nn.Module`.

    A ``ValueError`` it raises is the config's problem (a :class:`ConfigError`, as for built-in models);
    anything else is a bug in that code and keeps its traceback.
    """
    from mlpframe.nn import Module

    check_keys(fn, target, params, key)
    try:
        model = fn(**params, **{name: framework[name] for name in framework_names(fn)})
    except ValueError as exc:
        raise ConfigError(key, f"{target}: {exc}") from None
    require(isinstance(model, Module), f"{key}._target_",
            f"{target} returned a {type(model).__name__}, not an mlpframe.nn.Module")
    return model


def is_builtin(fn: Any) -> bool:
    """A layer or model class of mlpframe itself: building one only allocates its parameters."""
    from mlpframe.nn import Module

    return (isinstance(fn, type) and issubclass(fn, Module)
            and (fn.__module__ == "mlpframe" or fn.__module__.startswith("mlpframe.")))


def check_allowed(target: Any, allowed: Iterable[str], key: str) -> None:
    """Refuse (without importing anything new) a checkpoint's ``target`` that the user did not name.

    Allowed: a target in ``allowed`` (``allow_targets=[...]``, or the ``_target_`` of the ``model=``
    given on the command line), and mlpframe's own :class:`~mlpframe.nn.Module` classes. mlpframe's
    modules are looked up only through the already imported ``mlpframe`` package, never ``sys.path``.
    """
    target = check_path(target, key)
    if target in set(allowed):
        return
    if target.startswith("mlpframe."):
        try:
            if is_builtin(locate(target, key)):
                return
        except ConfigError:
            pass
    raise ConfigError(key, f"the checkpoint names {target}, code outside mlpframe that evaluate imports only "
                           f"when you name it: add allow_targets=[{target}], or give the model config it was "
                           "trained with (--config-dir <your conf folder> model=<its name>)")
