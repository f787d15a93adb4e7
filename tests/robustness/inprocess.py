"""``python -m mlpframe ...`` inside the test process: fast enough for property-based tests.

A subprocess costs about two seconds of imports per call; in-process one call costs
Hydra's composition only. Hydra keeps global state (its singleton, the logging
setup, ``sys.argv``), so :func:`run_main` restores all of it afterwards.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path


def run_main(args: Sequence[str], cwd: Path) -> int:
    """Run ``mlpframe.__main__.main(args)`` in ``cwd``; returns the exit status (0 if it returned)."""
    from hydra.core.global_hydra import GlobalHydra

    from mlpframe.__main__ import main

    saved_argv, saved_cwd = sys.argv[:], os.getcwd()
    saved_env = os.environ.get("HYDRA_FULL_ERROR")
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    mlpframe_log = logging.getLogger("mlpframe")
    saved_mlp = (mlpframe_log.handlers[:], mlpframe_log.level, mlpframe_log.propagate)
    GlobalHydra.instance().clear()
    os.chdir(cwd)
    try:
        main(list(args))
        return 0
    except SystemExit as exc:
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    finally:
        os.chdir(saved_cwd)
        GlobalHydra.instance().clear()
        sys.argv[:] = saved_argv
        if saved_env is None:
            os.environ.pop("HYDRA_FULL_ERROR", None)
        else:
            os.environ["HYDRA_FULL_ERROR"] = saved_env
        for handler in root.handlers:
            if handler not in saved_handlers:
                handler.close()
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)
        mlpframe_log.handlers[:], mlpframe_log.level, mlpframe_log.propagate = saved_mlp
