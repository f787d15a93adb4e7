"""Per-epoch pruning of Optuna trials from inside the training run.

hydra-optuna-sweeper 1.3 creates each trial with ``study.ask()`` and calls the task
function with overrides only, never with the trial; a task cannot report
intermediate values to it. mlpframe's sweeper (``hydra/sweeper=mlpframe_optuna``)
therefore passes the job its trial's storage, study and id (see
:mod:`mlpframe.sweep.study`), and this callback reopens the trial there: after each
epoch it reports ``val/acc`` (``trial.report(value, step=epoch)``) and asks the
study's pruner (median, percentile, hyperband… as configured on the sweeper)
whether the run is worse than earlier trials were at the same epoch. If so the run
stops after that epoch, still tests its best-validation weights, and ends with
``status: pruned`` in ``metrics.json``; the sweeper then tells Optuna the trial was
pruned. Outside such a sweep :func:`pruning_callback` returns ``None``.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping
from typing import Any

from mlpframe.engine.callback import Callback, Run
from mlpframe.sweep import study as S

log = logging.getLogger("mlpframe")


class OptunaPruning(Callback):
    """Report ``metric`` to an Optuna trial after every epoch; stop the run when it should be pruned.

    Args:
        trial: an ``optuna.trial.Trial`` whose study holds the pruner.
        metric: the per-epoch metric to report (``val/acc``); it must point the same
            way as the study's direction.
    """

    name = "optuna_pruning"

    def __init__(self, trial: Any, metric: str = "val/acc") -> None:
        self.trial = trial
        self.metric = metric

    def on_epoch_end(self, trainer: Run, metrics: dict[str, Any]) -> None:
        value = metrics.get(self.metric)
        if value is None or not math.isfinite(value):
            return
        epoch = int(metrics["epoch"])
        self.trial.report(float(value), step=epoch)
        # after the last epoch there is nothing left to save: the run completes
        if epoch < trainer.max_epochs and self.trial.should_prune():
            self.trial.set_user_attr(S.ATTR_PRUNED, True)
            pruner = type(self.trial.study.pruner).__name__
            trainer.stop("pruned", f"pruned by Optuna's {pruner} after epoch {epoch}: {self.metric} "
                                   f"{value:.4f} is worse than earlier trials at this epoch")


def pruning_callback(environ: Mapping[str, str] | None = None) -> OptunaPruning | None:
    """The callback for the Optuna trial this job runs, or ``None`` outside an mlpframe Optuna sweep.

    Reads the trial's coordinates from the environment variables the sweeper sets.
    A study that cannot be opened is logged and the run goes on without pruning: a
    sweep bookkeeping problem must not cost the training run.
    """
    env = os.environ if environ is None else environ
    url, study_name, trial_id = env.get(S.ENV_STORAGE), env.get(S.ENV_STUDY), env.get(S.ENV_TRIAL_ID)
    if not (url and study_name and trial_id):
        return None
    try:
        import optuna

        S.quiet_storage_logs()
        study = optuna.load_study(study_name=study_name, storage=S.make_storage(url))
        S.uncached(study)
        settings = study.user_attrs.get(S.ATTR_PRUNER) or {}
        study.pruner = S.make_pruner(settings.get("name"), settings.get("kwargs"))
        metric = study.user_attrs.get(S.ATTR_PRUNING_METRIC) or "val/acc"
        trial = optuna.trial.Trial(study, int(trial_id))
    except Exception as exc:  # noqa: BLE001 (any failure here only disables pruning)
        log.warning("optuna trial %s of study %r in %s unavailable (%s): no pruning for this run", trial_id,
                    study_name, url, exc)
        return None
    return OptunaPruning(trial, metric)
