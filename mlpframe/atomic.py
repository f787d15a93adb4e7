"""Atomic file writes: a reader sees the old file or the new one, never half of one.

Every file mlpframe writes under its final name (checkpoints, ``metrics.json``,
reports, downloads, data caches) goes through :func:`atomic_open`: the bytes go to
a hidden temporary file in the same folder, which is flushed and fsynced, renamed
over the final name (``os.replace`` is atomic on POSIX and Windows), and then the
folder itself is fsynced so that the rename survives a power cut. The temporary
file is created with mode ``0o666`` minus the umask, as a plain ``open()`` would
(``tempfile.mkstemp`` would leave the result readable by its owner only).
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO


def temp_name(final: Path, suffix: str = ".tmp") -> Path:
    """A fresh hidden name next to ``final``: ``.<name>.<random>.tmp``."""
    return final.parent / f".{final.name}.{secrets.token_hex(4)}{suffix}"


def fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable (not possible on every platform: then a no-op)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_open(final: str | os.PathLike, mode: str = "wb", *, suffix: str = ".tmp",
                before_rename: Callable[[], None] | None = None) -> Iterator[IO]:
    """``open(final, mode)`` for writing that only ever shows ``final`` complete.

    On an exception (or a signal) inside the block the temporary file is removed and
    ``final`` is left as it was. ``before_rename`` runs after the fsync (tests use it
    to widen the window in which a kill leaves a temporary file behind).
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    while True:
        tmp = temp_name(final, suffix)
        try:
            # 0o666 & ~umask, like open(); O_EXCL: never write into someone else's file
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
            break
        except FileExistsError:
            continue
    try:
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        if before_rename is not None:
            before_rename()
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(final.parent)


def write_atomic(final: str | os.PathLike, data: str | bytes) -> None:
    """Write ``data`` (text or bytes) to ``final`` atomically."""
    with atomic_open(final, "wb" if isinstance(data, bytes) else "w") as f:
        f.write(data)
