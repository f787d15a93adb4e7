"""``hydra/launcher=slurm``: Hydra's submitit Slurm launcher, made to survive a real cluster.

Same options as ``submitit_slurm``; the differences (see :mod:`mlpframe.slurm`):
a refused ``sbatch`` is one line naming the key to change (exit status 2, no sweep
folder left behind); job states come from ``squeue`` where ``sacct`` has no
accounting, and its errors are one line per sweep; a job that Slurm cancels is
recorded (``report`` lists it ``cancelled``) and the sweep goes on; a re-queued job
resumes from its newest checkpoint. Imported by Hydra's plugin scan, so it stays
light: submitit and mlpframe load when a sweep starts.
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
import shutil
import sys
from pathlib import Path
from typing import Any, Dict, List, Sequence

from hydra.core.hydra_config import HydraConfig
from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, filter_overrides, run_job, setup_globals
from hydra.errors import HydraException
from omegaconf import OmegaConf, open_dict

try:
    from hydra_plugins.hydra_submitit_launcher.submitit_launcher import SlurmLauncher
except ImportError:  # no sweep extra: no Slurm launcher to offer, and nothing for Hydra's scan to warn about
    SlurmLauncher = object

log = logging.getLogger(__name__)


class SlurmRefused(HydraException):
    """sbatch refused the jobs (one line, exit status 2 through ``python -m mlpframe``)."""


class MlpframeSlurmLauncher(SlurmLauncher):
    def setup(self, *, hydra_context: Any, task_function: Any, config: Any) -> None:
        super().setup(hydra_context=hydra_context, task_function=task_function, config=config)
        # (before the sweeper writes into it: an Optuna study's database comes later)
        sweep_dir = Path(str(config.hydra.sweep.dir))
        self.fresh_sweep_dir = not sweep_dir.exists() or all(e.name == "multirun.yaml" for e in sweep_dir.iterdir())
        self.submitted = False

    def __call__(self, sweep_overrides: List[str], job_dir_key: str, job_num: int, job_id: str,
                 singleton_state: Dict[type, Singleton]) -> JobReturn:
        """One job, on a compute node: upstream's, plus ``trainer.resume=auto`` after a re-queue."""
        import submitit

        from mlpframe.slurm import resuming_after_requeue

        assert self.hydra_context is not None and self.config is not None and self.task_function is not None
        Singleton.set_state(singleton_state)
        setup_globals()
        sweep_config = self.hydra_context.config_loader.load_sweep_config(self.config, sweep_overrides)
        with open_dict(sweep_config.hydra.job) as job:
            job.id = submitit.JobEnvironment().job_id
            sweep_config.hydra.job.num = job_num
        if resuming_after_requeue(sweep_config):  # (before Hydra's logging: into submitit's log of the job)
            print("re-queued by Slurm: resuming from this run's newest checkpoint (trainer.resume=auto)",
                  file=sys.stderr, flush=True)
        return run_job(hydra_context=self.hydra_context, task_function=self.task_function, config=sweep_config,
                       job_dir_key=job_dir_key, job_subdir_key="hydra.sweep.subdir")

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        import submitit
        from submitit.core.utils import FailedJobError, UncompletedJobError
        from submitit.slurm.slurm import SlurmJob

        from mlpframe.slurm import SacctNoise, mark_cancelled, sbatch_refusal, squeue_watcher_class

        assert self.config is not None
        noise = SacctNoise()
        submitit_log = logging.getLogger("submitit")
        submitit_log.addFilter(noise)
        watcher = squeue_watcher_class()
        if not isinstance(SlurmJob.watcher, watcher):
            SlurmJob.watcher = watcher(delay_s=60)
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        executor, params = self._executor()
        sweep_dir.mkdir(parents=True, exist_ok=True)
        log.info(f"Submitit 'slurm' sweep output dir : {sweep_dir}")
        job_params: List[Any] = []
        for idx, overrides in enumerate(job_overrides, start=initial_job_idx):
            log.info(f"\t#{idx} : {' '.join(filter_overrides(overrides))}")
            job_params.append((list(overrides), "hydra.sweep.dir", idx, f"job_id_for_{idx}", Singleton.get_state()))
        try:
            try:
                with contextlib.redirect_stderr(io.StringIO()):  # submitit prints sbatch's stderr too
                    jobs = executor.map_array(self, *zip(*job_params))
            except (FailedJobError, FileNotFoundError) as exc:
                if getattr(self, "fresh_sweep_dir", False) and not self.submitted:
                    shutil.rmtree(sweep_dir, ignore_errors=True)  # this command made it and nothing ran
                if isinstance(exc, FileNotFoundError):
                    raise SlurmRefused(f"hydra/launcher=slurm: {exc.filename or 'sbatch'} not found; run the sweep "
                                       "where Slurm's commands are (a login node)") from None
                raise SlurmRefused(sbatch_refusal(str(exc))) from None
            self.submitted = True
            returns = []
            for (overrides, _, idx, _, _), job in zip(job_params, jobs):
                try:
                    returns.append(job.results()[0])
                except FailedJobError:  # the job raised: upstream's behaviour
                    raise
                except UncompletedJobError:  # Slurm ended it (scancel, node failure): the sweep goes on
                    state = job.state
                    run_dir = self._run_dir(overrides, idx)
                    log.warning(f"job #{idx} ({job.job_id}) ended by Slurm: {state}; run dir {run_dir}")
                    mark_cancelled(run_dir, state)
                    ret = JobReturn(overrides=list(overrides), status=JobStatus.COMPLETED)
                    ret.return_value = math.nan
                    returns.append(ret)
            return returns
        finally:
            submitit_log.removeFilter(noise)

    def _executor(self) -> tuple[Any, Dict[str, Any]]:
        """submitit's executor with this launcher's parameters (as upstream's ``launch`` builds it)."""
        import submitit
        from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf

        params = dict(self.params)
        init_params = {"folder": params["submitit_folder"]}
        if "max_num_timeout" in params:
            init_params["slurm_max_num_timeout"] = params["max_num_timeout"]
        executor = submitit.AutoExecutor(cluster=self._EXECUTOR, **init_params)
        base = set(OmegaConf.structured(BaseQueueConf).keys())
        executor.update_parameters(**{k if k in base else f"{self._EXECUTOR}_{k}": v for k, v in params.items()
                                      if k not in ("submitit_folder", "max_num_timeout")})
        return executor, params

    def _run_dir(self, overrides: Sequence[str], idx: int) -> Path:
        """The folder the job ``idx`` with ``overrides`` runs in (as ``run_job`` computes it)."""
        assert self.hydra_context is not None and self.config is not None
        config = self.hydra_context.config_loader.load_sweep_config(self.config, list(overrides))
        with open_dict(config.hydra.job):
            config.hydra.job.num = idx
        hc = HydraConfig.instance()
        saved = hc.cfg
        try:
            hc.set_config(config)
            return Path(str(config.hydra.sweep.dir)) / str(OmegaConf.select(config, "hydra.sweep.subdir"))
        finally:
            hc.cfg = saved
