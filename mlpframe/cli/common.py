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
from omegaconf import OmegaConf

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


# the config groups each command takes (the others exist in conf/ but the command refuses them)
COMMAND_GROUPS = {
    "train": ("backend", "data", "model", "optimizer", "scheduler", "trainer", "logger", "experiment",
              "hparams_search"),
    "evaluate": ("backend", "data"),
    "gradcheck": ("backend",),
}


def group_choices(command: str) -> str:
    """The ``--help`` list of a command's groups and their options: one line per group, without the
    internal ``base_*`` schemas (those are what an option builds on, not an option)."""
    root = Path(config_dir())
    lines = []
    for group in COMMAND_GROUPS[command]:
        options = sorted(f.stem for f in (root / group).glob("*.yaml") if not f.stem.startswith("base_"))
        lines.append(f"{group}: {', '.join(options)}")
    return "\n".join(lines)


if not OmegaConf.has_resolver("mlpframe_groups"):
    OmegaConf.register_new_resolver("mlpframe_groups", group_choices)


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
        out = [ln for ln in out if ln and not re.match(r"(full_key:|reference_type=|object_type=)", ln)]
        # Hydra suggests `+key=value`, which would add a key that nothing reads: mlpframe refuses those
        return [re.sub(r"\s*To append to your config use \+\S+", " (not a setting of this component; see --help)",
                       ln) for ln in out]

    text = lines(str(exc)) or [type(exc).__name__]
    if re.search(r"Could not (find|load) 'hydra/(launcher/(submitit|joblib)|sweeper/(sampler|optuna))", text[0]):
        # the launchers and sweepers mlpframe configures come with its sweep extra
        return one_line(f'{text[0]} (the sweep launchers and sweepers need: pip install "mlpframe[sweep]")')
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


def hydra_quote(value: str) -> str:
    """``value`` as a quoted string of Hydra's override grammar: any character, read back unchanged.

    Inside single quotes only a quote, and the backslashes right before it (or before the
    closing quote), need escaping.
    """
    if "/" in value and re.fullmatch(r"[A-Za-z0-9_/.-]+", value):  # a plain path reads back as it is
        return value
    return "'" + re.sub(r"(\\*)('|$)", lambda m: m.group(1) * 2 + ("\\'" if m.group(2) else ""), value) + "'"


# a run folder holds one run: these mean an earlier run is there
RUN_FOLDERS = ("checkpoints", "tensorboard")  # (and a metrics.json file)
# the top-level keys of each command (its groups included); `~key` may delete none of them
COMMAND_KEYS = {
    "train": ("backend", "data", "model", "optimizer", "scheduler", "trainer", "logger", "seed", "ckpt_path",
              "optimized_metric", "dtype"),
    "evaluate": ("backend", "data", "ckpt_path", "batch_size"),
    "gradcheck": ("backend", "rtol", "seed"),
}


def check_overrides(command: str, args: list[str]) -> None:
    """Refuse, before Hydra composes anything, the overrides that would silently do nothing or harm.

    * ``~key`` on one of mlpframe's keys or groups: the schema would put the default back
      (``~seed``) or leave a required value missing (``~optimizer``); Hydra's own keys may go.
    * ``evaluate data.<key>=…`` without ``data=<name>``: the data set comes from the checkpoint.
    * ``train hydra.run.dir=<a folder that holds a run>`` without ``trainer.resume=auto``: the old
      run's checkpoints and TensorBoard curves would be overwritten and mixed with the new ones.
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser

    overrides, options_with_value = [], ("--config-dir", "-cd", "--config-path", "-cp", "--config-name", "-cn")
    it = iter(args)
    for a in it:
        if a in options_with_value:
            next(it, None)  # the option's value is not an override
        elif not a.startswith("-"):
            overrides.append(a)
    parsed = OverridesParser.create().parse_overrides(overrides)
    keys = COMMAND_KEYS.get(command, ())
    for o in parsed:
        top = o.key_or_group.split(".")[0].split("/")[0]
        if o.is_delete() and top in keys:
            raise UserError(f"{o.input_line}: mlpframe's settings cannot be deleted; set {o.key_or_group}=<value> "
                            f"instead (see python -m mlpframe {command} --help)")
    if command == "evaluate" and not any(o.key_or_group == "data" for o in parsed):
        for o in parsed:
            if o.key_or_group.startswith("data."):
                raise UserError(f"{o.input_line}: evaluate uses the data set stored in the checkpoint; choose one "
                                f"with data=<name> to change its settings (the batch size is batch_size=)")
    if command == "train" and "-m" not in args and "--multirun" not in args:
        resume = [o.value() for o in parsed if o.key_or_group == "trainer.resume"]
        for o in parsed:
            value = o.value()
            if o.key_or_group != "hydra.run.dir" or not isinstance(value, str) or "${" in value:
                continue
            folder = Path(value)
            earlier = (folder / "metrics.json").is_file() or any((folder / d).is_dir() for d in RUN_FOLDERS)
            if earlier and resume[-1:] != ["auto"]:
                raise UserError(f"hydra.run.dir: {folder} already holds a run; add trainer.resume=auto to continue "
                                f"it, or choose a new hydra.run.dir")


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
