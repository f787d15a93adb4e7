"""CIFAR-10 from its official "python version" archive, preprocessed as the DL1 homework does.

Files under ``root`` (either is enough)::

    cifar-10-python.tar.gz            the archive (md5 c58f30108f718f92721af3b95e74349a)
    cifar-10-batches-py/              the folder it extracts to: data_batch_1..5,
                                      test_batch, batches.meta (pickled dicts)

Safety. The batches are Python pickles, and unpickling runs code. A batch is
unpickled only when its bytes match a SHA-256 recorded in
``cifar-10-batches-py/.mlpframe-verified.json`` at the moment mlpframe extracted
it from an archive whose checksum it had just verified (or, for a folder the
user extracted, when every file matches the official per-file MD5). Even then
the restricted unpickler of :mod:`mlpframe.data.safe_pickle` allows nothing but
plain data and NumPy's uint8 arrays.

Preprocessing: the 50,000 training images are split 45,000 / 5,000 (``val_size``)
by a permutation seeded with ``seed``; pixels are scaled to [0, 1] and, with
``normalize``, standardised per channel with the homework's constants. The
float32 result is cached next to the raw files as one ``.npz`` keyed by the
archive checksum and these settings, so a second run reads it back directly.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from pathlib import Path

import numpy as np

from mlpframe.data.dataset import (
    Dataset,
    apply_affine,
    cache_key,
    check_val_size,
    label_array,
    load_splits,
    resolve_root,
    save_splits,
    split_indices,
)
from mlpframe.atomic import atomic_open
from mlpframe.data.download import (
    Checksums,
    download_url,
    file_digests,
    remove_tree,
    safe_extract_tar,
    sha256_bytes,
    verify_file,
)
from mlpframe.data.errors import DataError
from mlpframe.data.safe_pickle import restricted_loads
from mlpframe.data.testing import CIFAR10_CLASSES

log = logging.getLogger(__name__)

NAME = "cifar10"
URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
ARCHIVE = "cifar-10-python.tar.gz"
ARCHIVE_MD5 = "c58f30108f718f92721af3b95e74349a"
FOLDER = "cifar-10-batches-py"
MARKER = ".mlpframe-verified.json"
TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_FILE = "test_batch"
META_FILE = "batches.meta"
# MD5 of each file of the official extracted folder (published with torchvision's loader).
OFFICIAL_FILE_MD5 = {
    "data_batch_1": "c99cafc152244af753f735de768cd75f",
    "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
    "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
    "data_batch_4": "634d18415352ddfa80567beed471001a",
    "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
    "test_batch": "40351d587109b95175f43aff81a1287e",
    "batches.meta": "5ff9c542aee3614f3951f8cda6e48888",
}
MEAN = (0.491, 0.482, 0.447)  # per channel, pixels in [0, 1]: the homework's constants
STD = (0.247, 0.243, 0.262)
DEFAULT_VAL_SIZE = 5000
PIXELS = 32 * 32
IMAGE_SHAPE = (3, 32, 32)
CACHE_VERSION = 1


def load_cifar10(
    root: str | os.PathLike | None = None,
    *,
    download: bool = True,
    url: str | None = None,
    md5: str | None = None,
    sha256: str | None = None,
    val_size: int | None = None,
    seed: int = 42,
    flatten: bool = True,
    normalize: bool = True,
    progress: bool = True,
) -> Dataset:
    """CIFAR-10 as float32 splits (see the module docstring for files, safety and caching).

    ``md5``/``sha256`` are the archive's expected checksums (default: the official
    md5); ``url`` where to download it from. Raises :class:`DataError`.
    """
    root = resolve_root(NAME, root)
    val_size = DEFAULT_VAL_SIZE if val_size is None else val_size
    expected = Checksums(md5 if md5 or sha256 else ARCHIVE_MD5, sha256)
    key = cache_key(dataset=NAME, archive=expected.as_dict(), val_size=val_size, seed=seed,
                    normalize=bool(normalize), version=CACHE_VERSION)
    cache = root / f"cifar10-preprocessed-{key}.npz"
    splits = load_splits(cache)
    if splits is None:
        folder, files = _verified_folder(root, expected, download=download, url=url or URL, progress=progress)
        log.info("preprocessing CIFAR-10 from %s (once; cached as %s)", folder, cache.name)
        splits = _preprocess(folder, files, val_size=val_size, seed=seed, normalize=normalize)
        save_splits(cache, splits)
    if not flatten:
        splits = {s: (x.reshape(len(x), *IMAGE_SHAPE), y) for s, (x, y) in splits.items()}
    return Dataset(NAME, splits["train"], splits["val"], splits["test"], num_classes=10,
                   class_names=list(CIFAR10_CLASSES))


# ----------------------------------------------------------- verified files
def _read_marker(folder: Path) -> dict | None:
    try:
        marker = json.loads((folder / MARKER).read_text())
    except (OSError, ValueError):
        return None
    files = marker.get("files") if isinstance(marker, dict) else None
    if not isinstance(files, dict) or set(files) != set(OFFICIAL_FILE_MD5):
        return None
    return marker


def _marker_matches(marker: dict, expected: Checksums) -> bool:
    if marker.get("official") is True:
        return True  # the official files are what any archive checksum is meant to guarantee
    archive = marker.get("archive") or {}
    return all(archive.get(kind) == want for kind, want in expected.as_dict().items())


def _write_marker(folder: Path, marker: dict) -> None:
    with atomic_open(folder / MARKER, "w") as f:
        json.dump(marker, f, indent=1, sort_keys=True)


def _official_folder_files(folder: Path) -> dict[str, str] | None:
    """SHA-256 of each file when the folder holds exactly the official files, else None."""
    files = {}
    for name, want in OFFICIAL_FILE_MD5.items():
        path = folder / name
        if not path.is_file():
            return None
        digests = file_digests(path)
        if digests["md5"] != want:
            return None
        files[name] = digests["sha256"]
    return files


def _verified_folder(root: Path, expected: Checksums, *, download: bool, url: str, progress: bool
                     ) -> tuple[Path, dict[str, str]]:
    """The extracted folder and its files' SHA-256, extracting (and downloading) when needed."""
    folder, archive = root / FOLDER, root / ARCHIVE
    marker = _read_marker(folder)
    if marker is not None and _marker_matches(marker, expected):
        return folder, marker["files"]
    if folder.is_dir() and marker is None:
        files = _official_folder_files(folder)
        if files is not None:
            try:  # records the check so later loads skip it; a read-only folder just repeats it
                _write_marker(folder, {"official": True, "files": files})
            except OSError as exc:
                log.warning("could not record the verification in %s (%s)", folder, exc)
            return folder, files
        if not archive.is_file():
            raise DataError(
                f"{NAME}: {folder} was not extracted from a verified archive and its files do not match the "
                f"official CIFAR-10 checksums, so it is not unpickled; delete it and put {ARCHIVE} in {root} "
                "(or let mlpframe download it)"
            )
    if archive.is_file():
        digests = verify_file(archive, expected, NAME)
    elif download:
        digests = download_url(url, archive, expected, what=NAME, progress=progress)
    else:
        raise DataError(
            f"{NAME}: {ARCHIVE} not found in {root} and download is off; download {URL} and put it at "
            f"{archive} (or its extracted folder {FOLDER}/ in {root}), or turn download on"
        )
    files = _extract(archive, root, digests)
    return folder, files


def _extract(archive: Path, root: Path, digests: dict[str, str]) -> dict[str, str]:
    """Extract a verified archive next to it and record what was verified; returns the files' SHA-256."""
    log.info("extracting %s", archive)
    try:
        tmp = Path(tempfile.mkdtemp(dir=root, prefix=".cifar10-extract-"))
    except OSError as exc:
        raise DataError(f"{NAME}: cannot extract {archive}: {root} is not writable ({exc.strerror}); "
                        f"extract it there by hand or use a writable root") from None
    try:
        safe_extract_tar(archive, tmp, what=NAME, display_root=root)
        new = tmp / FOLDER
        files = {}
        for name in OFFICIAL_FILE_MD5:
            if not (new / name).is_file():
                raise DataError(f"{NAME}: archive {archive} has no {FOLDER}/{name}; it is not a CIFAR-10 archive")
            files[name] = file_digests(new / name)["sha256"]
        _write_marker(new, {"archive": {"name": ARCHIVE, **digests}, "files": files})
        folder = root / FOLDER
        if folder.exists():  # ours, extracted under other checksum settings: replace it
            os.replace(folder, tmp / "previous")
        os.replace(new, folder)
        return files
    finally:
        remove_tree(tmp)


# ----------------------------------------------------------------- batches
def _read_batch(path: Path, sha256: str) -> dict:
    data = path.read_bytes()
    if sha256_bytes(data) != sha256:
        raise DataError(
            f"{NAME}: {path} changed since it was verified, so it is not unpickled; "
            f"delete {path.parent} so it is extracted again from {ARCHIVE}"
        )
    batch = restricted_loads(data, source=str(path))
    if not isinstance(batch, dict):
        raise DataError(f"{NAME}: {path} does not hold a dict; it is not a CIFAR-10 batch")
    return batch


def _read_images(path: Path, sha256: str) -> tuple[np.ndarray, np.ndarray]:
    batch = _read_batch(path, sha256)
    x, y = batch.get(b"data"), batch.get(b"labels")
    if not (isinstance(x, np.ndarray) and x.dtype == np.uint8 and x.ndim == 2 and x.shape[1] == 3 * PIXELS):
        raise DataError(f"{NAME}: {path} has no uint8 (N, 3072) b'data' array; it is not a CIFAR-10 batch")
    if not isinstance(y, list) or len(y) != len(x) or not all(type(v) is int and 0 <= v < 10 for v in y):
        raise DataError(f"{NAME}: {path} has no list of {len(x)} labels in 0..9; it is not a CIFAR-10 batch")
    return x, np.asarray(y, dtype=np.int64)


def _preprocess(folder: Path, files: dict[str, str], *, val_size: int, seed: int, normalize: bool
                ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Float32 train/val/test splits; the float training set is the only big float array built."""
    parts = [_read_images(folder / name, files[name]) for name in TRAIN_FILES]
    x_all = np.concatenate([x for x, _ in parts])  # uint8 (50000, 3072)
    y_all = np.concatenate([y for _, y in parts])
    del parts
    x_test, y_test = _read_images(folder / TEST_FILE, files[TEST_FILE])
    val_size = check_val_size(NAME, val_size, len(y_all))
    train_idx, val_idx = split_indices(len(y_all), val_size, seed)

    # x_float = (x / 255 - mean_c) / std_c as one multiply-add per feature (channel-major layout)
    if normalize:
        std, mean = np.repeat(np.asarray(STD), PIXELS), np.repeat(np.asarray(MEAN), PIXELS)
        scale, shift = 1.0 / (255.0 * std), -mean / std
    else:
        scale, shift = np.full(3 * PIXELS, 1.0 / 255.0), np.zeros(3 * PIXELS)
    return {
        "train": (apply_affine(x_all, scale, shift, index=train_idx), label_array(y_all[train_idx])),
        "val": (apply_affine(x_all, scale, shift, index=val_idx), label_array(y_all[val_idx])),
        "test": (apply_affine(x_test, scale, shift), label_array(y_test)),
    }
