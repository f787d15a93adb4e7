"""Files crafted to run code when opened are refused with one line, and their code never runs.

Each payload, if unpickled, creates a marker file; every test checks that it does not exist.
"""

from __future__ import annotations

import hashlib
import io
import json
import pickle
import re
import zipfile
from pathlib import Path

import numpy as np
import pytest

from mlpframe.data import cifar10
from mlpframe.engine.checkpoint import META_KEY
from tests.cli.helpers import FAST, assert_one_line_error

from .helpers import Payload, payload_bytes
from .inprocess import run_main


def _npy(a: np.ndarray, allow_pickle: bool = False) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a, allow_pickle=allow_pickle)
    return buf.getvalue()


def hostile_checkpoint(path: Path, kind: str, marker: Path) -> Path:
    """A file named like a checkpoint whose payload creates ``marker`` when unpickled."""
    meta = json.dumps({"format": "mlpframe.checkpoint", "version": 1,
                       "state": {"model": {"0.weight": {"__array__": "model/0.weight"}}}}).encode()
    if kind == "object_array":  # what np.savez writes for an object array: a pickle inside the .npy
        np.savez(path, **{"model/0.weight": np.array([Payload(marker)], dtype=object),
                          META_KEY: np.frombuffer(meta, dtype=np.uint8)})
        path = path.with_suffix(".npz") if path.suffix != ".npz" else path
    elif kind == "raw_pickle":  # a pickle renamed .npz
        path.write_bytes(payload_bytes(marker))
    elif kind == "pickle_member":  # a zip whose member is a bare pickle
        with zipfile.ZipFile(path, "w") as zf:
            zf.writestr("model/0.weight.npy", payload_bytes(marker))
            zf.writestr(f"{META_KEY}.npy", _npy(np.frombuffer(meta, dtype=np.uint8)))
    else:
        raise ValueError(kind)
    return path


KINDS = ["object_array", "raw_pickle", "pickle_member"]


@pytest.mark.parametrize("kind", KINDS)
def test_train_refuses_a_hostile_checkpoint(run_cli, tmp_path, kind):
    marker = tmp_path / "payload-ran"
    evil = hostile_checkpoint(tmp_path / "evil.npz", kind, marker)
    proc = run_cli("train", *FAST, f"ckpt_path={evil}", "hydra.run.dir=run")
    assert_one_line_error(proc, "ckpt_path", "evil.npz", "not a readable mlpframe checkpoint")
    assert not marker.exists(), "opening the checkpoint ran its code"
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("kind", KINDS)
def test_evaluate_refuses_a_hostile_checkpoint(tmp_path, capsys, kind):
    marker = tmp_path / "payload-ran"
    evil = hostile_checkpoint(tmp_path / "evil.npz", kind, marker)
    status = run_main(["evaluate", f"ckpt_path={evil}", f"hydra.run.dir={tmp_path}/run"], tmp_path)
    err = capsys.readouterr().err
    assert status == 2 and len(err.strip().splitlines()) == 1 and "evil.npz" in err, err
    assert not marker.exists()


def test_auto_resume_refuses_a_hostile_checkpoint_in_the_run_dir_and_leaves_it_alone(run_cli, tmp_path):
    marker = tmp_path / "payload-ran"
    (tmp_path / "run/checkpoints").mkdir(parents=True)
    evil = hostile_checkpoint(tmp_path / "run/checkpoints/last.npz", "object_array", marker)
    before = evil.read_bytes()
    proc = run_cli("train", *FAST, "trainer.resume=auto", "hydra.run.dir=run")
    assert_one_line_error(proc, "trainer.resume=auto", "last.npz", "move it out of")
    assert not marker.exists()
    assert evil.read_bytes() == before, "the refused file was replaced by a fresh run's checkpoint"
    assert sorted(p.name for p in (tmp_path / "run/checkpoints").iterdir()) == ["last.npz"]


def test_auto_resume_of_another_model_shape_names_the_parameter(tmp_path, capsys, data_cache, monkeypatch):
    monkeypatch.setenv("MLPFRAME_DATA", str(data_cache))
    run_dir = f"hydra.run.dir={tmp_path}/run"
    common = [*FAST, "trainer.max_epochs=1", "logger=none", "trainer.resume=auto", run_dir]
    assert run_main(["train", *common], tmp_path) == 0
    capsys.readouterr()
    before = (tmp_path / "run/checkpoints/last.npz").read_bytes()
    assert run_main(["train", *common, "model.hidden=[32,16]"], tmp_path) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "does not fit" in err[0], err
    assert re.search(r"\b\d+\.weight has shape \(32, 32\), the model expects \(16, 32\)", err[0]), err
    assert (tmp_path / "run/checkpoints/last.npz").read_bytes() == before


# ---------------------------------------------------------------- data files
def hostile_cifar_folder(root: Path, marker: Path, *, forged_record: bool) -> None:
    """``cifar-10-batches-py/`` whose batches are payload pickles; optionally a forged verification record."""
    folder = root / cifar10.FOLDER
    folder.mkdir(parents=True)
    files = {}
    for name in cifar10.OFFICIAL_FILE_MD5:
        data = pickle.dumps({b"data": Payload(marker), b"labels": [0]}, protocol=4)  # open() is its first global
        (folder / name).write_bytes(data)
        files[name] = hashlib.sha256(data).hexdigest()
    if forged_record:  # claims mlpframe verified these very bytes: the restricted unpickler is the last line
        (folder / cifar10.MARKER).write_text(json.dumps({"official": True, "files": files}))


@pytest.mark.parametrize("forged_record", [False, True], ids=["no-record", "forged-record"])
def test_train_refuses_a_hostile_cifar10_folder(run_cli, tmp_path, forged_record):
    marker = tmp_path / "payload-ran"
    hostile_cifar_folder(tmp_path / "cifar", marker, forged_record=forged_record)
    proc = run_cli("train", "data=cifar10", f"data.root={tmp_path}/cifar", "data.download=false",
                   "trainer.max_epochs=1", "trainer.progress_bar=false", "hydra.run.dir=run")
    assert_one_line_error(proc, "cifar-10-batches-py", "not a plain CIFAR-10 batch" if forged_record
                          else "not extracted from a verified archive")
    assert not marker.exists(), "loading the data set ran code from a batch file"
    assert not (tmp_path / "run").exists()


def test_the_payloads_are_live(tmp_path):
    """The control: the standard unpickler does run them, so a missing marker above means refusal."""
    pickle.loads(payload_bytes(tmp_path / "a"))
    with np.load(hostile_checkpoint(tmp_path / "evil.npz", "object_array", tmp_path / "b"), allow_pickle=True) as z:
        z["model/0.weight"]
    assert (tmp_path / "a").exists() and (tmp_path / "b").exists()
