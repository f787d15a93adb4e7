"""MNIST and Fashion-MNIST from their standard gzipped IDX files.

Files under ``root``::

    train-images-idx3-ubyte.gz   train-labels-idx1-ubyte.gz
    t10k-images-idx3-ubyte.gz    t10k-labels-idx1-ubyte.gz

Both sets use these names, so give each its own ``root`` (the default does).
Each file is checked against its published MD5 (or the checksums passed in),
then its IDX header: magic number (2051 images, 2049 labels), counts that agree
between images and labels, and a payload of exactly the announced size.

Preprocessing: ``val_size`` of the 60,000 training images (default 5,000) are
split off by a permutation seeded with ``seed``; pixels are scaled to [0, 1]
and, with ``normalize``, standardised with the data set's usual mean and std.
The float32 splits are cached next to the raw files, keyed by the checksums and
these settings.
"""

from __future__ import annotations

import gzip
import logging
import struct
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mlpframe.data.dataset import apply_affine, check_val_size, label_array, split_indices
from mlpframe.data.download import Checksums, download_url, verify_file
from mlpframe.data.errors import DataError
from mlpframe.data.source import DataSource

log = logging.getLogger(__name__)

ROLES = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}
IMAGES_MAGIC, LABELS_MAGIC = 2051, 2049
DEFAULT_VAL_SIZE = 5000
CACHE_VERSION = 1


@dataclass(frozen=True)
class IdxSpec:
    """Where one MNIST-format data set comes from and how it is normalised."""

    name: str
    url: str
    md5: Mapping[str, str]
    mean: float
    std: float
    class_names: tuple[str, ...]


MNIST = IdxSpec(
    name="mnist",
    url="https://ossci-datasets.s3.amazonaws.com/mnist/",
    md5={
        "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
        "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
        "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
    },
    mean=0.1307, std=0.3081,
    class_names=tuple(str(d) for d in range(10)),
)
FASHION_MNIST = IdxSpec(
    name="fashion_mnist",
    url="http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    md5={
        "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
        "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
        "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
    },
    mean=0.2860, std=0.3530,
    class_names=("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                 "Ankle boot"),
)
SPECS = {s.name: s for s in (MNIST, FASHION_MNIST)}


def _per_file(spec: IdxSpec, kind: str, value: Mapping[str, str] | str | None) -> dict[str, str | None]:
    """``md5=``/``sha256=`` as {file name: digest}; keys may be file names or roles (``train_images``)."""
    if value is None or value == "":
        return dict.fromkeys(ROLES.values())
    if not isinstance(value, Mapping):
        raise DataError(
            f"{spec.name}: {kind} must map each file name ({', '.join(ROLES.values())}) to its checksum, "
            f"not {value!r}"
        )
    out = dict.fromkeys(ROLES.values())
    for key, digest in value.items():
        filename = ROLES.get(str(key), str(key))
        if filename not in out:
            raise DataError(f"{spec.name}: {kind} names an unknown file {key!r} (use {', '.join(ROLES.values())})")
        out[filename] = digest
    return out


class IdxSource(DataSource):
    """``"mnist"`` or ``"fashion_mnist"`` as float32 splits (see the module docstring).

    ``url`` is the base URL the four files are downloaded from; ``md5``/``sha256``
    map file names to expected checksums (default: the published MD5s).
    """

    shape = (1, 28, 28)
    default_val_size = DEFAULT_VAL_SIZE
    cache_version = CACHE_VERSION

    def __init__(self, spec: IdxSpec) -> None:
        self.spec, self.name = spec, spec.name

    def class_names(self, **_: object) -> list[str]:
        return list(self.spec.class_names)

    def expected(self, md5: Mapping[str, str] | None, sha256: Mapping[str, str] | None) -> dict[str, Checksums]:
        md5s, shas = _per_file(self.spec, "md5", md5), _per_file(self.spec, "sha256", sha256)
        expected = {}
        for filename in ROLES.values():
            given_md5, given_sha = md5s[filename], shas[filename]
            # a checksum given for a file replaces the published one for that file
            default_md5 = self.spec.md5[filename] if not (given_md5 or given_sha) else None
            expected[filename] = Checksums(given_md5 or default_md5, given_sha)
        return expected

    def cache_settings(self, *, md5: Mapping[str, str] | None, sha256: Mapping[str, str] | None) -> dict:
        return {"files": {f: c.as_dict() for f, c in self.expected(md5, sha256).items()}}

    def fetch(self, root: Path, *, download: bool, url: str | None, md5: Mapping[str, str] | None,
              sha256: Mapping[str, str] | None, progress: bool) -> dict[str, Path]:
        expected, base = self.expected(md5, sha256), url or self.spec.url
        return {role: _fetch(self.spec, root, filename, expected[filename], download=download,
                             url=base.rstrip("/") + "/" + filename, progress=progress)
                for role, filename in ROLES.items()}

    def preprocess(self, raw: dict[str, Path], *, val_size: int, seed: int, normalize: bool
                   ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        log.info("preprocessing %s (once; cached next to its files)", self.name)
        return _preprocess(self.spec, raw, val_size=val_size, seed=seed, normalize=normalize)


SOURCES = {name: IdxSource(spec) for name, spec in SPECS.items()}


def _fetch(spec: IdxSpec, root: Path, filename: str, expected: Checksums, *, download: bool, url: str,
           progress: bool) -> Path:
    path = root / filename
    if path.is_file():
        verify_file(path, expected, spec.name)
    elif download:
        download_url(url, path, expected, what=spec.name, progress=progress)
    else:
        raise DataError(
            f"{spec.name}: {filename} not found in {root} and download is off; download {url} and put it at "
            f"{path}, or turn download on"
        )
    return path


# ---------------------------------------------------------------------- IDX
def read_idx(path: Path, magic: int, what: str) -> np.ndarray:
    """A gzipped IDX file of unsigned bytes as a uint8 array, its header checked."""
    try:
        with gzip.open(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{what}: {path} is not a readable gzip file ({exc}); delete it so it is downloaded again"
                        ) from None
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(raw) < header or struct.unpack(">i", raw[:4])[0] != magic:
        found = struct.unpack(">i", raw[:4])[0] if len(raw) >= 4 else None
        raise DataError(f"{what}: {path} has magic number {found}, expected {magic}; it is not this IDX file")
    shape = struct.unpack(f">{ndim}i", raw[4:header])
    size = int(np.prod(shape, dtype=np.int64))
    if len(raw) - header != size:
        raise DataError(
            f"{what}: {path} announces {shape} bytes but holds {len(raw) - header}; it is truncated or corrupt, "
            "delete it so it is downloaded again"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def _images_and_labels(spec: IdxSpec, images: Path, labels: Path) -> tuple[np.ndarray, np.ndarray]:
    x = read_idx(images, IMAGES_MAGIC, spec.name)
    y = read_idx(labels, LABELS_MAGIC, spec.name)
    if x.shape[1:] != (28, 28):
        raise DataError(f"{spec.name}: {images} holds images of {x.shape[1:]}, expected (28, 28)")
    if len(x) != len(y):
        raise DataError(f"{spec.name}: {images} has {len(x)} images but {labels} has {len(y)} labels")
    if len(y) and int(y.max()) >= 10:
        raise DataError(f"{spec.name}: {labels} has label {int(y.max())}; labels must be 0..9")
    return x, y


def _preprocess(spec: IdxSpec, paths: dict[str, Path], *, val_size: int, seed: int, normalize: bool
                ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    x_all, y_all = _images_and_labels(spec, paths["train_images"], paths["train_labels"])
    x_test, y_test = _images_and_labels(spec, paths["test_images"], paths["test_labels"])
    val_size = check_val_size(spec.name, val_size, len(y_all))
    train_idx, val_idx = split_indices(len(y_all), val_size, seed)
    # x_float = (x / 255 - mean) / std as one multiply-add
    mean, std = (spec.mean, spec.std) if normalize else (0.0, 1.0)
    scale, shift = np.float64(1.0 / (255.0 * std)), np.float64(-mean / std)
    return {
        "train": (apply_affine(x_all, scale, shift, index=train_idx), label_array(y_all[train_idx])),
        "val": (apply_affine(x_all, scale, shift, index=val_idx), label_array(y_all[val_idx])),
        "test": (apply_affine(x_test, scale, shift), label_array(y_test)),
    }
