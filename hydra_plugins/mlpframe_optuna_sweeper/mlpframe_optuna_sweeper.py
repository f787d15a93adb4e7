"""``hydra/sweeper=mlpframe_optuna``: hydra-optuna-sweeper's options plus resume and pruning.

Hydra imports every module under ``hydra_plugins`` at start-up, so this one stays
light: Optuna and the upstream sweeper are imported when a sweep starts.
"""

import logging
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from hydra.core.config_store import ConfigStore
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import MISSING, DictConfig

# Optuna imports alembic (when Hydra instantiates the sampler, before this sweeper
# exists), and alembic logs a line per plugin at INFO, which Hydra's console shows.
logging.getLogger("alembic").setLevel(logging.WARNING)


@dataclass
class MlpframeOptunaSweeperConf:
    """Upstream ``OptunaSweeperConf`` fields, with ``n_trials`` counting the whole study, plus pruning."""

    _target_: str = "hydra_plugins.mlpframe_optuna_sweeper.mlpframe_optuna_sweeper.MlpframeOptunaSweeper"
    defaults: List[Any] = field(default_factory=lambda: [{"sampler": "tpe"}])
    sampler: Any = MISSING
    direction: Any = "maximize"
    storage: Optional[str] = None  # sqlite:///<path>: needed to resume and to prune
    study_name: Optional[str] = None
    n_trials: int = 20  # the study's total: a restarted sweep runs only the missing ones
    n_jobs: int = 1  # trials per batch (run in parallel by a parallel launcher)
    max_failure_rate: float = 1.0  # of jobs that raise, per batch; NaN objectives never count
    search_space: Optional[Dict[str, Any]] = None
    custom_search_space: Optional[str] = None
    params: Optional[Dict[str, str]] = None
    pruner: Optional[str] = None  # median, percentile, successive_halving, hyperband, threshold; null: off
    pruner_kwargs: Dict[str, Any] = field(default_factory=dict)  # keys the chosen pruner does not take are ignored
    pruning_metric: str = "val/acc"  # reported to Optuna after every epoch


ConfigStore.instance().store(group="hydra/sweeper", name="mlpframe_optuna", node=MlpframeOptunaSweeperConf,
                             provider="mlpframe")


class MlpframeOptunaSweeper(Sweeper):
    def __init__(self, sampler: Any, direction: Any, storage: Optional[str], study_name: Optional[str],
                 n_trials: int, n_jobs: int, max_failure_rate: float, search_space: Optional[DictConfig],
                 custom_search_space: Optional[str], params: Optional[DictConfig], pruner: Optional[str] = None,
                 pruner_kwargs: Optional[DictConfig] = None, pruning_metric: str = "val/acc") -> None:
        from mlpframe.sweep.optuna_sweeper import ResumableOptunaSweeperImpl

        self.sweeper = ResumableOptunaSweeperImpl(
            sampler, direction, storage, study_name, n_trials, n_jobs, max_failure_rate, search_space,
            custom_search_space, params, pruner=pruner, pruner_kwargs=pruner_kwargs,
            pruning_metric=pruning_metric)

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.sweeper.setup(hydra_context=hydra_context, task_function=task_function, config=config)

    def sweep(self, arguments: List[str]) -> None:
        return self.sweeper.sweep(arguments)
