"""``trainer.progress_bar`` unset: a bar only when stderr is a terminal (never in a log file or a report)."""

from __future__ import annotations

import sys

import pytest

from mlpframe.engine import callbacks
from tests.robustness.inprocess import run_main


@pytest.mark.parametrize("tty", [False, True])
def test_the_progress_bar_default_follows_the_terminal(tmp_path, monkeypatch, data_cache, tty):
    monkeypatch.setenv("MLPFRAME_DATA", str(data_cache))
    seen: list[bool] = []
    init = callbacks.ProgressBar.__init__

    def spy(self, enabled=True, print_fn=None):
        seen.append(enabled)
        init(self, enabled, print_fn)

    monkeypatch.setattr(callbacks.ProgressBar, "__init__", spy)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: tty)
    args = ["train", "data=synthetic", "data.n_samples=300", "model.hidden=[8]", "trainer.max_epochs=1",
            "logger=none", "hydra.run.dir=run"]
    assert run_main(args, tmp_path) == 0
    assert seen == [tty]
