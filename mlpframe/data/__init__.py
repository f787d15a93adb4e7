"""Data sets (MNIST-1D, synthetic spirals, CIFAR-10, MNIST, Fashion-MNIST) and the DataLoader.

    >>> from mlpframe.data import load_dataset, DataLoader
    >>> ds = load_dataset("synthetic", n_samples=200, seed=0)
    >>> X, y = ds.train
    >>> X.dtype, y.dtype, ds.num_features, ds.num_classes
    (dtype('float32'), dtype('int64'), 2, 2)

Downloads are verified against checksums and written atomically; problems the
user can fix raise :class:`DataError` with a one-line message.
"""

from mlpframe.data.dataset import Dataset, default_root
from mlpframe.data.errors import DataError
from mlpframe.data.loader import DataLoader
from mlpframe.data.registry import DATASETS, load_dataset

__all__ = ["DATASETS", "DataError", "DataLoader", "Dataset", "default_root", "load_dataset"]
