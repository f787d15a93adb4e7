"""hydra-optuna-sweeper 1.3, made resumable, crash-tolerant and able to prune.

Differences from the upstream ``OptunaSweeperImpl.sweep`` (whose search-space
parsing and trial configuration this reuses):

* **Resume.** ``n_trials`` is the study's total. Started again with the same
  storage and study name, the sweep runs only the trials still missing; trials
  that were running when the previous sweep was killed are marked failed (user
  attribute ``mlpframe/interrupted``), do not count, and their parameters are
  queued again. Upstream runs ``n_trials`` more on every start and leaves killed
  trials ``RUNNING`` forever. (One sweep process per study: a second live sweep
  on the same study would have its running trials taken for dead ones.)
* **Run dirs.** A job's number is its Optuna trial number, so the run dirs of a
  resumed sweep continue the numbering instead of starting again at 0.
* **Bad trials.** A NaN/inf objective (a diverged run) is recorded as a failed
  trial (``mlpframe/status: diverged``) and never counts against
  ``max_failure_rate``: a diverging learning rate is a result, not an error.
* **Pruning.** Jobs get the storage URL, study name and trial id (see
  :mod:`mlpframe.sweep.study`); :class:`mlpframe.sweep.pruning.OptunaPruning`
  reports per-epoch validation accuracy there and stops the run when the pruner
  says so; the sweeper then tells Optuna the trial was pruned.
* **Sweep dir.** Created before the study (sqlite cannot create folders), with
  ``multirun.yaml`` in it as the basic sweeper writes, so ``report`` finds the
  objective and direction; ``optimization_results.yaml`` also lists the best run dir.
"""

from __future__ import annotations

import functools
import logging
import math
import warnings
from pathlib import Path
from typing import Any

from hydra.core.utils import JobReturn, JobStatus
from hydra_plugins.hydra_optuna_sweeper._impl import OptunaSweeperImpl, create_params_from_overrides
from omegaconf import DictConfig, OmegaConf

from mlpframe.sweep import study as S

log = logging.getLogger(__name__)


class ResumableOptunaSweeperImpl(OptunaSweeperImpl):
    def __init__(self, *args: Any, pruner: str | None = None, pruner_kwargs: Any = None,
                 pruning_metric: str = "val/acc", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.pruner_name = pruner
        if isinstance(pruner_kwargs, DictConfig):
            pruner_kwargs = OmegaConf.to_container(pruner_kwargs, resolve=True)
        self.pruner_kwargs = dict(pruner_kwargs or {})
        self.pruning_metric = pruning_metric

    # ------------------------------------------------------------------ study
    def _open_study(self, directions: list[str]) -> tuple[Any, str | None]:
        S.quiet_storage_logs()
        import optuna

        url = S.absolute_storage_url(self.storage) if isinstance(self.storage, str) else None
        storage = S.make_storage(url) if url else self.storage
        pruner = S.make_pruner(self.pruner_name, self.pruner_kwargs)
        study = optuna.create_study(study_name=self.study_name, storage=storage, sampler=self.sampler,
                                    pruner=pruner, directions=directions, load_if_exists=True)
        if url is None:
            if self.pruner_name:
                log.warning("pruning needs a storage the jobs can reach (hydra.sweeper.storage, e.g. sqlite); "
                            "this sweep will not prune")
            return study, None
        S.uncached(study)
        study.set_user_attr(S.ATTR_PRUNER, S.pruner_settings(self.pruner_name, self.pruner_kwargs))
        study.set_user_attr(S.ATTR_PRUNING_METRIC, self.pruning_metric)
        return study, url

    def _configure_trials(self, trials: list[Any], search_space_distributions: dict[str, Any],
                          fixed_params: dict[str, Any]) -> list[tuple[str, ...]]:
        """Upstream's overrides, with sampled floats cut to 4 significant digits.

        Run dirs are named after the overrides, and ``optimizer.lr=0.012067245262919609``
        makes them unreadable. The run trains with the value in its overrides; Optuna
        keeps its own full-precision sample, which differs by under 0.05 %: nothing
        for a search on a log scale. The overrides a trial ran with are stored in its
        user attribute ``mlpframe/overrides``.
        """
        from optuna.distributions import LogUniformDistribution, UniformDistribution

        overrides = super()._configure_trials(trials, search_space_distributions, fixed_params)
        floats = {k for k, d in search_space_distributions.items()
                  if isinstance(d, (UniformDistribution, LogUniformDistribution))}
        out = []
        for trial, items in zip(trials, overrides):
            items = tuple(f"{k}={S.short_float(trial.params[k])}" if k in floats and k in trial.params else f"{k}={v}"
                          for k, v in (item.split("=", 1) for item in items))
            trial.set_user_attr(S.ATTR_OVERRIDES, list(items))
            out.append(items)
        return out

    @staticmethod
    def _recover_interrupted(study: Any) -> None:
        from optuna.trial import TrialState

        stale = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        for t in stale:
            study._storage.set_trial_user_attr(t._trial_id, S.ATTR_INTERRUPTED, True)
            study._storage.set_trial_state(t._trial_id, TrialState.FAIL)
            if t.params:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # enqueue_trial is "experimental" in optuna 2.x
                    study.enqueue_trial(dict(t.params))
        if stale:
            log.warning("%d trial(s) (%s) were running when the previous sweep stopped: marked failed, "
                        "their parameters queued again", len(stale), ", ".join(f"#{t.number}" for t in stale))

    def _reseed_for_resume(self, study: Any) -> None:
        """Give a resumed study's sampler a fresh stream, derived from its seed and the trial count.

        A seeded sampler starts its stream again in every process: without this, the
        trials of a resumed sweep would repeat the first session's (random start-up
        trials are drawn from that stream alone).
        """
        import numpy as np

        seed = OmegaConf.select(self.config, "hydra.sweeper.sampler.seed", default=None)
        n = len(study.get_trials(deepcopy=False))
        if n == 0 or seed is None:
            return
        seq = np.random.SeedSequence([int(seed), n])
        samplers = [self.sampler, getattr(self.sampler, "_random_sampler", None)]
        for sampler, child in zip(samplers, seq.spawn(len(samplers))):
            if sampler is not None and isinstance(getattr(sampler, "_rng", None), np.random.RandomState):
                sampler._rng = np.random.RandomState(child.generate_state(1)[0])

    @staticmethod
    def finished_trials(study: Any) -> list[Any]:
        """Trials that count towards ``n_trials``: complete, pruned or failed, but not interrupted."""
        from optuna.trial import TrialState

        done = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
        return [t for t in study.get_trials(deepcopy=False)
                if t.state in done and not t.user_attrs.get(S.ATTR_INTERRUPTED)]

    # ------------------------------------------------------------------ sweep
    def sweep(self, arguments: list[str]) -> None:
        assert self.config is not None and self.launcher is not None
        self._process_searchspace_config()
        params_conf = self._parse_sweeper_params_config()
        params_conf.extend(arguments)
        override_space, fixed_params = create_params_from_overrides(params_conf)
        space = dict(self.search_space_distributions or {})
        space.update(override_space)
        for name in fixed_params:
            space.pop(name, None)
        self._build_grid_sampler(space)
        directions = self._get_directions()

        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")
        study, url = self._open_study(directions)
        self._recover_interrupted(study)
        self._reseed_for_resume(study)
        done = len(self.finished_trials(study))
        to_go = self.n_trials - done
        log.info("Study %r in %s: %d of %d trials done, %d to run (sampler %s, pruner %s)", study.study_name,
                 url or "memory", done, self.n_trials, max(to_go, 0), type(self.sampler).__name__,
                 type(study.pruner).__name__)

        while to_go > 0:
            batch = min(to_go, self.n_jobs)
            trials = [study.ask() for _ in range(batch)]
            overrides = self._configure_trials(trials, space, fixed_params)
            if url is not None:
                overrides = [(*o, *S.job_env(url, study.study_name, t._trial_id)) for o, t in zip(overrides, trials)]
            returns = self.launcher.launch(overrides, initial_job_idx=trials[0].number)
            failures = [e for t, r in zip(trials, returns) if (e := self._tell(study, t, r, directions)) is not None]
            if len(failures) / len(returns) > self.max_failure_rate:
                log.error("%d of %d jobs failed with max_failure_rate=%s", len(failures), len(returns),
                          self.max_failure_rate)
                for r in returns:
                    r.return_value  # re-raises the job's exception with its traceback
            to_go -= batch
        self._save_results(study, directions, sweep_dir)

    def _build_grid_sampler(self, space: dict[str, Any]) -> None:
        """``hydra/sweeper/sampler=grid`` is configured as a partial: give it the search space (as upstream)."""
        import optuna

        if isinstance(self.sampler, functools.partial) and self.sampler.func == optuna.samplers.GridSampler:
            grid = {name: self._to_grid_sampler_choices(d) for name, d in space.items()}
            self.sampler = self.sampler(grid)
            self.n_trials = min(self.n_trials, math.prod(len(v) for v in grid.values()))
            log.info("GridSampler: %d trials cover the grid", self.n_trials)

    def _tell(self, study: Any, trial: Any, ret: JobReturn, directions: list[str]) -> Exception | None:
        """Record one job's outcome; returns the exception of a job that failed (not one that diverged)."""
        from optuna.trial import TrialState

        if ret.status == JobStatus.FAILED:
            study._storage.set_trial_user_attr(trial._trial_id, S.ATTR_STATUS, "failed")
            study.tell(trial, state=TrialState.FAIL)
            log.warning("trial #%d failed: %s", trial.number, ret._return_value)
            return ret._return_value if isinstance(ret._return_value, Exception) else RuntimeError("job failed")
        raw = ret._return_value if len(directions) > 1 else [ret._return_value]
        try:
            values = [float(v) for v in raw]
        except (TypeError, ValueError):
            study._storage.set_trial_user_attr(trial._trial_id, S.ATTR_STATUS, "failed")
            study.tell(trial, state=TrialState.FAIL)
            log.warning("trial #%d returned %r, not a number", trial.number, ret._return_value)
            return ValueError(f"Return value must be float-castable. Got {ret._return_value!r}.")
        fresh = study._storage.get_trial(trial._trial_id)
        if fresh.user_attrs.get(S.ATTR_PRUNED):
            study.tell(trial, state=TrialState.PRUNED)
            log.info("trial #%d pruned after step %s", trial.number, fresh.last_step)
        elif len(values) != len(directions) or not all(math.isfinite(v) for v in values):
            study._storage.set_trial_user_attr(trial._trial_id, S.ATTR_STATUS, "diverged")
            study.tell(trial, state=TrialState.FAIL)
            log.warning("trial #%d returned %s (diverged or failed): recorded as a failed trial",
                        trial.number, values)
        else:
            study.tell(trial, values=values)
        return None

    def _save_results(self, study: Any, directions: list[str], sweep_dir: Path) -> None:
        from optuna.trial import TrialState

        finished = self.finished_trials(study)
        counts = {s.name.lower(): sum(t.state == s for t in finished)
                  for s in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)}
        results: dict[str, Any] = {"name": "optuna", "study_name": study.study_name, "n_trials": len(finished),
                                   **{f"n_{k}": v for k, v in counts.items()}}
        path = sweep_dir / "optimization_results.yaml"
        if len(directions) > 1:
            results["solutions"] = [{"number": t.number, "params": t.params, "values": t.values}
                                    for t in study.best_trials]
            log.info("%d Pareto-optimal trials; see %s", len(results["solutions"]), path)
        elif counts["complete"] == 0:
            results.update(best_params=None, best_value=None)
            log.warning("no trial completed (%s); nothing to report as best", counts)
        else:
            best = study.best_trial
            run_dirs = sorted(p.name for p in sweep_dir.glob(f"{best.number}_*") if p.is_dir())
            results.update(best_params=dict(best.params), best_value=best.value, best_trial=best.number,
                           best_overrides=best.user_attrs.get(S.ATTR_OVERRIDES),
                           best_run_dir=str(sweep_dir / run_dirs[0]) if run_dirs else None)
            params = " ".join(best.user_attrs.get(S.ATTR_OVERRIDES)
                              or [f"{k}={v}" for k, v in best.params.items()])
            log.info("Best trial #%d of %d: value %.6g with %s", best.number, len(finished), best.value, params)
            if run_dirs:
                log.info("Best run dir: %s", sweep_dir / run_dirs[0])
        OmegaConf.save(OmegaConf.create(results), path)
        log.info("Results: %s (python -m mlpframe report %s)", path, sweep_dir)
