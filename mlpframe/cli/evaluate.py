"""``python -m mlpframe evaluate ckpt_path=<file> [data=<name>]``: test a saved model.

The model is rebuilt from the config stored in the checkpoint, its weights are
loaded, and the test split of the checkpoint's data set (or of ``data=<name>``)
is evaluated. The last line on stdout is a JSON object with ``test/acc`` and
``test/loss``; nothing is written to disk.
"""

from __future__ import annotations

import json
import math
from typing import Any

import hydra
from omegaconf import DictConfig

from mlpframe.backend import get_backend
from mlpframe.cli import build
from mlpframe.cli.common import UserError, config_dir, fail, one_line, user_errors, user_message
from mlpframe.cli.config import EvaluateConfig, checked_section, to_schema
from mlpframe.engine import evaluate as evaluate_model
from mlpframe.engine import load_checkpoint


def run(cfg: DictConfig) -> dict[str, Any]:
    c = to_schema(cfg, EvaluateConfig)
    ckpt = load_checkpoint(c.ckpt_path)
    stored = ckpt.get("config")
    if not isinstance(stored, dict) or not all(isinstance(stored.get(k), dict) for k in ("model", "data")):
        raise UserError(f"ckpt_path: {ckpt.path} holds no model/data config to rebuild the model from")
    # the file's config is checked like a command line: same schemas, same rules
    model_cfg = checked_section("model", stored["model"], key="checkpoint model")
    data_cfg = c.data if c.data is not None else checked_section("data", stored["data"], key="checkpoint data")
    seed, dtype = stored.get("seed", 42), stored.get("dtype", "float32")
    bad_seed = isinstance(seed, bool) or not isinstance(seed, int) or seed < 0
    if bad_seed or not isinstance(dtype, str) or dtype not in ("float32", "float64"):
        raise UserError(f"ckpt_path: {ckpt.path} has a malformed config (seed {seed!r:.40}, dtype {dtype!r:.40})")

    be = get_backend(c.backend.name, c.backend.device)
    ds = build.load_data(data_cfg, seed=seed, progress=False)
    model = build.build_model(model_cfg, tuple(ds.test[0].shape[1:]), ds.num_classes, seed=seed, dtype=dtype).to(be)
    try:
        model.load_state_dict(ckpt["model"])
    except (ValueError, KeyError, TypeError, AttributeError, IndexError) as exc:
        raise UserError(f"ckpt_path: the weights in {ckpt.path} do not fit {data_cfg.name} "
                        f"({ds.num_features} features, {ds.num_classes} classes): {one_line(exc)}") from None
    criterion = build.build_criterion(model_cfg)
    loader = build.make_loader(ds.test, c.batch_size, be, train=False)
    result = evaluate_model(model, criterion, loader, be)
    trainer_state = ckpt.get("trainer") if isinstance(ckpt.get("trainer"), dict) else {}
    return {
        "test/acc": result["acc"],
        "test/loss": result["loss"],
        "n_samples": result["n"],
        "data": data_cfg.name,
        "epoch": trainer_state.get("epoch"),
        "ckpt_path": str(ckpt.path),
        "backend": be.name,
    }


def evaluate(cfg: DictConfig) -> float:
    try:
        out = run(cfg)
    except user_errors() as exc:
        fail(user_message(exc))
    # NaN is not JSON; null is what a JSON reader expects for "no value"
    clean = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in out.items()}
    print(json.dumps(clean), flush=True)
    return float(out["test/acc"])


main = hydra.main(version_base="1.3", config_path=config_dir(), config_name="evaluate")(evaluate)
