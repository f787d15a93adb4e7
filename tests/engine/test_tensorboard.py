"""TensorBoard output, read back with TensorBoard's own event readers."""

from __future__ import annotations

import numpy as np
import pytest
from tensorboard.backend.event_processing import event_accumulator, plugin_event_accumulator
from tensorboard.plugins.hparams import plugin_data_pb2

from mlpframe import get_backend, nn, optim
from mlpframe.data import DataLoader, load_dataset
from mlpframe.engine import Callback, TensorBoardLogger, Trainer, confusion_image, flatten_hparams

REQUIRED_SCALARS = {"train/loss", "train/acc", "val/loss", "val/acc", "val/acc_best", "test/acc", "test/loss", "lr",
                    "throughput/samples_per_s"}


def read_scalars(log_dir):
    acc = event_accumulator.EventAccumulator(str(log_dir), size_guidance={"scalars": 0, "histograms": 0,
                                                                         "images": 0, "tensors": 0})
    acc.Reload()
    return acc


def hparams_session(log_dir) -> plugin_data_pb2.HParamsPluginData:
    acc = plugin_event_accumulator.EventAccumulator(str(log_dir))
    acc.Reload()
    content = acc.PluginTagToContent("hparams")
    data = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"])
    return data, set(content)


def fit(log_dir, max_epochs=2, hist_every=1):
    ds = load_dataset("synthetic", n_samples=400, num_classes=3, seed=0)
    be = get_backend("numpy")
    model = nn.MLP(2, [16], 3, rng=np.random.default_rng(0)).to(be)
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    config = {"model": {"hidden": [16], "norm": None}, "optimizer": {"lr": 0.1}, "seed": 0}
    tb = TensorBoardLogger(log_dir, config_text="model:\n  hidden: [16]\n", hparams=flatten_hparams(config),
                           histogram_every_n_epochs=hist_every, class_names=ds.class_names)
    trainer = Trainer(model, nn.CrossEntropyLoss(), opt, be, scheduler=optim.build_scheduler("none", opt),
                      max_epochs=max_epochs, log_every_n_steps=3, callbacks=[tb])
    loaders = (DataLoader(*ds.train, 32, be, shuffle=True, drop_last=True), DataLoader(*ds.val, 100, be),
               DataLoader(*ds.test, 100, be))
    return trainer, trainer.fit(*loaders, num_classes=3), tb


def test_scalars_histograms_text_image_and_hparams(tmp_path):
    trainer, result, tb = fit(tmp_path / "tb")
    assert tb.writer is None, "the writer is closed after fit"
    acc = read_scalars(tmp_path / "tb")
    tags = acc.Tags()
    assert REQUIRED_SCALARS <= set(tags["scalars"])
    # train metrics at every sync, val metrics once per epoch, on the global-step axis
    steps_per_epoch = 280 // 32
    train_steps = [e.step for e in acc.Scalars("train/loss")]
    assert train_steps == sorted(train_steps) and train_steps[-1] == 2 * steps_per_epoch
    assert len(train_steps) == 2 * -(-steps_per_epoch // 3)
    assert [e.step for e in acc.Scalars("val/acc")] == [steps_per_epoch, 2 * steps_per_epoch]
    assert acc.Scalars("test/acc")[-1].value == pytest.approx(result.metrics["test/acc"])
    assert acc.Scalars("val/acc_best")[-1].value == pytest.approx(result.metrics["val/acc_best"])
    assert {"weights/0.weight", "grads/0.weight", "weights/2.bias"} <= set(tags["histograms"])
    assert "test/confusion_matrix" in tags["images"]
    assert acc.Images("test/confusion_matrix")[0].width > 100
    assert "config/text_summary" in tags["tensors"]

    session, hparams_tags = hparams_session(tmp_path / "tb")
    hp = session.session_start_info.hparams
    assert hp["optimizer.lr"].number_value == pytest.approx(0.1)
    assert hp["model.hidden"].string_value == "[16]"
    assert hp["model.norm"].string_value == "None"
    # no experiment summary: TensorBoard derives the experiment from every run under --logdir
    assert hparams_tags == {"_hparams_/session_start_info", "_hparams_/session_end_info"}
    # one writer, one run: hparams are in the same folder as the scalars (no timestamped sub-run)
    assert [p.name for p in (tmp_path / "tb").iterdir() if p.is_dir()] == []


def test_histograms_can_be_switched_off(tmp_path):
    fit(tmp_path / "tb", hist_every=0)
    assert read_scalars(tmp_path / "tb").Tags()["histograms"] == []


def test_flatten_hparams_types():
    flat = flatten_hparams({"a": {"b": [1, 2], "c": None, "d": {"e": True}}, "f": 0.5, "g": "x", "h": (3,)})
    assert flat == {"a.b": "[1, 2]", "a.c": "None", "a.d.e": True, "f": 0.5, "g": "x", "h": "[3]"}


def test_confusion_image_is_an_rgb_picture():
    cm = np.array([[5, 1], [0, 4]])
    img = confusion_image(cm, ["cat", "dog"])
    assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3
    assert img.min() < 100 < img.max()  # not a blank canvas


def test_resuming_into_the_same_folder_replaces_what_came_after_the_checkpoint(tmp_path):
    from mlpframe.engine import ModelCheckpoint, load_checkpoint

    log_dir = tmp_path / "tb"
    first, _, _ = fit(log_dir, max_epochs=1)
    state = first.checkpoint_state()
    # the first process went on to epoch 3 before it was killed; its epochs 2-3 are in the events
    first.max_epochs = 3
    tb = TensorBoardLogger(log_dir)
    first.callbacks = [tb]
    ds = load_dataset("synthetic", n_samples=400, num_classes=3, seed=0)
    be = first.backend
    first.fit(DataLoader(*ds.train, 32, be, shuffle=True, drop_last=True), DataLoader(*ds.val, 100, be))

    resumed, result, _ = fit(tmp_path / "unused", max_epochs=0)
    resumed.restore(state)
    resumed.max_epochs = 3
    resumed.callbacks = [TensorBoardLogger(log_dir), ModelCheckpoint(tmp_path / "ck")]
    resumed.fit(DataLoader(*ds.train, 32, be, shuffle=True, drop_last=True), DataLoader(*ds.val, 100, be))
    assert load_checkpoint(tmp_path / "ck" / "last.npz")["trainer"]["epoch"] == 3

    steps = [e.step for e in read_scalars(log_dir).Scalars("val/acc")]
    assert steps == sorted(set(steps)) and len(steps) == 3, steps


class Recorder(Callback):
    """What the trainer handed its callbacks: the train metrics of every sync, the lr each epoch ran with."""

    def __init__(self) -> None:
        self.syncs: list[tuple[int, dict[str, float], int]] = []
        self.lr_used: list[float] = []

    def on_epoch_start(self, trainer, epoch, num_batches):
        self.lr_used.append(trainer.optimizer.param_groups[0]["lr"])

    def on_train_sync(self, trainer, metrics, steps):
        self.syncs.append((trainer.state.global_step, dict(metrics), steps))


def test_every_logged_point_is_the_schedule_s_and_the_history_s_value(tmp_path):
    """lr, train/*, val/* at every step they are logged, value by value, against the schedule and the history."""
    ds = load_dataset("synthetic", n_samples=400, num_classes=3, seed=0)
    be = get_backend("numpy")
    model = nn.MLP(2, [16], 3, rng=np.random.default_rng(0)).to(be)
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    # two warm-up epochs from a third of the rate, then halve every two epochs
    sched = optim.build_scheduler("step", opt, warmup_epochs=2, step_size=2, gamma=0.5)
    rec = Recorder()
    trainer = Trainer(model, nn.CrossEntropyLoss(), opt, be, scheduler=sched, max_epochs=6, log_every_n_steps=3,
                      callbacks=[rec, TensorBoardLogger(tmp_path / "tb")])
    loaders = (DataLoader(*ds.train, 32, be, shuffle=True, drop_last=True), DataLoader(*ds.val, 100, be),
               DataLoader(*ds.test, 100, be))
    result = trainer.fit(*loaders, num_classes=3)
    history = result.history
    acc = read_scalars(tmp_path / "tb")

    def curve(tag):
        return [(e.step, e.value) for e in acc.Scalars(tag)]

    def f32(values):
        return [float(np.float32(v)) for v in values]

    steps_per_epoch = 280 // 32
    epoch_steps = [steps_per_epoch * (e + 1) for e in range(6)]
    schedule = [0.1 / 3, 0.2 / 3, 0.1, 0.1, 0.05, 0.05]
    assert rec.lr_used == pytest.approx(schedule, rel=1e-12), "the optimizer did not follow the schedule"
    assert curve("lr") == list(zip(epoch_steps, f32(schedule))), "the logged lr is not the one each epoch used"
    assert [h["lr"] for h in history] == pytest.approx(schedule, rel=1e-12)

    for tag in ("val/loss", "val/acc", "val/acc_best", "val/loss_best"):
        assert curve(tag) == list(zip(epoch_steps, f32(h[tag] for h in history))), tag
    val_acc = [h["val/acc"] for h in history]
    running_best = np.maximum.accumulate(val_acc)
    assert list(running_best) != val_acc, "a run whose val/acc never dips cannot tell the best from the last"
    assert [v for _, v in curve("val/acc_best")] == f32(running_best)

    for tag in ("train/loss", "train/acc"):
        assert curve(tag) == [(step, float(np.float32(m[tag]))) for step, m, _ in rec.syncs], tag
    # the sync intervals (3, 3, 2 steps of 32 samples) average to the epoch's figure in the history
    per_epoch = np.array([m["train/acc"] * k for _, m, k in rec.syncs]).reshape(6, 3).sum(axis=1) / steps_per_epoch
    assert per_epoch == pytest.approx([h["train/acc"] for h in history], abs=1e-12)
    assert [k for _, _, k in rec.syncs] == [3, 3, 2] * 6


# ----------------------------------------------------------------- kill and resume, event by event
STEPS_PER_EPOCH, SYNC_EVERY, EPOCHS = 10, 3, 4
EPOCH_TAGS = ("val/loss", "val/acc", "val/acc_best", "val/loss_best", "lr")


class _Run:
    """What the logger reads of a trainer: the global step (and a model, for histograms, unused here)."""

    def __init__(self, step):
        from mlpframe.engine.state import TrainState

        self.state = TrainState(global_step=step)
        self.model = self.backend = None


def _value(tag, step, stale):
    # a killed attempt's points after the checkpoint it is resumed from carry other values: a stale point
    # that TensorBoard still showed would differ from the uninterrupted run's, not only be one too many
    return step + 0.01 * len(tag) + (1000.0 if stale else 0.0)


def _attempt(log_dir, start, kill=None, resumed_from=None, flush_secs=30):
    """Log steps ``start+1...`` as the trainer would; at ``kill`` (a step, or ``("epoch_end", step)`` for the
    moment after that epoch's flush, before its checkpoint; ``"startup"`` right after fit start) copy what is
    on disk, as a SIGKILL leaves it, and return the copy. ``resumed_from``: the step the next attempt continues
    from (this attempt's later points get stale values)."""
    import shutil

    from mlpframe.engine.callback import TrainResult

    tb, run = TensorBoardLogger(log_dir, config_text="seed: 0", flush_secs=flush_secs), _Run(start)

    def killed():
        shutil.copytree(log_dir, log_dir.with_name(log_dir.name + "-killed"))
        tb.teardown(run)  # (the original folder is dropped: only the copy goes on)
        shutil.rmtree(log_dir)
        log_dir.with_name(log_dir.name + "-killed").rename(log_dir)

    tb.on_fit_start(run)
    if kill == "startup":
        return killed()
    for step in range(start + 1, EPOCHS * STEPS_PER_EPOCH + 1):
        run.state.global_step = step
        stale = resumed_from is not None and step > resumed_from
        i = (step - 1) % STEPS_PER_EPOCH + 1
        if i % SYNC_EVERY == 0 or i == STEPS_PER_EPOCH:
            tb.on_train_sync(run, {t: _value(t, step, stale) for t in ("train/loss", "train/acc")}, SYNC_EVERY)
        if kill == step:
            return killed()
        if i == STEPS_PER_EPOCH:
            metrics = {t: _value(t, step, stale) for t in EPOCH_TAGS}
            tb.on_epoch_end(run, {**metrics, "epoch": step // STEPS_PER_EPOCH, "throughput/samples_per_s": 1.0})
            if kill == ("epoch_end", step):
                return killed()
    tb.on_fit_end(run, TrainResult("completed", {"test/acc": 0.5, "test/loss": 1.5}, []))
    tb.teardown(run)


def _curves(log_dir):
    acc = read_scalars(log_dir)
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


@pytest.mark.parametrize("kills", [
    [("startup", 0)],
    [(("epoch_end", 20), 10)],  # killed between epoch 2's flush and its checkpoint: resumes from epoch 1's
    [(("epoch_end", 20), 20)],  # killed after epoch 2's checkpoint
    [(25, 20)],  # mid-epoch 3, its points already flushed (flush_secs=0)
    [(25, 20), (("epoch_end", 30), 20), (("epoch_end", 40), 30)],  # killed three times, once before any new checkpoint
], ids=["startup", "after-flush-before-checkpoint", "after-checkpoint", "mid-epoch-flushed", "three-kills"])
def test_killed_and_resumed_curves_equal_the_uninterrupted_ones(tmp_path, kills):
    from mlpframe.engine.tensorboard import visible_points

    _attempt(tmp_path / "reference", 0)
    start = 0
    for kill, resume_step in kills:
        _attempt(tmp_path / "tb", start, kill=kill, resumed_from=resume_step, flush_secs=0 if kill == 25 else 30)
        start = resume_step
    _attempt(tmp_path / "tb", start)

    reference = _curves(tmp_path / "reference")
    assert len(reference["val/acc"]) == EPOCHS and len(reference["train/loss"]) == EPOCHS * 4
    assert _curves(tmp_path / "tb") == reference  # no point missing, none twice, none stale
    assert visible_points(tmp_path / "tb") == visible_points(tmp_path / "reference")
    assert len(list((tmp_path / "tb").glob("events.out.tfevents.*"))) == len(kills) + 1


def test_the_writer_puts_every_event_on_disk_before_flush_returns(tmp_path):
    from tensorboardX.summary import scalar

    from mlpframe.engine.tensorboard import EventWriter, read_events

    writer = EventWriter(tmp_path, purge_step=5, flush_secs=3600)
    for step in range(6, 200):
        writer.add_summary(scalar("x", float(step)), step)
    writer.flush()
    events = list(read_events(writer.path))  # read while the writer is still open, as after a SIGKILL
    assert events[1].session_log.status == events[1].session_log.START and events[1].step == 5
    assert [e.step for e in events[2:]] == list(range(6, 200))
    writer.close()
