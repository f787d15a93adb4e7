"""Structured-config schemas for the command line, registered with Hydra's ConfigStore.

The YAML files in ``conf/`` choose values; these dataclasses fix the keys and
their types, so ``optimizer.lr=fast`` or ``trainer.max_epoch=3`` is refused while
the config is composed. :func:`validate` adds the checks a type cannot express
(``lr > 0``, ``hidden`` non-empty, …) and names the offending key in a
:class:`ConfigError`. Each config group has a base schema (``base_<group>`` in the
group) that its YAML files extend through their defaults list.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, List, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

from mlpframe.backend import BACKENDS


class ConfigError(ValueError):
    """A config value that is well-typed but not allowed; the message starts with its key."""

    def __init__(self, key: str, problem: str) -> None:
        self.key = key
        super().__init__(f"{key}: {problem}")


# ------------------------------------------------------------------ schemas
@dataclass
class BackendConfig:
    name: str = "numpy"
    device: Optional[int] = None  # CUDA device index for cupy (None: device 0)


@dataclass
class DataConfig:
    """Keys every data set takes (``load_dataset`` ignores those that do not concern it)."""

    name: str = MISSING
    root: Optional[str] = None  # None: $MLPFRAME_DATA/<name> or ~/.cache/mlpframe/data/<name>
    download: bool = True
    url: Optional[str] = None
    # a checksum string, or (for MNIST-style sets) a mapping file name -> checksum
    md5: Optional[Any] = None
    sha256: Optional[Any] = None
    val_size: Optional[int] = None  # samples held out of the training set; None: the data set's default
    batch_size: int = 128
    normalize: bool = True
    flatten: bool = True
    # synthetic (spirals) only
    n_samples: Optional[int] = None
    num_classes: Optional[int] = None
    noise: Optional[float] = None
    turns: Optional[float] = None
    test_size: Optional[int] = None


@dataclass
class ModelConfig:
    """An MLP. ``width``/``depth``, when set, replace ``hidden`` (scalars an Optuna sweep can choose)."""

    name: str = "mlp"
    hidden: List[int] = field(default_factory=lambda: [256, 256])
    width: Optional[int] = None  # every hidden layer this wide (default: hidden[0])
    depth: Optional[int] = None  # this many hidden layers (default: len(hidden))
    activation: str = "gelu"
    norm: Optional[str] = None  # null | batch | layer
    dropout: float = 0.2
    output: str = "logits"  # logits: CE on logits; softmax: Softmax layer + CE on probabilities (DL1)
    label_smoothing: float = 0.0
    init: str = "kaiming"


@dataclass
class OptimizerConfig:
    name: str = MISSING
    lr: float = MISSING
    weight_decay: float = 0.0


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


@dataclass
class SchedulerConfig:
    """Stepped once per epoch; ``warmup_epochs`` of linear warm-up before the schedule."""

    name: str = "none"
    warmup_epochs: int = 0
    warmup_start_factor: float = 0.1


@dataclass
class StepSchedulerConfig(SchedulerConfig):
    name: str = "step"
    step_size: int = 10
    gamma: float = 0.1


@dataclass
class CosineSchedulerConfig(SchedulerConfig):
    name: str = "cosine"
    T_max: Optional[int] = None  # None: the epochs after warm-up (max_epochs - warmup_epochs)
    eta_min: float = 0.0


@dataclass
class TrainerConfig:
    max_epochs: int = 60
    grad_clip: Optional[float] = None  # max global gradient norm; null: off
    log_every_n_steps: int = 50
    histogram_every_n_epochs: int = 10  # 0: off
    early_stopping_patience: Optional[int] = None  # null: off
    progress_bar: bool = True
    eval_batch_size: int = 1000
    # auto: continue from the newest complete checkpoint in this run's checkpoints/ (else ckpt_path, else fresh)
    resume: str = "never"


@dataclass
class LoggerConfig:
    name: str = "tensorboard"  # tensorboard | none
    flush_secs: int = 30


# --- distributed (data parallel across processes) ---
@dataclass
class DistributedConfig:
    name: str = "none"  # none | mpi
    gpu_reduce: str = "nccl"  # backend=cupy under mpi: nccl | mpi


@dataclass
class TrainConfig:
    backend: BackendConfig = MISSING
    data: DataConfig = MISSING
    model: ModelConfig = MISSING
    optimizer: OptimizerConfig = MISSING
    scheduler: SchedulerConfig = MISSING
    trainer: TrainerConfig = MISSING
    logger: LoggerConfig = MISSING
    distributed: DistributedConfig = MISSING
    seed: int = 42
    ckpt_path: Optional[str] = None  # resume from this checkpoint
    optimized_metric: str = "val/acc_best"  # what `train` returns to a sweeper
    dtype: str = "float32"


@dataclass
class EvaluateConfig:
    backend: BackendConfig = MISSING
    # None: the data set stored in the checkpoint; `data=<name>` evaluates on another one
    data: Optional[DataConfig] = None
    ckpt_path: Optional[str] = None
    batch_size: int = 1000


@dataclass
class GradcheckConfig:
    backend: BackendConfig = MISSING
    rtol: Optional[float] = None  # None: mlpframe.gradcheck's default
    seed: int = 0


_GROUPS = {
    "backend": {"base_backend": BackendConfig},
    "data": {"base_data": DataConfig},
    "model": {"base_model": ModelConfig},
    "optimizer": {"base_sgd": SGDConfig, "base_adam": AdamConfig, "base_adamw": AdamWConfig},
    "scheduler": {"base_none": SchedulerConfig, "base_step": StepSchedulerConfig,
                  "base_cosine": CosineSchedulerConfig},
    "trainer": {"base_trainer": TrainerConfig},
    "logger": {"base_logger": LoggerConfig},
    "distributed": {"base_distributed": DistributedConfig},
}


def register_configs() -> None:
    """Put the schemas in Hydra's ConfigStore (idempotent)."""
    cs = ConfigStore.instance()
    cs.store(name="train_schema", node=TrainConfig)
    cs.store(name="evaluate_schema", node=EvaluateConfig)
    cs.store(name="gradcheck_schema", node=GradcheckConfig)
    for group, nodes in _GROUPS.items():
        for name, node in nodes.items():
            cs.store(group=group, name=name, node=node)


def _safe_dirname(text: str, max_len: int = 120) -> str:
    """An override list made safe as one folder name: no slashes, brackets, quotes or spaces."""
    text = re.sub(r"[\[\]'\"{}() ]", "", str(text))
    text = re.sub(r"[^A-Za-z0-9._=,+@-]", "_", text)
    return text[:max_len] or "default"


if not OmegaConf.has_resolver("mlpframe_dirname"):
    OmegaConf.register_new_resolver("mlpframe_dirname", _safe_dirname)

register_configs()


# --------------------------------------------------------------- validation
MAX_DEPTH = 1000
def _require(cond: bool, key: str, problem: str) -> None:
    if not cond:
        raise ConfigError(key, problem)


def _positive_int(value: Any, key: str, low: int = 1) -> None:
    _require(isinstance(value, int) and not isinstance(value, bool) and value >= low, key,
             f"must be an integer >= {low}, got {value!r}")


def _number_in(value: Any, key: str, low: float, high: float = math.inf, *, low_open: bool = False,
               high_open: bool = True) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if ok:
        ok = (value > low if low_open else value >= low) and (value < high if high_open else value <= high)
    lo = f"{'(' if low_open else '['}{low}"
    hi = f"{high}{')' if high_open else ']'}"
    _require(ok, key, f"must be a number in {lo}, {hi}, got {value!r}")


def _choice(value: Any, key: str, choices: tuple) -> None:
    _require(value in choices, key, f"must be one of {', '.join(map(str, choices))}; got {value!r}")


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


_SECTIONS = {"model": ModelConfig, "data": DataConfig}


def checked_section(section: str, values: Any, key: str) -> dict[str, Any]:
    """``values`` (e.g. the ``model`` config stored in a checkpoint) type-checked against its schema.

    Raises :class:`ConfigError` naming ``key`` and the offending field, as a bad override would.
    """
    from omegaconf.errors import OmegaConfBaseException

    if not isinstance(values, Mapping):
        raise ConfigError(key, f"expected a mapping, got {type(values).__name__}")
    try:
        merged = OmegaConf.merge(OmegaConf.structured(_SECTIONS[section]), dict(values))
        return OmegaConf.to_container(merged, resolve=True)
    except (OmegaConfBaseException, ValueError, TypeError) as exc:
        field_name = getattr(exc, "full_key", None)
        problem = " ".join(str(getattr(exc, "msg", None) or exc).split("\n")[0].split())
        raise ConfigError(f"{key}.{field_name}" if field_name else key, problem) from None


def validate_backend(backend: Mapping[str, Any], key: str = "backend") -> None:
    _choice(backend.get("name"), f"{key}.name", BACKENDS)
    if backend.get("device") is not None:
        _positive_int(backend.get("device"), f"{key}.device", low=0)


def validate_data(data: Mapping[str, Any], key: str = "data") -> None:
    from mlpframe.data import DATASETS

    _choice(data.get("name"), f"{key}.name", tuple(DATASETS))
    _positive_int(data.get("batch_size"), f"{key}.batch_size")
    if data.get("val_size") is not None:
        _positive_int(data.get("val_size"), f"{key}.val_size", low=0)
    for checksum in ("md5", "sha256"):
        value = data.get(checksum)
        ok = value is None or isinstance(value, str) or (
            isinstance(value, Mapping) and all(isinstance(v, str) for v in value.values()))
        _require(ok, f"{key}.{checksum}", f"must be a hex string or a mapping file name -> hex string, got {value!r}")


def validate_model(model: Mapping[str, Any], key: str = "model") -> None:
    from mlpframe.nn import ACTIVATIONS

    _choice(model.get("name"), f"{key}.name", ("mlp",))
    hidden = model.get("hidden") or []
    for i, h in enumerate(hidden):
        _positive_int(h, f"{key}.hidden[{i}]")
    if model.get("width") is not None:
        _positive_int(model.get("width"), f"{key}.width")
    if model.get("depth") is not None:
        _positive_int(model.get("depth"), f"{key}.depth")
    _require(len(hidden) <= MAX_DEPTH and (model.get("depth") or 0) <= MAX_DEPTH, f"{key}.depth",
             f"at most {MAX_DEPTH} hidden layers (a larger number is taken for a typo)")
    _require(len(hidden_sizes(model)) > 0 and all(h is not None for h in hidden_sizes(model)), f"{key}.hidden",
             "needs at least one hidden layer width (e.g. model.hidden=[128], or model.width and model.depth)")
    _choice(model.get("activation"), f"{key}.activation", tuple(ACTIVATIONS))
    _choice(model.get("norm"), f"{key}.norm", (None, "batch", "layer"))
    _number_in(model.get("dropout"), f"{key}.dropout", 0.0, 1.0)
    _choice(model.get("output"), f"{key}.output", ("logits", "softmax"))
    _number_in(model.get("label_smoothing"), f"{key}.label_smoothing", 0.0, 1.0)


def validate_train(cfg: DictConfig | Mapping[str, Any]) -> None:
    """Raise :class:`ConfigError` naming the first key whose value is not allowed."""
    c = OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else cfg
    _positive_int(c["seed"], "seed", low=0)
    _choice(c["dtype"], "dtype", ("float32", "float64"))
    from mlpframe.engine import METRIC_NAMES

    _choice(c["optimized_metric"], "optimized_metric", METRIC_NAMES)
    validate_backend(c["backend"])
    validate_data(c["data"])
    validate_model(c["model"])

    opt = c["optimizer"]
    _choice(opt["name"], "optimizer.name", ("sgd", "adam", "adamw"))
    _number_in(opt["lr"], "optimizer.lr", 0.0, low_open=True)
    _number_in(opt["weight_decay"], "optimizer.weight_decay", 0.0)
    if "momentum" in opt:
        _number_in(opt["momentum"], "optimizer.momentum", 0.0, 1.0)
        _number_in(opt["dampening"], "optimizer.dampening", 0.0, 1.0, high_open=False)
        _require(not opt["nesterov"] or (opt["momentum"] > 0 and opt["dampening"] == 0), "optimizer.nesterov",
                 "needs optimizer.momentum > 0 and optimizer.dampening = 0")
    if "betas" in opt:
        _require(len(opt["betas"]) == 2, "optimizer.betas", f"must be two numbers, got {opt['betas']!r}")
        for i, b in enumerate(opt["betas"]):
            _number_in(b, f"optimizer.betas[{i}]", 0.0, 1.0)
        _number_in(opt["eps"], "optimizer.eps", 0.0, low_open=True)

    sch = c["scheduler"]
    _choice(sch["name"], "scheduler.name", ("none", "step", "cosine"))
    _positive_int(sch["warmup_epochs"], "scheduler.warmup_epochs", low=0)
    _number_in(sch["warmup_start_factor"], "scheduler.warmup_start_factor", 0.0, 1.0, low_open=True,
               high_open=False)
    if sch["name"] == "step":
        _positive_int(sch["step_size"], "scheduler.step_size")
        _number_in(sch["gamma"], "scheduler.gamma", 0.0, low_open=True)
    if sch["name"] == "cosine":
        if sch["T_max"] is not None:
            _positive_int(sch["T_max"], "scheduler.T_max")
        _number_in(sch["eta_min"], "scheduler.eta_min", 0.0)

    tr = c["trainer"]
    _positive_int(tr["max_epochs"], "trainer.max_epochs")
    if tr["grad_clip"] is not None:
        _number_in(tr["grad_clip"], "trainer.grad_clip", 0.0, low_open=True)
    _positive_int(tr["log_every_n_steps"], "trainer.log_every_n_steps")
    _positive_int(tr["histogram_every_n_epochs"], "trainer.histogram_every_n_epochs", low=0)
    if tr["early_stopping_patience"] is not None:
        _positive_int(tr["early_stopping_patience"], "trainer.early_stopping_patience")
    _positive_int(tr["eval_batch_size"], "trainer.eval_batch_size")
    _choice(tr["resume"], "trainer.resume", ("never", "auto"))

    _choice(c["logger"]["name"], "logger.name", ("tensorboard", "none"))
    _positive_int(c["logger"]["flush_secs"], "logger.flush_secs")
    # --- distributed ---
    _choice(c["distributed"]["name"], "distributed.name", ("none", "mpi"))
    _choice(c["distributed"]["gpu_reduce"], "distributed.gpu_reduce", ("nccl", "mpi"))
