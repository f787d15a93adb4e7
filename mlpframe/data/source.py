"""What a data set supplies to the registry's loading skeleton (:func:`mlpframe.data.load_dataset`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from mlpframe.data.dataset import Split


class DataSource:
    """One data set's own steps; :func:`load_dataset` runs them in the shared skeleton.

    Class attributes: ``name``; ``shape``, one example's natural shape (``(L,)`` for a
    signal, ``(C, H, W)`` for images); ``default_val_size`` (None: the source decides);
    ``options``, the data-set specific keyword names it takes; ``cached``, whether the
    preprocessed splits are worth caching under ``root``; ``cache_version``, bumped when
    ``preprocess`` changes.
    """

    name: ClassVar[str]
    shape: ClassVar[tuple[int, ...]]
    default_val_size: ClassVar[int | None] = None
    options: ClassVar[tuple[str, ...]] = ()
    cached: ClassVar[bool] = True
    cache_version: ClassVar[int] = 1

    def class_names(self, **options: Any) -> list[str]:
        return [str(k) for k in range(10)]

    def cache_settings(self, *, md5: Any, sha256: Any) -> dict[str, Any]:
        """What the cached splits depend on besides ``val_size``, ``seed`` and ``normalize`` (the raw files)."""
        return {}

    def fetch(self, root: Path, *, download: bool, url: str | None, md5: Any, sha256: Any, progress: bool) -> Any:
        """The raw data, verified (downloading only when ``download``); raises :class:`DataError`."""
        raise NotImplementedError

    def preprocess(self, raw: Any, *, val_size: int | None, seed: int, normalize: bool,
                   **options: Any) -> dict[str, Split]:
        """``{"train", "val", "test"}`` float32 ``(N, ...)`` / int64 ``(N,)`` arrays."""
        raise NotImplementedError
