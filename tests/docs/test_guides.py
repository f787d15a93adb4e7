"""Every code block of the guides runs, so the documentation cannot rot.

A fenced block's info string says what the test does with it:

- ```` ```python run ```` / ```` ```bash run ````: run, in page order, in one fresh folder per
  page (Python blocks share one namespace; bash blocks run with ``python`` being this
  interpreter and this tree's mlpframe first on ``PYTHONPATH``);
- ```` ```LANG file=PATH ````: written to ``PATH`` in that folder before later blocks run;
- ```` ```python gpu ```` / ```` ```bash gpu ````: run like ``run`` where CuPy has a GPU, otherwise
  the page's test ends as skipped, after all its other blocks ran;
- anything else (install commands, long searches, servers): shown, not run.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from mlpframe.backend import cupy_available

REPO = Path(__file__).resolve().parents[2]
GUIDES = sorted((REPO / "docs" / "guides").glob("*.md"))
FENCE = re.compile(r"^```(?P<info>[^`\n]*)\n(?P<body>.*?)^```\s*$", re.MULTILINE | re.DOTALL)


@dataclass
class Block:
    lang: str
    action: str  # "run", "gpu", "file" or "" (shown only)
    path: str | None
    code: str
    line: int


def blocks(page: Path) -> list[Block]:
    text = page.read_text()
    found = []
    for m in FENCE.finditer(text):
        words = m["info"].split()
        lang, args = (words[0], words[1:]) if words else ("", [])
        action, path = "", None
        for arg in args:
            if arg in ("run", "gpu"):
                action = arg
            elif arg.startswith("file="):
                action, path = "file", arg[len("file="):]
            else:
                raise ValueError(f"{page.name}:{text.count(chr(10), 0, m.start()) + 1}: unknown block marker {arg!r}")
        if action in ("run", "gpu") and lang not in ("python", "bash"):
            raise ValueError(f"{page.name}: only python and bash blocks can run, not {lang!r}")
        found.append(Block(lang, action, path, m["body"], text.count("\n", 0, m.start()) + 1))
    return found


def test_every_guide_has_blocks_that_run():
    assert GUIDES, "docs/guides has no pages"
    for page in GUIDES:
        assert any(b.action in ("run", "gpu") for b in blocks(page)), f"{page.name}: no block runs"


@pytest.mark.parametrize("page", GUIDES, ids=[p.stem for p in GUIDES])
def test_guide_blocks_run(page, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    env = {**os.environ,
           "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
           "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])}
    namespace: dict = {"__name__": "__guide__"}
    needs_gpu = 0
    for block in blocks(page):
        where = f"{page.name}:{block.line}"
        if block.action == "file":
            target = tmp_path / block.path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(block.code)
            continue
        if block.action == "gpu" and not cupy_available():
            needs_gpu += 1
            continue
        if block.action not in ("run", "gpu"):
            continue
        if block.lang == "python":
            exec(compile(block.code, where, "exec"), namespace)  # noqa: S102 (the guide's own code)
        else:
            proc = subprocess.run(["bash", "-euo", "pipefail", "-c", block.code], cwd=tmp_path, env=env,
                                  capture_output=True, text=True, timeout=300)
            assert proc.returncode == 0, f"{where} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    for name in [m for m in sys.modules if m == "mynets" or m.startswith("mynets.")]:
        del sys.modules[name]  # a guide's package must not leak into the next test
    if needs_gpu:
        pytest.skip(f"{page.name}: {needs_gpu} block(s) need CuPy with a CUDA GPU (the others ran)")
