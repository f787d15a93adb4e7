"""The private Optuna and hydra-optuna-sweeper names mlpframe's sweeper relies on, at the pinned versions.

They have no public equivalent (pyproject.toml pins the versions): an upgrade that
moves one fails here, not silently in a sweep.
"""

from __future__ import annotations

import importlib.metadata

import numpy as np
import optuna
import pytest

from mlpframe.sweep import study as S


def test_the_pinned_versions_are_installed():
    assert importlib.metadata.version("optuna") == "2.10.1"
    assert importlib.metadata.version("hydra-optuna-sweeper") == "1.3.0"


def test_the_sweeper_implementation_it_subclasses():
    from hydra_plugins.hydra_optuna_sweeper._impl import OptunaSweeperImpl, create_params_from_overrides

    assert callable(create_params_from_overrides)
    for name in ("setup", "sweep", "_configure_trials"):
        assert hasattr(OptunaSweeperImpl, name), name


@pytest.mark.parametrize("make", [lambda: optuna.samplers.TPESampler(seed=1),
                                  lambda: optuna.samplers.RandomSampler(seed=1)])
def test_samplers_draw_from_a_replaceable_random_state(make):
    sampler = make()
    assert isinstance(sampler._rng, np.random.RandomState)
    if isinstance(sampler, optuna.samplers.TPESampler):
        assert isinstance(sampler._random_sampler._rng, np.random.RandomState)
    # replacing the stream decides the next draws: what reseeding a resumed study relies on
    study = optuna.create_study(sampler=sampler)

    def draw_after_reseed() -> float:
        for s in (sampler, getattr(sampler, "_random_sampler", None)):
            if s is not None:
                s._rng = np.random.RandomState(1234)
        return study.ask().suggest_float("x", 0, 1)

    first = study.ask().suggest_float("x", 0, 1)
    b, c = draw_after_reseed(), draw_after_reseed()
    assert b == c != first


def test_a_stored_study_hides_its_storage_behind_a_cache_that_can_be_removed(tmp_path):
    from optuna.storages._cached_storage import _CachedStorage

    url = S.absolute_storage_url(f"sqlite:///{tmp_path}/optuna.db")
    study = optuna.create_study(study_name="s", storage=S.make_storage(url))
    assert isinstance(study._storage, _CachedStorage)
    S.uncached(study)
    assert not isinstance(study._storage, _CachedStorage)
    trial = study.ask()
    study._storage.set_trial_user_attr(trial._trial_id, "k", 1)
    assert study._storage.get_trial(trial._trial_id).user_attrs == {"k": 1}
