"""Training and evaluation: the :class:`Trainer`, its callbacks and checkpoint I/O (no Hydra here)."""

from mlpframe.engine.callback import STATUSES, Callback, Run, TrainResult
from mlpframe.engine.callbacks import EarlyStopping, ModelCheckpoint, ProgressBar
from mlpframe.engine.checkpoint import (
    Checkpoint, CheckpointError, NonFiniteError, load_checkpoint, save_checkpoint,
)
from mlpframe.engine.metrics import METRIC_NAMES, Accumulator, epoch_seed, evaluate
from mlpframe.engine.state import TrainState
from mlpframe.engine.tensorboard import TensorBoardLogger, confusion_image, flatten_hparams
from mlpframe.engine.trainer import Trainer

__all__ = [
    "METRIC_NAMES", "STATUSES", "Accumulator", "Callback", "Checkpoint", "CheckpointError", "EarlyStopping",
    "ModelCheckpoint", "NonFiniteError", "ProgressBar", "Run", "TensorBoardLogger", "TrainResult", "TrainState",
    "Trainer", "confusion_image", "epoch_seed", "evaluate", "flatten_hparams", "load_checkpoint",
    "save_checkpoint",
]
