"""The Slurm launcher's pieces that need no cluster (tests/cluster runs them on a real one)."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from mlpframe.cli.train import Interrupts
from mlpframe.slurm import SacctNoise, resuming_after_requeue, sbatch_refusal, squeue_watcher_class


@pytest.mark.parametrize("stderr, key", [
    ("sbatch: error: Invalid generic resource (gres) specification", "hydra.launcher.gpus_per_node"),
    ("sbatch: error: invalid partition specified: gpu\nsbatch: error: Batch job submission failed: Invalid partition "
     "name specified", "hydra.launcher.partition"),
    ("sbatch: error: Batch job submission failed: Invalid qos specification", "hydra.launcher.qos"),
    ("sbatch: error: Batch job submission failed: Requested time limit is invalid (missing or exceeds some limit)",
     "hydra.launcher.timeout_min"),
    ("sbatch: error: Memory specification can not be satisfied", "hydra.launcher.mem_gb"),
    ("sbatch: error: Batch job submission failed: Requested node configuration is not available",
     "hydra.launcher.cpus_per_task"),
    ("sbatch: error: Batch job submission failed: Something new", "hydra.launcher.*"),
])
def test_sbatch_refusal_names_the_key(stderr, key):
    line = sbatch_refusal("some submitit preamble\n" + stderr)
    assert "\n" not in line and key in line
    assert line.startswith("Slurm refused the sweep's jobs: sbatch: error: ")
    assert "preamble" not in line


def test_sacct_noise_is_one_line_per_sweep():
    noise = SacctNoise()
    records = [logging.LogRecord("submitit", logging.WARNING, __file__, 1,
                                 f"Call #{i} - Bypassing sacct error Command '['sacct', '-j', '1']' returned non-zero "
                                 "exit status 1., status may be inaccurate.", None, None) for i in range(5)]
    kept = [r for r in records if noise.filter(r)]
    assert len(kept) == 1 and "sacct failed" in kept[0].getMessage() and "Bypassing" not in kept[0].getMessage()
    other = logging.LogRecord("submitit", logging.WARNING, __file__, 1, "something else", None, None)
    assert noise.filter(other)


def test_squeue_watcher_reads_array_tasks():
    pytest.importorskip("submitit")
    watcher = squeue_watcher_class()(delay_s=60)
    watcher.use_squeue = True
    info = watcher.read_info(b"7_0|COMPLETED|node1\n7_1|CANCELLED|node1\n7_[2-3]|PENDING|\n")
    assert {k: v["State"] for k, v in info.items()} == {"7_0": "COMPLETED", "7_1": "CANCELLED", "7_2": "PENDING",
                                                       "7_3": "PENDING"}


def test_requeued_job_resumes_automatically(monkeypatch):
    cfg = OmegaConf.create({"trainer": {"resume": "never"}})
    monkeypatch.delenv("SLURM_RESTART_COUNT", raising=False)
    assert not resuming_after_requeue(cfg) and cfg.trainer.resume == "never"
    monkeypatch.setenv("SLURM_RESTART_COUNT", "0")
    assert not resuming_after_requeue(cfg)
    monkeypatch.setenv("SLURM_RESTART_COUNT", "2")
    assert resuming_after_requeue(cfg) and cfg.trainer.resume == "auto"
    assert not resuming_after_requeue(cfg)  # already auto


@pytest.mark.skipif(not hasattr(signal, "SIGUSR2"), reason="no SIGUSR2 on this platform")
def test_sigusr2_interrupts_like_sigterm_then_goes_to_the_previous_handler():
    seen = []

    class FakeTrainer:
        interrupted = 0

        def request_interrupt(self):
            self.interrupted += 1

    old = signal.signal(signal.SIGUSR2, lambda signum, frame: seen.append(signum))
    try:
        for sig, handed_on in ((signal.SIGUSR2, [signal.SIGUSR2]), (signal.SIGTERM, [])):
            seen.clear()
            interrupts = Interrupts()
            interrupts.trainer = trainer = FakeTrainer()
            with interrupts.installed():
                os.kill(os.getpid(), sig)  # the first: stop after the step (and checkpoint)
            assert trainer.interrupted == 1 and interrupts.exit_status == 128 + sig
            assert seen == []
            interrupts.pass_on()  # submitit's handler would re-queue the job here; SIGTERM is not handed on
            assert seen == handed_on
        assert signal.getsignal(signal.SIGUSR2) is not Interrupts.handler  # restored
    finally:
        signal.signal(signal.SIGUSR2, old)


def test_without_the_sweep_extra_the_plugins_load_quietly_and_a_sweep_says_what_to_install():
    """Hydra imports every hydra_plugins module at start-up: one that fails warns on every command."""
    code = textwrap.dedent('''
        import sys, warnings
        class NoSubmitit:  # the sweep extra is not installed
            def find_spec(self, name, path=None, target=None):
                if name.startswith(("hydra_plugins.hydra_submitit_launcher", "submitit")):
                    raise ImportError(f"No module named {name!r}")
        sys.meta_path.insert(0, NoSubmitit())
        warnings.simplefilter("error")
        import hydra_plugins.mlpframe_slurm_launcher as p
        from mlpframe.plugins import register
        register()
        from hydra.plugins.plugin import Plugin
        assert not issubclass(p.MlpframeSlurmLauncher, Plugin)
        from hydra.errors import MissingConfigException
        from mlpframe.cli.common import format_hydra_error
        msg = format_hydra_error(MissingConfigException(
            "In 'hydra/launcher/slurm': Could not load 'hydra/launcher/submitit_slurm'.", "x"))
        assert 'pip install "mlpframe[sweep]"' in msg, msg
        print("ok")
    ''')
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])})
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr
