"""CIFAR-10 from a stand-in archive in the official format, served from 127.0.0.1."""

from __future__ import annotations

import io
import json
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest

from mlpframe.data import DataError, DataLoader, cifar10, load_dataset
from mlpframe.data.testing import CIFAR10_CLASSES, cifar10_batch, random_cifar10, write_cifar10_archive

from .helpers import md5_of, planted_pickle

N_TRAIN, N_TEST, VAL = 250, 40, 50
# the published per-channel statistics of CIFAR-10 (the DL1 homework's constants), written out here
# rather than read from the implementation, so that a typo there fails these tests
PUBLISHED_MEAN = (0.491, 0.482, 0.447)
PUBLISHED_STD = (0.247, 0.243, 0.262)


@pytest.fixture
def source():
    return random_cifar10(N_TRAIN, N_TEST, seed=1)


def expected_pixels(x_u8: np.ndarray, normalize: bool = True) -> np.ndarray:
    x = x_u8.reshape(len(x_u8), 3, 1024) / 255.0
    if normalize:
        x = (x - np.array(PUBLISHED_MEAN)[:, None]) / np.array(PUBLISHED_STD)[:, None]
    return x.reshape(len(x_u8), 3072)


def serve_archive(server, source, name="cifar-10-python.tar.gz", **kwargs) -> tuple[str, str]:
    path = write_cifar10_archive(server.folder / name, *source, **kwargs)
    return f"{server.url}/{name}", md5_of(path)


def no_leftovers(root: Path) -> bool:
    """Nothing half-written: no temporary files or extraction folders."""
    return not [p for p in root.rglob("*") if p.name.endswith(".part") or p.name.startswith(".cifar10-extract-")]


def load(root, **kw):
    kw.setdefault("val_size", VAL)
    kw.setdefault("progress", False)
    return load_dataset("cifar10", root=root, **kw)


def test_download_verify_extract_load(tmp_path, server, source):
    url, md5 = serve_archive(server, source)
    root = tmp_path / "root"
    ds = load(root, url=url, md5=md5)

    x_train, y_train, x_test, y_test = source
    assert server.hits == ["/cifar-10-python.tar.gz"]
    assert (root / "cifar-10-python.tar.gz").is_file()
    marker = json.loads((root / "cifar-10-batches-py" / cifar10.MARKER).read_text())
    assert marker["archive"]["md5"] == md5
    assert ds.name == "cifar10" and ds.num_classes == 10 and ds.class_names == CIFAR10_CLASSES
    assert ds.num_features == 3072
    assert [len(s[1]) for s in (ds.train, ds.val, ds.test)] == [N_TRAIN - VAL, VAL, N_TEST]
    for x, y in (ds.train, ds.val, ds.test):
        assert x.dtype == np.float32 and y.dtype == np.int64 and x.shape == (len(y), 3072)
    # test set: in file order, pixels standardised per channel with the homework's constants
    np.testing.assert_array_equal(ds.test[1], y_test)
    np.testing.assert_allclose(ds.test[0], expected_pixels(x_test), rtol=1e-5, atol=1e-5)
    # train + val: a seeded split of the five training batches, nothing lost or repeated
    got = np.concatenate([ds.train[0], ds.val[0]]).reshape(-1, 3, 1024)
    pixels = np.rint((got * np.array(PUBLISHED_STD)[:, None] + np.array(PUBLISHED_MEAN)[:, None]) * 255)
    source_row = {x.tobytes(): i for i, x in enumerate(x_train)}
    idx = np.array([source_row[r.astype(np.uint8).tobytes()] for r in pixels.reshape(len(got), 3072)])
    assert sorted(idx.tolist()) == list(range(N_TRAIN))
    np.testing.assert_array_equal(np.concatenate([ds.train[1], ds.val[1]]), y_train[idx])


def test_black_and_white_pixels_map_to_the_published_standard_scores(tmp_path, server):
    """Per channel, pixel 0 -> -mean/std and 255 -> (1 - mean)/std, worked out by hand from the constants."""
    x = np.zeros((2, 3, 1024), np.uint8)
    x[1] = 255
    x[:, :, 1:] = 17  # all but the first pixel of each channel: anything
    x_test, y_test = x.reshape(2, 3072), np.array([3, 5])
    url, md5 = serve_archive(server, (np.repeat(x_test, 5, axis=0), np.arange(10), x_test, y_test))
    ds = load(tmp_path / "root", url=url, md5=md5, val_size=5)
    first = ds.test[0].reshape(2, 3, 1024)[:, :, 0]  # (image, channel)
    # -0.491/0.247, -0.482/0.243, -0.447/0.262 and (1-0.491)/0.247, (1-0.482)/0.243, (1-0.447)/0.262
    np.testing.assert_allclose(first, [[-1.987854, -1.983539, -1.706107], [2.060729, 2.131687, 2.110687]],
                               rtol=0, atol=2e-6)


def test_split_is_seeded_and_sized(tmp_path, server, source):
    url, md5 = serve_archive(server, source)
    root = tmp_path / "root"
    a = load(root, url=url, md5=md5, seed=1)
    b = load(root, url=url, md5=md5, seed=1)
    c = load(root, url=url, md5=md5, seed=2)
    d = load(root, url=url, md5=md5, seed=1, val_size=20)
    np.testing.assert_array_equal(a.val[0], b.val[0])
    assert not np.array_equal(a.val[0], c.val[0])
    assert len(d.val[1]) == 20 and len(d.train[1]) == N_TRAIN - 20
    assert len(server.hits) == 1


def test_unnormalised_and_unflattened(tmp_path, server, source):
    url, md5 = serve_archive(server, source)
    ds = load(tmp_path / "root", url=url, md5=md5, normalize=False, flatten=False)
    assert ds.test[0].shape == (N_TEST, 3, 32, 32) and ds.num_features == 3072
    np.testing.assert_allclose(ds.test[0].reshape(N_TEST, -1), expected_pixels(source[2], normalize=False),
                               rtol=1e-6)
    assert 0.0 <= ds.train[0].min() and ds.train[0].max() <= 1.0


def test_cache_reused_offline(tmp_path, server, source):
    url, md5 = serve_archive(server, source)
    root = tmp_path / "root"
    first = load(root, url=url, md5=md5)
    server.stop()
    # preprocessed cache present: not even the batches are read
    (root / "cifar-10-batches-py" / "data_batch_1").unlink()
    again = load(root, url=url, md5=md5, download=False)
    for s in ("train", "val", "test"):
        np.testing.assert_array_equal(getattr(first, s)[0], getattr(again, s)[0])
        np.testing.assert_array_equal(getattr(first, s)[1], getattr(again, s)[1])


def test_archive_in_root_needs_no_network(tmp_path, closed_port_url, source):
    root = tmp_path / "root"
    root.mkdir()
    md5 = md5_of(write_cifar10_archive(root / "cifar-10-python.tar.gz", *source))
    ds = load(root, url=closed_port_url + "/x.tar.gz", md5=md5, download=False)
    assert len(ds.test[1]) == N_TEST
    # extracted folder alone (archive gone, cache gone) is still trusted: mlpframe verified and recorded it
    (root / "cifar-10-python.tar.gz").unlink()
    for cache in root.glob("cifar10-preprocessed-*.npz"):
        cache.unlink()
    again = load(root, md5=md5, download=False)
    np.testing.assert_array_equal(ds.train[0], again.train[0])


def test_corrupt_cache_is_rebuilt(tmp_path, server, source):
    url, md5 = serve_archive(server, source)
    root = tmp_path / "root"
    first = load(root, url=url, md5=md5)
    (cache,) = root.glob("cifar10-preprocessed-*.npz")
    cache.write_bytes(cache.read_bytes()[:1000])
    again = load(root, url=url, md5=md5, download=False)
    np.testing.assert_array_equal(first.train[0], again.train[0])
    assert np.load(cache)["train_x"].shape == first.train[0].shape


def test_missing_files_with_download_off(tmp_path):
    root = tmp_path / "empty"
    with pytest.raises(DataError) as err:
        load(root, download=False)
    msg = str(err.value)
    assert "\n" not in msg
    assert "cifar-10-python.tar.gz" in msg and str(root / "cifar-10-python.tar.gz") in msg
    assert not root.exists() or not any(root.iterdir())


def test_unreachable_server(tmp_path, closed_port_url):
    root = tmp_path / "root"
    with pytest.raises(DataError, match="could not download") as err:
        load(root, url=closed_port_url + "/cifar-10-python.tar.gz")
    assert str(root / "cifar-10-python.tar.gz") in str(err.value)
    assert not (root / "cifar-10-python.tar.gz").exists() and no_leftovers(root)


def test_http_error(tmp_path, server):
    with pytest.raises(DataError, match="HTTP 404"):
        load(tmp_path / "root", url=server.url + "/nothing-here.tar.gz")


def test_checksum_mismatch_never_unpickles_the_payload(tmp_path, server, source):
    canary = tmp_path / "payload-ran"
    # the payload is real: the standard unpickler runs it
    pickle.loads(planted_pickle(tmp_path / "control"))
    assert (tmp_path / "control").exists()

    url, _ = serve_archive(server, source, replace_members={"data_batch_1": planted_pickle(canary)})
    root = tmp_path / "root"
    with pytest.raises(DataError, match="md5") as err:
        load(root, url=url)  # the official md5 is expected: this archive is not it
    assert "\n" not in str(err.value)
    assert not canary.exists()
    assert not (root / "cifar-10-python.tar.gz").exists()
    assert not (root / "cifar-10-batches-py").exists() and no_leftovers(root)

    # the same archive placed in root by hand: refused before extraction
    (root / "cifar-10-python.tar.gz").write_bytes((server.folder / "cifar-10-python.tar.gz").read_bytes())
    with pytest.raises(DataError, match="md5"):
        load(root, download=False)
    assert not canary.exists() and not (root / "cifar-10-batches-py").exists()


def test_verified_archive_with_code_in_a_pickle_is_refused(tmp_path, server, source):
    canary = tmp_path / "payload-ran"
    url, md5 = serve_archive(server, source, replace_members={"data_batch_3": planted_pickle(canary)})
    with pytest.raises(DataError, match="not a plain CIFAR-10 batch"):
        load(tmp_path / "root", url=url, md5=md5)  # checksum matches, but the restricted unpickler refuses
    assert not canary.exists()


def test_hand_extracted_folder_is_not_unpickled(tmp_path, source):
    canary = tmp_path / "payload-ran"
    folder = tmp_path / "root" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for name in cifar10.OFFICIAL_FILE_MD5:
        (folder / name).write_bytes(planted_pickle(canary))
    with pytest.raises(DataError, match="not extracted from a verified archive"):
        load(tmp_path / "root", download=False)
    assert not canary.exists()


def test_file_changed_after_verification_is_refused(tmp_path, server, source):
    canary = tmp_path / "payload-ran"
    url, md5 = serve_archive(server, source)
    root = tmp_path / "root"
    load(root, url=url, md5=md5)
    for cache in root.glob("cifar10-preprocessed-*.npz"):
        cache.unlink()
    (root / "cifar-10-batches-py" / "data_batch_2").write_bytes(planted_pickle(canary))
    with pytest.raises(DataError, match="changed since it was verified"):
        load(root, url=url, md5=md5, download=False)
    assert not canary.exists()


def test_truncated_download(tmp_path, server, source):
    url, md5 = serve_archive(server, source)
    root = tmp_path / "root"
    with pytest.raises(DataError, match="broke off|could not download"):
        load(root, url=url.replace(server.url, server.url + "/broken"), md5=md5)
    assert not (root / "cifar-10-python.tar.gz").exists() and no_leftovers(root)


def test_truncated_archive_in_root(tmp_path, source):
    root = tmp_path / "root"
    root.mkdir()
    full = write_cifar10_archive(tmp_path / "full.tar.gz", *source).read_bytes()
    (root / "cifar-10-python.tar.gz").write_bytes(full[: len(full) // 2])
    # the official checksum catches it first ...
    with pytest.raises(DataError, match="corrupt, truncated"):
        load(root, download=False)
    # ... and with a checksum that matches the truncated bytes, extraction does
    with pytest.raises(DataError, match="corrupt or truncated"):
        load(root, download=False, md5=md5_of(root / "cifar-10-python.tar.gz"))
    assert not (root / "cifar-10-batches-py").exists() and no_leftovers(root)


@pytest.mark.parametrize("member", ["../escaped.txt", "cifar-10-batches-py/../../escaped.txt"])
def test_path_traversal_member_is_refused(tmp_path, server, source, member):
    url, md5 = serve_archive(server, source, extra_members={member: b"outside"})
    root = tmp_path / "a" / "root"
    with pytest.raises(DataError, match="outside"):
        load(root, url=url, md5=md5)
    assert not list(tmp_path.rglob("escaped.txt"))
    assert not (root / "cifar-10-batches-py").exists() and no_leftovers(root)


def test_link_member_is_refused(tmp_path, source):
    root = tmp_path / "root"
    root.mkdir()
    archive = write_cifar10_archive(root / "cifar-10-python.tar.gz", *source)
    with tarfile.open(archive, "r:gz") as tar:
        members = [(m, tar.extractfile(m).read() if m.isfile() else None) for m in tar.getmembers()]
    with tarfile.open(archive, "w:gz") as tar:
        for m, data in members:
            tar.addfile(m, None if data is None else io.BytesIO(data))
        link = tarfile.TarInfo("cifar-10-batches-py/passwd")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(link)
    with pytest.raises(DataError, match="link or special file"):
        load(root, md5=md5_of(archive), download=False)
    assert not (root / "cifar-10-batches-py").exists()


def test_archive_without_batches(tmp_path, server):
    path = server.folder / "cifar-10-python.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        info = tarfile.TarInfo("cifar-10-batches-py/readme.html")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"hi\n"))
    with pytest.raises(DataError, match="not a CIFAR-10 archive"):
        load(tmp_path / "root", url=f"{server.url}/cifar-10-python.tar.gz", md5=md5_of(path))


def test_malformed_batch_contents(tmp_path, server, source):
    bad = cifar10_batch(source[0][:10], source[1][:10], "b")
    bad = bad.replace(b"labels", b"lables")
    url, md5 = serve_archive(server, source, replace_members={"data_batch_2": bad})
    with pytest.raises(DataError, match="labels"):
        load(tmp_path / "root", url=url, md5=md5)


def test_bad_checksum_setting(tmp_path):
    with pytest.raises(DataError, match="md5"):
        load(tmp_path, md5="not-hex")


def test_train_one_epoch_on_downloaded_data(tmp_path, server):
    from mlpframe import get_backend, nn, optim

    url, md5 = serve_archive(server, random_cifar10(600, 100, seed=3))
    ds = load(tmp_path / "root", url=url, md5=md5, val_size=100)
    be = get_backend("numpy")
    model = nn.MLP(ds.num_features, [32], ds.num_classes, rng=np.random.default_rng(0)).to(be)
    crit = nn.CrossEntropyLoss()
    opt = optim.SGD(model.parameters(), lr=0.05)
    loader = DataLoader(*ds.train, 50, be, shuffle=True, drop_last=True, seed=0)

    def accuracy(split):
        model.eval()
        pred = np.argmax(be.to_numpy(model(be.asarray(split[0]))), axis=1)
        model.train()
        return float(np.mean(pred == split[1]))

    before = accuracy(ds.val)
    for epoch in range(3):
        loader.set_epoch(epoch)
        for xb, yb in loader:
            model.zero_grad()
            loss = crit(model(xb), yb)
            model.backward(crit.backward())
            opt.step()
        assert np.isfinite(be.to_numpy(loss))
    assert accuracy(ds.val) > max(0.3, before + 0.1)


def test_hand_extracted_official_folder_is_accepted(tmp_path, source, monkeypatch):
    root = tmp_path / "root"
    root.mkdir()
    archive = write_cifar10_archive(tmp_path / "cifar-10-python.tar.gz", *source)
    with tarfile.open(archive) as tar:
        tar.extractall(root, filter="data")
    folder = root / "cifar-10-batches-py"
    # pretend the stand-in's files are the official ones: their per-file md5s are then known
    monkeypatch.setattr(cifar10, "OFFICIAL_FILE_MD5", {n: md5_of(folder / n) for n in cifar10.OFFICIAL_FILE_MD5})
    ds = load(root, download=False)
    np.testing.assert_array_equal(ds.test[1], source[3])
    assert json.loads((folder / cifar10.MARKER).read_text())["official"] is True

    (folder / cifar10.MARKER).unlink()
    for cache in root.glob("cifar10-preprocessed-*.npz"):
        cache.unlink()
    (folder / "test_batch").write_bytes((folder / "test_batch").read_bytes()[:-1] + b"X")
    with pytest.raises(DataError, match="do not match the official"):
        load(root, download=False)
