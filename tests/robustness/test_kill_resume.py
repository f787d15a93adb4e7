"""Runs that are killed, pre-empted or interrupted lose nothing and resume exactly (NumPy backend).

Every test here compares against one uninterrupted run of the same command, bit for
bit: metrics, weights, optimizer state, history, TensorBoard curves.
"""

from __future__ import annotations

import re
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from mlpframe.engine.checkpoint import SLOW_WRITE_ENV, CheckpointError, load_checkpoint, progress_of, temp_files

from .helpers import LONG, assert_same_run, read_json, resume_command, run, train_cmd


@pytest.fixture(scope="module")
def reference(tmp_path_factory, cli_environ) -> Path:
    """The uninterrupted run of ``LONG`` (``trainer.resume=auto`` finds nothing and starts fresh)."""
    cwd = tmp_path_factory.mktemp("reference")
    proc = run(train_cmd(*LONG, "hydra.run.dir=run"), cwd, cli_environ)
    assert proc.returncode == 0, proc.stderr
    assert "trainer.resume=auto: no checkpoint in" in proc.stdout and "starting fresh" in proc.stdout
    return cwd / "run"


def newest_progress(folder: Path) -> tuple[int, int]:
    """Assert that every checkpoint on disk is complete; the furthest (epoch, step) among them."""
    found = [(0, 0)]
    for name in ("last.npz", "best.npz"):
        if (folder / name).exists():
            found.append(progress_of(load_checkpoint(folder / name)))  # raises if incomplete or corrupt
    return max(found)


def wait_for_temp_file(folder: Path, proc: subprocess.Popen, timeout: float = 60) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if temp_files(folder):
            return True
        time.sleep(0.003)
    return False


def wait_for_epochs(log: Path, offset: int, count: int, proc: subprocess.Popen, timeout: float = 60) -> bool:
    """Wait until ``count`` epoch lines were appended to ``log`` after byte ``offset``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        text = log.read_bytes()[offset:].decode(errors="replace") if log.exists() else ""
        if len(re.findall(r"epoch +\d+/\d+ +train loss", text)) >= count:
            return True
        time.sleep(0.005)
    return False


@pytest.mark.slow
def test_sigkill_at_random_moments_then_resume_equals_the_uninterrupted_run(tmp_path, cli_environ, reference):
    rng = np.random.default_rng(7)
    # each write pauses between its complete temporary file and the rename: a window to kill in
    env = {**cli_environ, SLOW_WRITE_ENV: "0.1"}
    cmd = train_cmd(*LONG, "hydra.run.dir=run")
    ckpts, log = tmp_path / "run" / "checkpoints", tmp_path / "run" / "train.log"
    # while starting up; when the temporary file of a checkpoint appears; at a random moment after the
    # n-th epoch of an attempt (mid-step, mid-validation, mid-write, between the best and last writes)
    # (an attempt checkpoints at most one epoch more than it waits for: 8 epochs always outlast the schedule)
    schedule = [("startup", rng.uniform(0.1, 1.0)), ("epochs", 1), ("temp", 0), ("epochs", 2), ("epochs", 1)]
    kills, killed_mid_write, progress = 0, 0, (0, 0)
    for kind, arg in schedule:
        offset = log.stat().st_size if log.exists() else 0
        proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                text=True)
        if kind == "startup":
            time.sleep(arg)
        elif kind == "temp":
            assert wait_for_temp_file(ckpts, proc), "no checkpoint write was caught in the act"
        else:
            assert wait_for_epochs(log, offset, arg, proc), "the run did not get that far"
            time.sleep(rng.uniform(0.0, 0.35))  # about one epoch and its two writes
        mid_write = bool(temp_files(ckpts))
        proc.kill()
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == -signal.SIGKILL, err
        kills += 1
        killed_mid_write += mid_write and bool(temp_files(ckpts))
        now = newest_progress(ckpts)  # whatever the moment, the files on disk are complete checkpoints
        assert now >= progress, "a checkpoint went backwards"
        progress = now
    assert killed_mid_write >= 1 and progress[0] < 8, (killed_mid_write, progress)

    final = run(cmd, tmp_path, cli_environ)
    assert final.returncode == 0, final.stderr
    assert read_json(tmp_path / "run/metrics.json")["status"] == "completed"
    assert not temp_files(ckpts), "a killed write's temporary file was left behind"
    assert_same_run(reference, tmp_path / "run")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_checkpoints_mid_epoch_and_the_printed_command_resumes_exactly(tmp_path, cli_environ, reference,
                                                                              sig):
    proc = subprocess.Popen(train_cmd(*LONG, "hydra.run.dir=run"), cwd=tmp_path, env=cli_environ,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    last = tmp_path / "run/checkpoints/last.npz"
    deadline = time.monotonic() + 60
    while not last.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.01)
    time.sleep(0.05)  # into the next epoch
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + sig, err
    assert "Traceback" not in err + out and len(err.strip().splitlines()) == 1, err
    metrics = read_json(tmp_path / "run/metrics.json")
    assert metrics["status"] == "interrupted"
    ckpt = load_checkpoint(last)
    epoch, step = progress_of(ckpt)
    assert step > 0, "the interrupt did not checkpoint the partial epoch"
    assert f"checkpoint {last} (epoch {epoch} + {step} steps of epoch {epoch + 1})" in err
    assert np.all([np.all(np.isfinite(w)) for w in ckpt["model"].values()])

    resumed = run(resume_command(err), tmp_path, cli_environ)
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming from {last} (epoch {epoch} + {step} steps" in resumed.stdout
    assert_same_run(reference, tmp_path / "run")


def wait_for_new_last(folder: Path, proc: subprocess.Popen, previous: int | None, timeout: float = 180) -> int | None:
    """Wait until ``last.npz`` is a new file (inode other than ``previous``) and no write is in progress:
    an epoch's writes just ended and the next epoch is training. Its inode, or None."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            inode = (folder / "last.npz").stat().st_ino
        except FileNotFoundError:
            inode = None
        if inode is not None and inode != previous and not temp_files(folder):
            return inode
        time.sleep(0.003)
    return None


def wait_for_interrupt_write(folder: Path, proc: subprocess.Popen, timeout: float = 120) -> bool:
    """Wait until a temporary file holds the interrupt's own checkpoint: complete (it is, in the pause before
    its rename) and mid-epoch. An epoch's writes (step 0) do not count: they may have started before the
    first signal was handled."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        for tmp in temp_files(folder):
            try:
                if progress_of(load_checkpoint(tmp))[1] > 0:
                    return True
            except CheckpointError:  # still being written, or renamed meanwhile
                pass
        time.sleep(0.003)
    return False


def test_a_second_signal_aborts_at_once_and_keeps_the_previous_checkpoint(tmp_path, cli_environ):
    # the interrupt's checkpoint write pauses before its rename; the second SIGTERM lands in that pause. It is
    # sent only once that write is seen, i.e. once the first signal was handled: two SIGTERMs sent before the
    # process handles the first are folded into one (the kernel keeps one pending SIGTERM, Python runs a
    # handler once for the deliveries since its last check), and the run then just checkpoints and stops.
    # The first signal is sent just after an epoch's writes, into the next epoch's training, so the run stops
    # mid-epoch and checkpoints that partial epoch; if it still lands between two epochs (a loaded machine),
    # the run stops after the epoch without a partial checkpoint, and the test resumes it and tries again.
    env = {**cli_environ, SLOW_WRITE_ENV: "1.0"}
    ckpts = tmp_path / "run/checkpoints"
    last = ckpts / "last.npz"
    previous = None
    for _ in range(5):
        proc = subprocess.Popen(train_cmd(*LONG, "hydra.run.dir=run"), cwd=tmp_path, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        previous = wait_for_new_last(ckpts, proc, previous)
        assert previous is not None, "no epoch was checkpointed"
        time.sleep(0.05)  # past the folder's fsync after the rename, into the next epoch
        proc.send_signal(signal.SIGTERM)
        if wait_for_interrupt_write(ckpts, proc):
            break
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 128 + signal.SIGTERM and "interrupted after epoch" in err, err
        previous = last.stat().st_ino
    else:
        pytest.fail("the first signal never landed inside an epoch")
    before = last.read_bytes()  # the interrupt's write pauses before replacing it
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "Traceback" not in err + out and len(err.strip().splitlines()) == 1, err
    assert err.startswith("aborted by a second signal") and "trainer.resume=auto" in err
    assert last.read_bytes() == before  # the write in progress was dropped whole
    assert progress_of(load_checkpoint(last))[1] == 0, "the interrupt's partial-epoch checkpoint was written"
    assert not temp_files(ckpts)
    assert read_json(tmp_path / "run/metrics.json")["status"] == "interrupted"
