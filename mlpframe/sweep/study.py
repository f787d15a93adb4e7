"""What the Optuna sweeper and its jobs share: the storage, the pruner, and how a job finds its trial.

The sweeper creates each trial (``study.ask()``) and tells Optuna the result; the
job, possibly in another process or on another machine, only reports per-epoch
validation accuracy into that trial and asks whether to stop. The sweeper hands
the job three environment variables through ``hydra.job.env_set`` (Hydra sets
them around the task function, under every launcher): the storage URL, the study
name and the trial id. The pruner's settings are stored with the study, so a job
builds the same pruner the sweeper configured.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

ENV_STORAGE = "MLPFRAME_OPTUNA_STORAGE"
ENV_STUDY = "MLPFRAME_OPTUNA_STUDY"
ENV_TRIAL_ID = "MLPFRAME_OPTUNA_TRIAL_ID"

# study user attributes (settings) and trial user attributes (what happened)
ATTR_PRUNER = "mlpframe/pruner"
ATTR_PRUNING_METRIC = "mlpframe/pruning_metric"
ATTR_PRUNED = "mlpframe/pruned"
ATTR_INTERRUPTED = "mlpframe/interrupted"
ATTR_STATUS = "mlpframe/status"
ATTR_OVERRIDES = "mlpframe/overrides"

PRUNERS = {
    "median": "MedianPruner",
    "percentile": "PercentilePruner",
    "successive_halving": "SuccessiveHalvingPruner",
    "hyperband": "HyperbandPruner",
    "threshold": "ThresholdPruner",
    "nop": "NopPruner",
}


def absolute_storage_url(url: str | None) -> str | None:
    """``sqlite:///rel/optuna.db`` -> ``sqlite:////abs/rel/optuna.db`` (jobs may run in another cwd).

    Also creates the database's folder: sqlite cannot create it, and the sweep dir
    does not exist yet when the study is opened.
    """
    if not url or not url.startswith("sqlite:///"):
        return url
    path = url[len("sqlite:///"):]
    if not path or path == ":memory:":
        return url
    p = Path(path).expanduser().resolve()
    p.parent.mkdir(parents=True, exist_ok=True)
    return "sqlite:///" + p.as_posix()


def quiet_storage_logs() -> None:
    """Alembic (Optuna's schema migrations) logs a line per plugin at INFO; Hydra's console shows INFO."""
    import logging

    logging.getLogger("alembic").setLevel(logging.WARNING)


def make_storage(url: str) -> Any:
    """An :class:`optuna.storages.RDBStorage` that waits for sqlite's lock instead of failing.

    Parallel jobs (joblib, submitit) write intermediate values into the same file.
    """
    import optuna

    kwargs: dict[str, Any] = {}
    if url.startswith("sqlite:"):
        kwargs["engine_kwargs"] = {"connect_args": {"timeout": 60}}
    return optuna.storages.RDBStorage(url, **kwargs)


def uncached(study: Any) -> Any:
    """Give ``study`` its storage without Optuna's per-process cache.

    Optuna 2.x serves a trial this process created from memory; the jobs, in other
    processes, write intermediate values and the pruned mark into that very trial,
    and the cached copy would never show them. Reading through the storage costs a
    query per access, which is nothing next to a training run.
    """
    from optuna.storages._cached_storage import _CachedStorage

    if isinstance(study._storage, _CachedStorage):
        study._storage = study._storage._backend
    return study


def make_pruner(name: str | None, kwargs: Mapping[str, Any] | None = None) -> Any:
    """``optuna.pruners.MedianPruner(**kwargs)`` for ``name="median"`` (``None``: never prune).

    Keys of ``kwargs`` that the chosen pruner does not take are left out, so a preset
    can carry settings for the common pruners (``n_startup_trials``, ``n_warmup_steps``).
    """
    import inspect

    import optuna

    if name is None or str(name).lower() in ("none", "null", ""):
        return optuna.pruners.NopPruner()
    key = str(name).lower()
    if key not in PRUNERS:
        raise ValueError(f"hydra.sweeper.pruner: unknown pruner {name!r}; choose from "
                         f"{', '.join(PRUNERS)} or null")
    cls = getattr(optuna.pruners, PRUNERS[key])
    accepted = inspect.signature(cls).parameters
    used = {k: v for k, v in dict(kwargs or {}).items() if k in accepted}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # some pruners are marked experimental in optuna 2.x
        return cls(**used)


def pruner_settings(name: str | None, kwargs: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The JSON-able record of the pruner, stored with the study for the jobs."""
    if name is None or str(name).lower() in ("none", "null", ""):
        return None
    return {"name": str(name).lower(), "kwargs": {k: v for k, v in dict(kwargs or {}).items()}}


def job_env(storage_url: str, study_name: str, trial_id: int) -> list[str]:
    """Hydra overrides that set the job's environment variables (``hydra.*``: not in the run's name)."""
    return [f"++hydra.job.env_set.{ENV_STORAGE}={quote(storage_url)}",
            f"++hydra.job.env_set.{ENV_STUDY}={quote(study_name)}",
            f"++hydra.job.env_set.{ENV_TRIAL_ID}={quote(str(trial_id))}"]


def quote(value: str) -> str:
    """A Hydra override value taken literally (a path may hold ``,`` ``=`` or spaces)."""
    return "'" + value.replace("'", "\\'") + "'"


def short_float(value: float, digits: int = 4) -> str:
    """``0.012067245262919609`` -> ``0.01207``: readable run dirs; Hydra still reads it as a float."""
    text = f"{value:.{digits}g}"
    return text if any(c in text for c in ".en") else text + ".0"
