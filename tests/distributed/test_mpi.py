"""Real MPI: ``mpiexec -n 2`` and ``-n 3`` running the layer checks and the ``train`` command as users do.

Needs the ``mpi`` extra (mpi4py, mpich: ``mpiexec`` in the environment's ``bin/``).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from mlpframe.engine import load_checkpoint

from tests.cli.helpers import assert_one_line_error, read_json

REPO = Path(__file__).resolve().parents[2]
MPIEXEC = shutil.which("mpiexec") or str(Path(sys.executable).parent / "mpiexec")
# float64, BatchNorm and dropout, a last evaluation batch smaller than 3 rows (120 test rows, batches of 59)
RUN = ["data=synthetic", "data.n_samples=600", "data.batch_size=50", "model.hidden=[16,16]", "model.norm=batch",
       "model.dropout=0.2", "dtype=float64", "scheduler=none", "trainer.eval_batch_size=59",
       "trainer.progress_bar=false", "logger=none"]


def env() -> dict[str, str]:
    e = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    e.pop("PMI_RANK", None)
    e.pop("PMI_SIZE", None)
    return e


def mpiexec(n: int, *args: str, cwd: Path, timeout: float = 240) -> subprocess.CompletedProcess:
    cmd = [MPIEXEC, "-n", str(n), sys.executable, *args] if n else [sys.executable, *args]
    return subprocess.run(cmd, cwd=cwd, env=env(), capture_output=True, text=True, timeout=timeout)


def train(n: int, run_dir: Path, *overrides: str) -> subprocess.CompletedProcess:
    dist = ["distributed=mpi"] if n else []
    proc = mpiexec(n, "-m", "mlpframe", "train", *RUN, *dist, *overrides, f"hydra.run.dir={run_dir}",
                   cwd=run_dir.parent)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def weights(run_dir: Path) -> dict[str, np.ndarray]:
    (path,) = (run_dir / "checkpoints").glob("last.*")
    return load_checkpoint(path).state["model"]


def assert_same_model(a: dict, b: dict, tol: float = 1e-9) -> None:
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_allclose(a[k], b[k], rtol=tol, atol=tol, err_msg=k)


@pytest.mark.parametrize("n", [2, 3])
def test_layer_checks_under_mpi(n, tmp_path):
    proc = mpiexec(n, "-m", "tests.distributed.mpi_checks", cwd=REPO, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    assert proc.stdout.count("ok") == n, proc.stdout  # every rank finished its checks


@pytest.mark.parametrize("n", [1, 2, 3])
def test_mnist1d_cnn_on_n_processes_is_the_single_process_model(n):
    # the paper's CNN, with and without BatchNorm on (N, C, L), two epochs of Adam in float64 (mpi_checks.main_cnn)
    proc = mpiexec(n, "-m", "tests.distributed.mpi_checks", "cnn", cwd=REPO, timeout=180)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    assert proc.stdout.count("ok") == n, proc.stdout


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    run = tmp_path_factory.mktemp("single") / "run"
    train(0, run, "trainer.max_epochs=3")
    return run


@pytest.mark.parametrize("n", [2, 3])
def test_n_processes_train_the_single_process_model(n, single, tmp_path):
    run = tmp_path / "run"
    train(n, run, "trainer.max_epochs=3")
    assert_same_model(weights(run), weights(single))
    a, b = read_json(run / "metrics.json"), read_json(single / "metrics.json")
    assert a["val/acc_best"] == b["val/acc_best"] and a["test/acc"] == b["test/acc"]
    assert a["train/loss"] == pytest.approx(b["train/loss"], rel=1e-9)


def test_two_process_checkpoint_resumes_on_one_process(single, tmp_path):
    first = tmp_path / "first"
    train(2, first, "trainer.max_epochs=2")
    (ckpt,) = (first / "checkpoints").glob("last.*")
    resumed = tmp_path / "resumed"
    train(0, resumed, "trainer.max_epochs=3", f"ckpt_path={ckpt}")
    assert_same_model(weights(resumed), weights(single))


def test_one_run_folder_written_by_rank_zero(tmp_path):
    proc = mpiexec(2, "-m", "mlpframe", "train", *[o for o in RUN if o != "logger=none"], "distributed=mpi",
                   "trainer.max_epochs=1", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run,) = [p for p in (tmp_path / "outputs").glob("*/*") if p.is_dir()]
    assert len(list((run / "tensorboard").rglob("events.out.tfevents.*"))) == 1
    assert (run / "metrics.json").is_file() and (run / "train.log").is_file()
    assert proc.stdout.count("status: completed") + proc.stderr.count("status: completed") == 1


def test_many_processes_without_distributed_mpi_is_refused(tmp_path):
    proc = mpiexec(2, "-m", "mlpframe", "train", *RUN, cwd=tmp_path, timeout=120)
    assert_one_line_error(proc, "2 processes", "distributed=mpi")
    assert not (tmp_path / "outputs").exists() or not any((tmp_path / "outputs").rglob("metrics.json"))


def test_a_user_error_is_printed_once(tmp_path):
    proc = mpiexec(2, "-m", "mlpframe", "train", *RUN, "distributed=mpi", "optimizer.lr=-1", cwd=tmp_path,
                   timeout=120)
    assert_one_line_error(proc, "optimizer.lr")


def _start_long_run(tmp_path: Path) -> tuple[subprocess.Popen, Path]:
    """A 2-process run that would go on for hours, once it has written its first checkpoint."""
    run = tmp_path / "run"
    tag = f"{os.getpid()}-{tmp_path.name}"
    proc = subprocess.Popen([MPIEXEC, "-n", "2", sys.executable, "-m", "mlpframe", "train", *RUN,
                             "distributed=mpi", "trainer.max_epochs=100000", f"hydra.run.dir={run}"],
                            cwd=tmp_path, env=dict(env(), MLPFRAME_TEST_JOB=tag),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not list((run / "checkpoints").glob("last.*")):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"the run did not start training: {proc.communicate()[1][-2000:]}")
        time.sleep(0.2)
    return proc, run


def _pid_of_rank(rank: int, tmp_path: Path) -> int:
    """The pid of rank ``rank`` of the job started by :func:`_start_long_run` (read from /proc)."""
    tag = f"MLPFRAME_TEST_JOB={os.getpid()}-{tmp_path.name}".encode()
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if f"PMI_RANK={rank}".encode() in environ and tag in environ:
            return int(pid)
    raise AssertionError(f"rank {rank} not found")


@pytest.mark.parametrize("rank", [0, 1])
def test_a_killed_rank_ends_the_job_within_30_s(rank, tmp_path):
    proc, _ = _start_long_run(tmp_path)
    try:
        os.kill(_pid_of_rank(rank, tmp_path), signal.SIGKILL)
        t0 = time.monotonic()
        proc.wait(timeout=30)
        assert time.monotonic() - t0 < 30
        assert proc.returncode != 0
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


def test_ctrl_c_leaves_a_resumable_checkpoint(tmp_path):
    proc, run = _start_long_run(tmp_path)
    proc.send_signal(signal.SIGINT)  # what Ctrl-C in the terminal does to mpiexec: it forwards it to the ranks
    try:
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 128 + signal.SIGINT, err[-2000:]
    assert err.count("resume with:") == 1, err[-2000:]
    resumed = mpiexec(2, "-m", "mlpframe", "train", *RUN, "distributed=mpi", "trainer.resume=auto",
                      "trainer.max_epochs=100000", "trainer.early_stopping_patience=1", f"hydra.run.dir={run}",
                      cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming from" in resumed.stdout + resumed.stderr
    assert read_json(run / "metrics.json")["status"] == "completed"


def test_a_raising_rank_ends_the_job(tmp_path):
    # what `train` does once MPI runs: an uncaught exception on one rank while the other waits in a collective
    code = ("from mlpframe.distributed.world import mpi_world\n"
            "comm = mpi_world()\n"
            "if comm.rank == 1:\n"
            "    raise RuntimeError('boom on rank 1')\n"
            "comm.barrier()\n")
    t0 = time.monotonic()
    proc = mpiexec(2, "-c", code, cwd=tmp_path, timeout=60)
    assert time.monotonic() - t0 < 30
    assert proc.returncode != 0
    assert "boom on rank 1" in proc.stderr
