"""OptunaPruning reports per-epoch val/acc to its trial and stops the run the pruner rejects."""

from __future__ import annotations

import logging

import optuna
import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser

from mlpframe.sweep import study as S
from mlpframe.sweep.pruning import OptunaPruning, pruning_callback

optuna.logging.set_verbosity(optuna.logging.WARNING)


class FakeTrainer:
    def __init__(self, max_epochs: int = 10) -> None:
        self.max_epochs = max_epochs
        self.stopped: tuple[str, str] | None = None

    def stop(self, status: str, message: str = "") -> None:
        self.stopped = (status, message)


def finished_trial(study, curve) -> None:
    trial = study.ask()
    for epoch, acc in enumerate(curve, start=1):
        trial.report(acc, step=epoch)
    study.tell(trial, curve[-1])


def epoch_end(cb, trainer, epoch, acc):
    cb.on_epoch_end(trainer, {"epoch": epoch, "val/acc": acc, "val/loss": 1.0})


@pytest.fixture
def study():
    s = optuna.create_study(direction="maximize", pruner=optuna.pruners.MedianPruner(n_startup_trials=2))
    finished_trial(s, [0.6, 0.7, 0.8])
    finished_trial(s, [0.5, 0.8, 0.9])
    return s


def test_a_trial_below_the_median_is_pruned_and_marked(study):
    trainer, cb = FakeTrainer(), OptunaPruning(study.ask())
    epoch_end(cb, trainer, 1, 0.56)  # the median at epoch 1 is 0.55: keep going
    assert trainer.stopped is None
    epoch_end(cb, trainer, 2, 0.40)  # median 0.75
    assert trainer.stopped is not None and trainer.stopped[0] == "pruned"
    assert "pruned" in trainer.stopped[1] and "MedianPruner" in trainer.stopped[1]
    frozen = study._storage.get_trial(cb.trial._trial_id)
    assert frozen.intermediate_values == {1: 0.56, 2: 0.40}
    assert frozen.user_attrs[S.ATTR_PRUNED] is True


def test_a_good_trial_runs_to_the_end(study):
    trainer, cb = FakeTrainer(), OptunaPruning(study.ask())
    for epoch, acc in enumerate([0.7, 0.85, 0.95], start=1):
        epoch_end(cb, trainer, epoch, acc)
    assert trainer.stopped is None


def test_the_last_epoch_is_reported_but_never_pruned(study):
    trainer, cb = FakeTrainer(max_epochs=2), OptunaPruning(study.ask())
    epoch_end(cb, trainer, 1, 0.56)
    epoch_end(cb, trainer, 2, 0.40)  # below the median, but the run is over anyway
    assert trainer.stopped is None
    assert study._storage.get_trial(cb.trial._trial_id).intermediate_values == {1: 0.56, 2: 0.40}


def test_a_non_finite_value_is_not_reported(study):
    trainer, cb = FakeTrainer(), OptunaPruning(study.ask())
    epoch_end(cb, trainer, 1, float("nan"))  # nothing to report
    assert study._storage.get_trial(cb.trial._trial_id).intermediate_values == {}
    assert trainer.stopped is None


def test_pruning_callback_is_none_outside_an_optuna_sweep():
    assert pruning_callback({}) is None
    assert pruning_callback({S.ENV_STORAGE: "sqlite:///x.db", S.ENV_STUDY: "s"}) is None


def test_pruning_callback_reopens_the_trial_with_the_sweepers_pruner(tmp_path):
    url = S.absolute_storage_url(f"sqlite:///{tmp_path}/sub/optuna.db")
    study = optuna.create_study(study_name="s", storage=S.make_storage(url), direction="maximize")
    study.set_user_attr(S.ATTR_PRUNER, S.pruner_settings("percentile", {"percentile": 25.0, "n_startup_trials": 3,
                                                                         "min_resource": 1}))
    study.set_user_attr(S.ATTR_PRUNING_METRIC, "val/acc")
    trial = study.ask()
    cb = pruning_callback({S.ENV_STORAGE: url, S.ENV_STUDY: "s", S.ENV_TRIAL_ID: str(trial._trial_id)})
    assert isinstance(cb, OptunaPruning) and cb.metric == "val/acc"
    assert cb.trial._trial_id == trial._trial_id
    pruner = cb.trial.study.pruner
    assert isinstance(pruner, optuna.pruners.PercentilePruner)
    assert pruner._percentile == 25.0 and pruner._n_startup_trials == 3
    cb.on_epoch_end(FakeTrainer(), {"epoch": 1, "val/acc": 0.5})
    # written where the sweeper, in its own process, reads it
    assert S.make_storage(url).get_trial(trial._trial_id).intermediate_values == {1: 0.5}


def test_an_unreachable_study_only_disables_pruning(tmp_path, caplog):
    env = {S.ENV_STORAGE: f"sqlite:///{tmp_path}/none.db", S.ENV_STUDY: "missing", S.ENV_TRIAL_ID: "1"}
    with caplog.at_level(logging.WARNING, logger="mlpframe"):
        assert pruning_callback(env) is None
    assert "no pruning" in caplog.text


def test_make_pruner_takes_the_keys_it_knows():
    p = S.make_pruner("median", {"n_startup_trials": 2, "n_warmup_steps": 1, "percentile": 10})
    assert isinstance(p, optuna.pruners.MedianPruner) and p._n_startup_trials == 2 and p._n_warmup_steps == 1
    assert isinstance(S.make_pruner(None), optuna.pruners.NopPruner)
    with pytest.raises(ValueError, match="hydra.sweeper.pruner: unknown pruner 'medain'"):
        S.make_pruner("medain")


@pytest.mark.parametrize("value", ["sqlite:////tmp/a b/c,d=e.db", "it's", "mnist1d_mlp", "x]y[z"])
def test_job_env_overrides_carry_values_literally(value):
    parsed = OverridesParser.create().parse_override(f"++hydra.job.env_set.X={S.quote(value)}")
    assert parsed.value() == value


@pytest.mark.parametrize("x", [0.012067245262919609, 4.2079886696066345e-06, 100.0, 0.3, 123456.7])
def test_short_floats_stay_floats_within_4_digits(x):
    text = S.short_float(x)
    parsed = OverridesParser.create().parse_override(f"k={text}").value()
    assert isinstance(parsed, float) and abs(parsed - x) <= 5e-4 * abs(x)
