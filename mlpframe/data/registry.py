"""``load_dataset(name, ...)``: one entry point for every data set, with one set of keyword names.

Every data config carries the same keys (``root``, ``download``, ``url``, ``md5``,
``sha256``, ``val_size``, ``normalize``, ``flatten``), so a data set accepts the
ones that do not concern it (a URL for generated MNIST-1D) and ignores them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from mlpframe.data.dataset import Dataset
from mlpframe.data.errors import DataError

DATASETS = ("mnist1d", "synthetic", "cifar10", "mnist", "fashion_mnist")

# Options only some data sets use; the others ignore them so one config schema fits all.
_EXTRA_OPTIONS = {
    "synthetic": ("n_samples", "num_classes", "noise", "turns", "test_size"),
}
_ALL_EXTRA = {k for keys in _EXTRA_OPTIONS.values() for k in keys} | {"batch_size"}


def load_dataset(
    name: str,
    *,
    root: str | os.PathLike | None = None,
    download: bool = True,
    url: str | None = None,
    md5: str | Mapping[str, str] | None = None,
    sha256: str | Mapping[str, str] | None = None,
    val_size: int | None = None,
    seed: int = 42,
    flatten: bool = True,
    normalize: bool = True,
    progress: bool = True,
    **options: Any,
) -> Dataset:
    """Load (download, verify, cache) the data set ``name`` as float32 train/val/test splits.

    Args:
        name: one of ``DATASETS``.
        root: folder holding the data set's files (default ``$MLPFRAME_DATA/<name>``
            or ``~/.cache/mlpframe/data/<name>``).
        download: fetch missing files; when False a missing file is a DataError.
        url: where to download from (for MNIST-style sets, the base URL of the four files).
        md5, sha256: expected checksums overriding the published ones (CIFAR-10: of
            the archive; MNIST-style sets: a mapping from file name to checksum).
        val_size: samples split off the training set for validation (None: the
            data set's default: 5000 for the image sets, 500 for MNIST-1D, 10 % for synthetic).
        seed: seeds the train/validation split (and the synthetic data).
        flatten: images as ``(N, D)`` rows (else ``(N, C, H, W)``).
        normalize: standardise features (fixed published constants for image sets,
            training-split statistics otherwise); else pixels in [0, 1].
        progress: show a progress bar while downloading.
        **options: data-set specific (synthetic: ``n_samples``, ``num_classes``,
            ``noise``, ``turns``, ``test_size``); options meant for other data sets
            and options set to None are ignored.

    Raises:
        DataError: a problem the user can fix; its one-line message says how.
    """
    if name not in DATASETS:
        raise DataError(f"data.name={name!r} is not a known data set; choose one of {', '.join(DATASETS)}")
    unknown = sorted(k for k, v in options.items() if k not in _ALL_EXTRA and v is not None)
    if unknown:
        raise DataError(f"{name}: unknown data option(s) {', '.join(unknown)}")
    own = {k: v for k, v in options.items() if k in _EXTRA_OPTIONS.get(name, ()) and v is not None}
    seed = int(seed)

    if name == "mnist1d":
        from mlpframe.data.mnist1d import load_mnist1d

        return load_mnist1d(root, val_size=val_size, seed=seed, normalize=normalize)
    if name == "synthetic":
        from mlpframe.data.synthetic import load_synthetic

        return load_synthetic(val_size=val_size, seed=seed, normalize=normalize, **own)
    if name == "cifar10":
        from mlpframe.data.cifar10 import load_cifar10

        return load_cifar10(root, download=download, url=url, md5=md5, sha256=sha256, val_size=val_size,
                            seed=seed, flatten=flatten, normalize=normalize, progress=progress)
    from mlpframe.data.mnist import load_idx_dataset

    return load_idx_dataset(name, root, download=download, url=url, md5=md5, sha256=sha256, val_size=val_size,
                            seed=seed, flatten=flatten, normalize=normalize, progress=progress)
