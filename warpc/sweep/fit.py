"""`warpc train --fit BOARD`: the most accurate model whose estimated build fits the board.

1. A sweep (runner.py) in NAME.fit/ beside the checkpoint: short trials, accuracy vs estimated LCs, with the
   estimate capped at FIT_MARGIN of the board's LCs (an Optuna constraint), starting from known-good shapes
   (START_SHAPES), with the user's typed model options held fixed.
2. The most accurate fitting trial's shape is trained for the full step count into the checkpoint. Its estimate
   is checked again (a longer training changes the simplified netlist a little); over the limit, the next
   candidate is trained instead.
3. The result says the expected LCs, the estimated Fmax class and the accuracy, and NAME.fit/fit.json keeps them.
A second `--fit` run with the same NAME.fit/ reuses the finished search.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ..data import Dataset
from ..errors import ConfigError, DoesNotFitError
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
    from ..training import plan_training
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
                       max_lc=limit, start_points=starts, arch=arch, **(train_options or {}))
    search = run_sweep(st, echo=echo)
    table = json.loads((folder / "trials.json").read_text())
    feasible = {t.number for t in _feasible(folder, st)}
    fitting = sorted((r for r in table if r["trial"] in feasible), key=lambda r: (-r["val_accuracy"], r["LC"]))
    if not fitting:
        raise DoesNotFitError(f"no searched shape fits the {brd.name} under ~{limit:,} LCs at interval {interval} "
                              f"({len(table)} trials in {folder}); try --interval N (fewer LCs per counted bit), "
                              f"fewer --thresholds or more --fit-trials")
    final_steps = steps or FINAL_STEPS
    options = dict(train_options or {})
    for n, cand in enumerate(fitting[:FINAL_CANDIDATES]):
        trial = next(t for t in table if t["trial"] == cand["trial"])
        model = _model_of(trial)
        echo(f"[fit] training trial {cand['trial']}'s shape ({trial['widths']} {trial['parametrization']} "
             f"k={trial['k']}, {trial['thresholds']} thresholds, {trial['wiring']} wiring; search: val "
             f"{cand['val_accuracy']:.4f}, ~{cand['LC']:,} LCs) for {final_steps} steps -> {out}")
        plan = plan_training(dataset, out=out, overrides=model, steps=final_steps, seed=seed,
                             force=force or n > 0, **options)
        res = plan.run(device=device, progress=progress)
        est = cost_estimate(Path(out), st, interval)
        if violation(est, st) <= 0:
            result = FitResult(board, Path(out), model, interval, est.get("arch", "spatial"), est, res.metrics,
                               {"trials": search["trials"], "folder": str(folder)})
            (folder / "fit.json").write_text(json.dumps(result.summary(), indent=1))
            return result
        why = est.get("refused") or f"~{est['LC']:,} LCs"
        echo(f"[fit] trained, it no longer fits ({why}): the next candidate")
    raise DoesNotFitError(f"the {FINAL_CANDIDATES} most accurate searched shapes grew over ~{limit:,} LCs when "
                          f"trained for {final_steps} steps; try --interval N or more --fit-trials")


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
