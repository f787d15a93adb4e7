"""The sweeper's bookkeeping on an in-memory study: what each job outcome becomes in Optuna."""

from __future__ import annotations

import math

import optuna
import pytest
from hydra.core.utils import JobReturn, JobStatus
from optuna.trial import TrialState

from mlpframe.sweep import study as S
from mlpframe.sweep.optuna_sweeper import ResumableOptunaSweeperImpl

optuna.logging.set_verbosity(optuna.logging.WARNING)


def sweeper(n_trials=3):
    return ResumableOptunaSweeperImpl(optuna.samplers.RandomSampler(seed=0), "maximize", None, "s", n_trials, 1,
                                      1.0, None, None, None)


def job(value=None, failed=False):
    ret = JobReturn()
    ret.status = JobStatus.FAILED if failed else JobStatus.COMPLETED
    ret._return_value = value
    return ret


@pytest.fixture
def study():
    return optuna.create_study(direction="maximize")


def test_a_number_completes_the_trial(study):
    t = study.ask()
    assert sweeper()._tell(study, t, job(0.75), ["maximize"]) is None
    assert study.trials[0].state == TrialState.COMPLETE and study.trials[0].value == 0.75


@pytest.mark.parametrize("value", [math.nan, math.inf])
def test_a_diverged_run_fails_the_trial_without_counting_as_an_error(study, value):
    t = study.ask()
    assert sweeper()._tell(study, t, job(value), ["maximize"]) is None
    frozen = study.trials[0]
    assert frozen.state == TrialState.FAIL and frozen.user_attrs[S.ATTR_STATUS] == "diverged"


def test_a_raising_job_fails_the_trial_and_is_returned(study):
    t = study.ask()
    err = sweeper()._tell(study, t, job(RuntimeError("boom"), failed=True), ["maximize"])
    assert isinstance(err, RuntimeError)
    assert study.trials[0].state == TrialState.FAIL and study.trials[0].user_attrs[S.ATTR_STATUS] == "failed"


def test_a_job_marked_pruned_is_told_pruned_with_its_last_value(study):
    t = study.ask()
    t.report(0.3, step=1)
    t.report(0.35, step=2)
    t.set_user_attr(S.ATTR_PRUNED, True)  # what the job's callback writes
    assert sweeper()._tell(study, t, job(0.35), ["maximize"]) is None
    assert study.trials[0].state == TrialState.PRUNED and study.trials[0].value == 0.35


def test_interrupted_trials_are_failed_requeued_and_not_counted(study):
    sw = sweeper()
    for v in (0.5, 0.6):
        t = study.ask()
        t.suggest_float("lr", 1e-4, 1e-1, log=True)
        study.tell(t, v)
    running = study.ask()  # the sweep was killed while this one ran
    lr = running.suggest_float("lr", 1e-4, 1e-1, log=True)
    sw._recover_interrupted(study)
    frozen = study.trials[2]
    assert frozen.state == TrialState.FAIL and frozen.user_attrs[S.ATTR_INTERRUPTED]
    assert [t.number for t in sw.finished_trials(study)] == [0, 1]
    again = study.ask()  # the queued copy comes first, with the same parameters
    assert again.suggest_float("lr", 1e-4, 1e-1, log=True) == lr
