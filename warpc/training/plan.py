"""Set-up of a training run: (dataset spec, config file / dict, overrides, resume) -> (ModelConfig, Dataset, train
keyword arguments). `warpc train` is this plus printing; Python users get the same merging, resume and checks.

Order (nothing slow or on disk before the cheap checks): the output files' rules (files.py) and the output
folder, the hyper-parameters, the config file, the model flags, then the dataset, then the merged ModelConfig.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from ..config import ModelConfig
from ..data import Dataset
from ..errors import ConfigError, DatasetError, ShapeError
from . import auto as auto_mod
from .evaluation import check_data_dir
from .files import RunFiles, plan_run_files
from .loop import DEFAULT_BATCH_SIZE, DEFAULT_LR, DEFAULT_WEIGHT_DECAY, TrainResult, check_train_options, train

# filled from the dataset, never from flags
DATA_FIELDS = ("n_features", "classes")


@dataclass
class TrainingPlan:
    config: ModelConfig
    dataset: Dataset
    options: dict = field(default_factory=dict)   # keyword arguments for train() (steps, lr, out, resume, ...)
    files: RunFiles | None = None
    choices: list[str] = field(default_factory=list)  # what `auto` chose and why, for the user

    def run(self, **kwargs) -> TrainResult:
        """Train as planned; `kwargs` adds run-time options (device, progress, curve)."""
        return train(self.config, self.dataset, **{**self.options, **kwargs})


def read_config_file(path: str | Path) -> dict:
    """A model config JSON file: one object of ModelConfig fields (n_features / classes may be left out)."""
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as e:
        raise ConfigError(f"cannot read config {path}: {e.strerror or e}") from None
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"config {path} is not a text file (expected a JSON object of model config fields)") \
            from None
    except json.JSONDecodeError as e:
        raise ConfigError(f"config {path} is not valid JSON ({e.msg} at line {e.lineno}, column {e.colno})") \
            from None
    if not isinstance(data, dict):
        kind = {list: "a list", str: "a string", bool: "true/false", type(None): "null"}.get(type(data), "a number")
        raise ConfigError(f"config {path}: expected a JSON object of model config fields, got {kind}")
    return data


def plan_training(
    dataset: str | Path | Dataset,
    *,
    out: str | Path | None = None,
    config: str | Path | dict | ModelConfig | None = None,
    overrides: dict | None = None,
    resume: bool = False,
    force: bool = False,
    data_dir: str | Path | None = None,
    label_column: str | int | None = None,
    val_fraction: float | None = None,
    test_fraction: float | None = None,
    split_seed: int | None = None,
    download: bool = False,
    steps: int | None = None,
    epochs: float | None = None,
    batch_size: int | None = None,
    lr: float | None = None,
    weight_decay: float | None = None,
    seed: int | None = None,
    eval_every: int | None = None,
    auto: bool = False,
    budget: float | str | None = None,
) -> TrainingPlan:
    """Merge a config (JSON file, dict or ModelConfig) with `overrides` (ModelConfig fields; None = not given) and
    the dataset's n_features / classes, or, with `resume`, take the stored run's config, hyper-parameters and
    split (model overrides are then refused; hyper-parameters given here still apply).

    `auto` (what `warpc train` does): the shape fields neither the config nor `overrides` set, and the length
    when neither `steps` nor `epochs` is given, are sized from the dataset (auto.py; `plan.choices` says what and
    why). `budget` (seconds or '2m'-style; None = none) ends the run at the first validation that would overrun
    it."""
    from .. import data as wdata
    from ..checkpoint import read_checkpoint

    if resume and out is None:
        raise ConfigError("resume needs the checkpoint path (out)")
    budget_s = auto_mod.parse_budget(budget)
    files = plan_run_files(out, resume=resume, force=force) if out is not None else None
    check_data_dir(data_dir)
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    if resume and (overrides or config is not None):
        # Continue with the stored config; model options would silently change the network, so refuse them.
        given = sorted(overrides) + (["config"] if config is not None else [])
        raise ConfigError(f"--resume continues with the stored model config; drop the model options "
                          f"({', '.join(given)})")
    ModelConfig.check_keys(overrides, "model options")
    if isinstance(config, ModelConfig):
        base = config.to_dict()
    elif isinstance(config, dict):
        base = dict(config)
    elif config is not None:
        base = read_config_file(config)
    else:
        base = {}
    ModelConfig.check_keys(base, f"config {config}" if isinstance(config, (str, Path)) else "config")

    train_kw: dict = {}
    data_meta: dict = {}
    if resume:
        meta, _ = read_checkpoint(files.last)
        base = dict(meta.get("config") or {})
        prev = meta.get("train") if isinstance(meta.get("train"), dict) else {}
        train_kw = {k: prev[k] for k in ("steps", "batch_size", "lr", "weight_decay", "seed", "eval_every",
                                         "patience") if prev.get(k) is not None}
        data_meta = meta.get("data") if isinstance(meta.get("data"), dict) else {}
        if epochs is not None:
            train_kw.pop("steps", None)
        done = int((meta.get("train_state") or {}).get("step", 0))
        if steps is None and epochs is None and done >= train_kw.get("steps", 0):
            raise ConfigError(f"{out}: this run already trained {done} steps; pass a larger --steps to continue")

    given = {"steps": steps, "epochs": epochs, "batch_size": batch_size, "lr": lr, "weight_decay": weight_decay,
             "seed": seed, "eval_every": eval_every}
    train_kw.update({k: v for k, v in given.items() if v is not None})
    check_train_options(steps=train_kw.get("steps"), epochs=train_kw.get("epochs"),
                        batch_size=train_kw.get("batch_size", DEFAULT_BATCH_SIZE), lr=train_kw.get("lr", DEFAULT_LR),
                        weight_decay=train_kw.get("weight_decay", DEFAULT_WEIGHT_DECAY),
                        eval_every=train_kw.get("eval_every"))

    if isinstance(dataset, Dataset):
        ds = dataset
    else:
        def pick(value, key, default):
            return value if value is not None else data_meta.get(key, default)

        tf = pick(test_fraction, "test_fraction", None)  # None: a dataset with its own test set recorded none
        input_bits = overrides.get("input_bits", base.get("input_bits", 8))
        if isinstance(input_bits, bool) or not isinstance(input_bits, int):
            raise ConfigError(f"input_bits must be an integer, got {input_bits!r}")
        ds = wdata.load_dataset(
            dataset, data_dir=data_dir, label_column=label_column if label_column is not None else
            data_meta.get("label_column"),
            val_fraction=pick(val_fraction, "val_fraction", wdata.VAL_FRACTION),
            test_fraction=wdata.TEST_FRACTION if tf is None else tf,
            seed=int(pick(split_seed, "seed", 0)), input_bits=input_bits, download=download)
    if resume and data_meta.get("test_fingerprint") not in (None, ds.fingerprint()):
        raise DatasetError(f"cannot resume: {ds.name} with these split options is not the data {files.last.name} "
                           f"was trained on ({data_meta.get('name')}, split seed {data_meta.get('seed', 0)}); drop "
                           f"the split options or pass the run's dataset")

    choices: list[str] = []
    if budget_s is not None:
        train_kw["time_limit"] = budget_s
    if auto and not resume:
        pick = auto_mod.choose(ds, set(base) | set(overrides), budget_s,
                               batch_size=train_kw.get("batch_size", DEFAULT_BATCH_SIZE),
                               length_given=steps is not None or epochs is not None)
        base = {**base, **pick.fields}
        if pick.steps is not None:
            train_kw.update(steps=pick.steps, patience=pick.patience)
        choices = pick.reasons
    cfg = {**base, **overrides}
    if not resume:
        cfg["seed"] = train_kw.get("seed", cfg.get("seed", 0))
    if base.get("n_features") not in (None, ds.n_features):
        raise ShapeError(f"the config is for {base['n_features']} features but {ds.name} has {ds.n_features}")
    if resume and base.get("classes") not in (None, ds.classes):
        raise ShapeError(f"the run has {base['classes']} classes but {ds.name} has {ds.classes}")
    cfg["n_features"], cfg["classes"] = ds.n_features, ds.classes
    if cfg.get("class_names") is None and not resume:  # a resumed run keeps its config exactly
        cfg["class_names"] = ds.class_names
    model_config = ModelConfig.from_dict(cfg)
    train_kw.setdefault("seed", model_config.seed)
    options = {**train_kw, "out": out, "resume": resume, "force": force}
    return TrainingPlan(model_config, ds, options, files, choices)
