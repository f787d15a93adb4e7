"""mlpframe.atomic: complete files only, no temporary left behind, permissions as open() gives them."""

from __future__ import annotations

import os
import stat

import pytest

from mlpframe.atomic import atomic_open, write_atomic


def test_the_file_gets_open_s_permissions_under_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        write_atomic(tmp_path / "a.json", "{}")
        with open(tmp_path / "plain", "w") as f:
            f.write("{}")
    finally:
        os.umask(old)
    mode = stat.S_IMODE((tmp_path / "a.json").stat().st_mode)
    assert mode == stat.S_IMODE((tmp_path / "plain").stat().st_mode) == 0o644


def test_a_failing_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "m.bin"
    write_atomic(target, b"old")
    with pytest.raises(RuntimeError), atomic_open(target) as f:
        f.write(b"new, half")
        raise RuntimeError("disk on fire")
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.bin"]
