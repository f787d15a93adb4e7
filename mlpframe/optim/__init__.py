"""Optimizers, learning-rate schedules and gradient clipping.

Every update runs in place on the parameters' own device, using only the array API
standard (so NumPy, CuPy and ``array_api_strict`` share one code path) and never
waits for the device. Numerics follow PyTorch's algorithms of the same names.
"""

from mlpframe.optim.adam import Adam, AdamW
from mlpframe.optim.clip import clip_grad_norm_
from mlpframe.optim.factory import OPTIMIZERS, SCHEDULERS, build_optimizer, build_scheduler
from mlpframe.optim.lr_scheduler import CosineAnnealingLR, LinearWarmup, LRScheduler, StepLR
from mlpframe.optim.optimizer import Optimizer
from mlpframe.optim.sgd import SGD

__all__ = [
    "OPTIMIZERS", "SCHEDULERS", "SGD", "Adam", "AdamW", "CosineAnnealingLR", "LRScheduler",
    "LinearWarmup", "Optimizer", "StepLR", "build_optimizer", "build_scheduler", "clip_grad_norm_",
]
