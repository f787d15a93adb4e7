"""``python -m mlpframe train [overrides]``: one run in one Hydra run directory.

Hydra composes and type-checks the config and makes the run folder; this module
validates the values, builds data, model, optimizer and callbacks, and hands them
to the :class:`~mlpframe.engine.Trainer`. It returns ``float(metrics[optimized_metric])``
(NaN for a diverged or failed run) so that Hydra's sweepers can use it.

Runs survive: ``ckpt_path=`` resumes from a checkpoint, ``trainer.resume=auto``
from the newest complete checkpoint of the run's own folder (a re-queued Slurm job
with the same ``hydra.run.dir`` continues where it stopped). SIGINT/SIGTERM/SIGUSR2
finish the current step, checkpoint it and exit with 128 + the signal and one line
saying how to resume; a second signal aborts at once (the checkpoint on disk is always
a complete one). SIGUSR2 is what Slurm sends (through submitit's ``--signal``) before
a job's time limit and on pre-emption: after the checkpoint it is handed on to
submitit's handler, which re-queues the job.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shlex
import signal
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import hydra
import numpy as np
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from hydra.utils import to_absolute_path
from omegaconf import DictConfig, OmegaConf

from mlpframe.atomic import write_atomic
from mlpframe.backend import get_backend
from mlpframe.cli import build
from mlpframe.cli.common import (
    UserError, config_dir, fail, hydra_quote, one_line, remove_if_only_hydra, user_errors, user_message,
)
from mlpframe.cli.config import validate_train
from mlpframe.cli.schema import ConfigError
from mlpframe.distributed import launch as distributed_launch
from mlpframe.distributed.world import guard_exit, is_quiet_rank
from mlpframe.engine import (
    EarlyStopping, ModelCheckpoint, ProgressBar, TensorBoardLogger, Trainer, TrainResult, flatten_hparams,
    load_checkpoint,
)
from mlpframe.engine.checkpoint import Checkpoint, latest_checkpoint, progress_of

log = logging.getLogger("mlpframe")


def json_safe(value: Any) -> Any:
    """NaN and infinities as ``null``: strict JSON readers reject bare ``NaN`` (Python's default)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    write_atomic(path, json.dumps(json_safe(data), indent=2, allow_nan=False) + "\n")


class Interrupts:
    """SIGINT/SIGTERM/SIGUSR2 during a run.

    While data loads and the model is built there is nothing to save: a signal
    aborts at once (``KeyboardInterrupt``). Once a trainer is attached, the first
    signal asks it to stop after the current step and checkpoint; a second one aborts.
    """

    def __init__(self) -> None:
        self.received: list[int] = []
        self.trainer: Trainer | None = None
        self.previous: dict[int, Any] = {}

    def handler(self, signum: int, frame: Any) -> None:
        first = not self.received
        self.received.append(signum)
        if first and self.trainer is not None:
            self.trainer.request_interrupt()
            return
        raise KeyboardInterrupt

    @property
    def exit_status(self) -> int:
        return 128 + (self.received[0] if self.received else signal.SIGINT)  # the shell's convention

    @contextmanager
    def installed(self) -> Iterator[Interrupts]:
        previous = self.previous
        for sig in (signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGUSR2", None)):
            if sig is None:  # (no SIGUSR2 on Windows)
                continue
            try:
                previous[sig] = signal.signal(sig, self.handler)
            except ValueError:  # not the main thread (some launchers): leave signals alone
                pass
        try:
            yield self
        finally:
            for sig, old in previous.items():
                signal.signal(sig, old)

    def pass_on(self) -> None:
        """Hand a SIGUSR2 to the handler installed before ours (submitit's: re-queue the job, exit)."""
        usr2 = getattr(signal, "SIGUSR2", None)
        if self.received and self.received[0] == usr2 and callable(self.previous.get(usr2)):
            self.previous[usr2](usr2, None)


def resume_checkpoint(c: dict[str, Any], run_dir: Path) -> Checkpoint | None:
    """The checkpoint this run continues from: ``trainer.resume=auto`` looks in the run's own
    ``checkpoints/`` first, then ``ckpt_path``; ``None`` for a fresh start."""
    if c["trainer"]["resume"] == "auto":
        folder = run_dir / "checkpoints"
        ckpt, problems = latest_checkpoint(folder)
        if problems:  # never train over (and later replace) a file we could not read
            raise UserError(f"trainer.resume=auto: {problems[0]}; move it out of {folder} to resume from the "
                            "others or to start fresh")
        if ckpt is not None:
            return ckpt
        if not c["ckpt_path"]:
            log.info("trainer.resume=auto: no checkpoint in %s yet; starting fresh", folder)
            return None
    return load_checkpoint(c["ckpt_path"]) if c["ckpt_path"] else None


# what may differ between a checkpoint's run and the run that continues it, without a warning
NOT_SETTINGS = ("ckpt_path", "trainer.resume", "trainer.progress_bar", "logger.", "data.root", "data.download",
                "seed")  # (a changed seed has its own warning in the trainer)


def changed_settings(old: Any, new: dict[str, Any]) -> list[str]:
    """``key old -> new`` for each setting of ``new`` that differs from the checkpoint's config ``old``."""
    if not isinstance(old, dict):
        return []
    a, b = flatten_hparams(old), flatten_hparams(new)
    return [f"{k} {a.get(k, '(unset)')} -> {b[k]}" for k in sorted(b)
            if a.get(k) != b[k] and not any(k == n or (n.endswith(".") and k.startswith(n)) for n in NOT_SETTINGS)]


def restore_with_new_settings(trainer: Trainer, ckpt: Checkpoint, config: dict[str, Any]) -> None:
    """Continue from ``ckpt``: the checkpoint gives the state (weights, optimizer moments, epoch, best
    model), the config gives the hyperparameters (lr, momentum, weight decay, schedule, max_epochs).

    PyTorch's ``load_state_dict`` would bring the old lr and schedule back while the new config
    claims otherwise; here the command line wins, and every value that differs from the
    checkpoint's run is named in one warning. A schedule derived from ``trainer.max_epochs``
    (cosine ``T_max``) is re-spread over the new ``max_epochs``, continuing at the checkpoint's epoch.
    """
    optimizer, scheduler = trainer.optimizer, trainer.scheduler
    groups = [{k: v for k, v in g.items() if k != "params"} for g in optimizer.param_groups]
    schedule = scheduler.state_dict() if scheduler is not None else None
    saved_opt = ckpt.get("optimizer")
    if isinstance(saved_opt, dict) and isinstance(saved_opt.get("param_groups"), list) \
            and len(saved_opt["param_groups"]) == len(groups):
        # the saved lr may be a schedule's 0 (cosine's end), which the optimizer refuses as a setting
        saved_opt["param_groups"] = [{**g, **settings} if isinstance(g, dict) else g
                                     for g, settings in zip(saved_opt["param_groups"], groups)]
    trainer.restore(ckpt)
    for group, settings in zip(optimizer.param_groups, groups, strict=True):
        group.update(settings)
    if scheduler is not None:
        saved = ckpt.get("scheduler")
        schedule["last_epoch"] = saved["last_epoch"] if isinstance(saved, dict) else trainer.state.epoch
        scheduler.load_state_dict(schedule)  # sets the optimizer's lr for the checkpoint's epoch
    changes = changed_settings(ckpt.get("config"), config)
    if changes:
        log.warning("resuming with settings that differ from the checkpoint's run; the new values apply: %s",
                    ", ".join(changes))


def seed_checkpoints(ckpt: Checkpoint, folder: Path) -> None:
    """A run continued in a new folder starts with the checkpoints it continues: ``last`` is the one
    resumed from, ``best`` the best-val checkpoint next to it. So the new folder always holds both,
    even when the run trains no further epoch or never improves."""
    source = Path(ckpt.path)
    if source.parent.resolve() == folder.resolve():
        return
    best = source if source.stem == "best" else source.with_name("best" + source.suffix)
    for src, name in ((source, "last"), (best, "best")):
        if src.is_file():
            write_atomic(folder / (name + source.suffix), src.read_bytes())
def hparams(c: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """The HParams columns: the model and optimizer keys, and every key set on the command line
    (a sweep's swept keys among them; ``scheduler=cosine`` brings the scheduler's keys)."""
    given = {o.lstrip("+~").split("=", 1)[0] for o in overrides}
    return {k: v for k, v in flatten_hparams(c).items()
            if k.split(".")[0] in ("model", "optimizer") or k in given or k.rsplit(".", 1)[0] in given}


def describe(ckpt: Checkpoint) -> str:
    epoch, step = progress_of(ckpt)
    return f"epoch {epoch}" + (f" + {step} steps of epoch {epoch + 1}" if step else "")


def run(cfg: DictConfig, run_dir: Path, interrupts: Interrupts, multirun: bool = False
        ) -> tuple[TrainResult, ModelCheckpoint | None]:
    """Everything between a composed config and a finished run; raises the user errors it finds.

    Returns the result and the checkpoint callback (which knows what it wrote; None on
    the ranks > 0 of a run across processes, which write nothing).
    """
    s = validate_train(cfg)  # the schema objects: each component builds its own object
    c: dict[str, Any] = OmegaConf.to_container(cfg, resolve=True)  # plain data, saved in checkpoints
    # with hydra.job.chdir=true the task runs inside the run folder: paths stay the user's
    if c["ckpt_path"]:
        c["ckpt_path"] = to_absolute_path(c["ckpt_path"])
    if s.data.root:
        s.data.root = c["data"]["root"] = to_absolute_path(s.data.root)
    # --- distributed: one model across processes (None: this process alone) ---
    dist = distributed_launch.setup(s.distributed, s.backend, multirun=HydraConfig.get().mode == RunMode.MULTIRUN)
    writer = dist is None or dist.is_root  # the one process that writes the run folder
    be = get_backend(s.backend.name, distributed_launch.device_for_rank(s.backend, s.distributed))
    ckpt = resume_checkpoint(c, run_dir)
    be.seed(s.seed)
    tr = s.trainer
    progress = writer and (tr.progress_bar if tr.progress_bar is not None else sys.stderr.isatty())
    ds = build.load_data(s.data, seed=s.seed, progress=progress, model=s.model)
    batch_size = s.data.batch_size
    loader = build.make_loader if dist is None else distributed_loader(dist)
    train_loader = loader(ds.train, batch_size, be, train=True, seed=s.seed)
    if len(train_loader) == 0:
        raise ConfigError("data.batch_size", f"{batch_size} is larger than the training set "
                                             f"({len(ds.train[1])} samples): no full batch to train on")
    val_loader = loader(ds.val, tr.eval_batch_size, be, train=False) if len(ds.val[1]) else None
    if val_loader is None:  # as Lightning's EarlyStopping/ModelCheckpoint refuse a metric that is never logged
        if tr.early_stopping_patience is not None:
            raise ConfigError("trainer.early_stopping_patience", "needs a validation set, and data.val_size leaves "
                                                                 "none; set data.val_size > 0 or remove it")
        if multirun and s.optimized_metric.startswith("val/"):
            raise ConfigError("optimized_metric", f"{s.optimized_metric} needs a validation set, and data.val_size "
                                                  "leaves none; set data.val_size > 0 or optimized_metric=test/acc")
    test_loader = loader(ds.test, tr.eval_batch_size, be, train=False) if len(ds.test[1]) else None

    input_shape = tuple(ds.train[0].shape[1:])
    model = build.build_model(s.model, input_shape, ds.num_classes, seed=s.seed, dtype=s.dtype).to(be)
    criterion = build.build_criterion(s.model)
    if dist is not None:  # synchronized BatchNorm, the global batch's dropout mask, row-weighted loss
        model, criterion = dist.prepare_model(model), dist.wrap_loss(criterion)
    optimizer = build.build_optimizer(s.optimizer, model.parameters())
    scheduler = build.build_scheduler(s.scheduler, optimizer, tr.max_epochs)

    checkpointer = ModelCheckpoint(run_dir / "checkpoints") if writer else None
    callbacks: list[Any] = [ProgressBar(enabled=progress), checkpointer] if writer else []
    if tr.early_stopping_patience is not None:  # every rank: they must stop at the same epoch
        callbacks.append(EarlyStopping(tr.early_stopping_patience))
    if s.logger.name == "tensorboard" and writer:
        callbacks.append(TensorBoardLogger(
            run_dir / "tensorboard", config_text=OmegaConf.to_yaml(cfg, resolve=True),
            hparams=hparams(c, HydraConfig.get().overrides.task), histogram_every_n_epochs=tr.histogram_every_n_epochs,
            class_names=ds.class_names, flush_secs=s.logger.flush_secs))
    if os.environ.get("MLPFRAME_OPTUNA_TRIAL_ID"):  # a trial of hydra/sweeper=mlpframe_optuna: may be pruned
        from mlpframe.sweep.pruning import pruning_callback

        pruning = pruning_callback()
        if pruning is not None:
            callbacks.append(pruning)
    trainer = Trainer(model, criterion, optimizer, be, scheduler=scheduler, max_epochs=tr.max_epochs,
                      grad_clip=tr.grad_clip, log_every_n_steps=tr.log_every_n_steps, seed=s.seed,
                      callbacks=callbacks, config=c, parallel=dist)
    if ckpt is not None:
        try:
            restore_with_new_settings(trainer, ckpt, c)
        except (ValueError, KeyError, TypeError, AttributeError, IndexError) as exc:
            raise UserError(f"ckpt_path: {ckpt.path} does not fit this run's model/optimizer ({one_line(exc)})") \
                from None
        if trainer.state.epoch > tr.max_epochs:
            raise ConfigError("trainer.max_epochs", f"{tr.max_epochs}, but {ckpt.path} has trained "
                                                    f"{trainer.state.epoch} epochs already; set it higher to train "
                                                    "longer (evaluate tests a checkpoint as it is)")
        if checkpointer is not None:  # rank 0 alone writes the run folder
            seed_checkpoints(ckpt, checkpointer.dirpath)
        log.info("resuming from %s (%s)", ckpt.path, describe(ckpt))
    if dist is not None:
        dist.broadcast_parameters(model)

    log.info("%s: %s, %d train / %d val / %d test samples, %d features, %d classes; backend %s",
             run_dir, ds.name, len(ds.train[1]), len(ds.val[1]), len(ds.test[1]), ds.num_features,
             ds.num_classes, be.name)
    interrupts.trainer = trainer
    if interrupts.received:  # a signal arrived just before the trainer existed
        trainer.request_interrupt()
    # overflow on the way to NaN warns on every op; divergence is detected and reported at the next sync
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        result = trainer.fit(train_loader, val_loader, test_loader, num_classes=ds.num_classes)
    be.free_memory()
    return result, checkpointer


def distributed_loader(dist: Any) -> Any:
    """``build.make_loader`` for a run across processes: each rank's slice of every global batch."""
    def make(split: tuple[np.ndarray, np.ndarray], batch_size: int, be: Any, *, train: bool, seed: int = 0) -> Any:
        X, y = split
        return dist.loader(X, y, batch_size, be, shuffle=train, drop_last=train, seed=seed)
    return make


def summary(result: TrainResult, m: dict[str, Any], run_dir: Path) -> str:
    # without a validation set the last epoch's weights are the ones tested (Trainer.fit)
    weights = "best-val weights" if "val/acc" in m else "last-epoch weights, no validation set"

    def pct(x: float) -> str:
        return f"{100 * x:.2f}%" if isinstance(x, float) and math.isfinite(x) else "n/a"

    lines = [
        f"status: {result.status}" + (f" ({result.message})" if result.message else ""),
        f"best val acc {pct(m['val/acc_best'])} (epoch {m['best_epoch']}), "
        f"test acc {pct(m['test/acc'])} ({weights}), test loss {m['test/loss']:.4f}",
        f"{m['epochs']} epochs, wall time {m['wall_time_s']:.1f}s, {m['samples_per_s']:,.0f} samples/s",
        f"run dir: {run_dir}",
    ]
    if (run_dir / "tensorboard").is_dir():
        lines.append(f"tensorboard --logdir {run_dir}")
    return "\n".join(lines)


def train(cfg: DictConfig) -> float:
    """The Hydra task: run, write ``metrics.json``, return the optimized metric (NaN if it failed)."""
    hc = HydraConfig.get()
    run_dir = Path(hc.runtime.output_dir)
    multirun = hc.mode == RunMode.MULTIRUN
    started = time.time()
    interrupts = Interrupts()
    try:
        with interrupts.installed():
            result, checkpointer = run(cfg, run_dir, interrupts, multirun)
    except KeyboardInterrupt:
        aborted(run_dir, interrupts, hc, started)
    except user_errors() as exc:
        message = user_message(exc)
        if not multirun:
            os.chdir(hc.runtime.cwd)  # out of the run folder (hydra.job.chdir=true) so that it can go
            if not is_quiet_rank():  # across processes, rank 0 alone owns the run folder
                remove_if_only_hydra(run_dir)
            fail(message)
        # in a sweep one bad job must not stop the others: record it and report NaN
        log.error("error: %s", message)
        write_json_atomic(run_dir / "metrics.json", {"status": "failed", "error": message,
                                                     "wall_time_s": time.time() - started})
        return math.nan
    except Exception as exc:
        if not multirun:
            raise
        log.exception("job failed: %s", one_line(exc))
        write_json_atomic(run_dir / "metrics.json", {"status": "failed", "error": f"{type(exc).__name__}: "
                                                     f"{one_line(exc)}", "wall_time_s": time.time() - started})
        return math.nan

    if checkpointer is None:  # a rank > 0 of a run across processes: rank 0 writes the run folder
        return finish_other_rank(result, interrupts)
    metrics = dict(result.metrics)
    metrics["message"] = result.message
    metrics["wall_time_s"] = time.time() - started  # the whole run: data, training, test
    metrics["checkpoint_failures"] = checkpointer.failures
    write_json_atomic(run_dir / "metrics.json", metrics)
    if result.status == "diverged":
        log.warning("the run diverged: %s", result.message)
    if checkpointer.failures:
        log.warning("%d checkpoint write(s) failed; see the warnings above", checkpointer.failures)
    log.info(summary(result, metrics, run_dir))
    if result.status == "interrupted":
        print(f"{result.message}: {resume_hint(run_dir, hc)}", file=sys.stderr, flush=True)
        interrupts.pass_on()
        guard_exit(interrupts.exit_status)
        sys.exit(interrupts.exit_status)
    if result.status == "diverged":
        return math.nan
    objective = metrics.get(cfg.optimized_metric, math.nan)
    return float(objective) if isinstance(objective, (int, float)) else math.nan


def finish_other_rank(result: TrainResult, interrupts: Interrupts) -> float:
    """The end of a run on a rank > 0 (across processes): the same exit as rank 0, nothing written."""
    if result.status == "interrupted":
        guard_exit(interrupts.exit_status)
        sys.exit(interrupts.exit_status)
    if result.status == "diverged":
        return math.nan
    return float(result.metrics.get("val/acc_best", math.nan))


def resume_hint(run_dir: Path, hc: Any) -> str:
    """Where the newest checkpoint is and the command that continues the run in place."""
    ckpt, _ = latest_checkpoint(run_dir / "checkpoints")
    if ckpt is None:
        return "no checkpoint was written, so there is nothing to resume"
    overrides = [o for o in hc.overrides.task if not o.lstrip("+~").startswith("trainer.resume=")]
    # the folder quoted for Hydra's grammar (a sweep job's name holds '=' and ','), then for the shell
    command = " ".join([sys.argv[0], *map(shlex.quote, overrides), "trainer.resume=auto",
                        shlex.quote(f"hydra.run.dir={hydra_quote(str(run_dir))}")])
    return f"checkpoint {ckpt.path} ({describe(ckpt)}); resume with: {command}"


def aborted(run_dir: Path, interrupts: Interrupts, hc: Any, started: float) -> None:
    """A signal before training started, or a second one during it: one line, exit 128 + signal."""
    if is_quiet_rank():  # across processes, rank 0 speaks and writes
        guard_exit(interrupts.exit_status)
        sys.exit(interrupts.exit_status)
    if interrupts.trainer is None:  # (an earlier attempt's checkpoints keep the folder)
        remove_if_only_hydra(run_dir)
        message = "interrupted before training started"
    else:
        message = "aborted by a second signal"
        write_json_atomic(run_dir / "metrics.json", {"status": "interrupted", "message": message,
                                                     "wall_time_s": time.time() - started})
    print(f"{message}: {resume_hint(run_dir, hc)}", file=sys.stderr, flush=True)
    sys.exit(interrupts.exit_status)


_hydra_main = hydra.main(version_base="1.3", config_path=config_dir(), config_name="train")(train)


def main() -> None:
    """The ``train`` command: Hydra's main, after a run across processes has agreed on its folder."""
    try:
        sys.argv = distributed_launch.prepare_argv(sys.argv, distributed_launch.run_dir_pattern(config_dir()))
    except UserError as exc:
        fail(str(exc))
    _hydra_main()
