"""frontend commands of the warpc CLI: `warpc train` and `warpc eval` (thin wrappers over warpc.train / warpc.data)."""
from __future__ import annotations

import json
from pathlib import Path

import click

from ..errors import CheckpointError, ConfigError, ShapeError

commands: list[click.Command] = []


def _ints(text: str | None, what: str) -> list[int] | int | None:
    if text is None:
        return None
    try:
        vals = [int(v) for v in str(text).replace(" ", "").split(",") if v]
    except ValueError:
        raise ConfigError(f"{what} must be integers separated by commas, got {text!r}") from None
    if not vals:
        raise ConfigError(f"{what} is empty")
    return vals


def _floats(text: str | None, what: str) -> list[float] | float | None:
    if text is None or str(text).lower() in ("auto", "default"):
        return None
    try:
        vals = [float(v) for v in str(text).replace(" ", "").split(",") if v]
    except ValueError:
        raise ConfigError(f"{what} must be numbers separated by commas, got {text!r}") from None
    return vals[0] if len(vals) == 1 else vals


def _label_column(text: str | None):
    if text is None:
        return None
    try:
        return int(text)
    except ValueError:
        return text


@click.command("train")
@click.option("--dataset", required=True, help="bundled/IDX name (digits, breast_cancer, iris, wine, fashion-mnist, "
              "mnist, cifar10) or a path to a .csv / .npz file")
@click.option("--data-dir", type=click.Path(file_okay=False), default=None,
              help="folder with the dataset files (IDX, CIFAR batches)")
@click.option("--label-column", default=None, help="CSV label column, by name or index (default: label/class/"
              "target/y, else the last column)")
@click.option("--download", is_flag=True, help="download fashion-mnist/mnist/cifar10 with torchvision into --data-dir")
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False), help="checkpoint file to write "
              "(e.g. runs/model.safetensors); also writes NAME.last.safetensors and NAME.curve.png beside it")
@click.option("--config", "config_file", type=click.Path(dir_okay=False), default=None,
              help="model config JSON (ModelConfig fields; n_features/classes are filled from the dataset); "
              "flags below override it")
@click.option("--widths", default=None, help="layer widths, e.g. 2000,2000 (the last must be a multiple of the "
              "number of classes)")
@click.option("--k", "k", default=None, help="inputs per node, one value or one per layer (2..6)")
@click.option("--thresholds", type=int, default=None, help="thermometer thresholds per feature")
@click.option("--encoder", type=click.Choice(["uniform", "distributive", "learnable"]), default=None)
@click.option("--wiring", type=click.Choice(["random", "unique", "learnable"]), default=None)
@click.option("--wiring-candidates", type=int, default=None, help="candidates per input for --wiring learnable")
@click.option("--parametrization", type=click.Choice(["warp", "dlgn"]), default=None)
@click.option("--tau", default=None, help="node temperature: a number, one per layer, or 'auto' (by k)")
@click.option("--tau-head", type=float, default=None, help="GroupSum temperature")
@click.option("--sampling", type=click.Choice(["soft", "gumbel", "soft_st", "gumbel_st"]), default=None)
@click.option("--init", "init", type=click.Choice(["residual", "random"]), default=None)
@click.option("--input-bits", type=int, default=None, help="bits of the integer features (float data is quantised)")
@click.option("--steps", type=int, default=None, help="optimizer steps (default 1500 unless --epochs)")
@click.option("--epochs", type=float, default=None, help="passes over the training split (instead of --steps)")
@click.option("--batch-size", type=int, default=None, show_default="128")
@click.option("--lr", type=float, default=None, show_default="0.05")
@click.option("--weight-decay", type=float, default=None, show_default="0")
@click.option("--seed", type=int, default=0, show_default=True, help="seed for wiring, init, noise and batches")
@click.option("--split-seed", type=int, default=0, show_default=True, help="seed of the train/val/test split")
@click.option("--val-fraction", type=float, default=None, show_default="0.1", help="validation share of train")
@click.option("--test-fraction", type=float, default=None, show_default="0.2",
              help="test share for datasets without a test set")
@click.option("--device", default="auto", show_default=True, help="auto | cpu | cuda")
@click.option("--backend", type=click.Choice(["auto", "torch", "cpp", "triton"]), default=None,
              help="WARP-LUT training kernels (default: $WARPC_BACKEND or auto)")
@click.option("--eval-every", type=int, default=None, help="steps between validations (default steps/20)")
@click.option("--resume", is_flag=True, help="continue the interrupted run stored beside --out (NAME.last.safetensors)")
@click.option("--quiet", is_flag=True, help="no progress bar")
@click.option("--json", "as_json", is_flag=True, help="print the final metrics as one JSON object")
def train_cmd(dataset, data_dir, label_column, download, out, config_file, widths, k, thresholds, encoder, wiring,
              wiring_candidates, parametrization, tau, tau_head, sampling, init, input_bits, steps, epochs,
              batch_size, lr, weight_decay, seed, split_seed, val_fraction, test_fraction, device, backend,
              eval_every, resume, quiet, as_json):
    """Train a WARP-LUT network and save the best checkpoint (by discrete validation accuracy)."""
    from .. import data as wdata
    from .. import training as wtrain
    from ..checkpoint import read_checkpoint
    from ..config import ModelConfig

    overrides = {
        "widths": _ints(widths, "--widths"), "k": _ints(k, "--k"), "thresholds": thresholds, "encoder": encoder,
        "wiring": wiring, "wiring_candidates": wiring_candidates, "parametrization": parametrization,
        "tau_head": tau_head, "sampling": sampling, "init": init, "input_bits": input_bits,
    }
    if isinstance(overrides["k"], list) and len(overrides["k"]) == 1:
        overrides["k"] = overrides["k"][0]
    overrides = {key: v for key, v in overrides.items() if v is not None}
    if tau is not None:
        overrides["tau"] = _floats(tau, "--tau")
    base: dict = {}
    if config_file:
        try:
            base = json.loads(Path(config_file).read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise ConfigError(f"cannot read config {config_file}: {e}") from None
        if not isinstance(base, dict):
            raise ConfigError(f"{config_file}: expected a JSON object of ModelConfig fields")
    train_kw = {}
    if resume:
        # Continue with the stored config; model flags would silently change the network, so refuse them.
        lp = wtrain.last_path(out)
        if not lp.is_file():
            raise CheckpointError(f"cannot resume: {lp} not found")
        meta, _ = read_checkpoint(lp)
        if overrides or config_file:
            raise ConfigError("--resume continues with the stored model config; drop the model flags")
        base = dict(meta["config"])
        prev = meta.get("train", {})
        train_kw = {key: prev[key] for key in ("batch_size", "lr", "weight_decay", "seed") if key in prev}
        seed = train_kw.pop("seed", seed)
    if backend is not None:
        from ..nn.kernels import set_backend

        set_backend(backend)
    input_bits_eff = overrides.get("input_bits", base.get("input_bits", 8))
    ds = wdata.load_dataset(
        dataset, data_dir=data_dir, label_column=_label_column(label_column),
        val_fraction=val_fraction if val_fraction is not None else wdata.VAL_FRACTION,
        test_fraction=test_fraction if test_fraction is not None else wdata.TEST_FRACTION,
        seed=split_seed, input_bits=int(input_bits_eff), download=download,
    )
    cfg = {**base, **overrides}
    if not resume:
        cfg["seed"] = seed
    if base.get("n_features") not in (None, ds.n_features):
        raise ShapeError(f"the config is for {base['n_features']} features but {dataset} has {ds.n_features}")
    cfg["n_features"], cfg["classes"] = ds.n_features, ds.classes
    cfg.setdefault("class_names", ds.class_names)
    config = ModelConfig.from_dict(cfg)
    for key, v in (("batch_size", batch_size), ("lr", lr), ("weight_decay", weight_decay)):
        if v is not None:
            train_kw[key] = v
    click.echo(f"{ds!r}; model: {len(config.widths)} layers {config.widths}, k={config.k}, "
               f"{config.parametrization}, {config.thresholds} thresholds ({config.encoder}); "
               f"device {wtrain.resolve_device(device)}", err=True)
    res = wtrain.train(config, ds, steps=steps, epochs=epochs, seed=seed, device=device, out=out, resume=resume,
                       progress=not quiet, eval_every=eval_every, **train_kw)
    m = res.metrics
    if as_json:
        click.echo(json.dumps({"checkpoint": str(res.checkpoint), **m}))
    else:
        click.echo(f"test accuracy {m['test_accuracy']:.4f} (discrete), {m['test_accuracy_relaxed']:.4f} (relaxed); "
                   f"val {m['val_accuracy']:.4f} at step {m['best_step']}/{m['steps']}; {m['seconds']:.1f} s"
                   f" ({'+'.join(m.get('kernels', [])) or '?'} kernels)")
        click.echo(f"saved {res.checkpoint}" + (f", curve {res.curve}" if res.curve else ""))


@click.command("eval")
@click.argument("checkpoint", type=click.Path(dir_okay=False))
@click.option("--dataset", default=None, help="dataset name or .csv/.npz path (default: the one recorded in the "
              "checkpoint, with the same split)")
@click.option("--data-dir", type=click.Path(file_okay=False), default=None)
@click.option("--label-column", default=None)
@click.option("--split", type=click.Choice(["test", "val", "train"]), default="test", show_default=True)
@click.option("--device", default="cpu", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="print one JSON object (accuracy, n_samples, confusion, ...)")
def eval_cmd(checkpoint, dataset, data_dir, label_column, split, device, as_json):
    """Evaluate a checkpoint (discrete, i.e. hardware semantics) and print accuracy and a confusion matrix."""
    from .. import data as wdata
    from .. import load
    from ..training import evaluate_dataset, resolve_device

    model = load(checkpoint, device=resolve_device(device))
    dmeta = dict(model.meta.get("data") or {})
    if dataset is None:
        ds = wdata.dataset_from_meta(dmeta, data_dir=data_dir)
    else:
        ds = wdata.load_dataset(
            dataset, data_dir=data_dir, label_column=_label_column(label_column),
            val_fraction=dmeta.get("val_fraction", wdata.VAL_FRACTION),
            test_fraction=dmeta.get("test_fraction") or wdata.TEST_FRACTION, seed=int(dmeta.get("seed", 0)),
            input_bits=model.config.input_bits)
    res = evaluate_dataset(model, ds, split)
    if dataset is None and split == "test" and dmeta.get("test_fingerprint") not in (None, ds.fingerprint()):
        click.echo("warning: the rebuilt test split differs from the one recorded at training time", err=True)
    if as_json:
        click.echo(json.dumps(res))
        return
    names = res["class_names"]
    click.echo(f"{res['dataset']} ({split}, {res['n_samples']} samples): accuracy {res['accuracy']:.4f} (discrete)")
    width = max(5, max(len(n) for n in names) + 1)
    cells = max(5, len(str(max(max(r) for r in res["confusion"]))) + 1)
    click.echo("confusion matrix (rows: true class, columns: predicted)")
    click.echo(" " * width + "".join(f"{i:>{cells}}" for i in range(len(names))))
    for i, row in enumerate(res["confusion"]):
        click.echo(f"{names[i][:width - 1]:<{width}}" + "".join(f"{v:>{cells}}" for v in row)
                   + f"   {res['per_class'][i]['recall']:.3f}")


commands.extend([train_cmd, eval_cmd])
