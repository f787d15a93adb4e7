"""``python -m mlpframe <command> [hydra overrides]`` (also the ``mlpframe`` console script).

Pops the command, rewrites ``+backend=``/``++backend=`` to ``backend=`` (the
group is always in the defaults list, so Hydra would refuse to add it twice),
moves ``--config-dir`` before the overrides (where argparse wants it), and hands the rest of the command line to the command's ``@hydra.main``.
Hydra's composition errors (bad override, unknown key, wrong type, unknown
option) are turned into one line on stderr and exit status 2.
"""

from __future__ import annotations

import importlib
import importlib.util
import errno
import os
import signal
import sys

COMMANDS = {
    "train": ("mlpframe.cli.train", "train a model (one run, or a sweep with -m)"),
    "evaluate": ("mlpframe.cli.evaluate", "evaluate a checkpoint on a test set; prints JSON"),
    "report": ("mlpframe.cli.report", "summarise a sweep directory as a ranked table"),
    "gradcheck": ("mlpframe.cli.gradcheck", "check every layer's backward against finite differences"),
}

USAGE = """\
usage: python -m mlpframe <command> [overrides ...] [--help]

commands:
{commands}

Overrides are Hydra's: key=value, group=option, +backend=cupy, -m for sweeps.
`python -m mlpframe <command> --help` shows a command's config and options.
"""


# a folder or disk the user can fix, not a bug
USER_OS_ERRORS = (errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOSPC, errno.EDQUOT)


def available_commands() -> dict[str, tuple[str, str]]:
    return {name: spec for name, spec in COMMANDS.items() if importlib.util.find_spec(spec[0]) is not None}


def usage() -> str:
    cmds = available_commands()
    width = max(len(c) for c in cmds)
    return USAGE.format(commands="\n".join(f"  {name:<{width}}  {help_}" for name, (_, help_) in cmds.items()))


def rewrite_override(arg: str) -> str:
    """``+backend=x`` and ``++backend=x`` -> ``backend=x``: ``backend`` is always in the defaults list."""
    for prefix in ("++backend=", "+backend="):
        if arg.startswith(prefix):
            return "backend=" + arg[len(prefix):]
    return arg


def hoist_config_dir(args: list[str]) -> list[str]:
    """``--config-dir DIR`` (``-cd DIR``, ``--config-dir=DIR``) moved before the overrides: Hydra's argparse
    takes overrides in one run, so ``ckpt_path=x --config-dir conf model=my_net`` would be refused."""
    front: list[str] = []
    rest: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg in ("--config-dir", "-cd") and i + 1 < len(args):
            front += args[i:i + 2]
            i += 2
            continue
        (front if arg.startswith("--config-dir=") else rest).append(arg)
        i += 1
    return front + rest


def main(argv: list[str] | None = None) -> None:
    """Run the command; Ctrl-C before a command can handle it is one line and status 130, not a traceback."""
    try:
        dispatch(argv)
    except KeyboardInterrupt:
        print("error: interrupted before the command started", file=sys.stderr, flush=True)
        sys.exit(128 + signal.SIGINT)


def dispatch(argv: list[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args:  # a usage error: usage on stderr, as argparse and git do
        print(usage(), end="", file=sys.stderr)
        sys.exit(2)
    if args[0] in ("-h", "--help", "help"):
        print(usage(), end="")
        sys.exit(0)
    command, rest = args[0], args[1:]
    commands = available_commands()
    if command not in commands:
        print(f"error: unknown command {command!r}; choose from {', '.join(commands)} "
              "(python -m mlpframe --help)", file=sys.stderr)
        sys.exit(2)
    rest = hoist_config_dir([rewrite_override(a) for a in rest])
    prog = "mlpframe" if argv is not None else os.path.basename(sys.argv[0])
    if prog in ("__main__.py", ""):
        prog = "python -m mlpframe"
    sys.argv = [f"{prog} {command}", *rest]
    # Hydra then raises its errors instead of printing them over several lines and exiting 1
    os.environ["HYDRA_FULL_ERROR"] = "1"

    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from mlpframe.cli.common import UserError, check_overrides, fail, format_hydra_error, remove_failed_sweep_dir

    module = importlib.import_module(commands[command][0])
    try:
        if command == "train":  # sweepers and launchers, also from an editable install
            from mlpframe.plugins import register

            register()
        if command in ("train", "evaluate", "gradcheck") and not {"--help", "-h", "--hydra-help"} & set(rest):
            check_overrides(command, rest)
        module.main()
    except UserError as exc:
        fail(str(exc))
    except (HydraException, OmegaConfBaseException) as exc:
        remove_failed_sweep_dir()
        fail(format_hydra_error(exc))
    except OSError as exc:
        # Hydra creating the run or sweep folder in a read-only or full place
        if exc.errno not in USER_OS_ERRORS:
            raise
        remove_failed_sweep_dir()
        fail(f"{exc.strerror}: {exc.filename}; run from a writable folder or set hydra.run.dir / "
             "hydra.sweep.dir to one")


if __name__ == "__main__":
    main()
