"""``python -m mlpframe gradcheck [backend=cupy]``: every layer's backward against central differences.

Prints one row per module (its worst relative error over the input and parameter
gradients) and exits 1 if any module fails, 0 otherwise.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from typing import Any

import hydra
from omegaconf import DictConfig

from mlpframe.backend import get_backend
from mlpframe.cli.common import config_dir, fail, user_errors, user_message
from mlpframe.cli.config import GradcheckConfig, to_schema


def table(results: Sequence[Any]) -> tuple[str, bool]:
    """The report (one row per module, with its worst gradient) and whether all passed."""
    def badness(r: Any) -> tuple[bool, float]:
        # failures first, then the larger error; NaN counts as the worst possible error
        return (not r.passed, math.inf if math.isnan(r.rel_error) else r.rel_error)

    worst: dict[str, Any] = {}
    for r in results:
        if r.module not in worst or badness(r) > badness(worst[r.module]):
            worst[r.module] = r
    width = max([len("module")] + [len(m) for m in worst])
    lines = [f"{'module':<{width}}  {'worst rel error':>15}  {'w.r.t.':<14}  result",
             f"{'-' * width}  {'-' * 15}  {'-' * 14}  ------"]
    for module, r in worst.items():
        lines.append(f"{module:<{width}}  {r.rel_error:>15.2e}  {str(getattr(r, 'wrt', '')):<14}  "
                     f"{'pass' if r.passed else 'FAIL'}")
    failed = [r for r in results if not r.passed]
    ok = not failed and bool(results)
    lines.append("")
    lines.append(f"{len(worst)} modules, {len(results)} gradients checked: "
                 + ("all passed" if ok else f"{len(failed)} FAILED"))
    lines += [f"  {r}" for r in failed]
    return "\n".join(lines), ok


def gradcheck(cfg: DictConfig) -> float:
    from mlpframe.gradcheck import check_all

    try:
        c = to_schema(cfg, GradcheckConfig)
        be = get_backend(c.backend.name, c.backend.device)
    except user_errors() as exc:
        fail(user_message(exc))
    kwargs: dict[str, Any] = {"seed": c.seed}
    if c.rtol is not None:
        kwargs["rtol"] = float(c.rtol)
    results = check_all(be, **kwargs)
    text, ok = table(results)
    print(f"gradient check on backend {be.name} (float64, central differences)")
    print(text, flush=True)
    if not ok:
        sys.exit(1)
    return 0.0


main = hydra.main(version_base="1.3", config_path=config_dir(), config_name="gradcheck")(gradcheck)
