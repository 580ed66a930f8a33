"""A design-space sweep on Optuna: a multi-objective study (validation accuracy up, estimated LCs down, optionally
the estimated Fmax up) whose trials train a model within a step budget, compile it and estimate its build.

Storage: an SQLite file in the output folder by default; any database URL Optuna accepts lets several workers on
several machines join one study (each runs `warpc sweep --storage URL --study NAME`). Workers record heartbeats: a
worker that dies leaves its trial RUNNING until another worker notices (after GRACE_S), marks it failed and runs
it again; the study ends when `trials` trials are complete or pruned, whoever ran them.

Pruning (Optuna prunes single-objective studies only, so this one is warpc's): a trial stops after PRUNE_AT of its
steps when a finished trial was at least PRUNE_MARGIN more accurate at the same point and costs no more LCs
(dominated early). A trial whose estimate is over `max_lc` stops there too, but completes as infeasible (an
Optuna constraint), so that the sampler learns where the limit lies.
"""
from __future__ import annotations

import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from ..data import Dataset
from ..errors import ConfigError, WarpcError
from .space import Choice, Space, suggest

PRUNE_AT = 0.3          # share of a trial's steps after which it may be pruned
PRUNE_MARGIN = 0.02     # accuracy lead (at PRUNE_AT) that makes a cheaper-or-equal finished trial dominate
# A running trial's heartbeat period, and how long without one makes it a dead worker's (environment overrides for
# tests and short trials: WARPC_SWEEP_HEARTBEAT_S, WARPC_SWEEP_GRACE_S).
HEARTBEAT_S = int(os.environ.get("WARPC_SWEEP_HEARTBEAT_S", "10"))
GRACE_S = int(os.environ.get("WARPC_SWEEP_GRACE_S", "40"))
OBJECTIVES = ("accuracy", "lc", "fmax")
MARKER = "sweep.json"   # the output folder's own file: its presence makes the folder a sweep's


@dataclass
class SweepSettings:
    dataset: Dataset
    out: Path
    board: str = "icebreaker"
    trials: int = 40
    trial_steps: int = 1000
    space: Space = field(default_factory=Space)
    objectives: tuple[str, ...] = ("accuracy", "lc")
    storage: str | None = None
    study: str = "warpc-sweep"
    seed: int | None = None
    prune: bool = True
    max_lc: int | None = None
    batch_size: int = 128
    lr: float = 0.05
    device: str = "cpu"
    synth_front: bool = False
    arch: str = "spatial"      # spatial | auto | folded (warpc synth --arch): which build a trial's cost is
    max_words: int | None = None  # folded: a program over this many words is infeasible (else: the memory's size)
    start_points: list = field(default_factory=list)  # Optuna params of shapes to try first (space.start_params)

    @property
    def storage_url(self) -> str:
        return self.storage or f"sqlite:///{(self.out / 'sweep.db').resolve()}"


def check_settings(st: SweepSettings) -> None:
    """Everything that can be refused before the study or a file is touched."""
    st.space.validate()
    if not isinstance(st.trials, int) or st.trials < 1:
        raise ConfigError(f"--trials must be a positive whole number, got {st.trials}")
    if not isinstance(st.trial_steps, int) or st.trial_steps < 10:
        raise ConfigError(f"--trial-steps must be a whole number >= 10, got {st.trial_steps}")
    bad = [o for o in st.objectives if o not in OBJECTIVES]
    if bad or "accuracy" not in st.objectives or len(set(st.objectives)) != len(st.objectives):
        raise ConfigError(f"--objectives must list accuracy and any of lc, fmax once each, got "
                          f"{','.join(st.objectives)}")
    if st.arch not in ("spatial", "auto", "folded"):
        raise ConfigError(f"--arch must be spatial, auto or folded, got {st.arch!r}")
    if st.max_lc is not None and st.max_lc < 1:
        raise ConfigError(f"--max-lc must be a positive number of LCs, got {st.max_lc}")
    from ..fpga.boards import load_board

    brd = load_board(st.board)
    if st.arch != "spatial" and not (brd.family.name == "ice40" and brd.capacity.get("SPRAM")):
        raise ConfigError(f"--arch {st.arch}: folded execution needs an iCE40 with SPRAM; the {brd.name} "
                          f"({brd.family.title}) builds spatial designs")
    out = st.out
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file; give a folder for the sweep's files")
    if out.is_dir() and any(out.iterdir()) and not (out / MARKER).is_file():
        raise ConfigError(f"{out} holds files that are not a warpc sweep's; choose an empty or new folder (a sweep "
                          f"folder has {MARKER})")


def open_study(st: SweepSettings):
    """The study at `st.storage_url` (created on first use), with heartbeats and a retry for dead workers' trials."""
    import optuna
    from optuna import storages

    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)  # multivariate TPE
    url = st.storage_url
    kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {}
    if hasattr(storages, "RetryHeartbeatStaleTrialCallback"):  # optuna >= 4.9
        retry = {"heartbeat_stale_trial_callback": storages.RetryHeartbeatStaleTrialCallback(max_retry=1)}
    else:
        retry = {"failed_trial_callback": storages.RetryFailedTrialCallback(max_retry=1)}
    try:
        storage = storages.RDBStorage(url, engine_kwargs=kwargs, heartbeat_interval=HEARTBEAT_S,
                                      grace_period=GRACE_S, **retry)
    except Exception as e:  # a malformed URL, a driver that is not installed, a database that refuses
        raise ConfigError(f"cannot open the study storage {url}: {str(e).splitlines()[0]}") from None
    directions = ["maximize" if o != "lc" else "minimize" for o in st.objectives]
    seed = None if st.seed is None else st.seed
    old_constraints = {}
    if constrained(st) and not hasattr(optuna.trial.Trial, "set_constraint"):
        old_constraints = {"constraints_func": lambda t: t.user_attrs.get("constraint", [0.0])}
    sampler = optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True, constant_liar=True,
                                         n_startup_trials=min(10, max(2, st.trials // 4)), **old_constraints)
    study = optuna.create_study(storage=storage, study_name=st.study, directions=directions, sampler=sampler,
                                load_if_exists=True)
    if study.directions != [optuna.study.StudyDirection.MAXIMIZE if d == "maximize" else
                            optuna.study.StudyDirection.MINIMIZE for d in directions]:
        raise ConfigError(f"study {st.study!r} at {url} has other objectives; use another --study name")
    study.set_user_attr("dataset", st.dataset.name)
    study.set_user_attr("objectives", list(st.objectives))
    if not study.get_trials(deepcopy=False):  # a fresh study starts from the known-good shapes it was given
        for params in st.start_points:
            study.enqueue_trial(params, skip_if_exists=True)
    return study


def run_sweep(st: SweepSettings, echo=print) -> dict:
    """Run trials until the study has `st.trials` complete or pruned ones; write the results; return them."""
    import optuna
    from optuna.study import MaxTrialsCallback
    from optuna.trial import TrialState

    check_settings(st)
    marker = st.out / MARKER
    if marker.is_file():  # a sweep folder of another dataset would mix two studies' trials
        import json

        try:
            recorded = json.loads(marker.read_text()).get("dataset")
        except (OSError, ValueError):
            recorded = None
        if recorded is not None and recorded != st.dataset.name:
            raise ConfigError(f"{st.out} holds a sweep of {recorded}, not {st.dataset.name}; choose another folder")
    from .results import write_marker, write_results

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = open_study(st) if st.storage else None  # a storage of the user's: opened before any file is written
    st.out.mkdir(parents=True, exist_ok=True)
    if study is None:
        study = open_study(st)  # the default SQLite file in the output folder
    write_marker(st)
    done_states = (TrialState.COMPLETE, TrialState.PRUNED)
    t_start = time.monotonic()

    def objective(trial):
        return _run_trial(trial, st)

    def after(study, trial):
        echo(progress_line(study, trial, st, time.monotonic() - t_start))
        write_results(study, st)

    finished = len(study.get_trials(deepcopy=False, states=done_states))
    if finished < st.trials:
        echo(f"[sweep] study {st.study!r} at {st.storage_url}: {finished} of {st.trials} trials done; "
             f"{st.trial_steps} steps each on {st.dataset.name}, cost on {st.board}")
        study.optimize(objective, callbacks=[MaxTrialsCallback(st.trials, states=done_states), after],
                       catch=(WarpcError,), gc_after_trial=True)
    result = write_results(study, st)
    if st.synth_front:
        from .results import synth_front

        synth_front(study, st, echo)
        result = write_results(study, st)
    return result


def _run_trial(trial, st: SweepSettings):
    import optuna

    from ..training import plan_training

    choice = suggest(trial, st.space, st.dataset.classes)
    trial.set_user_attr("model", choice.model)
    trial.set_user_attr("interval", choice.interval)
    folder = st.out / "trials" / f"{st.study}-{trial.number:04d}"
    _clear_trial_folder(folder)
    folder.mkdir(parents=True, exist_ok=True)
    ckpt = folder / "model.safetensors"
    trial.set_user_attr("checkpoint", str(ckpt))
    every = max(1, st.trial_steps // 10)
    first = max(every, int(st.trial_steps * PRUNE_AT) // every * every)
    t0 = time.perf_counter()
    common = dict(steps=first, batch_size=st.batch_size, lr=st.lr, eval_every=every,
                  seed=st.seed if st.seed is not None else 0)
    try:
        plan = plan_training(st.dataset, out=ckpt, overrides=choice.model, **common)
    except ConfigError as e:  # e.g. a net that does not fit in memory: hopeless here
        trial.set_user_attr("pruned_because", str(e))
        raise optuna.TrialPruned(str(e)) from None
    res = plan.run(device=st.device, progress=False, curve=False)
    est = cost_estimate(ckpt, st, choice.interval)
    partial = res.metrics["val_accuracy"]
    trial.set_user_attr("partial_val_accuracy", partial)
    trial.set_user_attr("partial_LC", est["LC"])
    if violation(est, st) > 0:
        # over the cost limit: stop here but finish the trial (infeasible), so that the sampler learns the limit
        # (Optuna's samplers learn nothing from pruned multi-objective trials)
        trial.set_user_attr("stopped_because", f"{_over_text(est, st)} after {PRUNE_AT:.0%} of the steps")
        return _finish(trial, res.metrics, est, t0, st)
    why = _prune_reason(trial.study, partial, est["LC"], st) if st.prune else None
    if why:
        trial.set_user_attr("pruned_because", why)
        trial.set_user_attr("seconds", round(time.perf_counter() - t0, 2))
        raise optuna.TrialPruned(why)
    if st.trial_steps > first:
        res = plan_training(st.dataset, out=ckpt, resume=True, steps=st.trial_steps).run(
            device=st.device, progress=False, curve=False)
        est = cost_estimate(ckpt, st, choice.interval)
    return _finish(trial, res.metrics, est, t0, st)


def _finish(trial, m: dict, est: dict, t0: float, st: SweepSettings) -> tuple:
    """Record a finished trial's numbers and return its objective values (and its cost constraint)."""
    fmax = est["Fmax"].get("path_estimate_MHz")
    if constrained(st):
        over = violation(est, st)  # <= 0: feasible
        trial.set_user_attr("constraint", [over])
        if hasattr(trial, "set_constraint"):  # optuna >= 5; older ones read the attribute (open_study)
            trial.set_constraint("over_the_board", over)
    trial.set_user_attr("arch", est.get("arch", "spatial"))
    trial.set_user_attr("cycles_per_sample", est.get("Interval_cycles"))
    if est.get("refused"):
        trial.set_user_attr("stopped_because", est["refused"])
    trial.set_user_attr("val_accuracy", m["val_accuracy"])
    trial.set_user_attr("test_accuracy", m["test_accuracy"])
    trial.set_user_attr("LC", est["LC"])
    trial.set_user_attr("LC_capacity", est["capacity"]["LC"])
    trial.set_user_attr("fits", bool(est["fits"]))
    trial.set_user_attr("Fmax_class", est["Fmax"]["class"])
    trial.set_user_attr("Fmax_estimate_MHz", fmax)
    trial.set_user_attr("seconds", round(time.perf_counter() - t0, 2))
    values = {"accuracy": m["val_accuracy"], "lc": est["LC"], "fmax": fmax or 0.0}
    return tuple(values[o] for o in st.objectives)


def constrained(st: SweepSettings) -> bool:
    return st.max_lc is not None or st.arch != "spatial"


def cost_estimate(ckpt: Path, st: SweepSettings, interval: int) -> dict:
    """The build estimate a trial is judged by. arch "auto": the spatial design when it is within max_lc (or fits),
    else the folded one (iCE40 with SPRAM). A folded program too large for the memories comes back as the spatial
    estimate with "refused" saying why (infeasible)."""
    from .. import estimate

    if st.arch == "folded":
        try:
            return estimate(ckpt, st.board, arch="folded")
        except WarpcError as e:
            est = estimate(ckpt, st.board, interval=interval)
            return {**est, "refused": f"folded: {str(e).splitlines()[0][:200]}"}
    est = estimate(ckpt, st.board, interval=interval)
    within = est["fits"] and (st.max_lc is None or est["LC"] <= st.max_lc)
    if st.arch == "spatial" or within:
        return est
    try:
        return estimate(ckpt, st.board, arch="folded")
    except WarpcError as e:
        return {**est, "refused": f"spatial over the limit, folded: {str(e).splitlines()[0][:200]}"}


def violation(est: dict, st: SweepSettings) -> float:
    """How far `est` is over what the sweep allows (<= 0: feasible)."""
    if est.get("refused"):
        return float(max(1, est["LC"]))
    if est.get("arch") == "folded":
        words = int((est.get("folded") or {}).get("words") or 0)
        return 0.0 if st.max_words is None or words <= st.max_words else float(words - st.max_words)
    if st.max_lc is not None:
        return float(est["LC"] - st.max_lc)
    return 0.0 if est["fits"] or st.arch == "spatial" else float(est["LC"] - est["capacity"]["LC"])


def _over_text(est: dict, st: SweepSettings) -> str:
    if est.get("refused"):
        return f"~{est['LC']:,} LCs spatial; {est['refused']}"
    if est.get("arch") == "folded":
        return f"a folded program of {est['folded']['words']:,} words, over {st.max_words:,}"
    return f"~{est['LC']:,} LCs, over --max-lc {st.max_lc:,}"


def _clear_trial_folder(folder: Path) -> None:
    """An earlier trial of the same study name and number here (another storage): remove its files, which a
    sweep wrote (model*.safetensors); anything else stays and stops the trial."""
    if not folder.exists():
        return
    for p in folder.iterdir():
        if p.is_file() and p.name.startswith("model") and p.name.endswith(".safetensors"):
            p.unlink()
    if any(folder.iterdir()):
        raise ConfigError(f"{folder} holds files a sweep did not write; move them away")


def _prune_reason(study, partial: float, lc: int, st: SweepSettings) -> str | None:
    from optuna.trial import TrialState

    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        if (t.user_attrs.get("constraint") or [0.0])[0] > 0:  # an infeasible trial dominates nothing
            continue
        a, c = t.user_attrs.get("partial_val_accuracy"), t.user_attrs.get("partial_LC")
        if a is not None and c is not None and a >= partial + PRUNE_MARGIN and c <= lc:
            return (f"dominated early by trial {t.number} ({a:.3f} vs {partial:.3f} validation accuracy after "
                    f"{PRUNE_AT:.0%} of the steps, {c:,} vs {lc:,} LCs)")
    return None


def progress_line(study, trial, st: SweepSettings, elapsed: float) -> str:
    """One line per finished trial: its result, the study's counts, the best so far and an ETA."""
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    count = {s: sum(t.state == s for t in trials) for s in TrialState}
    done = count[TrialState.COMPLETE] + count[TrialState.PRUNED]
    a = trial.user_attrs
    model = Choice(a.get("model") or {}, a.get("interval", 1)).describe() if a.get("model") else "?"
    if trial.state == TrialState.COMPLETE and a.get("stopped_because"):
        what = f"stopped: {a['stopped_because']}"
    elif trial.state == TrialState.COMPLETE:
        arch = (f" folded ({a['cycles_per_sample']:,} cycles/sample)" if a.get("arch") == "folded" else "")
        what = f"val {a['val_accuracy']:.4f}, ~{a['LC']:,} LCs{arch}, {a['Fmax_class']}, {a['seconds']:.0f} s"
        if (a.get("constraint") or [0.0])[0] > 0:
            what += ", over the limit (infeasible)"
    elif trial.state == TrialState.PRUNED:
        what = f"pruned: {a.get('pruned_because', '')}"
    else:
        what = trial.state.name.lower()
    best = max((t for t in trials if t.state == TrialState.COMPLETE and t.user_attrs.get("fits")
                and (t.user_attrs.get("constraint") or [0])[0] <= 0),
               key=lambda t: t.user_attrs["val_accuracy"], default=None)
    best_txt = (f"best that fits: trial {best.number} val {best.user_attrs['val_accuracy']:.4f} "
                f"(~{best.user_attrs['LC']:,} LCs)" if best else "none fits yet")
    durations = [t.user_attrs.get("seconds") for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)
                 and t.user_attrs.get("seconds")]
    left = max(0, st.trials - done)
    workers = max(1, count[TrialState.RUNNING])
    eta = left * (sum(durations) / len(durations)) / workers if durations else None
    eta_txt = f", ETA {_clock(eta)}" if eta is not None and left else ""
    return (f"[sweep] trial {trial.number} ({model}): {what} | {done}/{st.trials} done "
            f"({count[TrialState.PRUNED]} pruned, {count[TrialState.RUNNING]} running, {count[TrialState.FAIL]} "
            f"failed); {best_txt}; {_clock(elapsed)} elapsed{eta_txt}")


def _clock(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"
