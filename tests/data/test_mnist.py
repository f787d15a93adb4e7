"""MNIST and Fashion-MNIST from stand-in gzipped IDX files served from 127.0.0.1."""

from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest

from mlpframe.data import DataError, load_dataset, mnist
from mlpframe.data.testing import idx_bytes, write_idx_gz, write_mnist_files

from .helpers import md5_of

N_TRAIN, N_TEST, VAL = 120, 30, 20


@pytest.fixture
def served(server):
    files = write_mnist_files(server.folder, N_TRAIN, N_TEST, seed=4)
    return server, {name: md5_of(path) for name, path in files.items()}


def read_source(folder, prefix):
    with gzip.open(folder / f"{prefix}-images-idx3-ubyte.gz") as f:
        x = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28)
    with gzip.open(folder / f"{prefix}-labels-idx1-ubyte.gz") as f:
        y = np.frombuffer(f.read(), np.uint8, offset=8)
    return x, y


def load(name, root, **kw):
    kw.setdefault("val_size", VAL)
    kw.setdefault("progress", False)
    return load_dataset(name, root=root, **kw)


@pytest.mark.parametrize("name", ["mnist", "fashion_mnist"])
def test_download_and_load(tmp_path, served, name):
    server, md5s = served
    root = tmp_path / "root"
    # checksums keyed by file name or by role
    md5 = dict(md5s)
    md5["test_labels"] = md5.pop("t10k-labels-idx1-ubyte.gz")
    ds = load(name, root, url=server.url + "/", md5=md5)

    assert sorted(server.hits) == sorted(f"/{f}" for f in mnist.ROLES.values())
    spec = mnist.SPECS[name]
    assert ds.class_names == list(spec.class_names) and ds.num_classes == 10 and ds.num_features == 784
    assert [len(s[1]) for s in (ds.train, ds.val, ds.test)] == [N_TRAIN - VAL, VAL, N_TEST]
    x_test, y_test = read_source(server.folder, "t10k")
    np.testing.assert_array_equal(ds.test[1], y_test)
    want = (x_test.reshape(N_TEST, 784) / 255.0 - spec.mean) / spec.std
    np.testing.assert_allclose(ds.test[0], want, rtol=1e-5, atol=1e-5)
    x_train, y_train = read_source(server.folder, "train")
    assert sorted(np.concatenate([ds.train[1], ds.val[1]]).tolist()) == sorted(y_train.tolist())


def test_cache_reused_offline_and_raw_files_reread_offline(tmp_path, served):
    server, md5s = served
    root = tmp_path / "root"
    first = load("mnist", root, url=server.url, md5=md5s)
    server.stop()
    again = load("mnist", root, url=server.url, md5=md5s, download=False)
    np.testing.assert_array_equal(first.train[0], again.train[0])
    for cache in root.glob("mnist-preprocessed-*.npz"):
        cache.unlink()
    rebuilt = load("mnist", root, url=server.url, md5=md5s, download=False)
    np.testing.assert_array_equal(first.val[0], rebuilt.val[0])
    assert len(server.hits) == 4


def test_unflattened_and_unnormalised(tmp_path, served):
    server, md5s = served
    ds = load("fashion_mnist", tmp_path / "root", url=server.url, md5=md5s, flatten=False, normalize=False)
    assert ds.train[0].shape == (N_TRAIN - VAL, 1, 28, 28) and ds.num_features == 784
    x_test, _ = read_source(server.folder, "t10k")
    np.testing.assert_allclose(ds.test[0][:, 0], x_test / 255.0, rtol=1e-6)


def test_missing_file_with_download_off(tmp_path):
    root = tmp_path / "root"
    with pytest.raises(DataError) as err:
        load("mnist", root, download=False)
    msg = str(err.value)
    assert "\n" not in msg and str(root / "train-images-idx3-ubyte.gz") in msg and "download" in msg


def test_published_checksums_are_checked(tmp_path, served):
    server, _ = served
    root = tmp_path / "root"
    for f in mnist.ROLES.values():  # the stand-ins are not the real files
        (root / f).parent.mkdir(exist_ok=True)
        (root / f).write_bytes((server.folder / f).read_bytes())
    with pytest.raises(DataError, match="md5 .* expected f68b3c2dcbeaaa9fbdd348bbdeb94873"):
        load("mnist", root, download=False)


def test_checksum_mismatch_on_download_saves_nothing(tmp_path, served):
    server, md5s = served
    md5s = dict(md5s, **{"t10k-images-idx3-ubyte.gz": "0" * 32})
    root = tmp_path / "root"
    with pytest.raises(DataError, match="nothing was saved"):
        load("mnist", root, url=server.url, md5=md5s)
    assert not (root / "t10k-images-idx3-ubyte.gz").exists()
    assert not list(root.glob(".*.part"))


def test_truncated_download(tmp_path, served):
    server, md5s = served
    root = tmp_path / "root"
    with pytest.raises(DataError, match="broke off|could not download"):
        load("mnist", root, url=server.url + "/broken", md5=md5s)
    assert not any(root.glob("*.gz"))


def _replace(server, md5s, filename, data: bytes):
    (server.folder / filename).write_bytes(data)
    return dict(md5s, **{filename: md5_of(server.folder / filename)})


@pytest.mark.parametrize(
    ("filename", "data", "match"),
    [
        # labels where images belong: wrong magic number
        ("train-images-idx3-ubyte.gz", gzip.compress(idx_bytes(np.zeros(N_TRAIN, np.uint8))), "magic number 2049"),
        # a header announcing more images than the file holds
        ("train-images-idx3-ubyte.gz",
         gzip.compress(struct.pack(">4i", 2051, N_TRAIN + 5, 28, 28) + bytes(N_TRAIN * 784)), "truncated"),
        # a gzip stream cut in half
        ("t10k-labels-idx1-ubyte.gz", gzip.compress(idx_bytes(np.zeros(N_TEST, np.uint8)))[:20], "gzip"),
        # fewer labels than images
        ("t10k-labels-idx1-ubyte.gz", gzip.compress(idx_bytes(np.zeros(N_TEST - 1, np.uint8))), "labels"),
        # a label outside 0..9
        ("t10k-labels-idx1-ubyte.gz", gzip.compress(idx_bytes(np.full(N_TEST, 12, np.uint8))), "label 12"),
    ],
)
def test_invalid_idx_files(tmp_path, served, filename, data, match):
    server, md5s = served
    md5s = _replace(server, md5s, filename, data)
    with pytest.raises(DataError, match=match) as err:
        load("mnist", tmp_path / "root", url=server.url, md5=md5s)
    assert "\n" not in str(err.value)


def test_wrong_image_size(tmp_path, served):
    server, md5s = served
    write_idx_gz(server.folder / "t10k-images-idx3-ubyte.gz", np.zeros((N_TEST, 14, 14), np.uint8))
    md5s = dict(md5s, **{"t10k-images-idx3-ubyte.gz": md5_of(server.folder / "t10k-images-idx3-ubyte.gz")})
    with pytest.raises(DataError, match=r"\(14, 14\)"):
        load("mnist", tmp_path / "root", url=server.url, md5=md5s)


def test_checksum_settings_are_validated(tmp_path):
    with pytest.raises(DataError, match="must map each file name"):
        load("mnist", tmp_path, md5="f68b3c2dcbeaaa9fbdd348bbdeb94873")
    with pytest.raises(DataError, match="unknown file"):
        load("mnist", tmp_path, md5={"train.gz": "0" * 32})


def test_val_size_out_of_range(tmp_path, served):
    server, md5s = served
    with pytest.raises(DataError, match="val_size"):
        load("mnist", tmp_path / "root", url=server.url, md5=md5s, val_size=N_TRAIN)
