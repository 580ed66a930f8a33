"""A sweep's outputs, rebuilt from the study after every trial (by whichever worker finished it):

- `trials.csv` / `trials.json`: every trial (state, model options, interval, validation / test accuracy, estimated
  LCs and Fmax, seconds, checkpoint, and a note: why it was pruned or stopped early over the cost limit);
- `front.json` and `front/<study>-<trial>.safetensors`: the Pareto front (validation accuracy vs estimated LCs, and
  Fmax when it is an objective) with a copy of each front checkpoint;
- `pareto.png`: accuracy vs LCs of every finished trial, coloured by k, the front as a step line and the board's
  capacity as a vertical line.
Every file is written to a temporary name and renamed, so a reader (or another worker) never sees half a file.
"""
from __future__ import annotations

import csv
import io
import json
import os
import shutil
import tempfile
from pathlib import Path

from .runner import MARKER, SweepSettings

COLUMNS = ["trial", "state", "val_accuracy", "test_accuracy", "LC", "LC_capacity", "fits", "Fmax_estimate_MHz",
           "Fmax_class", "arch", "cycles_per_sample", "seconds", "widths", "k", "parametrization", "thresholds", "wiring", "tau_head", "interval",
           "on_front", "checkpoint", "note"]


def write_marker(st: SweepSettings) -> None:
    _atomic_write(st.out / MARKER, json.dumps({"format": "warpc-sweep", "study": st.study,
                                               "storage": st.storage_url, "dataset": st.dataset.name,
                                               "board": st.board, "space": st.space.to_dict(),
                                               "objectives": list(st.objectives), "trial_steps": st.trial_steps},
                                              indent=1))


def rows(study) -> list[dict]:
    from optuna.trial import TrialState

    front = {t.number for t in study.best_trials} if any(
        t.state == TrialState.COMPLETE for t in study.get_trials(deepcopy=False)) else set()
    out = []
    for t in study.get_trials(deepcopy=False):
        a, m = t.user_attrs, t.user_attrs.get("model") or {}
        out.append({"trial": t.number, "state": t.state.name, "val_accuracy": a.get("val_accuracy"),
                    "test_accuracy": a.get("test_accuracy"), "LC": a.get("LC"), "LC_capacity": a.get("LC_capacity"),
                    "fits": a.get("fits"), "Fmax_estimate_MHz": a.get("Fmax_estimate_MHz"),
                    "Fmax_class": a.get("Fmax_class"), "arch": a.get("arch"),
                    "cycles_per_sample": a.get("cycles_per_sample"), "seconds": a.get("seconds"),
                    "widths": ",".join(map(str, m.get("widths", []))), "k": m.get("k"),
                    "parametrization": m.get("parametrization"), "thresholds": m.get("thresholds"),
                    "wiring": m.get("wiring"), "tau_head": m.get("tau_head"), "interval": a.get("interval"),
                    "on_front": t.number in front, "checkpoint": a.get("checkpoint"),
                    "note": a.get("pruned_because") or a.get("stopped_because"), "synth": a.get("synth")})
    return out


def write_results(study, st: SweepSettings) -> dict:
    table = rows(study)
    front = sorted((r for r in table if r["on_front"]), key=lambda r: r["LC"])
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=COLUMNS, extrasaction="ignore")
    w.writeheader()
    w.writerows(table)
    _atomic_write(st.out / "trials.csv", buf.getvalue())
    _atomic_write(st.out / "trials.json", json.dumps(table, indent=1))
    _copy_front(front, st)
    summary = {"study": st.study, "storage": st.storage_url, "dataset": st.dataset.name, "board": st.board,
               "objectives": list(st.objectives), "trials": len(table),
               "complete": sum(r["state"] == "COMPLETE" for r in table),
               "pruned": sum(r["state"] == "PRUNED" for r in table),
               "failed": sum(r["state"] == "FAIL" for r in table),
               "running": sum(r["state"] == "RUNNING" for r in table), "front": front}
    _atomic_write(st.out / "front.json", json.dumps(summary, indent=1))
    if front:
        plot_front(table, st, st.out / "pareto.png")
    return summary


def _copy_front(front: list[dict], st: SweepSettings) -> None:
    """front/<study>-<trial>.safetensors for each front point; earlier copies this sweep made that left the front go."""
    folder = st.out / "front"
    folder.mkdir(exist_ok=True)
    want = {}
    for r in front:
        src = Path(r["checkpoint"]) if r["checkpoint"] else None
        if src is not None and src.is_file():
            want[f"{st.study}-{r['trial']:04d}.safetensors"] = src
    for p in folder.glob(f"{st.study}-*.safetensors"):
        if p.name not in want:
            p.unlink(missing_ok=True)
    for name, src in want.items():
        dst = folder / name
        if not dst.exists():
            fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".safetensors")
            os.close(fd)
            shutil.copyfile(src, tmp)
            os.replace(tmp, dst)


def plot_front(table: list[dict], st: SweepSettings, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    done = [r for r in table if r["state"] == "COMPLETE" and r["LC"] is not None]
    fig, ax = plt.subplots(figsize=(7.5, 4.8), dpi=120)
    ks = sorted({(r["k"], r["parametrization"]) for r in done})
    colors = plt.get_cmap("tab10")
    for i, (k, par) in enumerate(ks):
        pts = [r for r in done if (r["k"], r["parametrization"]) == (k, par)]
        ax.scatter([r["LC"] for r in pts], [100 * r["val_accuracy"] for r in pts], s=28, color=colors(i % 10),
                   marker="o" if par == "warp" else "s", label=f"{par.upper()} k={k}", alpha=0.85)
    front = sorted((r for r in done if r["on_front"]), key=lambda r: r["LC"])
    if front:
        ax.step([r["LC"] for r in front], [100 * r["val_accuracy"] for r in front], where="post", color="black",
                lw=1.2, label="Pareto front")
    cap = next((r["LC_capacity"] for r in done if r["LC_capacity"]), None)
    if cap:
        ax.axvline(cap, color="crimson", ls="--", lw=1.2, label=f"{st.board} capacity ({cap:,})")
    ax.set_xscale("log")
    from matplotlib.ticker import FuncFormatter, LogLocator

    plain = FuncFormatter(lambda v, _: f"{v:,.0f}")
    ax.xaxis.set_major_formatter(plain)
    ax.xaxis.set_minor_locator(LogLocator(base=10, subs=(2, 3, 5)))
    ax.xaxis.set_minor_formatter(plain)
    ax.tick_params(axis="x", which="minor", labelsize=7)
    ax.set_xlabel("estimated LCs (log)")
    ax.set_ylabel("validation accuracy (%)")
    ax.set_title(f"{st.dataset.name}: {len(done)} trials, {st.trial_steps} steps each ({st.study})")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".png")
    os.close(fd)
    fig.savefig(tmp)
    plt.close(fig)
    os.replace(tmp, path)


def synth_front(study, st: SweepSettings, echo) -> None:
    """`--synth-front`: build every front point on the board (`warpc.build`), and record its LCs and Fmax."""
    from .. import build
    from ..errors import WarpcError

    for t in study.best_trials:
        if t.user_attrs.get("synth"):
            continue
        out = st.out / "front" / f"build-{st.study}-{t.number:04d}"
        echo(f"[sweep] synthesising front trial {t.number} ({t.user_attrs.get('LC'):,} LCs estimated) -> {out}")
        try:
            rep = build(t.user_attrs["checkpoint"], board=st.board, out=out,
                        interval=t.user_attrs.get("interval", 1))
            got = {"LC": rep.get("LC"), "Fmax_MHz": rep.get("Fmax_MHz"),
                   "accuracy": (rep.get("accuracy") or {}).get("accuracy"), "build": str(out)}
        except WarpcError as e:
            got = {"error": str(e).splitlines()[0], "build": str(out)}
        study._storage.set_trial_user_attr(t._trial_id, "synth", got)
        echo(f"[sweep] trial {t.number}: {got}")


def _atomic_write(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=path.suffix)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)
