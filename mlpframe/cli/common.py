"""What every command shares: finding ``conf/``, one-line user errors, run-folder cleanup."""

from __future__ import annotations

import importlib.util
import logging
import re
import shutil
import sys
from pathlib import Path
from typing import NoReturn

from hydra.experimental.callback import Callback

from mlpframe.backend import BackendUnavailableError
from mlpframe.cli.schema import ConfigError
from mlpframe.engine.checkpoint import CheckpointError

log = logging.getLogger("mlpframe")

EXIT_USAGE = 2


class UserError(Exception):
    """A problem the user caused and can fix: printed as one line, exit status 2."""


def user_errors() -> tuple[type[BaseException], ...]:
    """Exception types the user caused; :func:`user_message` turns each into one line.

    OmegaConf's errors count: an override like ``optimizer.lr=${oops}`` composes fine
    and fails only when the task resolves the config.
    """
    from omegaconf.errors import OmegaConfBaseException

    from mlpframe.data import DataError

    # MemoryError: a data set, model or batch larger than the machine (CuPy's OutOfMemoryError is one)
    return (UserError, ConfigError, BackendUnavailableError, CheckpointError, DataError, OmegaConfBaseException,
            MemoryError)


def user_message(exc: BaseException) -> str:
    """One line for an exception of :func:`user_errors`."""
    from omegaconf.errors import OmegaConfBaseException

    if isinstance(exc, OmegaConfBaseException):
        return format_hydra_error(exc)
    if isinstance(exc, MemoryError):
        return one_line(f"out of memory ({exc or type(exc).__name__}); use a smaller data set, model, "
                        "data.batch_size or trainer.eval_batch_size")
    return one_line(str(exc))


def config_dir() -> str:
    """Absolute path of the Hydra config tree.

    In a source checkout it is ``conf/`` next to the package (also when another
    checkout is editable-installed); installed, it is the package ``mlpframe.conf``
    (pyproject maps the repo's ``conf/`` there).
    """
    package = Path(__file__).resolve().parents[1]
    source = package.parent
    if (source / "conf" / "train.yaml").is_file() and (source / "pyproject.toml").is_file():
        return str(source / "conf")
    # only this package's own conf: another checkout's editable install may also answer "mlpframe.conf"
    ours = {package / "conf", source / "conf"}
    spec = importlib.util.find_spec("mlpframe.conf")
    if spec is not None and spec.submodule_search_locations:
        for location in spec.submodule_search_locations:
            if Path(location).resolve() in ours and (Path(location) / "train.yaml").is_file():
                return str(Path(location).resolve())
    raise RuntimeError("mlpframe's config folder (mlpframe/conf or conf/) is missing from this installation")


def one_line(text: str) -> str:
    return " ".join(str(text).split())


def fail(message: str) -> NoReturn:
    """Print ``error: <message>`` as one line on stderr and exit with status 2.

    Under ``mpiexec``/``srun`` only rank 0 prints.
    """
    from mlpframe.distributed.world import guard_exit, is_quiet_rank

    sys.stdout.flush()
    if not is_quiet_rank():  # across processes every rank fails alike: rank 0 says it once
        print(f"error: {one_line(message)}", file=sys.stderr, flush=True)
    guard_exit(EXIT_USAGE)
    sys.exit(EXIT_USAGE)


def format_hydra_error(exc: BaseException) -> str:
    """One line out of Hydra's and OmegaConf's multi-line composition errors, naming the key."""
    from hydra.errors import MissingConfigException, OverrideParseException
    from omegaconf.errors import OmegaConfBaseException

    def lines(text: str) -> list[str]:
        # OmegaConf appends "full_key: …", "reference_type=…", "object_type=…" detail lines
        out = [ln.strip() for ln in str(text).splitlines()]
        return [ln for ln in out if ln and not re.match(r"(full_key:|reference_type=|object_type=)", ln)]

    text = lines(str(exc)) or [type(exc).__name__]
    if isinstance(exc, MissingConfigException):
        options = [o for o in (getattr(exc, "options", None) or []) if not o.startswith("base_")]
        return one_line(text[0] + (f"; available: {', '.join(options)}" if options else ""))
    if isinstance(exc, OverrideParseException):
        return one_line(f"cannot parse the override: {text[0]} "
                        "(syntax: https://hydra.cc/docs/advanced/override_grammar/basic/)")
    cause = exc.__cause__
    if isinstance(cause, OmegaConfBaseException) and not isinstance(exc, OmegaConfBaseException):
        key = getattr(cause, "full_key", None)
        problem = (lines(getattr(cause, "msg", None) or str(cause)) or [type(cause).__name__])[0]
        context = " ".join(text).replace("Error merging override ", "override ")
        return one_line(f"{key}: {problem} ({context})" if key else f"{problem} ({context})")
    key = getattr(exc, "full_key", None)
    message = " ".join(text)
    return one_line(f"{key}: {message}" if key and key not in message else message)


def remove_if_only_hydra(run_dir: Path) -> None:
    """Delete a run folder that holds nothing but what Hydra made before the task ran.

    A run refused for a bad config or a missing file must not leave a folder that
    looks like a run behind; anything else in it (a user's own files) keeps it.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir() or run_dir.resolve() == Path.cwd().resolve():
        return
    entries = list(run_dir.iterdir())
    if all(e.name == ".hydra" or (e.is_file() and e.suffix == ".log") for e in entries):
        for handler in list(logging.getLogger().handlers):
            # close the file handler of <run_dir>/<job>.log so the folder can go (Windows)
            if isinstance(handler, logging.FileHandler) and Path(handler.baseFilename).parent == run_dir.resolve():
                handler.close()
                logging.getLogger().removeHandler(handler)
        shutil.rmtree(run_dir, ignore_errors=True)


class TrackSweepDir(Callback):
    """Hydra callback (``hydra.callbacks``) that remembers the sweep folder of a multirun.

    Hydra creates the folder and its ``multirun.yaml`` before it checks the jobs'
    configs; when that check fails, :func:`remove_failed_sweep_dir` deletes it again.
    """

    sweep_dir: Path | None = None

    def on_multirun_start(self, config: object, **kwargs: object) -> None:
        TrackSweepDir.sweep_dir = Path(str(config.hydra.sweep.dir))  # type: ignore[attr-defined]


def remove_failed_sweep_dir() -> None:
    """Delete the current sweep folder if it holds only Hydra's ``multirun.yaml``."""
    sweep_dir = TrackSweepDir.sweep_dir
    if sweep_dir is None or not sweep_dir.is_dir() or sweep_dir.resolve() == Path.cwd().resolve():
        return
    if all(e.name == "multirun.yaml" for e in sweep_dir.iterdir()):
        shutil.rmtree(sweep_dir, ignore_errors=True)
