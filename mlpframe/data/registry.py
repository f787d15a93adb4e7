"""The data-set registry: ``load_dataset(name, ...)`` runs one skeleton for every data set.

A data set is a :class:`DataSource` registered in ``SOURCES``. It says only what
differs between data sets: where its raw data come from (``fetch``: download and
verify files, read a bundled copy, or generate them), how they become float32
splits (``preprocess``), and what its cached splits depend on. The skeleton,
written once here, does the rest in the same order for all of them::

    root  -> cache (preprocessed splits, keyed by the settings) -> fetch -> preprocess
          -> save the cache -> the natural shape -> shuffle positions? -> the model's layout

Every data config carries the same keys (``root``, ``download``, ``url``, ``md5``,
``sha256``, ``val_size``, ``normalize``, ``flatten``), so a data set accepts the
ones that do not concern it (a URL for generated MNIST-1D) and ignores them.
Adding a data set: a ``DataSource`` subclass in its own module, named in ``_MODULES``.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping
from typing import Any

from mlpframe.data.dataset import SPLITS, Dataset, cache_key, load_splits, resolve_root, save_splits
from mlpframe.data.errors import DataError
from mlpframe.data.layout import arrange, shuffle_positions as shuffle_dataset_positions
from mlpframe.data.source import DataSource


_MODULES = {  # name -> module holding its SOURCE (imported on first use: some need optional packages)
    "mnist1d": "mlpframe.data.mnist1d",
    "synthetic": "mlpframe.data.synthetic",
    "cifar10": "mlpframe.data.cifar10",
    "mnist": "mlpframe.data.mnist",
    "fashion_mnist": "mlpframe.data.mnist",
    "digits": "mlpframe.data.digits",
}
DATASETS = tuple(_MODULES)


def get_source(name: str) -> DataSource:
    if name not in _MODULES:
        raise DataError(f"data.name={name!r} is not a known data set; choose one of {', '.join(DATASETS)}")
    return importlib.import_module(_MODULES[name]).SOURCES[name]


def _all_options() -> set[str]:
    return {k for name in DATASETS for k in get_source(name).options} | {"batch_size"}


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
    layout: str | None = None,
    shuffle_positions: bool = False,
    positions_seed: int = 0,
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
            data set's default: 5000 for the image sets, 500 for MNIST-1D, 10 % for synthetic and digits).
        seed: seeds the train/validation split (and the synthetic data).
        flatten: images as ``(N, D)`` rows (else their natural shape ``(N, C, H, W)``).
        normalize: standardise features (fixed published constants for image sets,
            training-split statistics otherwise); else pixels in [0, 1].
        progress: show a progress bar while downloading.
        layout: ``"flat"``, ``"channels"`` or ``"sequence"`` (see :mod:`mlpframe.data.layout`);
            None: ``"flat"`` when ``flatten``, else the natural shape.
        shuffle_positions: permute the positions of every example by one permutation
            drawn from ``positions_seed``, the same for every split.
        **options: data-set specific (synthetic: ``n_samples``, ``num_classes``,
            ``noise``, ``turns``, ``test_size``); options meant for other data sets
            and options set to None are ignored.

    Raises:
        DataError: a problem the user can fix; its one-line message says how.
    """
    source = get_source(name)
    unknown = sorted(k for k, v in options.items() if k not in _all_options() and v is not None)
    if unknown:
        raise DataError(f"{name}: unknown data option(s) {', '.join(unknown)}")
    own = {k: v for k, v in options.items() if k in source.options and v is not None}
    seed = int(seed)
    root = resolve_root(name, root)
    val_size = source.default_val_size if val_size is None else val_size

    splits, cache = None, None
    if source.cached:
        key = cache_key(dataset=name, **source.cache_settings(md5=md5, sha256=sha256), val_size=val_size,
                        seed=seed, normalize=bool(normalize), version=source.cache_version)
        cache = root / f"{name}-preprocessed-{key}.npz"
        splits = load_splits(cache)
    if splits is None:
        raw = source.fetch(root, download=download, url=url, md5=md5, sha256=sha256, progress=progress)
        splits = source.preprocess(raw, val_size=val_size, seed=seed, normalize=normalize, **own)
        if cache is not None:
            save_splits(cache, splits)
    natural = {s: (x.reshape(len(x), *source.shape), y) for s, (x, y) in splits.items()}
    ds = Dataset(name, *(natural[s] for s in SPLITS), num_classes=len(source.class_names(**own)),
                 class_names=source.class_names(**own))
    if shuffle_positions:
        ds = shuffle_dataset_positions(ds, int(positions_seed))
    layout = layout or ("flat" if flatten else None)
    return ds if layout is None else arrange(ds, layout)
