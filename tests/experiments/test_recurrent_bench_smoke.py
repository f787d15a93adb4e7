"""Smoke test of experiments/throughput/recurrent.py: it runs and prints what it says (never the speed)."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import mlpframe

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "experiments" / "throughput" / "recurrent.py"
PACKAGE_PARENT = Path(mlpframe.__file__).resolve().parent.parent
HAS_TORCH = importlib.util.find_spec("torch") is not None


def _run(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(PACKAGE_PARENT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.setdefault("OPENBLAS_NUM_THREADS", "1")
    env.setdefault("OMP_NUM_THREADS", "1")
    return subprocess.run([sys.executable, str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.skipif(not HAS_TORCH, reason="PyTorch is not installed")
def test_quick_run_prints_both_frameworks_and_the_ratio():
    proc = _run("--quick", "--threads", "1")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert re.search(r"^CPU: .+, 1 threads", out, re.M) and re.search(r"^NumPy .+ BLAS: ", out, re.M)
    for name in ("paper_gru", "lstm64"):
        block = out.split(f"{name}:", 1)[1]
        m = re.search(r"mlpframe ([\d.]+) ms/step .*torch ([\d.]+) ms/step", block)
        assert m and float(m.group(1)) > 0 and float(m.group(2)) > 0
        ratio = re.search(r"time ratio ([\d.]+)x .*final losses ([\d.]+) / ([\d.]+)", block)
        # same weights, data and number of steps: the losses agree to float32 rounding after a few steps
        assert ratio and abs(float(ratio.group(2)) - float(ratio.group(3))) < 1e-3


def test_runners_start_from_the_same_weights_and_agree_on_the_first_steps():
    torch = pytest.importorskip("torch")  # noqa: F841
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        import recurrent as R
    finally:
        sys.path.remove(str(SCRIPT.parent))
    for shape in R.SHAPES:
        small = R.RecurrentShape(shape.name, shape.kind, 2, 5, shape.bidirectional, 7, 6, shape.head)
        x, y = R.make_data(small)
        ours, ref = R.build_mlpframe(small, x, y), R.build_torch(small, x, y)
        for i in range(3):
            ours.step()
            ref.step()
            np.testing.assert_allclose(ours.last_loss(), ref.last_loss(), rtol=1e-4)
