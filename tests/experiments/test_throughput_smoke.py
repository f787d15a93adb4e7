"""Smoke test of experiments/throughput/bench.py: it runs, and reports what it says.

A few steps per shape (``--quick``): this checks the code paths and the report,
never the speed (a timed assertion would fail on a busy CI machine).
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import mlpframe

REPO = Path(__file__).resolve().parents[2]
BENCH = REPO / "experiments" / "throughput" / "bench.py"
PACKAGE_PARENT = Path(mlpframe.__file__).resolve().parent.parent
HAS_TORCH = importlib.util.find_spec("torch") is not None
SHAPES = ("homework", "wide", "mnist1d", "mnist1d_cnn", "cifar_cnn")


def _run(*args: str, hide_torch: bool = False, timeout: float = 600) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(PACKAGE_PARENT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    # one BLAS thread: test processes share two cores
    env.setdefault("OPENBLAS_NUM_THREADS", "1")
    env.setdefault("OMP_NUM_THREADS", "1")
    if hide_torch:
        # `import torch` raises ImportError, as on a machine without PyTorch
        code = ("import runpy, sys; sys.modules['torch'] = None; sys.argv = sys.argv[1:]; "
                "runpy.run_path(sys.argv[0], run_name='__main__')")
        cmd = [sys.executable, "-c", code, str(BENCH), *args]
    else:
        cmd = [sys.executable, str(BENCH), *args]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.mark.skipif(not HAS_TORCH, reason="PyTorch is not installed")
def test_quick_benchmark_against_torch(tmp_path):
    out, raw = tmp_path / "results.md", tmp_path / "results.json"
    # a small batch keeps the CNN shapes cheap
    proc = _run("--quick", "--batch", "8", "--out", str(out), "--json", str(raw))
    assert proc.returncode == 0, proc.stderr
    res = json.loads(raw.read_text())
    assert [r["shape"] for r in res["rows"]] == list(SHAPES)
    for r in res["rows"]:
        assert r["batch"] == 8
        assert set(r["sps"]) == {"mlpframe", "torch"}
        assert all(len(v) == 3 and min(v) > 0 for v in r["sps"].values())
        assert r["ratio"] > 0 and len(r["ratio_trials"]) == 3
        # same weights, data and number of SGD steps: both frameworks computed the same thing
        assert r["loss"]["mlpframe"] == pytest.approx(r["loss"]["torch"], rel=1e-3, abs=1e-4)
        assert r["step_alloc_mib"] > 0
        # the step's GEMMs alone, timed alongside: a positive rate and a share for each framework
        g = r["gemms"]
        assert g["count"] >= 2 and g["gflop_per_step"] > 0 and g["gflops"] > 0 and min(g["sps"]) > 0
        assert set(g["share"]) == {"mlpframe", "torch"} and all(v > 0 for v in g["share"].values())
    t = res["trainer"]
    assert t["raw_ms"] > 0 and t["loop_ms"] > 0 and t["fit_ms"] >= t["loop_ms"]
    m = res["machine"]
    assert m["threads"] == m["torch_threads"] == 1  # the same thread count on both sides
    assert set(m["openblas_env"]) == {"OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"}

    text = out.read_text()
    for shape in SHAPES:
        assert f"| {shape} |" in text
    for heading in ("torch eager samples/s", "ratio mlpframe/torch", "## Trainer on top of the raw step",
                    "## Machine", "numpy: ", "torch: ", "threads: 1"):
        assert heading in text
    assert "wrote" in proc.stdout
    # which CPU and BLAS kernel the figures are from, next to them
    assert f"Measured on: {m['cpu']}" in text and "kernel " in text and "step time in GEMMs" in text
    # the trainer's runs draw no progress bar into a redirected report
    assert "epoch 1/" not in proc.stderr and "\r" not in proc.stderr and "step/s" not in proc.stderr


def test_without_torch_reports_mlpframe_alone(tmp_path):
    out, raw = tmp_path / "r.md", tmp_path / "r.json"
    proc = _run("--quick", "--no-trainer", "--shapes", "mnist1d", "--out", str(out), "--json", str(raw),
                hide_torch=True)
    assert proc.returncode == 0, proc.stderr
    assert "PyTorch is not installed" in proc.stderr
    res = json.loads(raw.read_text())
    assert [r["shape"] for r in res["rows"]] == ["mnist1d"]
    assert set(res["rows"][0]["sps"]) == {"mlpframe"} and "ratio" not in res["rows"][0]
    text = out.read_text()
    assert "| mnist1d |" in text and "torch eager" not in text and "## Trainer" not in text


def test_cupy_without_a_gpu_is_one_line_and_status_2(tmp_path):
    if mlpframe.backend.cupy_available():
        pytest.skip("a GPU is here: the CuPy benchmark would run")
    out = tmp_path / "r.md"
    proc = _run("--quick", "--backend", "cupy", "--out", str(out))
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("bench: ")
    assert not out.exists()
