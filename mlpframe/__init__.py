"""mlpframe: neural networks with hand-written backprop, on NumPy or CuPy."""

from mlpframe import nn, optim
from mlpframe.backend import Backend, BackendUnavailableError, array_namespace, get_backend

__all__ = ["Backend", "BackendUnavailableError", "array_namespace", "get_backend", "nn", "optim"]
__version__ = "0.1.0"
