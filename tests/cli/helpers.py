"""Shared by the command-line tests."""

from __future__ import annotations

import json
from pathlib import Path

# a run that takes about a second: 2-d spirals, a small MLP
FAST = ["data=synthetic", "data.n_samples=600", "model.hidden=[32,32]", "trainer.max_epochs=2",
        "trainer.progress_bar=false"]


def assert_one_line_error(proc, *needles: str) -> None:
    """Exit status 2, exactly one line on stderr containing each of ``needles``, no traceback."""
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    for needle in needles:
        assert needle in lines[0], lines[0]


def read_json(path: Path) -> dict:
    return json.loads(Path(path).read_text())
