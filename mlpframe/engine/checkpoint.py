"""Checkpoints as one ``.npz`` file: arrays plus a JSON description, no pickle.

A training state is a nested structure of dicts, lists, tuples, Python scalars,
strings and host NumPy arrays (model ``state_dict``, optimizer ``state_dict``,
scheduler state, counters, the run's config). :func:`save_checkpoint` splits it
into

* every array, stored as its own ``.npy`` member named by its path in the tree
  (``model/0.weight``, ``optimizer/state/0/momentum_buffer``), and
* a JSON skeleton of everything else, in which each array is replaced by
  ``{"__array__": "<member>"}``, stored as a ``uint8`` array ``__checkpoint__``.

Loading reads it back with ``allow_pickle=False``, so a crafted file cannot run
code: object arrays and pickled members are refused by NumPy itself. Writes go to
a temporary file in the target folder and are renamed over the target
(``os.replace`` is atomic on POSIX and Windows), so the file on disk is always a
complete checkpoint, the old one or the new one.

Loading checks the container before NumPy sees it: a zip archive whose members are
all stored (``np.savez`` never compresses, so a compressed member, the stuff of zip
bombs, is not ours) ``.npy`` arrays of plain dtypes. Anything else, including a raw
pickle renamed ``.npz``, is refused with one line.

``MLPFRAME_TEST_SLOW_CHECKPOINT=<seconds>`` pauses each write between the complete
temporary file and the rename. It exists for the fault-injection tests, which kill
a run while a checkpoint is being written.
"""

from __future__ import annotations

import json
import os
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mlpframe.atomic import atomic_open

FORMAT = "mlpframe.checkpoint"
VERSION = 1
META_KEY = "__checkpoint__"
SLOW_WRITE_ENV = "MLPFRAME_TEST_SLOW_CHECKPOINT"
_NPY_MAGIC = b"\x93NUMPY"


class CheckpointError(Exception):
    """A checkpoint file that is missing, unreadable, or not an mlpframe checkpoint (one-line message)."""


class NonFiniteError(ValueError):
    """Refused to write a checkpoint whose arrays hold NaN or inf."""


@dataclass
class Checkpoint:
    """A loaded checkpoint: the nested state as it was saved, and where it came from."""

    path: Path
    state: dict[str, Any]

    def __getitem__(self, key: str) -> Any:
        return self.state[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.state.get(key, default)


# ------------------------------------------------------------------ flatten
def _flatten(obj: Any, path: str, arrays: dict[str, np.ndarray]) -> Any:
    """The JSON skeleton of ``obj``; its arrays go into ``arrays`` under their path."""
    if isinstance(obj, np.ndarray) or isinstance(obj, np.generic):
        arr = np.asarray(obj)
        if arr.dtype.hasobject:
            raise TypeError(f"{path}: object arrays cannot be stored without pickle")
        key = path or "root"
        arrays[key] = arr
        return {"__array__": key} if isinstance(obj, np.ndarray) else {"__scalar__": key}
    if isinstance(obj, dict):
        if all(isinstance(k, str) for k in obj):
            if any(k.startswith("__") and k.endswith("__") for k in obj):
                return {"__items__": [[k, _flatten(v, f"{path}/{k}", arrays)] for k, v in obj.items()]}
            return {k: _flatten(v, f"{path}/{k}" if path else k, arrays) for k, v in obj.items()}
        # non-string keys (e.g. ints) would turn into strings in JSON: keep them as pairs
        return {"__items__": [[k, _flatten(v, f"{path}/{k}", arrays)] for k, v in obj.items()]}
    if isinstance(obj, tuple):
        return {"__tuple__": [_flatten(v, f"{path}/{i}", arrays) for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [_flatten(v, f"{path}/{i}", arrays) for i, v in enumerate(obj)]
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"{path}: cannot store a {type(obj).__name__} in a checkpoint")


def _unflatten(obj: Any, arrays: Any) -> Any:
    if isinstance(obj, dict):
        if set(obj) == {"__array__"}:
            return arrays[obj["__array__"]]
        if set(obj) == {"__scalar__"}:
            return arrays[obj["__scalar__"]][()]
        if set(obj) == {"__tuple__"}:
            return tuple(_unflatten(v, arrays) for v in obj["__tuple__"])
        if set(obj) == {"__items__"}:
            return {k: _unflatten(v, arrays) for k, v in obj["__items__"]}
        return {k: _unflatten(v, arrays) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_unflatten(v, arrays) for v in obj]
    return obj


def non_finite_arrays(arrays: dict[str, np.ndarray]) -> list[str]:
    """Names of the floating-point arrays that contain NaN or inf."""
    return [k for k, a in arrays.items() if a.dtype.kind in "fc" and not np.all(np.isfinite(a))]


# --------------------------------------------------------------------- save
def save_checkpoint(path: str | os.PathLike, state: dict[str, Any], *, allow_non_finite: bool = False) -> Path:
    """Write ``state`` to ``path`` atomically (temp file in the same folder, fsync, rename).

    Raises :class:`NonFiniteError` (and writes nothing) if an array holds NaN/inf,
    unless ``allow_non_finite``; ``TypeError`` for values that JSON and ``.npy`` cannot
    hold; ``OSError`` when the folder is not writable (the old file is untouched).
    """
    path = Path(path)
    arrays: dict[str, np.ndarray] = {}
    skeleton = _flatten(state, "", arrays)
    if not allow_non_finite:
        bad = non_finite_arrays(arrays)
        if bad:
            raise NonFiniteError(f"not writing {path.name}: non-finite values in {', '.join(bad[:3])}")
    meta = {"format": FORMAT, "version": VERSION, "state": skeleton}
    blob = json.dumps(meta, allow_nan=True).encode("utf-8")
    arrays[META_KEY] = np.frombuffer(blob, dtype=np.uint8)
    with atomic_open(path, before_rename=_test_pause) as f:
        np.savez(f, **arrays)
    return path


def _test_pause() -> None:
    delay = os.environ.get(SLOW_WRITE_ENV)
    if delay:
        time.sleep(float(delay))


def temp_files(folder: str | os.PathLike) -> list[Path]:
    """Temporary files :func:`save_checkpoint` leaves in ``folder`` when its process is killed mid-write."""
    folder = Path(folder)
    return sorted(folder.glob(".*.npz.*.tmp")) if folder.is_dir() else []


# --------------------------------------------------------------------- load
def load_checkpoint(path: str | os.PathLike) -> Checkpoint:
    """Read a checkpoint written by :func:`save_checkpoint`; never unpickles.

    Raises :class:`CheckpointError` with a one-line message when the file is
    missing, truncated, not a checkpoint, or holds pickled/object data.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise CheckpointError(f"ckpt_path: no such file {str(path)!r}; pass the path of a checkpoints/*.npz file")
    if not path.is_file():
        raise CheckpointError(f"ckpt_path: {str(path)!r} is not a file; pass the path of a checkpoints/*.npz file")
    try:
        # our own handle: np.load leaks the one it opens when the zip turns out to be truncated
        with open(path, "rb") as f:
            if f.read(4) != b"PK\x03\x04":  # .npz is a zip archive; anything else (pickle, .npy) is not ours
                raise ValueError("not an .npz archive")
            f.seek(0)
            _check_members(f)
            f.seek(0)
            with np.load(f, allow_pickle=False) as npz:
                if META_KEY not in npz.files:
                    raise ValueError("no checkpoint description inside")
                raw = npz[META_KEY]
                if raw.dtype != np.uint8 or raw.ndim != 1:
                    raise ValueError("its description is not a byte string")
                meta = json.loads(raw.tobytes().decode("utf-8"))
                if not isinstance(meta, dict) or meta.get("format") != FORMAT:
                    raise ValueError("not written by mlpframe")
                if meta.get("version") != VERSION:
                    raise ValueError(f"format version {meta.get('version')!r}, this mlpframe reads {VERSION}")
                arrays = {k: npz[k] for k in npz.files if k != META_KEY}
        state = _unflatten(meta["state"], arrays)
    except CheckpointError:
        raise
    except (ValueError, OSError, KeyError, IndexError, EOFError, TypeError, AttributeError, RecursionError,
            zipfile.BadZipFile, zipfile.LargeZipFile, UnicodeDecodeError) as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise CheckpointError(f"ckpt_path: {str(path)!r} is not a readable mlpframe checkpoint ({reason})") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"ckpt_path: {str(path)!r} is not a readable mlpframe checkpoint (bad layout)")
    return Checkpoint(path=path, state=state)


def _check_members(f: Any) -> None:
    """Refuse an archive that ``np.savez`` could not have written, before any member is read.

    Every member must be stored uncompressed (no zip bomb), be named ``*.npy`` and start
    with the ``.npy`` magic: NumPy hands any other member back as raw bytes. Object
    dtypes inside an ``.npy`` are refused by ``np.load(allow_pickle=False)`` itself.
    """
    with zipfile.ZipFile(f) as zf:
        for info in zf.infolist():
            name = info.filename
            if info.compress_type != zipfile.ZIP_STORED:
                raise ValueError(f"member {name!r} is compressed; mlpframe writes stored members only")
            if not name.endswith(".npy") or info.is_dir():
                raise ValueError(f"member {name!r} is not an .npy array")
            with zf.open(info) as member:
                if member.read(len(_NPY_MAGIC)) != _NPY_MAGIC:
                    raise ValueError(f"member {name!r} is not an .npy array (a pickle or other data)")


def progress_of(checkpoint: Checkpoint) -> tuple[int, int]:
    """``(completed epochs, steps into the next epoch)`` of a training checkpoint."""
    trainer = checkpoint.get("trainer")
    if not isinstance(trainer, dict):
        raise CheckpointError(f"ckpt_path: {str(checkpoint.path)!r} holds no training state")
    try:
        return int(trainer.get("epoch", 0)), int(trainer.get("step_in_epoch", 0))
    except (TypeError, ValueError):
        raise CheckpointError(f"ckpt_path: {str(checkpoint.path)!r} has a malformed training state") from None


def latest_checkpoint(folder: str | os.PathLike, names: tuple[str, ...] = ("last.npz", "best.npz")
                      ) -> tuple[Checkpoint | None, list[str]]:
    """The checkpoint among ``folder/<names>`` that is furthest along; ties go to the earlier name.

    Returns it (``None`` when there is none) and one line per file that exists but
    could not be loaded. ``best.npz`` can be ahead of ``last.npz`` when a run was
    killed between the two writes of an epoch.
    """
    folder = Path(folder)
    found: list[tuple[tuple[int, int], int, Checkpoint]] = []
    problems: list[str] = []
    for rank, name in enumerate(names):
        path = folder / name
        if not path.exists():
            continue
        try:
            ckpt = load_checkpoint(path)
            found.append((progress_of(ckpt), -rank, ckpt))
        except CheckpointError as exc:
            problems.append(str(exc))
    if not found:
        return None, problems
    return max(found, key=lambda item: item[:2])[2], problems
