"""Data sets (MNIST-1D, synthetic spirals, CIFAR-10, MNIST, Fashion-MNIST, digits) and the DataLoader.

    >>> from mlpframe.data import load_dataset, DataLoader
    >>> ds = load_dataset("synthetic", n_samples=200, seed=0)
    >>> X, y = ds.train
    >>> X.dtype, y.dtype, ds.num_features, ds.num_classes
    (dtype('float32'), dtype('int64'), 2, 2)

``layout=`` arranges every example as a model reads it (``flat`` rows, ``channels``,
``sequence``; :mod:`mlpframe.data.layout`), ``shuffle_positions=True`` permutes its
positions once for every split. Downloads are verified against checksums and written atomically; problems the
user can fix raise :class:`DataError` with a one-line message.
"""

from mlpframe.data.dataset import Dataset, default_root
from mlpframe.data.errors import DataError
from mlpframe.data.loader import DataLoader
from mlpframe.data.layout import LAYOUTS
from mlpframe.data.registry import DATASETS, load_dataset
from mlpframe.data.source import DataSource

__all__ = ["DATASETS", "LAYOUTS", "DataError", "DataLoader", "DataSource", "Dataset", "default_root", "load_dataset"]
