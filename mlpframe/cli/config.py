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
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, List, Optional

import numpy as np
from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

from mlpframe.backend import BACKENDS
from mlpframe.cli.schema import ConfigError, Schema, integer, library_rules, number, one_of, require

MAX_DEPTH = 1000


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
    flatten: bool = True  # false: images as (N, C, H, W)

    def check(self, key: str) -> None:
        for name in ("md5", "sha256"):
            value = getattr(self, name)
            ok = value is None or isinstance(value, str) or (
                isinstance(value, Mapping) and all(isinstance(v, str) for v in value.values()))
            require(ok, f"{key}.{name}", f"must be a hex string or a mapping file name -> hex string, got {value!r}")

    def load(self, *, seed: int, progress: bool = True) -> Any:
        """The data set's float32 train/val/test splits (downloaded, verified and cached as needed)."""
        from mlpframe.data import load_dataset

        return load_dataset(self.name, seed=seed, progress=progress, **self.kwargs("batch_size"))


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


DATASETS: dict[str, type[DataConfig]] = {
    "mnist1d": MNIST1DData, "synthetic": SyntheticData, "cifar10": CIFAR10Data, "mnist": MNISTData,
    "fashion_mnist": FashionMNISTData,
}


# --------------------------------------------------------------------- model
@dataclass
class ModelConfig(Schema):
    """Base of the model kinds: a kind builds its network for one example's shape and a class count."""

    name: str = one_of(MISSING, lambda: tuple(MODELS))

    def build(self, input_shape: tuple[int, ...], num_classes: int, *, rng: np.random.Generator,
              dtype: str) -> Any:
        raise NotImplementedError

    def criterion(self) -> Any:
        from mlpframe import nn

        return nn.CrossEntropyLoss()


def hidden_sizes(model: Mapping[str, Any]) -> list[int]:
    """The hidden widths the model config asks for: ``[width] * depth`` when either is set, else ``hidden``."""
    hidden = list(model.get("hidden") or [])
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

        mlp = nn.MLP(math.prod(input_shape), hidden=hidden_sizes(vars(self)), out_features=num_classes,
                     activation=self.activation, norm=self.norm, dropout=float(self.dropout), rng=rng, dtype=dtype,
                     init=self.init)
        return nn.Sequential(mlp, nn.Softmax()) if self.output == "softmax" else mlp

    def criterion(self) -> Any:
        from mlpframe import nn

        return nn.CrossEntropyLoss(from_logits=self.output != "softmax", label_smoothing=float(self.label_smoothing))


MODELS: dict[str, type[ModelConfig]] = {"mlp": MLPConfig}


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


@dataclass
class EvaluateConfig(Schema):
    backend: BackendConfig = MISSING
    # None: the data set stored in the checkpoint; `data=<name>` evaluates on another one
    data: Optional[DataConfig] = None
    ckpt_path: Optional[str] = None
    batch_size: int = integer(1000, 1)

    def check(self, key: str) -> None:
        require(bool(self.ckpt_path), "ckpt_path",
                "is required: python -m mlpframe evaluate ckpt_path=<run dir>/checkpoints/best.npz")
        self.backend.validate("backend")
        if self.data is not None:
            self.data.validate("data")


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


def register_configs() -> None:
    """Put the schemas in Hydra's ConfigStore as ``<group>/base_<name>`` (idempotent)."""
    cs = ConfigStore.instance()
    cs.store(name="train_schema", node=TrainConfig)
    cs.store(name="evaluate_schema", node=EvaluateConfig)
    cs.store(name="gradcheck_schema", node=GradcheckConfig)
    for group, schemas in GROUPS.items():
        for name, node in schemas.items():
            cs.store(group=group, name=f"base_{name}", node=node)


def _safe_dirname(text: str, max_len: int = 120) -> str:
    """An override list made safe as one folder name: no slashes, brackets, quotes or spaces."""
    text = re.sub(r"[\[\]'\"{}() ]", "", str(text))
    text = re.sub(r"[^A-Za-z0-9._=,+@-]", "_", text)
    return text[:max_len] or "default"


if not OmegaConf.has_resolver("mlpframe_dirname"):
    OmegaConf.register_new_resolver("mlpframe_dirname", _safe_dirname)

register_configs()


# ---------------------------------------------------------------- entry points
def to_schema(cfg: DictConfig, schema: type = TrainConfig) -> Any:
    """The composed config as its schema objects (interpolations resolved), validated."""
    if OmegaConf.get_type(cfg) is not schema:  # a copy that lost its root's type (sections keep theirs)
        cfg = OmegaConf.merge(OmegaConf.structured(schema), cfg)
    obj = OmegaConf.to_object(cfg)
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
