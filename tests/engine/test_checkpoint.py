"""Checkpoint files: exact round trip, atomic writes, and refusal of anything that is not ours."""

from __future__ import annotations

import math
import os
import pickle
import stat
import zipfile

import numpy as np
import pytest

from mlpframe.engine import checkpoint as ckpt_mod
from mlpframe.engine.checkpoint import CheckpointError, NonFiniteError, load_checkpoint, save_checkpoint


def nested_state(rng: np.random.Generator) -> dict:
    return {
        "model": {"0.weight": rng.normal(size=(4, 3)).astype(np.float32), "0.bias": np.zeros(4, np.float32),
                  "1.running_var": np.ones(4, np.float64)},
        "optimizer": {"state": {"0": {"momentum_buffer": rng.normal(size=(4, 3)).astype(np.float32), "step": 7}},
                      "param_groups": [{"lr": 0.1, "betas": (0.9, 0.999), "params": [0, 1], "nesterov": False}]},
        "int_keys": {0: "a", 1: [1, 2.5, None]},
        "awkward": {"__array__": "not an array", "x/y": np.arange(3)},
        "scalar": np.float32(1.5),
        "nan": math.nan,
        "text": "ünïcode",
        "empty": np.zeros((0, 2), np.float32),
        "labels": np.array([1, 2, 3], dtype=np.int64),
    }


def assert_same(a, b, path="") -> None:
    assert type(a) is type(b) or (isinstance(a, np.generic) and isinstance(b, np.generic)), path
    if isinstance(a, dict):
        assert list(a) == list(b), path
        for k in a:
            assert_same(a[k], b[k], f"{path}/{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{path}/{i}")
    elif isinstance(a, (np.ndarray, np.generic)):
        assert a.dtype == b.dtype and np.shape(a) == np.shape(b), path
        assert np.array_equal(a, b), path
    elif isinstance(a, float) and math.isnan(a):
        assert math.isnan(b), path
    else:
        assert a == b, path


def test_round_trip_is_exact(tmp_path):
    state = nested_state(np.random.default_rng(0))
    path = save_checkpoint(tmp_path / "ck.npz", state)
    loaded = load_checkpoint(path)
    assert_same(state, loaded.state)
    assert not [p for p in tmp_path.iterdir() if p.name != "ck.npz"], "temporary files left behind"


def test_file_is_a_plain_npz_without_pickles(tmp_path):
    save_checkpoint(tmp_path / "ck.npz", nested_state(np.random.default_rng(0)))
    with np.load(tmp_path / "ck.npz", allow_pickle=False) as npz:
        assert "model/0.weight" in npz.files
        assert all(npz[k].dtype != object for k in npz.files)


def test_refuses_non_finite_weights_and_keeps_the_old_file(tmp_path):
    path = tmp_path / "last.npz"
    good = {"model": {"w": np.ones(3, np.float32)}}
    save_checkpoint(path, good)
    before = path.read_bytes()
    with pytest.raises(NonFiniteError, match="w"):
        save_checkpoint(path, {"model": {"w": np.array([1.0, np.nan, 2.0], np.float32)}})
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.npz"]


def test_a_write_that_fails_midway_leaves_the_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "last.npz"
    save_checkpoint(path, {"epoch": 1, "w": np.ones(3)})

    def broken_savez(f, **arrays):
        f.write(b"PK\x03\x04 half a zip")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(ckpt_mod.np, "savez", broken_savez)
    with pytest.raises(OSError):
        save_checkpoint(path, {"epoch": 2, "w": np.zeros(3)})
    monkeypatch.undo()
    assert load_checkpoint(path)["epoch"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.npz"]


def test_objects_that_need_pickle_are_refused_at_save(tmp_path):
    with pytest.raises(TypeError):
        save_checkpoint(tmp_path / "a.npz", {"x": object()})
    with pytest.raises(TypeError):
        save_checkpoint(tmp_path / "b.npz", {"x": np.array([object()], dtype=object)})
    assert not list(tmp_path.iterdir())


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match="no such file"):
        load_checkpoint(tmp_path / "nope.npz")
    with pytest.raises(CheckpointError, match="not a file"):
        load_checkpoint(tmp_path)


class Payload:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.mark.parametrize("kind", ["random", "truncated", "pickle", "object_npy", "foreign_npz", "npy"])
def test_files_that_are_not_checkpoints_are_refused(tmp_path, kind):
    path = tmp_path / "ck.npz"
    marker = tmp_path / "payload-ran"
    if kind == "random":
        path.write_bytes(np.random.default_rng(0).bytes(500))
    elif kind == "truncated":
        save_checkpoint(path, {"w": np.ones(1000)})
        path.write_bytes(path.read_bytes()[:300])
    elif kind == "pickle":
        path.write_bytes(pickle.dumps(Payload(str(marker))))
    elif kind == "object_npy":
        # a zip that looks like ours but whose member is a pickled object array
        with zipfile.ZipFile(path, "w") as zf:
            with zf.open("model/w.npy", "w") as f:
                np.save(f, np.array([Payload(str(marker))], dtype=object), allow_pickle=True)
            with zf.open(f"{ckpt_mod.META_KEY}.npy", "w") as f:
                meta = b'{"format": "mlpframe.checkpoint", "version": 1, "state": {"w": {"__array__": "model/w"}}}'
                np.save(f, np.frombuffer(meta, dtype=np.uint8))
    elif kind == "foreign_npz":
        np.savez(path, w=np.ones(3))
    elif kind == "npy":
        with open(path, "wb") as f:
            np.save(f, np.ones(3))
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    assert "\n" not in str(info.value) and "ck.npz" in str(info.value)
    assert not marker.exists(), "loading ran code from the file"


def test_unknown_version_is_refused(tmp_path):
    path = tmp_path / "ck.npz"
    meta = b'{"format": "mlpframe.checkpoint", "version": 999, "state": {}}'
    np.savez(path, **{ckpt_mod.META_KEY: np.frombuffer(meta, dtype=np.uint8)})
    with pytest.raises(CheckpointError, match="version"):
        load_checkpoint(path)


def test_rename_is_the_last_step(tmp_path, monkeypatch):
    """The target only ever changes through os.replace of a complete temp file."""
    path = tmp_path / "last.npz"
    seen = []
    real_replace = os.replace

    def spy(src, dst):
        assert load_checkpoint(src)["epoch"] == 3  # complete before it becomes the checkpoint
        seen.append(dst)
        real_replace(src, dst)

    monkeypatch.setattr(ckpt_mod.os, "replace", spy)
    save_checkpoint(path, {"epoch": 3})
    assert seen == [path]


def _zip_checkpoint(path, members: dict[str, bytes], compress=zipfile.ZIP_STORED) -> None:
    with zipfile.ZipFile(path, "w", compression=compress) as zf:
        for name, data in members.items():
            zf.writestr(name, data)


def _npy(a: np.ndarray) -> bytes:
    import io

    buf = io.BytesIO()
    np.save(buf, a)
    return buf.getvalue()


META_W = b'{"format": "mlpframe.checkpoint", "version": 1, "state": {"w": {"__array__": "model/w"}}}'


@pytest.mark.parametrize("kind", ["pickle_member", "pickle_description", "compressed", "not_npy_name"])
def test_archives_np_savez_could_not_have_written_are_refused(tmp_path, kind):
    path, marker = tmp_path / "ck.npz", tmp_path / "payload-ran"
    meta = _npy(np.frombuffer(META_W, dtype=np.uint8))
    if kind == "pickle_member":  # NumPy would hand this member back as raw bytes
        _zip_checkpoint(path, {"model/w.npy": pickle.dumps(Payload(str(marker))), f"{ckpt_mod.META_KEY}.npy": meta})
    elif kind == "pickle_description":
        _zip_checkpoint(path, {f"{ckpt_mod.META_KEY}.npy": pickle.dumps(Payload(str(marker)))})
    elif kind == "compressed":  # the shape of a zip bomb
        _zip_checkpoint(path, {"model/w.npy": _npy(np.zeros(10_000)), f"{ckpt_mod.META_KEY}.npy": meta},
                        compress=zipfile.ZIP_DEFLATED)
    else:
        _zip_checkpoint(path, {"model/w.npy": _npy(np.ones(2)), "run.sh": b"rm -rf /",
                               f"{ckpt_mod.META_KEY}.npy": meta})
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    message = str(info.value)
    assert "\n" not in message and "ck.npz" in message
    assert {"pickle_member": "model/w.npy", "pickle_description": ckpt_mod.META_KEY, "compressed": "compressed",
            "not_npy_name": "run.sh"}[kind] in message
    assert not marker.exists()


def test_latest_checkpoint_takes_the_furthest_and_reports_unreadable_files(tmp_path):
    def state(epoch, step=0):
        return {"trainer": {"epoch": epoch, "step_in_epoch": step}, "model": {"w": np.full(2, epoch, np.float32)}}

    assert ckpt_mod.latest_checkpoint(tmp_path) == (None, [])
    save_checkpoint(tmp_path / "last.npz", state(2))
    save_checkpoint(tmp_path / "best.npz", state(3))  # killed between the best and the last write of epoch 3
    ckpt, problems = ckpt_mod.latest_checkpoint(tmp_path)
    assert ckpt.path.name == "best.npz" and problems == []
    save_checkpoint(tmp_path / "last.npz", state(3, 5))  # an interrupt mid-epoch 4
    assert ckpt_mod.latest_checkpoint(tmp_path)[0].path.name == "last.npz"
    save_checkpoint(tmp_path / "last.npz", state(3))  # a tie goes to last.npz
    assert ckpt_mod.latest_checkpoint(tmp_path)[0].path.name == "last.npz"
    (tmp_path / "best.npz").write_bytes(b"garbage")
    ckpt, problems = ckpt_mod.latest_checkpoint(tmp_path)
    assert ckpt.path.name == "last.npz" and len(problems) == 1 and "best.npz" in problems[0]


def test_a_killed_write_leaves_a_temp_file_that_temp_files_finds(tmp_path, monkeypatch):
    def killed(src, dst):
        raise KeyboardInterrupt  # stands in for the process dying before the rename

    monkeypatch.setattr(ckpt_mod.os, "replace", killed)
    monkeypatch.setattr(ckpt_mod.os, "unlink", lambda p: None)  # a dead process cleans nothing up
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(tmp_path / "last.npz", {"epoch": 1})
    monkeypatch.undo()
    tmp = ckpt_mod.temp_files(tmp_path)
    assert len(tmp) == 1 and tmp[0].name.startswith(".last.npz.") and load_checkpoint(tmp[0])["epoch"] == 1
    assert not (tmp_path / "last.npz").exists()


class DurabilitySpy:
    """Records the fsync and rename calls of a write, as ``("fsync", what, size)`` / ``("rename", src, dst)``.

    ``what`` is ``"file"`` with the size the file had when it was synced, or ``"dir"`` with the
    synced folder: a test can then check that the whole file reached the disk before it got its
    name, and that the name reached the disk (the folder's fsync) after the rename.
    """

    def __init__(self, monkeypatch) -> None:
        self.calls: list[tuple] = []
        self._fsync, self._replace = os.fsync, os.replace
        monkeypatch.setattr(os, "fsync", self.fsync)
        monkeypatch.setattr(os, "replace", self.replace)

    def fsync(self, fd: int) -> None:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            self.calls.append(("fsync", "dir", (st.st_dev, st.st_ino)))
        else:
            self.calls.append(("fsync", "file", st.st_size, (st.st_dev, st.st_ino)))
        self._fsync(fd)

    def replace(self, src, dst) -> None:
        st = os.stat(src)
        self.calls.append(("rename", os.fspath(src), os.fspath(dst), st.st_size, (st.st_dev, st.st_ino)))
        self._replace(src, dst)

    def assert_durable_write(self, calls: list[tuple], final) -> None:
        """``calls`` are exactly: fsync of the complete temp file, its rename to ``final``, fsync of the folder."""
        kinds = [c[0] if c[0] == "rename" else f"fsync {c[1]}" for c in calls]
        assert kinds == ["fsync file", "rename", "fsync dir"], f"{final.name}: {kinds}"
        (_, _, synced_size, synced), (_, src, dst, size, renamed), (_, _, folder) = calls
        assert dst == os.fspath(final) and src != dst and os.path.dirname(src) == os.path.dirname(dst)
        assert synced == renamed, "the synced file is not the one renamed"
        assert synced_size == size, "fsync ran before the whole file was written"
        st = final.parent.stat()
        assert folder == (st.st_dev, st.st_ino), "the folder synced is not the checkpoint's"


def test_save_checkpoint_syncs_the_file_renames_it_then_syncs_the_folder(tmp_path, monkeypatch):
    spy = DurabilitySpy(monkeypatch)
    final = save_checkpoint(tmp_path / "ckpt" / "last.npz", nested_state(np.random.default_rng(0)))
    spy.assert_durable_write(spy.calls, final)
    assert spy.calls[1][3] == final.stat().st_size


def test_every_checkpoint_a_training_run_writes_is_durable(tmp_path, monkeypatch):
    """Through the ModelCheckpoint callback of a real fit: each last/best write is fsync, rename, fsync(dir)."""
    from mlpframe.engine import ModelCheckpoint

    from .test_trainer import make
    from mlpframe.data import load_dataset

    ds = load_dataset("synthetic", n_samples=300, num_classes=3, noise=0.05, seed=0)
    trainer, loaders = make(ds, max_epochs=2, callbacks=[ModelCheckpoint(tmp_path / "checkpoints")])
    spy = DurabilitySpy(monkeypatch)
    trainer.fit(*loaders, num_classes=3)
    renames = [i for i, c in enumerate(spy.calls) if c[0] == "rename"]
    written = [os.path.basename(spy.calls[i][2]) for i in renames]
    assert written.count("last.npz") == 2 and "best.npz" in written, written
    for i in renames:
        spy.assert_durable_write(spy.calls[i - 1:i + 2], tmp_path / "checkpoints" / os.path.basename(spy.calls[i][2]))
    assert len(spy.calls) == 3 * len(renames), "an fsync or rename outside a checkpoint write"
