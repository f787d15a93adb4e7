"""Checksums, streamed downloads and safe archive extraction.

Every file that ends up under its final name got there through
:func:`mlpframe.atomic.atomic_open`, after it was complete (and, for downloads,
after its checksum matched). An interrupted download or a crash mid-write leaves
at most a hidden ``.*.part`` file behind, never a truncated file under the real
name.
"""

from __future__ import annotations

import errno
import hashlib
import http.client
import logging
import os
import shutil
import tarfile
import urllib.error
import urllib.request
import zlib
from pathlib import Path

from mlpframe.atomic import atomic_open
from mlpframe.data.errors import DataError

log = logging.getLogger(__name__)

CHUNK = 1 << 20
TIMEOUT_S = 30.0


# ------------------------------------------------------------------ checksums
class Checksums:
    """Expected digests of one file: ``md5`` and/or ``sha256`` (hex, lower case).

    Empty when neither is known, which callers must treat as "cannot verify".
    """

    def __init__(self, md5: str | None = None, sha256: str | None = None) -> None:
        self.md5 = _hex_or_none(md5, "md5", 32)
        self.sha256 = _hex_or_none(sha256, "sha256", 64)

    def __bool__(self) -> bool:
        return bool(self.md5 or self.sha256)

    def as_dict(self) -> dict[str, str]:
        return {k: v for k, v in (("md5", self.md5), ("sha256", self.sha256)) if v}

    def mismatch(self, digests: dict[str, str]) -> str | None:
        """A description of the first expected digest ``digests`` does not match, else None."""
        for kind, want in self.as_dict().items():
            if digests[kind] != want:
                return f"{kind} {digests[kind]}, expected {want}"
        return None


def _hex_or_none(value: str | None, kind: str, length: int) -> str | None:
    if value is None or value == "":
        return None
    text = str(value).strip().lower()
    if len(text) != length or any(c not in "0123456789abcdef" for c in text):
        raise DataError(f"{kind}={value!r} is not a {kind} checksum ({length} hex digits)")
    return text


def file_digests(path: Path | str) -> dict[str, str]:
    """md5 and sha256 of a file, computed in one streamed pass."""
    md5, sha = hashlib.md5(usedforsecurity=False), hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            md5.update(chunk)
            sha.update(chunk)
    return {"md5": md5.hexdigest(), "sha256": sha.hexdigest()}


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def verify_file(path: Path, expected: Checksums, what: str) -> dict[str, str]:
    """The digests of ``path``; DataError when they do not match ``expected``."""
    digests = file_digests(path)
    bad = expected.mismatch(digests)
    if bad:
        raise DataError(
            f"{what}: {path} has {bad}: it is corrupt, truncated or not the expected file; "
            "delete it so it is downloaded again (or put the right file there)"
        )
    return digests


# ------------------------------------------------------------------ downloads
def download_url(
    url: str,
    dest: Path,
    expected: Checksums,
    *,
    what: str,
    progress: bool = True,
    timeout: float = TIMEOUT_S,
) -> dict[str, str]:
    """Stream ``url`` into ``dest``: temp file, progress bar, checksum check, rename.

    Returns the file's digests. Raises DataError (one line, naming ``dest``) when
    the server cannot be reached, the transfer breaks off, or the checksum does
    not match; ``dest`` is then untouched.
    """
    from tqdm.auto import tqdm

    if not expected:
        raise DataError(f"{what}: no checksum known for {url}; pass md5= or sha256= so the download can be verified")
    hand_fix = f"download {url} by hand and put it at {dest}"
    md5, sha = hashlib.md5(usedforsecurity=False), hashlib.sha256()
    log.info("downloading %s -> %s", url, dest)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        if not os.access(dest.parent, os.W_OK):
            raise PermissionError(errno.EACCES, "permission denied")
    except OSError as exc:
        raise DataError(f"{what}: cannot write to {dest.parent} ({exc.strerror or exc}); choose a writable root"
                        ) from None
    with atomic_open(dest, suffix=".part") as f:
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:
                total = response.headers.get("Content-Length")
                total = int(total) if total and total.isdigit() else None
                done = 0
                with tqdm(
                    total=total, unit="B", unit_scale=True, unit_divisor=1024,
                    desc=dest.name, disable=not progress, leave=False,
                ) as bar:
                    while chunk := response.read(CHUNK):
                        f.write(chunk)
                        md5.update(chunk)
                        sha.update(chunk)
                        done += len(chunk)
                        bar.update(len(chunk))
            if total is not None and done != total:
                raise DataError(
                    f"{what}: download of {url} broke off after {done} of {total} bytes; retry, or {hand_fix}"
                )
        except urllib.error.HTTPError as exc:
            raise DataError(
                f"{what}: {url} answered HTTP {exc.code} {exc.reason}; check the url, or {hand_fix}"
            ) from None
        except (TimeoutError, urllib.error.URLError, http.client.HTTPException, ConnectionError) as exc:
            reason = getattr(exc, "reason", None) or exc.__class__.__name__
            raise DataError(f"{what}: could not download {url} ({reason}); check the network, or {hand_fix}") from None
        except ValueError as exc:  # urlopen's "unknown url type"
            raise DataError(f"{what}: bad url {url!r} ({exc})") from None
        except OSError as exc:  # writing the file: disk full, quota
            raise DataError(f"{what}: could not write {dest} ({exc.strerror or exc}); free space or choose another root"
                            ) from None
        digests = {"md5": md5.hexdigest(), "sha256": sha.hexdigest()}
        bad = expected.mismatch(digests)
        if bad:
            raise DataError(
                f"{what}: the file downloaded from {url} has {bad}; nothing was saved. "
                "Check the url and checksum settings, or put the right file at " + str(dest)
            )
    return digests


# ----------------------------------------------------------------- extraction
def _is_within(path: Path, root: Path) -> bool:
    try:
        path.relative_to(root)
    except ValueError:
        return False
    return True


def safe_extract_tar(archive: Path, dest: Path, *, what: str, display_root: Path | None = None) -> None:
    """Extract ``archive`` into the folder ``dest``, refusing unsafe members.

    Refused (DataError, nothing of the archive left in ``dest``): absolute names,
    names with ``..`` that escape ``dest``, links, devices and other special
    files. Corrupt or truncated archives also raise DataError.
    """
    dest = dest.resolve()
    shown = display_root or dest
    try:
        with tarfile.open(archive, "r:*") as tar:
            members = tar.getmembers()
            for m in members:
                target = (dest / m.name).resolve()
                if os.path.isabs(m.name) or not _is_within(target, dest):
                    raise DataError(
                        f"{what}: archive {archive} has a member {m.name!r} that would be written outside "
                        f"{shown}; refusing to extract it (this is not the official archive)"
                    )
                if not (m.isfile() or m.isdir()):
                    raise DataError(
                        f"{what}: archive {archive} has a link or special file {m.name!r}; "
                        "refusing to extract it (this is not the official archive)"
                    )
            kwargs = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
            tar.extractall(dest, members=members, **kwargs)
    except DataError:
        raise
    except OSError as exc:
        if exc.errno is None:  # gzip.BadGzipFile and friends: bad bytes, not a bad disk
            raise _corrupt(archive, exc, what) from None
        raise DataError(f"{what}: cannot extract {archive} into {shown}: {exc.strerror}") from None
    except (tarfile.TarError, EOFError, zlib.error, ValueError) as exc:
        raise _corrupt(archive, exc, what) from None


def _corrupt(archive: Path, exc: BaseException, what: str) -> DataError:
    return DataError(
        f"{what}: archive {archive} is corrupt or truncated ({exc.__class__.__name__}: {exc}); "
        "delete it so it is downloaded again"
    )


def remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
