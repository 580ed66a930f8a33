"""`warpc train --fit BOARD`: the most accurate model whose estimated build fits the board.

1. A sweep (runner.py) in NAME.fit/ beside the checkpoint: short trials, accuracy vs estimated LCs, with the
   estimate capped at FIT_MARGIN of the board's LCs (an Optuna constraint); with --fit-arch auto on an iCE40 with
   SPRAM, a shape over the cap may run folded instead, if its program leaves room to grow in the memories. The
   search starts from known-good shapes (START_SHAPES); the user's typed model options are held fixed.
2. Short trials favour nets that learn fast, so the best few feasible trials and the known recipes continue
   (resumed) to half the final steps, and the best of those to the full steps; each round re-checks the estimate.
   The winner's run becomes the checkpoint.
3. The result says the build (spatial at interval N, or folded with its cycles per sample), the expected LCs, the
   estimated Fmax class and the accuracy; NAME.fit/fit.json keeps them.
A second `--fit` with the same NAME.fit/ reuses its search (and the trials' continued runs); remove the folder
to search again.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

from ..data import Dataset
from ..errors import ConfigError, DoesNotFitError
from ..ir.fold import MAX_WORDS
from .runner import SweepSettings, cost_estimate, run_sweep, violation
from .space import Space, start_params

# Aim at <= 85 % of the device's LCs: UP5K builds routed at 80 % (4,200 LCs, II 1) and failed to route at 86 %
# (docs/backend.md "Hardware budget"); the estimate is within a few per cent of synthesis (scripts/estimate_error.py).
FIT_MARGIN = 0.85
FINAL_CANDIDATES = 3
FIT_TRIALS = 16
SEARCH_STEPS = 1000
FINAL_STEPS = 6000
# Shapes the search tries first (then Optuna's sampler takes over): warpc's digits defaults, the README's UP5K
# Fashion-MNIST recipes (DLGN and WARP) and a small net; each clamped into the space the user left open.
START_SHAPES = [
    {"widths": [2000, 1000], "parametrization": "warp", "k": 2, "thresholds": 7, "wiring": "learnable",
     "tau_head": 7.0},
    {"widths": [2400, 1000], "parametrization": "dlgn", "thresholds": 2, "wiring": "learnable", "tau_head": 4.0},
    {"widths": [2400, 1000], "parametrization": "warp", "k": 2, "thresholds": 2, "wiring": "learnable",
     "tau_head": 5.0},
    {"widths": [600, 300], "parametrization": "warp", "k": 2, "thresholds": 3, "wiring": "learnable",
     "tau_head": 4.0},
]
# With folded execution (iCE40 + SPRAM) the LCs hardly depend on the net: the README's folded Fashion recipe first.
FOLDED_START_SHAPES = [
    {"widths": [8000, 8000], "parametrization": "dlgn", "thresholds": 3, "wiring": "learnable", "tau_head": 10.0},
]
FOLDED_WIDTH = (100, 12000)  # the largest folded program holds ~13,000 two-input nodes (docs/folded.md)
# A search trial's folded program may fill this share of the program memory: trained 6x longer, a net's program
# grew 1.5x (Fashion-MNIST, 1,654 + 3,380 WARP k=3: 12,875 -> 19,225 words at 1,000 -> 6,000 steps).
FOLDED_SEARCH_WORDS = 0.6
FOLDED_MID_WORDS = 0.85       # the same at half the final steps


@dataclass
class FitResult:
    board: str
    checkpoint: Path
    model: dict
    interval: int
    arch: str
    estimate: dict
    metrics: dict
    search: dict

    def summary(self) -> dict:
        e = self.estimate
        return {"checkpoint": str(self.checkpoint), "board": self.board, "device": e.get("device"),
                "model": self.model,
                "interval": self.interval, "arch": self.arch, "cycles_per_sample": e.get("Interval_cycles"),
                "LC": e["LC"], "LC_capacity": e["capacity"]["LC"],
                "utilization_pct": e["utilization_pct"]["LC"], "Fmax_class": e["Fmax"]["class"],
                "Fmax_estimate_MHz": e["Fmax"].get("path_estimate_MHz"),
                "test_accuracy": self.metrics.get("test_accuracy"), "val_accuracy": self.metrics.get("val_accuracy"),
                "search_trials": self.search.get("trials"), "search_folder": self.search.get("folder")}


def fit_folder(out: str | Path) -> Path:
    from ..training.files import run_name

    out = Path(out)
    return out.with_name(run_name(out) + ".fit")


def default_arch(board) -> str:
    """auto (spatial, else folded from the memories) where the board can run folded; spatial elsewhere."""
    return "auto" if board.family.name == "ice40" and board.capacity.get("SPRAM") else "spatial"


def fit_space(fixed: dict, interval: int, arch: str = "spatial") -> Space:
    """The default space, narrowed to the options the user typed (wider nets when they may run folded)."""
    if fixed.get("widths") is not None:
        raise ConfigError("--fit chooses the layer widths; drop --widths (or train that shape without --fit)")
    base = Space()
    one = {}
    if fixed.get("k") is not None:
        if isinstance(fixed["k"], list):
            raise ConfigError("--fit takes one --k value for all layers")
        one["k"] = (int(fixed["k"]),)
    if fixed.get("parametrization") is not None:
        one["parametrization"] = (fixed["parametrization"],)
    if fixed.get("thresholds") is not None:
        one["thresholds"] = (int(fixed["thresholds"]),) * 2
    if fixed.get("wiring") is not None:
        one["wiring"] = (fixed["wiring"],)
    if fixed.get("tau_head") is not None:
        one["tau_head"] = (float(fixed["tau_head"]),) * 2
    if arch != "spatial":
        one["width"] = FOLDED_WIDTH
    return Space(**{**base.__dict__, **one, "interval": (interval,)}).validate()


def fit_model(dataset: Dataset, board: str, out: str | Path, *, interval: int = 1, fixed: dict | None = None,
              trials: int = FIT_TRIALS, search_steps: int = SEARCH_STEPS, steps: int | None = None,
              seed: int = 0, device: str = "cpu", force: bool = False, echo=print, train_options: dict | None = None,
              progress: bool = True, arch: str | None = None) -> FitResult:
    """Search, then train the most accurate shape that fits `board` (see the module docstring)."""
    from ..fpga.boards import load_board
    from ..training.files import plan_run_files

    fixed = {k: v for k, v in (fixed or {}).items() if v is not None}
    brd = load_board(board)
    arch = arch or default_arch(brd)
    space = fit_space(fixed, interval, arch)
    plan_run_files(out, force=force)  # refuse an existing run before the search, not after it
    capacity = brd.logic_capacity
    limit = int(capacity * FIT_MARGIN)
    folder = fit_folder(out)
    folded = {"auto": " or, folded, the memories", "folded": " (folded: the memories)"}.get(arch, "")
    echo(f"[fit] searching {trials} shapes ({search_steps} steps each) for the most accurate model under "
         f"~{limit:,} estimated LCs ({FIT_MARGIN:.0%} of the {brd.name}'s {capacity:,}) at interval {interval}"
         f"{folded}; search files in {folder}")
    shapes = (FOLDED_START_SHAPES if arch != "spatial" else []) + START_SHAPES
    starts = [p for p in (start_params(space, m, interval) for m in shapes) if p is not None]
    st = SweepSettings(dataset=dataset, out=folder, board=board, trials=trials, trial_steps=search_steps,
                       space=space, objectives=("accuracy", "lc"), study="fit", seed=seed, device=device,
                       max_lc=limit, start_points=starts, arch=arch, max_words=int(FOLDED_SEARCH_WORDS * MAX_WORDS),
                       **(train_options or {}))
    search = run_sweep(st, echo=echo)
    table = json.loads((folder / "trials.json").read_text())
    feasible = {t.number for t in _feasible(folder, st)}
    fitting = sorted((r for r in table if r["trial"] in feasible), key=lambda r: (-r["val_accuracy"], r["LC"]))
    if not fitting:
        raise DoesNotFitError(f"no searched shape fits the {brd.name} under ~{limit:,} LCs at interval {interval} "
                              f"({len(table)} trials in {folder}); try --interval N (fewer LCs per counted bit), "
                              f"fewer --thresholds or more --fit-trials")
    final_steps = steps or FINAL_STEPS
    mid_steps = max(search_steps, final_steps // 2)
    # Short trials favour nets that learn fast; wide nets learn slower and end higher. So the best few of the
    # search and the known recipes (the first trials) continue to half the final steps (resumed, not restarted),
    # and the best of those to the full steps.
    starts_run = {t.number for t in _feasible(folder, st) if t.number < len(starts)}
    shortlist = [r for r in fitting[:FINAL_CANDIDATES]] + [r for r in fitting[FINAL_CANDIDATES:]
                                                          if r["trial"] in starts_run]
    mid = dataclasses.replace(st, max_words=int(FOLDED_MID_WORDS * MAX_WORDS))
    final = dataclasses.replace(st, max_words=None)  # the trained model must fit the memory, not a search's share
    ranked = []
    for r in shortlist:
        echo(f"[fit] trial {r['trial']} ({_shape(r)}; val {r['val_accuracy']:.4f} after {search_steps} steps): "
             f"on to {mid_steps} steps")
        metrics, est = _continue(dataset, r, mid_steps, mid, interval, device, progress=False)
        ok = violation(est, mid) <= 0
        echo(f"[fit]   val {metrics['val_accuracy']:.4f}, " + (_cost(est) if ok else f"no longer fits ({_why(est)})"))
        if ok:
            ranked.append((metrics["val_accuracy"], r))
    ranked.sort(key=lambda p: -p[0])
    for _, r in ranked:
        echo(f"[fit] training trial {r['trial']}'s shape ({_shape(r)}) to {final_steps} steps")
        metrics, est = _continue(dataset, r, final_steps, final, interval, device, progress=progress)
        if violation(est, final) <= 0:
            _copy_run(Path(r["checkpoint"]), Path(out))
            model = _model_of(r)
            result = FitResult(board, Path(out), model, interval, est.get("arch", "spatial"), est, metrics,
                               {"trials": search["trials"], "folder": str(folder)})
            (folder / "fit.json").write_text(json.dumps(result.summary(), indent=1))
            return result
        echo(f"[fit] trained, it no longer fits ({_why(est)}): the next candidate")
    raise DoesNotFitError(f"none of the {len(shortlist)} most promising searched shapes fits the {brd.name} when "
                          f"trained for {final_steps} steps; try --interval N, fewer --steps or more --fit-trials")


def _shape(r: dict) -> str:
    return (f"{r['widths']} {r['parametrization']} k={r['k']}, {r['thresholds']} thresholds, {r['wiring']} "
            f"wiring")


def _cost(est: dict) -> str:
    if est.get("arch") == "folded":
        return f"folded, {est['folded']['words']:,} program words, ~{est['LC']:,} LCs"
    return f"~{est['LC']:,} LCs"


def _why(est: dict) -> str:
    return est.get("refused") or _cost(est)


def _continue(dataset: Dataset, row: dict, steps: int, st: SweepSettings, interval: int, device: str,
              progress: bool) -> tuple[dict, dict]:
    """Resume a search trial's run (in its folder) to `steps`: (its final metrics, its cost estimate). A run that
    is there already (an earlier --fit with this NAME.fit/) is taken as it is."""
    from ..checkpoint import read_checkpoint
    from ..training import plan_training

    ckpt = Path(row["checkpoint"])
    done = int((read_checkpoint(ckpt.with_name("model.last.safetensors"))[0].get("train_state") or {})
               .get("step", 0))
    if done < steps:
        metrics = plan_training(dataset, out=ckpt, resume=True, steps=steps).run(
            device=device, progress=progress, curve=False).metrics
    else:
        metrics = read_checkpoint(ckpt)[0].get("metrics") or {}
    return metrics, cost_estimate(ckpt, st, interval)


def _copy_run(src: Path, out: Path) -> None:
    """The chosen trial's checkpoint and resumable state become the run at `out` (its files were checked at the
    start: new, or a warpc run that --force replaces); written under temporary names, then renamed."""
    import os
    import shutil
    import tempfile

    from ..training.files import last_path

    out.parent.mkdir(parents=True, exist_ok=True)
    for a, b in ((src, out), (src.with_name("model.last.safetensors"), last_path(out))):
        fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=".tmp-", suffix=".safetensors")
        os.close(fd)
        shutil.copyfile(a, tmp)
        os.replace(tmp, b)


def _feasible(folder: Path, st: SweepSettings) -> list:
    """The search's complete trials within the board (constraint <= 0), from the study itself."""
    from optuna.trial import TrialState

    from .runner import open_study

    study = open_study(st)
    return [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            if (t.user_attrs.get("constraint") or [1.0])[0] <= 0 and t.user_attrs.get("val_accuracy") is not None]


def _model_of(row: dict) -> dict:
    """The model options of a search trial (trials.json keeps them flat; the study keeps them whole)."""
    return {"widths": [int(w) for w in str(row["widths"]).split(",")], "k": row["k"],
            "parametrization": row["parametrization"], "thresholds": row["thresholds"], "wiring": row["wiring"],
            "tau_head": row["tau_head"]}
