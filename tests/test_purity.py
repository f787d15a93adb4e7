"""DESIGN principles 1-4, checked on the source: one code path, no hidden host syncs."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import mlpframe

PACKAGE = Path(mlpframe.__file__).parent
# host-side initialisation is the one place in nn/ that draws with NumPy (principle 3)
ARRAY_CODE = sorted(p for sub in ("nn", "optim") for p in (PACKAGE / sub).glob("*.py") if p.name != "init.py")
FORBIDDEN_MODULES = {"numpy", "cupy"}
HOST_SYNC_CALLS = {"float", "int", "bool", "item", "tolist", "to_numpy", "asnumpy", "__array__"}
HOT_FUNCTIONS = {"forward", "backward", "backward_params", "step", "__call__"}


@pytest.mark.parametrize("path", ARRAY_CODE, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_no_numpy_or_cupy_import(path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name.split(".")[0] for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [(node.module or "").split(".")[0]]
        else:
            continue
        assert not FORBIDDEN_MODULES & set(names), f"{path.name}:{node.lineno} imports {names}"


def _called_name(call: ast.Call) -> str | None:
    if isinstance(call.func, ast.Name):
        return call.func.id
    if isinstance(call.func, ast.Attribute):
        return call.func.attr
    return None


def host_syncs(source: str) -> list[str]:
    """Calls in forward/backward/step that move an array to the host."""
    found = []
    for fn in ast.walk(ast.parse(source)):
        if not (isinstance(fn, ast.FunctionDef) and fn.name in HOT_FUNCTIONS):
            continue
        for node in ast.walk(fn):
            if isinstance(node, ast.Call):
                name = _called_name(node)
                # float()/int() of a Python constant is fine; of an array it syncs
                if name in {"float", "int", "bool"} and node.args and isinstance(node.args[0], ast.Constant):
                    continue
                if name in HOST_SYNC_CALLS:
                    found.append(f"line {node.lineno}: {fn.name}() calls {name}()")
    return found


@pytest.mark.parametrize("path", ARRAY_CODE, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_no_host_sync_in_forward_backward_or_step(path):
    assert host_syncs(path.read_text()) == []


def test_the_check_catches_a_sync():
    bad = "def forward(self, x):\n    if float(x.sum()) > 0:\n        return x\n    return x.item()\n"
    assert sorted(host_syncs(bad)) == ["line 2: forward() calls float()", "line 4: forward() calls item()"]
