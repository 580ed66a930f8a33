"""`warpc sweep`: a multi-objective design-space search on Optuna (warpc.sweep does the work)."""
from __future__ import annotations

import json
from pathlib import Path

import click

from ..errors import ConfigError

commands: list[click.Command] = []


@click.command("sweep")
@click.option("--dataset", required=True, help="dataset name or .csv / .npz path (as for warpc train)")
@click.option("--data-dir", type=click.Path(file_okay=False), default=None,
              show_default="the dataset's system folder", help="folder with the dataset's files")
@click.option("--label-column", default=None, show_default="label/class/target/y, else the last column",
              help="CSV label column, by name or index")
@click.option("--out", "out", required=True, type=click.Path(), help="folder for the sweep's files (trials, "
              "front checkpoints, trials.csv/json, front.json, pareto.png, and sweep.db unless --storage)")
@click.option("--board", default="icebreaker", show_default=True, help="board whose estimate is the cost (and "
              "whose capacity the plot draws)")
@click.option("--trials", type=int, default=40, show_default=True,
              help="complete + pruned trials the study ends at (all workers together)")
@click.option("--trial-steps", type=int, default=1000, show_default=True, help="training steps per trial")
@click.option("--objectives", default="accuracy,lc", show_default=True,
              help="accuracy (validation, up), lc (estimated LCs, down), fmax (estimated, up)")
@click.option("--storage", default=None, show_default="sqlite in --out",
              help="Optuna storage URL (e.g. postgresql://user@host/db): workers on several machines join one study")
@click.option("--study", "study_name", default="warpc-sweep", show_default=True, help="study name in the storage")
@click.option("--seed", type=int, default=None, show_default="random",
              help="sampler and training seed (give each worker its own)")
@click.option("--prune/--no-prune", default=True, show_default=True,
              help="stop trials dominated early (after 30 %% of their steps)")
@click.option("--max-lc", type=int, default=None, show_default="none",
              help="trials estimated above this many LCs stop early and are infeasible (an Optuna constraint)")
@click.option("--depth", default="1-3", show_default=True, help="layers: N or LO-HI")
@click.option("--width", default="100-4000", show_default=True, help="nodes per layer: N or LO-HI (log scale)")
@click.option("--k", "ks", default="2,3,4,6", show_default=True, help="inputs per node to try")
@click.option("--thresholds", default="1-8", show_default=True, help="thermometer thresholds: N or LO-HI")
@click.option("--wiring", default="random,learnable", show_default=True, help="wirings to try")
@click.option("--parametrization", default="warp,dlgn", show_default=True, help="node parametrisations to try")
@click.option("--tau-head", default="2-16", show_default=True, help="GroupSum temperature: X or LO-HI (log scale)")
@click.option("--interval", default="1", show_default=True, help="build intervals to try (e.g. 1,4,16)")
@click.option("--arch", type=click.Choice(["spatial", "auto", "folded"]), default="spatial", show_default=True,
              help="the build a trial's cost is: spatial, folded from the memories (iCE40 + SPRAM), or auto "
              "(spatial within --max-lc / the device, else folded)")
@click.option("--batch-size", type=int, default=128, show_default=True, help="samples per step in every trial")
@click.option("--lr", type=float, default=0.05, show_default=True, help="Adam learning rate in every trial")
@click.option("--device", default="cpu", show_default=True, help="cpu | cuda | auto")
@click.option("--synth-front", is_flag=True, help="synthesise every Pareto point at the end (real LCs and Fmax)")
@click.option("--json", "as_json", is_flag=True, help="print the summary (front) as one JSON object")
def sweep_cmd(dataset, data_dir, label_column, out, board, trials, trial_steps, objectives, storage, study_name,
              seed, prune, max_lc, depth, width, ks, thresholds, wiring, parametrization, tau_head, interval, arch,
              batch_size, lr, device, synth_front, as_json):
    """Search widths, depth, k, thresholds, wiring, WARP / DLGN and interval for the best accuracy per LC."""
    from ..sweep import Space, SweepSettings, check_settings, run_sweep
    from ..sweep.space import parse_list, parse_range
    from ..training import check_train_options, resolve_device

    space = Space(depth=parse_range(depth, "depth"), width=parse_range(width, "width"),
                  k=parse_list(ks, "k", int), thresholds=parse_range(thresholds, "thresholds"),
                  wiring=parse_list(wiring, "wiring"), parametrization=parse_list(parametrization, "parametrization"),
                  tau_head=parse_range(tau_head, "tau-head", float), interval=parse_list(interval, "interval", int))
    check_train_options(batch_size=batch_size, lr=lr)
    resolve_device(device)
    if storage is not None and not storage.strip():
        raise ConfigError("--storage is empty; give a database URL or leave it out (sqlite in --out)")
    settings = SweepSettings(dataset=None, out=Path(out), board=board, trials=trials, trial_steps=trial_steps,
                                space=space, objectives=parse_list(objectives, "objectives"), storage=storage,
                                study=study_name, seed=seed, prune=prune, max_lc=max_lc, batch_size=batch_size,
                                lr=lr, device=device, synth_front=synth_front, arch=arch)
    check_settings(settings)  # before the dataset is read or a file written
    from .. import data as wdata
    from .frontend import _label_column

    settings.dataset = wdata.load_dataset(dataset, data_dir=data_dir, label_column=_label_column(label_column))
    summary = run_sweep(settings, echo=lambda line: click.echo(line, err=True))
    if as_json:
        click.echo(json.dumps(summary))
        return
    running = f", {summary['running']} still running (other workers, or a dead worker's)" if summary["running"] else ""
    click.echo(f"{summary['complete']} complete, {summary['pruned']} pruned, {summary['failed']} failed trials{running}; "
               f"Pareto front ({len(summary['front'])} points):")
    for r in summary["front"]:
        click.echo(f"  trial {r['trial']:>4}: val {r['val_accuracy']:.4f} test {r['test_accuracy']:.4f}  "
                   f"~{r['LC']:,} LCs  {r['Fmax_class']}  {r['widths']} {r['parametrization']} k={r['k']} "
                   f"t={r['thresholds']} {r['wiring']} II={r['interval']}")
    click.echo(f"files in {out}: trials.csv, trials.json, front.json, front/, pareto.png")


commands.append(sweep_cmd)
