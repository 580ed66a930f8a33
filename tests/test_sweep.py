"""`warpc sweep` (warpc.sweep): the Optuna study, its trials, pruning, outputs, and several workers on one SQLite
storage, one of which is killed midway."""
from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

optuna = pytest.importorskip("optuna")

from warpc.data import load_dataset  # noqa: E402
from warpc.errors import ConfigError  # noqa: E402
from warpc.sweep import Space, SweepSettings, run_sweep, suggest  # noqa: E402
from warpc.sweep import runner  # noqa: E402

SMALL = ["--width", "60-600", "--depth", "1-2", "--trial-steps", "120"]


def _sweep(args, cwd: Path, env_extra=None, **kw):
    env = {**os.environ, "WARPC_SWEEP_HEARTBEAT_S": "1", "WARPC_SWEEP_GRACE_S": "3", **(env_extra or {})}
    pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, **kw}
    return subprocess.Popen([sys.executable, "-m", "warpc", "sweep", *map(str, args)], cwd=cwd, env=env, text=True,
                            **pipes)


def _states(db: Path) -> dict[str, int]:
    with sqlite3.connect(db) as c:
        return dict(c.execute("select state, count(*) from trials group by state").fetchall())


def test_a_sweep_writes_trials_front_and_plot(tmp_path):
    ds = load_dataset("digits")
    st = SweepSettings(dataset=ds, out=tmp_path / "sw", trials=5, trial_steps=100, seed=3,
                       space=Space(depth=(1, 2), width=(60, 400), k=(2, 4), interval=(1, 4)))
    lines = []
    summary = run_sweep(st, echo=lines.append)
    assert summary["complete"] + summary["pruned"] == 5 and summary["failed"] == 0
    assert sum(ln.startswith("[sweep] trial") for ln in lines) == 5
    assert any("done" in ln and "best" in ln for ln in lines)
    out = st.out
    for name in ("trials.csv", "trials.json", "front.json", "pareto.png", "sweep.json", "sweep.db"):
        assert (out / name).is_file(), name
    assert (out / "pareto.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = json.loads((out / "trials.json").read_text())
    assert len(table) == 5
    done = [r for r in table if r["state"] == "COMPLETE"]
    assert done and all(r["LC"] > 0 and 0 <= r["val_accuracy"] <= 1 and r["checkpoint"] for r in done)
    # the front: non-dominated (accuracy up, LCs down), each with its checkpoint copied, whose estimate is the LCs
    front = summary["front"]
    assert front and all(r["on_front"] for r in front)
    for r in front:
        assert not any(o["val_accuracy"] >= r["val_accuracy"] and o["LC"] <= r["LC"] and
                       (o["val_accuracy"], o["LC"]) != (r["val_accuracy"], r["LC"]) for o in done)
        copy = out / "front" / f"warpc-sweep-{r['trial']:04d}.safetensors"
        assert copy.is_file()
    import warpc

    r = front[0]
    assert warpc.estimate(out / "front" / f"warpc-sweep-{r['trial']:04d}.safetensors", "icebreaker",
                          interval=r["interval"])["LC"] == r["LC"]
    # a second call on the finished study runs no trial and rewrites the same results
    again = run_sweep(st, echo=lines.append)
    assert again["trials"] == 5


def test_suggest_respects_the_space_and_dlgn_has_k_2():
    space = Space(depth=(2, 2), width=(10, 50), k=(2, 6), parametrization=("warp", "dlgn"), interval=(1, 8))
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=optuna.samplers.RandomSampler(seed=0))
    seen = set()
    for _ in range(30):
        t = study.ask()
        c = suggest(t, space, classes=10)
        m = c.model
        assert len(m["widths"]) == 2 and 10 <= m["widths"][0] <= 50 and m["widths"][-1] % 10 == 0
        assert m["k"] in (2, 6) and (m["parametrization"] == "warp" or m["k"] == 2)
        assert c.interval in (1, 8) and 1 <= m["thresholds"] <= 8
        seen.add((m["parametrization"], m["k"]))
        study.tell(t, [0.5, 100])
    assert ("dlgn", 2) in seen and ("warp", 6) in seen


def test_dominated_early_trials_are_pruned():
    study = optuna.create_study(directions=["maximize", "minimize"])
    t = study.ask()
    t.set_user_attr("partial_val_accuracy", 0.90)
    t.set_user_attr("partial_LC", 1000)
    study.tell(t, [0.95, 1000])
    st = SweepSettings(dataset=None, out=Path("."), max_lc=5000)
    assert "dominated early by trial 0" in runner._prune_reason(study, 0.85, 1200, st)
    assert runner._prune_reason(study, 0.89, 1200, st) is None      # within the margin
    assert runner._prune_reason(study, 0.80, 900, st) is None       # cheaper: may be on the front
    t = study.ask()  # a more accurate trial over the board's limit dominates nothing
    t.set_user_attr("partial_val_accuracy", 0.99)
    t.set_user_attr("partial_LC", 500)
    t.set_user_attr("constraint", [100.0])
    study.tell(t, [0.99, 500])
    assert "by trial 0" in runner._prune_reason(study, 0.85, 1200, st)


@pytest.mark.parametrize("bad, words", [
    (dict(trials=0), "--trials"), (dict(trial_steps=5), "--trial-steps"),
    (dict(objectives=("lc",)), "--objectives"), (dict(space=Space(depth=(3, 1))), "--depth"),
    (dict(space=Space(k=(9,))), "--k"), (dict(space=Space(parametrization=("dlgn",), k=(4,))), "DLGN"),
    (dict(board="nosuchboard"), "nosuchboard"), (dict(max_lc=0), "--max-lc")])
def test_settings_are_checked_before_anything_is_written(tmp_path, bad, words):
    st = SweepSettings(dataset=None, out=tmp_path / "sw", **bad)
    with pytest.raises((ConfigError, Exception)) as e:
        runner.check_settings(st)
    assert words.lower() in str(e.value).lower()
    assert not (tmp_path / "sw").exists()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="kills a worker process")
def test_two_workers_share_one_study_and_survive_a_killed_worker(tmp_path):
    """Two `warpc sweep` processes on one SQLite study: both run trials; one is killed (SIGKILL) in the middle of a
    trial; the other finishes the study (its trials, the dead worker's failed trial run again)."""
    out = tmp_path / "sw"
    args = ["--dataset", "digits", "--out", out, "--trials", 14, *SMALL]
    a = _sweep(args, tmp_path)
    db = out / "sweep.db"
    deadline = time.monotonic() + 60
    while not db.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    b_log = tmp_path / "b.err"
    with b_log.open("w") as b_err_file:  # a file, not a pipe: the test reads B's progress while B runs
        b = _sweep(args, tmp_path, stderr=b_err_file)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # B has finished a trial and is inside its next one
        if b.poll() is not None:
            pytest.fail(f"worker B ended early: {b_log.read_text()[-2000:]}")
        if "[sweep] trial" in b_log.read_text() and _states(db).get("RUNNING", 0) >= 2:
            break
        time.sleep(0.05)
    else:
        pytest.fail(f"worker B finished no trial in 120 s: {b_log.read_text()[-2000:]}")
    b.send_signal(signal.SIGKILL)
    b.communicate(timeout=30)
    a_out, a_err = a.communicate(timeout=300)
    assert a.returncode == 0, a_err[-3000:]
    st = _states(db)
    assert st.get("COMPLETE", 0) + st.get("PRUNED", 0) >= 14, st
    assert st.get("FAIL", 0) + st.get("RUNNING", 0) >= 1, st  # B's trial: failed when A noticed (or still open)
    summary = json.loads((out / "front.json").read_text())
    assert summary["complete"] + summary["pruned"] >= 14 and summary["front"]
    assert (out / "pareto.png").is_file()


def test_a_bad_storage_url_is_one_line(tmp_path):
    p = _sweep(["--dataset", "iris", "--out", tmp_path / "sw", "--storage", "nosuchdb://x", "--trials", 1], tmp_path)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 1 and err.strip().splitlines()[-1].startswith("error: cannot open the study storage")
    assert "Traceback" not in err


def _fit_digits(tmp_path, **kw):
    from warpc.sweep import fit as wfit

    lines = []
    res = wfit.fit_model(load_dataset("digits"), "icebreaker", tmp_path / "fit.safetensors", trials=5,
                         search_steps=100, steps=300, echo=lines.append, progress=False, arch="spatial", **kw)
    return res, lines


def test_fit_trains_the_most_accurate_shape_that_fits(tmp_path):
    import warpc
    from warpc.sweep import fit as wfit

    res, lines = _fit_digits(tmp_path, fixed={"parametrization": "warp", "k": 2})
    s = res.summary()
    limit = int(5280 * wfit.FIT_MARGIN)
    assert s["LC"] <= limit and s["LC_capacity"] == 5280 and s["board"] == "icebreaker"
    assert res.checkpoint.is_file() and (tmp_path / "fit.fit" / "fit.json").is_file()
    assert warpc.estimate(res.checkpoint, "icebreaker")["LC"] == s["LC"]
    table = json.loads((tmp_path / "fit.fit" / "trials.json").read_text())
    assert all(r["parametrization"] == "warp" and r["k"] == 2 for r in table if r["k"] is not None)
    assert table[0]["widths"] == "2000,1000"  # the search starts from warpc's defaults
    fitting = [r for r in table if r["state"] == "COMPLETE" and r["LC"] <= limit]
    assert res.model["widths"] in [[int(w) for w in r["widths"].split(",")] for r in fitting]
    assert any(ln.startswith("[fit] training trial") for ln in lines)
    assert any("on to 150 steps" in ln for ln in lines)  # the shortlist continues to half the final steps
    meta = warpc.load(res.checkpoint).meta
    assert meta["train_state"]["step"] == 300 and meta["train_state"]["done"]


@pytest.mark.slow
def test_a_fit_model_builds_on_the_board(tmp_path):
    """The promise of --fit: `warpc synth` of its checkpoint fits the board."""
    import warpc

    res, _ = _fit_digits(tmp_path)
    rep = warpc.build(res.checkpoint, board="icebreaker", out=tmp_path / "build")
    assert rep["LC"] <= 5280 and rep["equivalence"]["passed"]


def test_feasibility_of_spatial_and_folded_estimates():
    st = SweepSettings(dataset=None, out=Path("."), max_lc=4000, arch="auto", max_words=9000)
    spatial = {"arch": "spatial", "LC": 4100, "fits": True, "capacity": {"LC": 5280}}
    assert runner.violation(spatial, st) == 100.0
    assert runner.violation({**spatial, "LC": 3900}, st) == -100.0
    folded = {"arch": "folded", "LC": 650, "fits": True, "folded": {"words": 9500}}
    assert runner.violation(folded, st) == 500.0  # the search keeps room for the program to grow
    import dataclasses

    assert runner.violation(folded, dataclasses.replace(st, max_words=None)) == 0.0
    assert runner.violation({**spatial, "refused": "folded: too big"}, st) > 0
