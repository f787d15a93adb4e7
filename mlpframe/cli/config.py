"""The config schema of every component: its keys, types, defaults, limits and choices, and its builder.

Each choice of a config group is one dataclass here (an optimizer, a schedule, a
model kind, a data set, …), registered with Hydra's ConfigStore as
``<group>/base_<name>``; ``conf/<group>/<name>.yaml`` selects it and may override
its defaults, nothing more. The dataclass is the single source of truth:

* defaults are its field defaults;
* types are checked by OmegaConf while Hydra composes the config;
* value rules (``integer``/``number``/``one_of`` of :mod:`mlpframe.cli.schema`) and
  cross-field rules (``check``) are checked by ``validate``, for a command line and
  for the config stored in a checkpoint alike (``evaluate`` rebuilds its model here);
* choices come from the library's registries (``optim.OPTIMIZERS``, ``nn.ACTIVATIONS``, …);
* ``build``/``load`` turn it into the library object.

Adding a component: a dataclass subclassing its group's base, entered in the
group's dict below (``MODELS``, ``DATASETS``, ``OPTIMIZERS``, ``SCHEDULERS``), and a
YAML file ``conf/<group>/<name>.yaml`` whose defaults list is ``[base_<name>, _self_]``.

A user's own model needs no schema: a model config without a defaults list, holding
``_target_: pkg.module.callable`` and the callable's keyword arguments, is a
:class:`TargetModelConfig` (:mod:`mlpframe.cli.target` imports and calls it). Hydra
composes it into the ``model`` node of the command's schema, which is therefore the
one node left open to keys no schema declares; every built-in model kind is stored
closed (struct), so ``model.hiden=…`` on an MLP stays a composition error.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Dict, List, Optional

import numpy as np
from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

from mlpframe.backend import BACKENDS
from mlpframe.cli.schema import ConfigError, Schema, integer, library_rules, number, one_of, require
from mlpframe.cli.target import call, check_allowed, check_keys, check_path, locate

MAX_DEPTH = 1000
TARGET = "target"  # the name of a model config that selects no built-in kind: a user's `_target_` callable


def _registry(module: str, name: str) -> Any:
    """A library registry's names, read when a value is checked (keeps this module's import light)."""
    import importlib

    return lambda: tuple(getattr(importlib.import_module(module), name))


# ------------------------------------------------------------------- backend
@dataclass
class BackendConfig(Schema):
    name: str = one_of("numpy", BACKENDS)
    device: Optional[int] = integer(None, 0)  # CUDA device index for cupy (None: device 0)


# ---------------------------------------------------------------------- data
@dataclass
class DataConfig(Schema):
    """Keys every data set takes; a data set ignores those that do not concern it (a URL for MNIST-1D)."""

    name: str = one_of(MISSING, _registry("mlpframe.data", "DATASETS"))
    root: Optional[str] = None  # None: $MLPFRAME_DATA/<name> or ~/.cache/mlpframe/data/<name>
    download: bool = True  # false: never touch the network; a missing file is an error naming where to put it
    url: Optional[str] = None  # None: the official address
    md5: Optional[Any] = None  # None: the published checksum(s); MNIST-style sets: a mapping file name -> md5
    sha256: Optional[Any] = None
    val_size: Optional[int] = integer(5000, 0)  # samples held out of the training set for validation
    batch_size: int = integer(128, 1)
    normalize: bool = True  # false: pixels in [0, 1]
    # None: the layout the model reads (MLP and logistic rows (N, D); CNN (N, C, L) or (N, C, H, W); GRU/LSTM
    # (N, T, F)); true: rows (N, D) whatever the model; false: keep the shape (an MLP then flattens itself)
    flatten: Optional[bool] = None
    # one fixed permutation of the positions (signal samples, image pixels), the same for every split and model
    shuffle_positions: bool = False
    positions_seed: int = integer(0, 0)  # draws that permutation (fixed: independent of the run's seed)

    def check(self, key: str) -> None:
        for name in ("md5", "sha256"):
            value = getattr(self, name)
            ok = value is None or isinstance(value, str) or (
                isinstance(value, Mapping) and all(isinstance(v, str) for v in value.values()))
            require(ok, f"{key}.{name}", f"must be a hex string or a mapping file name -> hex string, got {value!r}")

    def layout(self, model_layout: str) -> str:
        """The array layout the run uses: the model's, unless ``flatten`` says otherwise."""
        if self.flatten is None:
            return model_layout
        if self.flatten:
            return "flat"
        return "channels" if model_layout == "flat" else model_layout

    def load(self, *, seed: int, progress: bool = True, layout: str = "flat") -> Any:
        """The data set's float32 train/val/test splits (downloaded, verified and cached as needed),
        positions shuffled when asked, in the layout ``layout`` (the model's) resolved by :meth:`layout`."""
        from mlpframe.data import load_dataset

        return load_dataset(self.name, seed=seed, progress=progress, layout=self.layout(layout),
                            **self.kwargs("batch_size", "flatten"))


@dataclass
class MNIST1DData(DataConfig):
    """MNIST-1D (Greydanus 2020): 40-sample signals of the digits, generated offline; 4000 train / 1000 test."""

    name: str = "mnist1d"
    val_size: Optional[int] = 500


@dataclass
class SyntheticData(DataConfig):
    """Interleaved 2-d spirals drawn from the run's seed: an instant data set for quick checks and tests."""

    name: str = "synthetic"
    download: bool = False
    val_size: Optional[int] = None  # None: 10 % of n_samples
    batch_size: int = 64
    n_samples: Optional[int] = 2000
    num_classes: Optional[int] = 3
    noise: Optional[float] = 0.05
    turns: Optional[float] = 1.0
    test_size: Optional[int] = None  # None: 20 % of n_samples


@dataclass
class CIFAR10Data(DataConfig):
    """CIFAR-10 from the official python archive: 50000 train / 10000 test, 3x32x32."""

    name: str = "cifar10"


@dataclass
class MNISTData(DataConfig):
    """MNIST from the four gzipped IDX files: 60000 train / 10000 test, 1x28x28."""

    name: str = "mnist"


@dataclass
class FashionMNISTData(DataConfig):
    """Fashion-MNIST (Zalando): MNIST's format and sizes, ten kinds of clothing."""

    name: str = "fashion_mnist"


@dataclass
class DigitsData(DataConfig):
    """scikit-learn's bundled 8x8 digits (no download; ``pip install "mlpframe[digits]"``): 1797 images, 1x8x8;
    a fixed 360-image test split, ``val_size`` of the rest (None: 10 %) split with the run's seed."""

    name: str = "digits"
    download: bool = False
    val_size: Optional[int] = None
    batch_size: int = 64


DATASETS: dict[str, type[DataConfig]] = {
    "mnist1d": MNIST1DData, "synthetic": SyntheticData, "cifar10": CIFAR10Data, "mnist": MNISTData,
    "fashion_mnist": FashionMNISTData, "digits": DigitsData,
}


# --------------------------------------------------------------------- model
@dataclass
class ModelConfig(Schema):
    """Base of the model kinds: a kind builds its network for one example's shape and a class count.

    A model config that selects no kind stays this base, named ``target``: a user's ``_target_`` model
    (:func:`model_schema` turns it into a :class:`TargetModelConfig`).
    """

    name: str = one_of(TARGET, lambda: tuple(MODELS))
    # how the model reads one example: "flat" (D,), "channels" (C, L) or (C, H, W), "sequence" (T, F);
    # the data are arranged so (mlpframe.data.layout) unless data.flatten says otherwise
    layout: ClassVar[str] = "flat"

    def build(self, input_shape: tuple[int, ...], num_classes: int, *, rng: np.random.Generator,
              dtype: str) -> Any:
        raise NotImplementedError

    def criterion(self) -> Any:
        from mlpframe import nn

        return nn.CrossEntropyLoss()


def hidden_sizes(model: Mapping[str, Any], key: str = "hidden") -> list[int]:
    """The hidden widths the model config asks for: ``[width] * depth`` when either is set, else ``hidden``
    (``channels`` for a CNN: ``key``)."""
    hidden = list(model.get(key) or [])
    width, depth = model.get("width"), model.get("depth")
    if width is None and depth is None:
        return hidden
    if width is None:
        width = hidden[0] if hidden else None
    if depth is None:
        depth = len(hidden)
    return [width] * depth


@dataclass
class MLPConfig(ModelConfig):
    """``[Linear -> norm? -> activation -> Dropout?] * len(hidden) -> Linear (-> Softmax if output=softmax)``.

    ``width``/``depth``, when set, replace ``hidden`` (scalars an Optuna sweep can choose).
    """

    name: str = "mlp"
    hidden: List[int] = integer([256, 256], 1)
    width: Optional[int] = integer(None, 1)  # every hidden layer this wide (default: hidden[0])
    depth: Optional[int] = integer(None, 1)  # this many hidden layers (default: len(hidden))
    activation: str = one_of("gelu", _registry("mlpframe.nn", "ACTIVATIONS"))
    norm: Optional[str] = one_of(None, lambda: (None, *_registry("mlpframe.nn.mlp", "NORMS")()))
    dropout: float = number(0.2, 0.0, 1.0)
    # logits: cross-entropy on logits; softmax: a Softmax layer + cross-entropy on probabilities (DL1)
    output: str = one_of("logits", ("logits", "softmax"))
    label_smoothing: float = number(0.0, 0.0, 1.0)
    init: str = one_of("kaiming", _registry("mlpframe.nn.init", "INITS"))

    def check(self, key: str) -> None:
        require(len(self.hidden) <= MAX_DEPTH and (self.depth or 0) <= MAX_DEPTH, f"{key}.depth",
                f"at most {MAX_DEPTH} hidden layers (a larger number is taken for a typo)")
        sizes = hidden_sizes(vars(self))
        require(len(sizes) > 0 and all(h is not None for h in sizes), f"{key}.hidden",
                "needs at least one hidden layer width (e.g. model.hidden=[128], or model.width and model.depth)")

    def build(self, input_shape: tuple[int, ...], num_classes: int, *, rng: np.random.Generator,
              dtype: str) -> Any:
        from mlpframe import nn

        if len(input_shape) > 1:  # data.flatten=false: the MLP flattens each example itself
            return nn.Sequential(nn.Flatten(), MLPConfig.build(self, (math.prod(input_shape),), num_classes,
                                                               rng=rng, dtype=dtype))
        mlp = nn.MLP(math.prod(input_shape), hidden=hidden_sizes(vars(self)), out_features=num_classes,
                     activation=self.activation, norm=self.norm, dropout=float(self.dropout), rng=rng, dtype=dtype,
                     init=self.init)
        return nn.Sequential(mlp, nn.Softmax()) if self.output == "softmax" else mlp

    def criterion(self) -> Any:
        from mlpframe import nn

        return nn.CrossEntropyLoss(from_logits=self.output != "softmax", label_smoothing=float(self.label_smoothing))


@dataclass
class LogisticConfig(ModelConfig):
    """Multinomial logistic regression: one ``Linear`` layer on the flattened example, trained on logits."""

    name: str = "logistic"
    init: str = one_of("torch", _registry("mlpframe.nn.init", "INITS"))

    def build(self, input_shape: tuple[int, ...], num_classes: int, *, rng: np.random.Generator,
              dtype: str) -> Any:
        from mlpframe import nn

        linear = nn.Linear(math.prod(input_shape), num_classes, rng=rng, dtype=dtype, init=self.init,
                           nonlinearity="linear")
        return linear if len(input_shape) == 1 else nn.Sequential(nn.Flatten(), linear)


@dataclass
class CNNConfig(ModelConfig):
    """``[Conv -> norm? -> activation -> pool?] * len(channels) -> flatten or global average -> Dropout? -> Linear``.

    1-D or 2-D from the data: (C, L) signals (MNIST-1D as one channel of 40) or (C, H, W) images.
    ``kernel_size``, ``stride``, ``padding`` and ``pool`` are lists: one value for every block, or one per
    block. ``width``/``depth``, when set, replace ``channels`` (scalars an Optuna sweep can choose).
    """

    layout: ClassVar[str] = "channels"
    name: str = "cnn"
    channels: List[int] = integer([32, 64], 1)
    width: Optional[int] = integer(None, 1)  # every block this many channels (default: channels[0])
    depth: Optional[int] = integer(None, 1)  # this many blocks (default: len(channels))
    kernel_size: List[int] = integer([3], 1)
    stride: List[int] = integer([1], 1)
    padding: Optional[List[int]] = integer(None, 0)  # None: kernel_size // 2 (the size kept at stride 1)
    pool: Optional[List[int]] = integer(None, 0)  # pooling window (and stride) after each block; 0 or None: none
    pool_type: str = one_of("max", ("max", "avg"))
    norm: Optional[str] = one_of(None, (None, "batch"))
    activation: str = one_of("relu", _registry("mlpframe.nn", "ACTIVATIONS"))
    head: str = one_of("flatten", _registry("mlpframe.nn.cnn", "HEADS"))  # global_avg: mean of each channel
    dropout: float = number(0.0, 0.0, 1.0)
    init: str = one_of("kaiming", _registry("mlpframe.nn.init", "INITS"))

    def check(self, key: str) -> None:
        require((self.depth or 0) <= MAX_DEPTH and len(self.channels) <= MAX_DEPTH, f"{key}.depth",
                f"at most {MAX_DEPTH} blocks (a larger number is taken for a typo)")
        blocks = len(hidden_sizes(vars(self), "channels"))
        require(blocks > 0 and None not in hidden_sizes(vars(self), "channels"), f"{key}.channels",
                "needs at least one block (e.g. model.channels=[32,64], or model.width and model.depth)")
        for name in ("kernel_size", "stride", "padding", "pool"):
            values = list(getattr(self, name) or [0])
            require(len(values) in (1, blocks), f"{key}.{name}",
                    f"needs one value (every block) or {blocks} (one per block), got {values!r}")

    def per_block(self, values: Optional[List[int]], none: Optional[int] = None) -> Any:
        """One value for every block (an int) or a list, for :class:`mlpframe.nn.CNN`; ``none`` means None."""
        if values is None:
            return None
        values = [None if v == none else v for v in values]
        return values[0] if len(values) == 1 else values

    def build(self, input_shape: tuple[int, ...], num_classes: int, *, rng: np.random.Generator,
              dtype: str) -> Any:
        from mlpframe import nn

        if len(input_shape) not in (2, 3):
            raise ValueError(f"a CNN reads (C, L) signals or (C, H, W) images, but one example has shape "
                             f"{tuple(input_shape)}; leave data.flatten unset (or false)")
        return nn.CNN(input_shape, hidden_sizes(vars(self), "channels"), num_classes,
                      kernel_size=self.per_block(self.kernel_size), stride=self.per_block(self.stride),
                      padding=self.per_block(self.padding), pool=self.per_block(self.pool, none=0),
                      pool_type=self.pool_type, norm=self.norm, activation=self.activation, head=self.head,
                      dropout=float(self.dropout), rng=rng, dtype=dtype, init=self.init)


@dataclass
class RecurrentConfig(ModelConfig):
    """``GRU or LSTM (batch first) -> last step, or every step flattened -> Linear``, on (T, F) sequences
    (MNIST-1D as 40 steps of one feature; images as rows of pixels).

    ``head=flatten`` is the MNIST-1D paper's GRU: all ``T`` outputs (``T * D * hidden_size`` features) feed
    the classifier; ``head=last`` reads the output of the last step only.
    """

    layout: ClassVar[str] = "sequence"
    name: str = one_of(MISSING, ("gru", "lstm"))
    hidden_size: int = integer(64, 1)
    bidirectional: bool = False
    head: str = one_of("last", ("last", "flatten"))

    def build(self, input_shape: tuple[int, ...], num_classes: int, *, rng: np.random.Generator,
              dtype: str) -> Any:
        from mlpframe import nn

        if len(input_shape) != 2:
            raise ValueError(f"a recurrent model reads (T, F) sequences, but one example has shape "
                             f"{tuple(input_shape)}; leave data.flatten unset")
        T, F = input_shape
        cell = {"gru": nn.GRU, "lstm": nn.LSTM}[self.name]
        rnn = cell(F, self.hidden_size, bidirectional=bool(self.bidirectional), rng=rng, dtype=dtype)
        features = (2 if self.bidirectional else 1) * self.hidden_size
        head = nn.Flatten() if self.head == "flatten" else nn.LastStep()
        width = features * (T if self.head == "flatten" else 1)
        return nn.Sequential(rnn, head, nn.Linear(width, num_classes, rng=rng, dtype=dtype, init="torch",
                                                  nonlinearity="linear"))


@dataclass
class GRUConfig(RecurrentConfig):
    """A GRU (PyTorch's equations, gates r, z, n)."""

    name: str = "gru"


@dataclass
class LSTMConfig(RecurrentConfig):
    """An LSTM (PyTorch's equations, gates i, f, g, o)."""

    name: str = "lstm"


MODELS: dict[str, type[ModelConfig]] = {
    "mlp": MLPConfig, "logistic": LogisticConfig, "cnn": CNNConfig, "gru": GRUConfig, "lstm": LSTMConfig,
}


@dataclass
class TargetModelConfig(ModelConfig):
    """A model of the user's own: ``_target_`` names a callable (a function or an ``nn.Module`` class)
    returning an :class:`mlpframe.nn.Module` that outputs logits; ``params`` are the config's other keys,
    passed as keyword arguments, with ``input_shape``, ``num_classes``, ``dtype`` and ``rng`` when its
    signature names them (:mod:`mlpframe.cli.target`).

    Not a Hydra node: the user's YAML composes into the open ``model`` node and :func:`model_schema`
    builds this from it, so its keys are the callable's, whatever they are.
    """

    name: str = TARGET  # a label only (HParams, checkpoints): the callable is what counts
    _target_: str = MISSING
    params: Dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_keys(cls, values: Mapping[str, Any]) -> TargetModelConfig:
        params = {k: v for k, v in values.items() if k not in ("name", "_target_")}
        return cls(name=str(values.get("name", TARGET)), _target_=values["_target_"], params=params)

    def validate(self, key: str) -> None:
        """Import the target and bind the keys to its signature (no call): a typo fails before any data loads."""
        check_keys(locate(self._target_, f"{key}._target_"), self._target_, self.params, key)

    def build(self, input_shape: tuple[int, ...], num_classes: int, *, rng: np.random.Generator,
              dtype: str) -> Any:
        framework = {"input_shape": tuple(input_shape), "num_classes": num_classes, "dtype": dtype, "rng": rng}
        return call(locate(self._target_, "model._target_"), self._target_, self.params, framework, "model")


def model_schema(values: Any, key: str, allow_targets: Optional[Any] = None, *, check: bool = True) -> ModelConfig:
    """A model config (a composed node, or the mapping stored in a checkpoint) as its schema object, checked.

    With ``_target_`` it is a :class:`TargetModelConfig`; ``allow_targets`` (a checkpoint's config) then
    says which targets may be imported (:func:`mlpframe.cli.target.check_allowed`), checked before any
    import. Otherwise its ``name`` picks the kind in ``MODELS``. ``check=False`` leaves the values' check
    (which imports a target) to the caller.
    """
    if isinstance(values, DictConfig):
        values = OmegaConf.to_container(values, resolve=True)
    require(isinstance(values, Mapping), key, f"expected a mapping, got {type(values).__name__}")
    if "_target_" not in values:
        require(not (isinstance(values.get("name"), str) and values["name"] == TARGET), f"{key}._target_",
                "is missing: a model config selects a built-in kind (defaults: [base_mlp, _self_]) or names "
                "a callable (_target_: pkg.module.callable)")
        return checked_section("model", values, key)
    if allow_targets is not None:
        check_allowed(values["_target_"], allow_targets, f"{key}._target_")
    obj = TargetModelConfig.from_keys(values)
    if check:
        obj.validate(key)
    return obj


# ----------------------------------------------------------------- optimizer
def _dummy_params() -> list:
    from mlpframe.nn.module import Parameter

    return [Parameter(np.zeros(1, dtype=np.float32))]


@dataclass
class OptimizerConfig(Schema):
    """The optimizer's keyword arguments; their ranges are the optimizer's own (``_check`` in
    :mod:`mlpframe.optim`), checked here by building it on a stand-in parameter."""

    name: str = one_of(MISSING, _registry("mlpframe.optim", "OPTIMIZERS"))
    lr: float = MISSING
    weight_decay: float = 0.0

    def check(self, key: str) -> None:
        library_rules(key, lambda: self.build(_dummy_params()))

    def build(self, params: list) -> Any:
        from mlpframe import optim

        return optim.build_optimizer(self.name, params, **self.kwargs())


@dataclass
class SGDConfig(OptimizerConfig):
    name: str = "sgd"
    lr: float = 0.05
    momentum: float = 0.9
    dampening: float = 0.0
    nesterov: bool = False
    weight_decay: float = 5e-4


@dataclass
class AdamConfig(OptimizerConfig):
    name: str = "adam"
    lr: float = 1e-3
    betas: List[float] = field(default_factory=lambda: [0.9, 0.999])
    eps: float = 1e-8


@dataclass
class AdamWConfig(AdamConfig):
    name: str = "adamw"
    weight_decay: float = 1e-2


OPTIMIZERS: dict[str, type[OptimizerConfig]] = {"sgd": SGDConfig, "adam": AdamConfig, "adamw": AdamWConfig}


# ----------------------------------------------------------------- scheduler
@dataclass
class SchedulerConfig(Schema):
    """A constant lr, stepped once per epoch; ``warmup_epochs`` of linear warm-up before any schedule.

    The ranges are the schedule's own, checked here by building it on a stand-in optimizer.
    """

    name: str = one_of("none", _registry("mlpframe.optim", "SCHEDULERS"))
    warmup_epochs: int = 0
    warmup_start_factor: float = 0.1

    def check(self, key: str) -> None:
        from mlpframe import optim

        library_rules(key, lambda: self.build(optim.SGD(_dummy_params(), lr=1.0), max_epochs=1))

    def build(self, optimizer: Any, max_epochs: int) -> Any:
        from mlpframe import optim

        return optim.build_scheduler(self.name, optimizer, **self.kwargs())


@dataclass
class StepSchedulerConfig(SchedulerConfig):
    """lr * gamma every step_size epochs."""

    name: str = "step"
    step_size: int = 10
    gamma: float = 0.1


@dataclass
class CosineSchedulerConfig(SchedulerConfig):
    """Cosine decay to eta_min over T_max epochs."""

    name: str = "cosine"
    T_max: Optional[int] = None  # None: the epochs after warm-up (max_epochs - warmup_epochs)
    eta_min: float = 0.0

    def build(self, optimizer: Any, max_epochs: int) -> Any:
        from mlpframe import optim

        kwargs = self.kwargs()
        if kwargs["T_max"] is None:
            kwargs["T_max"] = max(1, max_epochs - self.warmup_epochs)
        return optim.build_scheduler(self.name, optimizer, **kwargs)


SCHEDULERS: dict[str, type[SchedulerConfig]] = {
    "none": SchedulerConfig, "step": StepSchedulerConfig, "cosine": CosineSchedulerConfig,
}


# ---------------------------------------------------------- trainer, logger
@dataclass
class TrainerConfig(Schema):
    max_epochs: int = integer(60, 1)
    grad_clip: Optional[float] = number(None, 0.0, low_open=True)  # max global gradient norm; None: off
    log_every_n_steps: int = integer(50, 1)  # steps between host syncs (running metrics, divergence check)
    histogram_every_n_epochs: int = integer(10, 0)  # weight/gradient histograms; 0: off
    early_stopping_patience: Optional[int] = integer(None, 1)  # epochs without val/acc improvement; None: off
    progress_bar: Optional[bool] = None  # None: only when stderr is a terminal
    eval_batch_size: int = integer(1000, 1)
    # auto: continue from the newest complete checkpoint in this run's checkpoints/ (else ckpt_path, else fresh)
    resume: str = one_of("never", ("never", "auto"))


@dataclass
class LoggerConfig(Schema):
    name: str = one_of("tensorboard", ("tensorboard", "none"))  # tensorboard: one writer in <run dir>/tensorboard
    flush_secs: int = integer(30, 1)


# --------------------------------------------------------------- distributed
@dataclass
class DistributedConfig(Schema):
    """One run across the processes of ``mpiexec``/``srun`` (``mpi``) or this process alone (``none``)."""

    name: str = one_of("none", ("none", "mpi"))
    gpu_reduce: str = one_of("nccl", ("nccl", "mpi"))  # backend=cupy under mpi: gradients through NCCL or MPI


# ------------------------------------------------------------------ commands
SECTIONS = ("backend", "data", "model", "optimizer", "scheduler", "trainer", "logger", "distributed")


@dataclass
class TrainConfig(Schema):
    backend: BackendConfig = MISSING
    data: DataConfig = MISSING
    model: ModelConfig = MISSING
    optimizer: OptimizerConfig = MISSING
    scheduler: SchedulerConfig = MISSING
    trainer: TrainerConfig = MISSING
    logger: LoggerConfig = MISSING
    distributed: DistributedConfig = MISSING
    seed: int = integer(42, 0)
    ckpt_path: Optional[str] = None  # resume from this checkpoint
    optimized_metric: str = one_of("val/acc_best", _registry("mlpframe.engine.metrics", "METRIC_NAMES"))
    dtype: str = one_of("float32", _registry("mlpframe.nn.init", "DTYPES"))

    def check(self, key: str) -> None:
        for section in SECTIONS:
            getattr(self, section).validate(section)
        # BatchNorm's batch statistics need two samples (the train loader drops a smaller last batch)
        require(getattr(self.model, "norm", None) != "batch" or self.data.batch_size >= 2, "data.batch_size",
                f"model.norm=batch needs at least 2 samples per batch, got {self.data.batch_size}")


@dataclass
class EvaluateConfig(Schema):
    backend: BackendConfig = MISSING
    # None: the data set stored in the checkpoint; `data=<name>` evaluates on another one
    data: Optional[DataConfig] = None
    # the model is always the checkpoint's; `model=<name>` (with --config-dir) names the `_target_` it may import
    model: Optional[ModelConfig] = None
    # `_target_`s outside mlpframe that a checkpoint may make evaluate import (see mlpframe.cli.target)
    allow_targets: List[str] = field(default_factory=list)
    ckpt_path: Optional[str] = None
    batch_size: int = integer(1000, 1)

    def check(self, key: str) -> None:
        require(bool(self.ckpt_path), "ckpt_path",
                "is required: python -m mlpframe evaluate ckpt_path=<run dir>/checkpoints/best.npz")
        self.backend.validate("backend")
        if self.data is not None:
            self.data.validate("data")
        if isinstance(self.model, TargetModelConfig):  # only names what may be imported: imports nothing
            check_path(self.model._target_, "model._target_")
        for i, name in enumerate(self.allow_targets):
            check_path(name, f"allow_targets[{i}]")


@dataclass
class GradcheckConfig(Schema):
    backend: BackendConfig = MISSING
    rtol: Optional[float] = number(None, 0.0, low_open=True)  # None: mlpframe.gradcheck's default
    seed: int = integer(0, 0)

    def check(self, key: str) -> None:
        self.backend.validate("backend")


GROUPS: dict[str, dict[str, type]] = {
    "backend": {"backend": BackendConfig},
    "data": DATASETS,
    "model": MODELS,
    "optimizer": OPTIMIZERS,
    "scheduler": SCHEDULERS,
    "trainer": {"trainer": TrainerConfig},
    "logger": {"logger": LoggerConfig},
    "distributed": {"distributed": DistributedConfig},
}


def _open_model(schema: type) -> DictConfig:
    """The command's schema with its ``model`` node open to keys no schema declares (a user's
    ``_target_`` model); a built-in kind merged into it brings its own closed (struct) node."""
    node = OmegaConf.structured(schema)
    OmegaConf.set_struct(node._get_node("model"), False)  # the node itself: it may be MISSING or None
    return node


def _closed(schema: type) -> DictConfig:
    node = OmegaConf.structured(schema)
    OmegaConf.set_struct(node, True)  # explicit: the open `model` node it lands in must not open it
    return node


def register_configs() -> None:
    """Put the schemas in Hydra's ConfigStore as ``<group>/base_<name>`` (idempotent)."""
    cs = ConfigStore.instance()
    cs.store(name="train_schema", node=_open_model(TrainConfig))
    cs.store(name="evaluate_schema", node=_open_model(EvaluateConfig))
    cs.store(name="gradcheck_schema", node=GradcheckConfig)
    for group, schemas in GROUPS.items():
        for name, node in schemas.items():
            cs.store(group=group, name=f"base_{name}", node=_closed(node) if group == "model" else node)


def _safe_dirname(text: str, max_len: int = 120) -> str:
    """An override list made safe as one folder name: no slashes, brackets, quotes or spaces.

    Too long, it keeps as many whole ``key=value`` items as fit and ends with a hash of the
    whole list (``+1a2b3c4d``): a value is never cut, and two long names never collide.
    """
    import hashlib

    text = re.sub(r"[\[\]'\"{}() ]", "", str(text))
    text = re.sub(r"[^A-Za-z0-9._=,+@-]", "_", text)
    if len(text) <= max_len:
        return text or "default"
    tag = "+" + hashlib.sha1(text.encode()).hexdigest()[:8]
    items = re.split(r",(?=[A-Za-z_+~][\w.+~-]*=)", text)  # a list value's own commas stay inside its item
    kept = ""
    for item in items:
        candidate = f"{kept},{item}" if kept else item
        if len(candidate) + len(tag) > max_len:
            break
        kept = candidate
    return kept + tag


if not OmegaConf.has_resolver("mlpframe_dirname"):
    OmegaConf.register_new_resolver("mlpframe_dirname", _safe_dirname)

register_configs()


# ---------------------------------------------------------------- entry points
def unknown_keys(cfg: Any, schema: type, key: str = "") -> list[str]:
    """Keys of ``cfg`` that ``schema`` does not have (``+trainer.max_epoch=1``, ``+foo=1``): Hydra's ``+``
    adds them past the schema's type check, and nothing would ever read them."""
    import dataclasses

    if not isinstance(cfg, (DictConfig, Mapping)) or "_target_" in cfg:
        return []  # a user's ``_target_`` model: its keys are bound to the callable's signature instead
    typed = OmegaConf.get_type(cfg) if isinstance(cfg, DictConfig) else None
    if dataclasses.is_dataclass(typed):
        schema = typed  # a group's choice (MNIST1DData, SGDConfig, …) rather than the field's base type
    fields = {f.name: f for f in dataclasses.fields(schema)}
    found = []
    for name in cfg:
        full = f"{key}.{name}" if key else str(name)
        if name not in fields:
            close = difflib.get_close_matches(str(name), list(fields), n=1)
            found.append(full + (f" (did you mean {full.rsplit('.', 1)[0] + '.' if key else ''}{close[0]}?)"
                                 if close else ""))
        elif isinstance(fields[name].type, type) and dataclasses.is_dataclass(fields[name].type):
            found += unknown_keys(cfg[name], fields[name].type, full)
        elif dataclasses.is_dataclass(OmegaConf.get_type(cfg, name) if isinstance(cfg, DictConfig) else None):
            found += unknown_keys(cfg[name], OmegaConf.get_type(cfg, name), full)
    return found


def to_schema(cfg: DictConfig, schema: type = TrainConfig) -> Any:
    """The composed config as its schema objects (interpolations resolved), validated."""
    extra = unknown_keys(cfg, schema)
    if extra:
        raise ConfigError(extra[0].split(" ")[0], "no such setting" + extra[0][len(extra[0].split(" ")[0]):]
                          + "; mlpframe takes only the keys of its schemas (python -m mlpframe <command> --help)")
    if OmegaConf.get_type(cfg) is not schema:  # a copy that lost its root's type (sections keep theirs)
        cfg = OmegaConf.merge(_open_model(schema) if "model" in cfg else OmegaConf.structured(schema), cfg)
    obj = OmegaConf.to_object(cfg)
    if type(getattr(obj, "model", None)) is ModelConfig:  # selects no kind: a user's `_target_` model
        obj.model = model_schema(cfg.model, "model", check=False)  # checked with the rest below
    obj.validate("")
    return obj


def validate_train(cfg: DictConfig) -> TrainConfig:
    """Raise :class:`ConfigError` naming the first key whose value is not allowed; else the schema objects."""
    return to_schema(cfg, TrainConfig)


def checked_section(section: str, values: Any, key: str) -> Any:
    """``values`` (the ``model`` or ``data`` config stored in a checkpoint) as its schema object, checked as a
    command line would be. :class:`ConfigError` names ``key`` and the offending field."""
    from omegaconf.errors import OmegaConfBaseException

    registry = {"model": MODELS, "data": DATASETS}[section]
    require(isinstance(values, Mapping), key, f"expected a mapping, got {type(values).__name__}")
    name = values.get("name")
    require(isinstance(name, str) and name in registry, f"{key}.name", f"must be one of {', '.join(registry)}; got {name!r}")
    try:
        obj = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(registry[name]), dict(values)))
    except (OmegaConfBaseException, ValueError, TypeError) as exc:
        field_name = getattr(exc, "full_key", None)
        problem = " ".join(str(getattr(exc, "msg", None) or exc).split("\n")[0].split())
        raise ConfigError(f"{key}.{field_name}" if field_name else key, problem) from None
    obj.validate(key)
    return obj
