"""`python -m mlpframe gradcheck`: a table, and exit status 1 when a gradient is wrong."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest

from mlpframe.cli.gradcheck import table


def test_gradcheck_passes_on_numpy_and_prints_a_table(run_cli):
    proc = run_cli("gradcheck")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "worst rel error" in out and "all passed" in out
    for module in ("Linear", "ELU", "Softmax", "BatchNorm1d", "CrossEntropyLoss", "MSELoss"):
        assert module in out, module
    assert "FAIL" not in out


def test_gradcheck_exits_1_when_a_check_fails(run_cli):
    # no float64 finite difference is that exact: every module fails
    proc = run_cli("gradcheck", "rtol=1e-300")
    assert proc.returncode == 1
    assert "FAIL" in proc.stdout and "Traceback" not in proc.stderr


def test_gradcheck_on_cupy_without_a_gpu_is_one_line_status_2(run_cli):
    from mlpframe.backend import cupy_available

    if cupy_available():
        pytest.skip("a usable GPU is present")
    proc = run_cli("gradcheck", "+backend=cupy")
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1 and "CuPy" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_table_reports_each_modules_worst_gradient():
    def row(module, wrt, err, passed):
        return SimpleNamespace(module=module, wrt=wrt, rel_error=err, passed=passed,
                               __str__=lambda self: f"{module} {wrt}")

    text, ok = table([row("Linear", "input", 1e-9, True), row("Linear", "weight", 3e-8, True),
                      row("ELU", "input", math.nan, False)])
    assert not ok
    lines = text.splitlines()
    linear = next(ln for ln in lines if ln.startswith("Linear"))
    assert "3.00e-08" in linear and "weight" in linear and "pass" in linear
    assert "FAIL" in next(ln for ln in lines if ln.startswith("ELU"))
    assert table([row("Linear", "input", 1e-9, True)])[1]
