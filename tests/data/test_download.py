"""Checksums, streamed downloads and atomic writes."""

from __future__ import annotations

import hashlib

import pytest

from mlpframe.data import DataError
from mlpframe.atomic import atomic_open
from mlpframe.data.download import Checksums, download_url, file_digests, verify_file


def test_checksums_validate_and_compare(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"hello")
    digests = file_digests(path)
    assert digests == {"md5": hashlib.md5(b"hello").hexdigest(), "sha256": hashlib.sha256(b"hello").hexdigest()}
    assert Checksums(digests["md5"].upper(), digests["sha256"]).mismatch(digests) is None
    assert "sha256" in Checksums(None, "0" * 64).mismatch(digests)
    assert not Checksums() and Checksums(sha256="a" * 64)
    with pytest.raises(DataError, match="sha256"):
        Checksums(sha256="abc")
    with pytest.raises(DataError, match="corrupt, truncated"):
        verify_file(path, Checksums("0" * 32), "test")


def test_download_verifies_and_renames(tmp_path, server):
    (server.folder / "blob").write_bytes(b"x" * 3_000_000)
    dest = tmp_path / "out" / "blob"
    sha = hashlib.sha256(b"x" * 3_000_000).hexdigest()
    digests = download_url(f"{server.url}/blob", dest, Checksums(sha256=sha), what="test", progress=False)
    assert digests["sha256"] == sha and dest.read_bytes() == b"x" * 3_000_000
    assert [p.name for p in dest.parent.iterdir()] == ["blob"]


def test_download_with_progress_bar(tmp_path, server, capsys):
    (server.folder / "blob").write_bytes(b"y" * 10_000)
    dest = tmp_path / "blob"
    download_url(f"{server.url}/blob", dest, Checksums(md5=hashlib.md5(b"y" * 10_000).hexdigest()),
                 what="test", progress=True)
    assert "blob" in capsys.readouterr().err
    assert dest.is_file()


def test_mismatch_keeps_the_old_file(tmp_path, server):
    (server.folder / "blob").write_bytes(b"new")
    dest = tmp_path / "out" / "blob"
    dest.parent.mkdir()
    dest.write_bytes(b"old")
    with pytest.raises(DataError, match="nothing was saved"):
        download_url(f"{server.url}/blob", dest, Checksums(md5="0" * 32), what="test", progress=False)
    assert dest.read_bytes() == b"old"
    assert [p.name for p in dest.parent.iterdir()] == ["blob"]


def test_download_needs_a_checksum(tmp_path, server):
    with pytest.raises(DataError, match="no checksum"):
        download_url(f"{server.url}/blob", tmp_path / "blob", Checksums(), what="test", progress=False)
    assert server.hits == []


def test_bad_url(tmp_path):
    with pytest.raises(DataError, match="url"):
        download_url("not a url", tmp_path / "blob", Checksums(md5="0" * 32), what="test", progress=False)


def test_atomic_open_leaves_no_partial_file(tmp_path):
    dest = tmp_path / "file.npz"
    dest.write_bytes(b"previous")
    with pytest.raises(RuntimeError):
        with atomic_open(dest) as f:
            f.write(b"half")
            raise RuntimeError("crash mid-write")
    assert dest.read_bytes() == b"previous"
    assert [p.name for p in tmp_path.iterdir()] == ["file.npz"]
    with atomic_open(dest) as f:
        f.write(b"complete")
    assert dest.read_bytes() == b"complete"
