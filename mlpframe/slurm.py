"""Running sweeps on Slurm (``hydra/launcher=slurm``): what Hydra's submitit launcher lacks.

:class:`hydra_plugins.mlpframe_slurm_launcher.MlpframeSlurmLauncher` uses these:

* :func:`sbatch_refusal` turns ``sbatch``'s refusal (a 50-line traceback from
  submitit) into one line naming the ``hydra.launcher.*`` key to change.
* :class:`SqueueWatcher` reads job states with ``squeue`` where the cluster keeps
  no accounting (``sacct`` fails), so a cancelled job is seen as ``CANCELLED`` and
  the sweep ends; :class:`SacctNoise` keeps submitit's "Bypassing sacct error"
  warning to one line per sweep.
* :func:`mark_cancelled` records a job that Slurm ended without a result (scancel,
  a node failure) in its run's ``metrics.json``, for ``report``.
* :func:`resuming_after_requeue`: a job that Slurm started again (``scontrol
  requeue``, or submitit's own requeue on SIGUSR2 before the time limit or on
  pre-emption) continues from the newest checkpoint of its run folder.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

log = logging.getLogger("mlpframe")

# sbatch's refusal -> the launcher key(s) that decide it
SBATCH_KEYS = (
    (r"generic resource|gres", "hydra.launcher.gpus_per_node (0 on a cluster without GPUs) or hydra.launcher.gres"),
    (r"partition", "hydra.launcher.partition (sinfo -s lists the partitions)"),
    (r"qos", "hydra.launcher.qos"),
    (r"account", "hydra.launcher.account"),
    (r"time limit", "hydra.launcher.timeout_min"),
    (r"memory|mem", "hydra.launcher.mem_gb (or mem_per_cpu/mem_per_gpu)"),
    (r"feature|constraint", "hydra.launcher.constraint"),
    (r"node configuration|cpus|tasks|nodes", "hydra.launcher.cpus_per_task, tasks_per_node, nodes or mem_gb "
                                             "(sinfo -N -l shows what a node has)"),
)


def sbatch_refusal(message: str) -> str:
    """One line: sbatch's own error lines, then the ``hydra.launcher.*`` key to change."""
    lines = [ln.strip() for ln in str(message).splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith(("sbatch: error", "sbatch: fatal"))] or lines[-1:] or ["(no message)"]
    text = "; ".join(dict.fromkeys(errors))
    for pattern, key in SBATCH_KEYS:
        if re.search(pattern, text, re.IGNORECASE):
            return f"Slurm refused the sweep's jobs: {text}; change {key}"
    return f"Slurm refused the sweep's jobs: {text}; check the hydra.launcher.* keys (hydra/launcher=slurm)"


def accounting_enabled(env: dict[str, str] | None = None) -> bool:
    """Whether ``sacct`` has a job database to read (``scontrol show config``)."""
    try:
        out = subprocess.run(["scontrol", "show", "config"], capture_output=True, text=True, timeout=30,
                             env=env).stdout
    except (OSError, subprocess.SubprocessError):
        return True  # cannot tell: leave submitit's sacct calls alone
    m = re.search(r"^AccountingStorageType\s*=\s*(\S+)", out, re.MULTILINE)
    return not (m and m.group(1).endswith("/none"))


def squeue_watcher_class() -> type:
    """:class:`SqueueWatcher`, defined on first use (submitit is imported when a sweep starts)."""
    global SqueueWatcher
    if "SqueueWatcher" in globals():
        return SqueueWatcher
    from submitit.slurm.slurm import SlurmInfoWatcher

    class SqueueWatcher(SlurmInfoWatcher):  # type: ignore[no-redef]
        """submitit's job watcher, asking ``squeue`` instead of ``sacct`` on a cluster without accounting.

        ``squeue --states=all`` lists a finished job for ``MinJobAge`` seconds (300 by
        default), much longer than the watcher waits between polls.
        """

        use_squeue: bool | None = None

        def _make_command(self) -> list[str] | None:
            command = super()._make_command()
            if command is None:
                return None
            if self.use_squeue is None:
                self.use_squeue = shutil.which("squeue") is not None and not accounting_enabled()
                if self.use_squeue:
                    log.info("this Slurm cluster keeps no accounting (sacct): job states come from squeue")
            if not self.use_squeue:
                return command
            ids = [command[i + 1] for i, c in enumerate(command) if c == "-j"]
            return ["squeue", "--states=all", "--noheader", "--format=%i|%T|%N", "--jobs", ",".join(ids)]

        def read_info(self, string: bytes | str) -> dict[str, dict[str, str]]:
            if self.use_squeue:
                text = string.decode() if isinstance(string, bytes) else string
                string = "JobID|State|NodeList\n" + text
            return super().read_info(string)

    return SqueueWatcher


class SacctNoise(logging.Filter):
    """Lets through the first of submitit's "Bypassing sacct error" warnings, as one short line."""

    def __init__(self) -> None:
        super().__init__()
        self.seen = False

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "Bypassing sacct error" not in message:
            return True
        if self.seen:
            return False
        self.seen = True
        record.msg, record.args = ("sacct failed (%s); job states may be late or inaccurate; further sacct "
                                   "errors are not shown", (message.split("Bypassing sacct error", 1)[1]
                                                            .split(", status may be", 1)[0].strip()[:200],))
        return True


def mark_cancelled(run_dir: Path, state: str) -> None:
    """Record in ``run_dir/metrics.json`` that Slurm ended the job (``state``) before it returned."""
    from mlpframe.cli.train import write_json_atomic

    run_dir = Path(run_dir)
    path = run_dir / "metrics.json"
    metrics: dict[str, Any] = {}
    try:
        metrics = json.loads(path.read_text())
        if not isinstance(metrics, dict):
            metrics = {}
    except (OSError, ValueError):
        pass
    status = "cancelled" if state.upper().startswith("CANCELLED") else state.lower() or "unknown"
    metrics["message"] = f"Slurm ended the job ({state})" + (
        f" after {metrics['message']}" if metrics.get("message") else "")
    metrics["status"] = status
    run_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, metrics)


def resuming_after_requeue(config: Any) -> bool:
    """Set ``trainer.resume=auto`` in a job that Slurm restarted; True if it did.

    ``SLURM_RESTART_COUNT`` is set (> 0) in a re-queued job's environment; the job
    runs in the same run folder, so its newest checkpoint is found there.
    """
    try:
        restarts = int(os.environ.get("SLURM_RESTART_COUNT", "0"))
    except ValueError:
        return False
    trainer = config.get("trainer") if hasattr(config, "get") else None
    if restarts <= 0 or trainer is None or trainer.get("resume") == "auto":
        return False
    from omegaconf import open_dict

    with open_dict(config):
        config.trainer.resume = "auto"
    return True
