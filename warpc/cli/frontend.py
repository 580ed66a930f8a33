"""frontend commands of the warpc CLI: `warpc train` and `warpc eval`. They parse options, call
warpc.training.plan_training / train / evaluate_checkpoint and print; the logic lives in the library."""
from __future__ import annotations

import json
import shlex
import sys

import click
from click.core import ParameterSource

from ..config import ModelConfig
from ..errors import ConfigError, TrainingError, TrainingInterrupted, WarpcError
from ..training.auto import DEFAULT_BUDGET

commands: list[click.Command] = []


def _ints(text: str | None, what: str) -> list[int] | None:
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


def _label_column(text: str | None) -> str | int | None:
    if text is None:
        return None
    try:
        return int(text)
    except ValueError:
        return text


def _saved_state(plan) -> str:
    """'; the resumable state FILE (step N) is intact', or '' when there is none to name."""
    from ..checkpoint import read_checkpoint

    last = plan.files.last if plan.files is not None else None
    if last is None or not last.is_file():
        return "; no resumable state was saved yet"
    try:
        step = int(read_checkpoint(last)[0].get("train_state", {}).get("step", 0))
    except (WarpcError, TypeError, ValueError):
        return ""
    return f"; the resumable state {last} (step {step}) is intact"


def _default(name: str):
    """A ModelConfig field's default, for --help (one source of truth)."""
    return ModelConfig.__dataclass_fields__[name].default


_DATA_DIR_HELP = "folder with the dataset's files (IDX, CIFAR batches); must exist when given"
_DATA_DIR_DEFAULT = "the dataset's system folder, e.g. /usr/share/datasets/fashion-mnist"


@click.command("train")
@click.option("--dataset", required=True, help="bundled/IDX name (digits, breast_cancer, iris, wine, fashion-mnist, "
              "mnist, cifar10) or a path to a .csv / .npz file")
@click.option("--data-dir", type=click.Path(file_okay=False), default=None,
              show_default=_DATA_DIR_DEFAULT, help=_DATA_DIR_HELP)
@click.option("--label-column", default=None, show_default="label/class/target/y, else the last column",
              help="CSV label column, by name or index")
@click.option("--download", is_flag=True, help="download fashion-mnist/mnist/cifar10 with torchvision into --data-dir")
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False), help="checkpoint file to write "
              "(e.g. runs/model.safetensors); also writes NAME.last.safetensors and NAME.curve.png beside it. An "
              "existing run there is refused unless --resume or --force; other files are never overwritten")
@click.option("--force", is_flag=True, help="replace an existing run at --out; the old checkpoint stays until the "
              "new run finishes (files that are not warpc checkpoints are never replaced)")
@click.option("--resume", is_flag=True, help="continue the run stored at --out (NAME.last.safetensors) with its model "
              "config, hyper-parameters and split, up to its --steps (or a larger --steps)")
@click.option("--config", "config_file", type=click.Path(dir_okay=False), default=None, show_default="none",
              help="model config JSON object (ModelConfig fields; n_features/classes are filled from the dataset); "
              "the model options below override it; shape fields it leaves out are sized from the data")
@click.option("--widths", default=None, show_default="sized from the data: 2000,1000 up to 10,000 training samples, "
              "x sqrt(samples / 10,000) above (at most x4); the last a multiple of the classes",
              help="nodes per layer, comma-separated; the last must be a multiple of the number of classes")
@click.option("--k", "k", default=str(_default("k")), show_default=True,
              help="inputs per node (2..6): one value, or one per layer comma-separated")
@click.option("--thresholds", type=int, default=None, show_default="sized from the data: about 448 encoder bits, "
              "7 to 31 per feature (7 for digits)",
              help="thermometer thresholds per feature")
@click.option("--encoder", type=click.Choice(["uniform", "distributive", "learnable"]), default=None,
              show_default="distributive under 64 features, else uniform",
              help="thermometer thresholds: evenly spaced, by quantiles of the training data, or learned")
@click.option("--wiring", type=click.Choice(["random", "unique", "learnable"]), default=_default("wiring"),
              show_default=True, help="how nodes pick their inputs: random, random without repeats, "
              "or learned among candidates (first layer)")
@click.option("--wiring-candidates", type=int, default=_default("wiring_candidates"), show_default=True,
              help="candidate inputs per node input for --wiring learnable")
@click.option("--parametrization", type=click.Choice(["warp", "dlgn"]), default=_default("parametrization"),
              show_default=True, help="node parameters: Walsh-Hadamard coefficients (warp) "
              "or difflogic's softmax over gates (dlgn, k=2)")
@click.option("--tau", default=None, show_default="auto: 1, 4, 16 for k = 2, 4, 6",
              help="node temperature: a number, one per layer comma-separated, or 'auto'")
@click.option("--tau-head", type=float, default=None,
              show_default="7 x sqrt(last-layer nodes per class / 100), at least 7",
              help="GroupSum temperature (class scores are divided by it); positive")
@click.option("--sampling", type=click.Choice(["soft", "gumbel", "soft_st", "gumbel_st"]), default=_default("sampling"),
              show_default=True, help="training-time node relaxation: soft or Gumbel noise, "
              "optionally straight-through")
@click.option("--init", "init", type=click.Choice(["residual", "random"]), default=_default("init"),
              show_default=True, help="node initialisation: pass input 0 through (residual) or random")
@click.option("--input-bits", type=int, default=_default("input_bits"), show_default=True,
              help="bits of the integer features the hardware receives (float data is quantised)")
@click.option("--steps", type=int, default=None,
              show_default="150 epochs, at least 1500, ended by --budget or a plateau; or the resumed run's",
              help="optimizer steps (instead of --epochs)")
@click.option("--epochs", type=float, default=None, show_default="none", help="passes over the training split "
              "(instead of --steps)")
@click.option("--batch-size", type=int, default=None, show_default="128, or the resumed run's",
              help="samples per step")
@click.option("--lr", type=float, default=None, show_default="0.05, or the resumed run's", help="Adam learning rate")
@click.option("--weight-decay", type=float, default=None, show_default="0, or the resumed run's",
              help="Adam L2 weight decay")
@click.option("--seed", type=int, default=None, show_default="0, or the config's / resumed run's",
              help="seed for wiring, init, noise and batches")
@click.option("--split-seed", type=int, default=None, show_default="0, or the resumed run's",
              help="seed of the train/val/test split")
@click.option("--val-fraction", type=float, default=None, show_default="0.1", help="validation share of train")
@click.option("--test-fraction", type=float, default=None, show_default="0.2",
              help="test share for datasets without a test set")
@click.option("--device", default="auto", show_default=True, help="auto (CUDA when available) | cpu | cuda")
@click.option("--backend", type=click.Choice(["auto", "torch", "cpp", "triton"]), default=None,
              show_default="$WARPC_BACKEND or auto", help="WARP-LUT training kernels")
@click.option("--eval-every", type=int, default=None, show_default="steps/20, at most 500",
              help="steps between validations (and saves of the resumable state)")
@click.option("--budget", default=DEFAULT_BUDGET, show_default=True,
              help="training time (90s, 2m, 1h): the run ends at the first validation that would overrun it; "
              "'none' for no limit. Applies to --steps / --epochs / --resume runs only when given")
@click.option("--nproc", type=int, default=1, show_default=True,
              help="data-parallel processes on this machine (starts torchrun; --batch-size stays the global batch). "
              "Several machines: torchrun --nnodes ... -m warpc train ...")
@click.option("--fit", "fit_board", default=None, metavar="BOARD", show_default="none: train the given shape",
              help="search the most accurate model whose estimated build fits BOARD (a short sweep in NAME.fit/), "
              "then train it; typed model options stay fixed")
@click.option("--fit-trials", type=int, default=None, show_default="16", help="shapes the --fit search tries")
@click.option("--interval", type=int, default=None, show_default="1",
              help="with --fit: the build interval (warpc synth --interval) the model must fit at")
@click.option("--fit-arch", type=click.Choice(["auto", "spatial", "folded"]), default=None,
              show_default="auto on iCE40 boards with SPRAM, else spatial",
              help="with --fit: the builds it may choose (warpc synth --arch)")
@click.option("--quiet", is_flag=True, help="no progress bar")
@click.option("--json", "as_json", is_flag=True, help="print the final metrics as one JSON object")
def train_cmd(dataset, data_dir, label_column, download, out, force, resume, config_file, widths, k, thresholds,
              encoder, wiring, wiring_candidates, parametrization, tau, tau_head, sampling, init, input_bits, steps,
              epochs, batch_size, lr, weight_decay, seed, split_seed, val_fraction, test_fraction, device, backend,
              eval_every, budget, nproc, fit_board, fit_trials, interval, fit_arch, quiet, as_json):
    """Train a WARP-LUT network and save the best checkpoint (by discrete validation accuracy).

    Shape options left out (--widths, --thresholds, --encoder, --tau-head) and the length (without --steps /
    --epochs) are sized from the dataset and --budget; the run prints what it chose and why."""
    from .. import training as wtrain
    from ..training import distributed

    ctx = click.get_current_context()
    if not isinstance(nproc, int) or nproc < 1:
        raise ConfigError(f"--nproc must be a positive whole number of processes, got {nproc}")
    if nproc > 1 and distributed.world_size_from_env() > 1:
        raise ConfigError("--nproc starts the processes itself; under torchrun give --nproc-per-node to torchrun "
                          "instead")

    def typed(name: str):
        """Model options override the config file (and are refused with --resume) only when typed."""
        return None if ctx.get_parameter_source(name) is ParameterSource.DEFAULT else ctx.params[name]

    overrides = {name: typed(name) for name in ("thresholds", "encoder", "wiring", "wiring_candidates",
                                                "parametrization", "tau_head", "sampling", "init", "input_bits")}
    ks = _ints(typed("k"), "--k")
    overrides.update(widths=_ints(widths, "--widths"), k=ks[0] if ks is not None and len(ks) == 1 else ks,
                     tau=_floats(tau, "--tau"))
    dev = wtrain.resolve_device(device)
    if backend is not None:
        from ..nn.kernels import set_backend

        set_backend(backend)
    if fit_board is not None and typed("budget") is not None:
        raise ConfigError("--fit sizes its own search and training; drop --budget")
    # A run of a given length (or a resumed one) is limited in time only when --budget is typed.
    fixed_length = resume or steps is not None or epochs is not None
    budget = typed("budget") if fixed_length else budget
    if fit_board is None and (fit_trials is not None or interval is not None or fit_arch is not None):
        raise ConfigError("--fit-trials, --fit-arch and --interval go with --fit BOARD")
    if fit_board is not None:
        return _fit(ctx, dataset, data_dir, label_column, download, out, force, resume, config_file, overrides,
                    fit_board, fit_trials, interval, nproc, steps, epochs, batch_size, lr, seed, split_seed,
                    val_fraction, test_fraction, dev, as_json)
    plan = wtrain.plan_training(
        dataset, out=out, config=config_file, overrides=overrides, resume=resume, force=force, data_dir=data_dir,
        label_column=_label_column(label_column), val_fraction=val_fraction, test_fraction=test_fraction,
        split_seed=split_seed, download=download, steps=steps, epochs=epochs, batch_size=batch_size, lr=lr,
        weight_decay=weight_decay, seed=seed, eval_every=eval_every, auto=True, budget=budget)
    config = plan.config
    launched = distributed.launched_nproc()  # a process of `warpc train --nproc N`
    under_torchrun = distributed.world_size_from_env() > 1 and not launched
    again = ["your torchrun command with" if under_torchrun else "warpc train", "--dataset", _quote(dataset)] \
        + (["--data-dir", _quote(data_dir)] if data_dir else []) \
        + (["--device", _quote(device)] if device != "auto" else []) \
        + (["--nproc", str(max(nproc, launched))] if max(nproc, launched) > 1 else [])
    if nproc > 1:  # checked here (one clear line), then run again in nproc processes
        batch = _global_batch(plan)
        if batch < nproc:
            raise ConfigError(f"a global batch of {batch} cannot be split over --nproc {nproc} processes; use "
                              f"--batch-size >= {nproc} or fewer processes")
        try:
            distributed.launch(nproc, _argv_without(ctx, "nproc"))
        except TrainingInterrupted as e:  # the processes said where they stopped
            sys.exit(e.exit_code)
        except TrainingError as e:
            # The launcher may stop rank 0 before rank 0 says where its state is: say it here.
            click.echo(f"error: {e}{_saved_state(plan)}; continue with: {' '.join(again)} --out {_quote(out)} --resume",
                       err=True)
            sys.exit(1)
        return
    main = distributed.rank_from_env() == 0  # under torchrun, rank 0 alone prints
    if main:
        click.echo(f"{plan.dataset!r}; model: {len(config.widths)} layers {config.widths}, k={config.k}, "
                   f"{config.parametrization}, {config.thresholds} thresholds ({config.encoder}); device {dev}"
                   + ("; resuming" if resume else ""), err=True)
        for why in plan.choices:
            click.echo(f"auto: {why}", err=True)
    try:
        ddp = distributed.setup(dev)
        if ddp is not None and main:
            click.echo(ddp.describe(_global_batch(plan)), err=True)
        res = plan.run(device=dev, progress=not quiet)
    except TrainingInterrupted as e:
        if main:
            click.echo(f"error: {e}; continue with: {' '.join(again)} --out {_quote(out)} --resume", err=True)
        sys.exit(e.exit_code)
    except WarpcError as e:
        if not main:  # rank 0 says it; the others only when it is their own news
            if isinstance(e, TrainingError) and "another training process" not in str(e):
                click.echo(f"error: process {distributed.rank_from_env()}: {e}", err=True)
            sys.exit(1)
        raise
    finally:
        distributed.teardown()
    if not main:
        return
    m = res.metrics
    if as_json:
        click.echo(json.dumps({"checkpoint": str(res.checkpoint), **m}))
    else:
        click.echo(f"test accuracy {m['test_accuracy']:.4f} (discrete), {m['test_accuracy_relaxed']:.4f} (relaxed); "
                   f"val {m['val_accuracy']:.4f} at step {m['best_step']}/{m['steps']}"
                   + {"budget": " (the budget ended it)", "plateau": " (ended on a validation plateau)"}.get(
                       m.get("stopped"), "") + f"; {m['seconds']:.1f} s"
                   f" ({'+'.join(m.get('kernels', [])) or '?'} kernels)")
        click.echo(f"saved {res.checkpoint}" + (f", curve {res.curve}" if res.curve else ""))


def _fit(ctx, dataset, data_dir, label_column, download, out, force, resume, config_file, overrides, board,
         fit_trials, interval, nproc, steps, epochs, batch_size, lr, seed, split_seed, val_fraction, test_fraction,
         dev, as_json) -> None:
    """`warpc train --fit BOARD`: warpc.sweep.fit does the work."""
    from ..sweep import fit as wfit
    from ..training import plan_training

    for flag, given in (("--resume", resume), ("--config", config_file is not None), ("--epochs", epochs is not None),
                        ("--nproc", nproc > 1)):
        if given:
            raise ConfigError(f"--fit searches and trains a new model; drop {flag}")
    trials = wfit.FIT_TRIALS if fit_trials is None else fit_trials
    if not isinstance(trials, int) or trials < 1:
        raise ConfigError(f"--fit-trials must be a positive whole number, got {trials}")
    iv = 1 if interval is None else interval
    if iv < 1:
        raise ConfigError(f"--interval must be a whole number >= 1, got {iv}")
    fixed = {k: v for k, v in overrides.items() if v is not None}
    wfit.fit_space(fixed, iv)  # typed options that --fit cannot hold fixed are refused before any work
    from ..fpga.boards import load_board

    load_board(board)
    # the dataset (and the typed options' own checks) as a plain run would see them; no file is written here
    plan = plan_training(dataset, overrides={k: v for k, v in fixed.items() if k != "widths"}, data_dir=data_dir,
                         label_column=_label_column(label_column), val_fraction=val_fraction,
                         test_fraction=test_fraction, split_seed=split_seed, download=download, steps=steps,
                         batch_size=batch_size, lr=lr, seed=seed)
    from ..training.files import plan_run_files

    plan_run_files(out, force=force)
    train_options = {k: plan.options[k] for k in ("batch_size", "lr") if k in plan.options}
    res = wfit.fit_model(plan.dataset, board, out, interval=iv, fixed=fixed, trials=trials, steps=steps,
                         seed=plan.options.get("seed", 0), device=str(dev), force=force,
                         echo=lambda line: click.echo(line, err=True), train_options=train_options,
                         progress=not ctx.params["quiet"], arch=ctx.params["fit_arch"])
    s = res.summary()
    if as_json:
        click.echo(json.dumps(s))
        return
    how = (f"folded, {s['cycles_per_sample']:,} cycles per sample" if s["arch"] == "folded"
           else f"spatial at interval {s['interval']}")
    click.echo(f"fit: ~{s['LC']:,} of {s['LC_capacity']:,} LCs ({s['utilization_pct']} %) on the {s['board']} "
               f"({s['device']}), {how}, Fmax {s['Fmax_class']} (estimate); test accuracy "
               f"{s['test_accuracy']:.4f} (discrete), val {s['val_accuracy']:.4f}")
    build = (["--arch", "folded"] if s["arch"] == "folded" else ["--arch", "spatial"]
             + (["--interval", str(iv)] if iv > 1 else []))
    click.echo(f"saved {res.checkpoint}; build it: warpc synth {_quote(out)} --board {board} {' '.join(build)} "
               f"-o build/{_quote(res.checkpoint.stem)}")


def _quote(text) -> str:
    return shlex.quote(str(text))


def _global_batch(plan) -> int:
    from ..training.loop import DEFAULT_BATCH_SIZE

    return min(plan.options.get("batch_size", DEFAULT_BATCH_SIZE), len(plan.dataset.y_train))


def _argv_without(ctx: click.Context, skip: str) -> list[str]:
    """The command line of this invocation (the options the user typed), less option `skip`."""
    args = [ctx.command.name]
    for param in ctx.command.params:
        if param.name == skip or ctx.get_parameter_source(param.name) is ParameterSource.DEFAULT:
            continue
        value = ctx.params[param.name]
        flag = param.opts[0] if not getattr(param, "secondary_opts", None) or value else param.secondary_opts[0]
        if getattr(param, "is_flag", False):
            if value:
                args.append(flag)
            continue
        args += [flag, str(value)]
    return args


@click.command("eval")
@click.argument("checkpoint", type=click.Path(dir_okay=False))
@click.option("--dataset", default=None, show_default="the one recorded in the checkpoint, with the same split",
              help="dataset name or .csv/.npz path")
@click.option("--data-dir", type=click.Path(file_okay=False), default=None,
              show_default=_DATA_DIR_DEFAULT, help=_DATA_DIR_HELP)
@click.option("--label-column", default=None, show_default="label/class/target/y, else the last column",
              help="CSV label column, by name or index")
@click.option("--split", type=click.Choice(["test", "val", "train"]), default="test", show_default=True,
              help="which split to evaluate")
@click.option("--device", default="cpu", show_default=True, help="auto | cpu | cuda")
@click.option("--json", "as_json", is_flag=True, help="print one JSON object (accuracy, n_samples, confusion, ...)")
def eval_cmd(checkpoint, dataset, data_dir, label_column, split, device, as_json):
    """Evaluate a checkpoint (discrete, i.e. hardware semantics) and print accuracy and a confusion matrix."""
    from ..training import evaluate_checkpoint

    res = evaluate_checkpoint(checkpoint, dataset, data_dir=data_dir, label_column=_label_column(label_column),
                              split=split, device=device)
    for w in res["warnings"]:
        click.echo(f"warning: {w}", err=True)
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
