"""``tensorboard --logdir <sweep dir>``: every run listed, one HParams row per run (its HTTP API)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from tests.sweeps.conftest import overrides, read_metrics, run_dirs

# what TensorBoard's HParams dashboard posts for its table
SESSION_GROUPS = {"experimentName": "", "allowedStatuses": ["STATUS_UNKNOWN", "STATUS_SUCCESS", "STATUS_FAILURE",
                                                            "STATUS_RUNNING"],
                  "colParams": [], "startIndex": 0, "sliceSize": 1000}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def tensorboard(grid_sweep):
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "tensorboard.main", "--logdir", str(grid_sweep), "--host",
                             "127.0.0.1", "--port", str(port), "--reload_interval", "0"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                runs = get(base, "/data/runs")
                if len(runs) >= 4:
                    break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"tensorboard did not list the runs: {proc.stderr.read().decode()[-2000:]}"
                            if proc.poll() is not None else "tensorboard did not list the runs in 60 s")
            time.sleep(0.2)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        proc.stderr.close()


def get(base: str, path: str):
    with urllib.request.urlopen(base + path, timeout=10) as r:
        return json.load(r)


def post(base: str, path: str, body: dict):
    req = urllib.request.Request(base + path, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.load(r)


def test_tensorboard_lists_every_run_with_one_hparams_row_each(grid_sweep, tensorboard):
    dirs = run_dirs(grid_sweep)
    assert sorted(get(tensorboard, "/data/runs")) == sorted(f"{d.name}/tensorboard" for d in dirs)

    experiment = post(tensorboard, "/data/plugin/hparams/experiment", {"experimentName": ""})
    hparams = {h["name"]: h for h in experiment["hparamInfos"]}
    # the model and optimizer keys and those set on the command line; not every leaf of the config
    assert {"optimizer.lr", "optimizer.momentum", "model.hidden", "data.n_samples"} <= set(hparams)
    assert not {"seed", "trainer.log_every_n_steps", "trainer.eval_batch_size"} & set(hparams)
    # the swept keys are the ones TensorBoard marks as differing (it sorts them first)
    assert hparams["optimizer.lr"].get("differs") and hparams["model.hidden"].get("differs")
    assert not hparams["data.n_samples"].get("differs")
    assert {"val/acc_best", "test/acc"} <= {m["name"]["tag"] for m in experiment["metricInfos"]}

    groups = post(tensorboard, "/data/plugin/hparams/session_groups", SESSION_GROUPS)["sessionGroups"]
    assert len(groups) == len(dirs) == 4  # one row per run
    rows = {g["sessions"][0]["name"]: g for g in groups}
    for d in dirs:
        row = rows[f"{d.name}/tensorboard"]
        ov = dict(o.split("=", 1) for o in overrides(d))
        assert row["hparams"]["optimizer.lr"] == pytest.approx(float(ov["optimizer.lr"]))
        assert row["hparams"]["model.hidden"].replace(" ", "") == ov["model.hidden"]
        metrics = {m["name"]["tag"]: m["value"] for m in row["metricValues"]}
        expected = read_metrics(d)
        assert metrics["val/acc_best"] == pytest.approx(expected["val/acc_best"], abs=1e-6)
        assert metrics["test/acc"] == pytest.approx(expected["test/acc"], abs=1e-6)
