"""The training run's lifecycle: nothing a user had is lost. An existing run at --out is refused unless resumed or
forced; a file that is not a warpc checkpoint is never overwritten; a forced run keeps the previous checkpoint
until it finishes; SIGINT / SIGTERM stop at a step boundary with a resumable state that continues exactly; the
output folder is checked before any data is read. Small iris runs (30 + 30 nodes), a few seconds in all."""
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import warpc.training.loop as loop
from warpc.checkpoint import read_checkpoint
from warpc.config import ModelConfig
from warpc.data import load_dataset
from warpc.errors import CheckpointError, ConfigError, DatasetError, TrainingError, TrainingInterrupted
from warpc.training import (curve_path, evaluate_checkpoint, last_path, pending_path, plan_run_files, plan_training,
                            train)

KW = dict(steps=30, eval_every=10, batch_size=32, device="cpu", progress=False, curve=False)


@pytest.fixture(scope="module")
def iris():
    return load_dataset("iris")


def _cfg(ds, **kw):
    return ModelConfig(ds.n_features, ds.classes, widths=[30, 30], thresholds=3, **kw)


def _digest(*paths: Path) -> dict:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in paths if p.exists()}


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.fixture
def finished(iris, tmp_path):
    """A finished run at tmp_path/m.safetensors (30 steps) and the digests of its two files."""
    out = tmp_path / "m.safetensors"
    train(_cfg(iris), iris, out=out, **KW)
    return out, _digest(out, last_path(out))


def _signal_at(monkeypatch, call: int, signum: int = signal.SIGTERM) -> None:
    """Send `signum` to this process during loss evaluation number `call` (i.e. inside step `call`)."""
    real, n = loop._loss, {"calls": 0}

    def hooked(scores, y):
        n["calls"] += 1
        if n["calls"] == call:
            os.kill(os.getpid(), signum)
        return real(scores, y)

    monkeypatch.setattr(loop, "_loss", hooked)


def _nan_after(monkeypatch, call: int) -> None:
    real, n = loop._loss, {"calls": 0}

    def flaky(scores, y):
        n["calls"] += 1
        loss = real(scores, y)
        return loss * float("nan") if n["calls"] > call else loss

    monkeypatch.setattr(loop, "_loss", flaky)


# --- refusals (checked before anything is read or written) -------------------------------------------------------
def test_existing_run_is_refused_without_resume_or_force(finished, iris):
    out, before = finished
    with pytest.raises(ConfigError, match="--resume .* or --force"):
        train(_cfg(iris), iris, out=out, **KW)
    assert _digest(out, last_path(out)) == before
    # an interrupted run (only NAME.last) and a lone curve are earlier runs too
    only_last = out.with_name("n.safetensors")
    last_path(out).rename(last_path(only_last))
    with pytest.raises(ConfigError, match="n.last.safetensors already exists"):
        train(_cfg(iris), iris, out=only_last, **KW)
    curve_path(out.with_name("c")).write_bytes(b"\x89PNG\r\n\x1a\nxx")
    with pytest.raises(ConfigError, match="c.curve.png already exists"):
        train(_cfg(iris), iris, out=out.with_name("c"), **KW)


@pytest.mark.parametrize("which", ["out", "last", "curve"])
def test_a_file_that_is_not_ours_is_never_overwritten_even_with_force(iris, tmp_path, which):
    out = tmp_path / "m.safetensors"
    target = {"out": out, "last": last_path(out), "curve": curve_path(out)}[which]
    target.write_text("my notes\n")
    for force in (False, True):
        with pytest.raises(ConfigError, match="never overwrites"):
            train(_cfg(iris), iris, out=out, force=force, **KW)
    assert target.read_text() == "my notes\n" and _files(tmp_path) == [target.name]


def test_output_folder_is_checked_before_the_data_is_read(iris, tmp_path, monkeypatch):
    (tmp_path / "afile").write_text("x")
    import warpc.data as wdata

    monkeypatch.setattr(wdata, "load_dataset", lambda *a, **k: pytest.fail("data read before the --out check"))
    with pytest.raises(ConfigError, match="is not a folder"):
        plan_training("iris", out=tmp_path / "afile" / "sub" / "m.safetensors")
    with pytest.raises(ConfigError, match="is a folder"):
        plan_training("iris", out=tmp_path)
    with pytest.raises(ConfigError, match="not both"):
        plan_run_files(tmp_path / "m.safetensors", resume=True, force=True)
    with pytest.raises(CheckpointError, match="nothing to resume"):
        plan_training("iris", out=tmp_path / "m.safetensors", resume=True)
    assert _files(tmp_path) == ["afile"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_unwritable_output_folder(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        with pytest.raises(ConfigError, match="not writable"):
            plan_run_files(ro / "sub" / "m.safetensors")
    finally:
        ro.chmod(0o700)


def test_a_missing_output_folder_is_created(iris, tmp_path):
    out = tmp_path / "new" / "deeper" / "m.safetensors"
    res = train(_cfg(iris), iris, out=out, **KW)
    assert res.checkpoint == out and out.is_file() and last_path(out).is_file()


# --- --force keeps the previous run until the new one finishes -------------------------------------------------
def test_failing_forced_run_leaves_the_previous_run_as_it_was(finished, iris, monkeypatch):
    out, before = finished
    _nan_after(monkeypatch, 12)
    with pytest.raises(TrainingError, match="previous .*m.safetensors is unchanged"):
        train(_cfg(iris), iris, out=out, force=True, **{**KW, "steps": 40})
    assert _digest(out, last_path(out)) == before
    assert pending_path(out).is_file() and last_path(pending_path(out)).is_file()


def test_finished_forced_run_replaces_the_previous_run_and_cleans_up(finished, iris, tmp_path, monkeypatch):
    out, before = finished
    _signal_at(monkeypatch, 3)                  # leave a pending run behind first
    with pytest.raises(TrainingInterrupted):
        train(_cfg(iris, seed=5), iris, out=out, force=True, seed=5, **KW)
    monkeypatch.setattr(loop, "_loss", loop.F.cross_entropy)
    res = train(_cfg(iris, seed=7), iris, out=out, force=True, seed=7, **{**KW, "steps": 20})
    assert res.checkpoint == out
    meta, _ = read_checkpoint(out)
    assert meta["config"]["seed"] == 7 and meta["train_state"]["done"] and meta["train"]["steps"] == 20
    assert read_checkpoint(last_path(out))[0]["train_state"]["step"] == 20
    assert _digest(out, last_path(out)) != before
    assert _files(tmp_path) == ["m.last.safetensors", "m.safetensors"]


# --- SIGINT / SIGTERM ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("signum, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signal_stops_at_a_step_boundary_with_a_resumable_state(iris, tmp_path, monkeypatch, signum, code):
    out = tmp_path / "m.safetensors"
    handler_before = signal.getsignal(signum)
    _signal_at(monkeypatch, 13, signum)
    with pytest.raises(TrainingInterrupted) as e:
        train(_cfg(iris), iris, out=out, **KW)
    assert e.value.exit_code == code and e.value.step == 13
    assert signal.Signals(signum).name in str(e.value) and "m.last.safetensors" in str(e.value)
    meta, tensors = read_checkpoint(last_path(out))
    assert meta["train_state"]["step"] == 13 and not meta["train_state"]["done"]
    assert "optim.batch.perm" in tensors
    assert read_checkpoint(out)[0]["train_state"]["step"] == 10   # the best so far, from the step-10 validation
    assert signal.getsignal(signum) == handler_before   # the handlers are put back


def test_stopped_and_resumed_run_equals_an_uninterrupted_run(iris, tmp_path, monkeypatch):
    """Stopped at step 13 (not a validation step, mid-epoch) and resumed: the same batches, the same weights."""
    full = train(_cfg(iris), iris, out=tmp_path / "full.safetensors", **KW)
    part = tmp_path / "part.safetensors"
    _signal_at(monkeypatch, 13)
    with pytest.raises(TrainingInterrupted):
        train(_cfg(iris), iris, out=part, **KW)
    monkeypatch.setattr(loop, "_loss", loop.F.cross_entropy)
    with pytest.raises(ConfigError, match="already exists"):         # a plain restart is refused ...
        train(_cfg(iris), iris, out=part, **KW)
    resumed = train(_cfg(iris), iris, out=part, resume=True, **KW)  # ... --resume continues
    a = read_checkpoint(last_path(tmp_path / "full.safetensors"))[1]
    b = read_checkpoint(last_path(part))[1]
    for key in ("layers.0.theta", "layers.1.theta"):
        assert torch.equal(a[key], b[key]), key
    assert [h["loss"] for h in resumed.history] == [h["loss"] for h in full.history]
    assert resumed.metrics["test_accuracy"] == full.metrics["test_accuracy"]


def test_interrupted_forced_run_keeps_the_old_run_and_resumes_the_new_one(finished, iris, tmp_path, monkeypatch):
    out, before = finished
    _signal_at(monkeypatch, 15)
    with pytest.raises(TrainingInterrupted, match="previous .*m.safetensors is unchanged"):
        train(_cfg(iris, seed=4), iris, out=out, force=True, seed=4, **{**KW, "steps": 40})
    assert _digest(out, last_path(out)) == before
    assert read_checkpoint(last_path(pending_path(out)))[0]["train_state"]["step"] == 15
    monkeypatch.setattr(loop, "_loss", loop.F.cross_entropy)
    res = train(_cfg(iris, seed=4), iris, out=out, resume=True, seed=4, **{**KW, "steps": 40})
    assert res.metrics["steps"] == 40 and read_checkpoint(out)[0]["config"]["seed"] == 4
    assert _files(tmp_path) == ["m.last.safetensors", "m.safetensors"]


def test_sigterm_to_the_cli_saves_state_says_how_to_resume_and_exits_143(tmp_path):
    """A real `warpc train` process, signalled once its resumable state file appears."""
    out = tmp_path / "m.safetensors"
    cmd = [sys.executable, "-c", "from warpc.cli import main; main()", "train", "--dataset", "iris", "--out", str(out),
           "--widths", "30,30", "--thresholds", "3", "--steps", "1000000", "--eval-every", "5", "--device", "cpu",
           "--quiet"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not last_path(out).exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert last_path(out).exists(), "no state file appeared"
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 143, err
    lines = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and "interrupted by SIGTERM" in lines[0], err
    assert f"warpc train --dataset iris --device cpu --out {out} --resume" in lines[0]
    assert "Traceback" not in err
    step = read_checkpoint(last_path(out))[0]["train_state"]["step"]
    assert 5 <= step < 1000000


# --- the set-up (config merging, resume settings) the CLI used to hold ----------------------------------------------
def test_plan_merges_config_file_overrides_and_dataset(tmp_path):
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps({"widths": [30, 30], "k": [2, 4], "thresholds": 2, "seed": 9}))
    plan = plan_training("iris", config=cfg, overrides={"thresholds": 5, "tau_head": None}, steps=7, lr=0.1)
    c = plan.config
    assert (c.widths, c.k, c.thresholds, c.seed, c.n_features, c.classes) == ([30, 30], [2, 4], 5, 9, 4, 3)
    assert c.class_names == plan.dataset.class_names
    assert plan.options == {"steps": 7, "lr": 0.1, "seed": 9, "out": None, "resume": False, "force": False}
    res = plan.run(device="cpu", progress=False)
    assert res.metrics["steps"] == 7


@pytest.mark.parametrize("content, words", [
    (b"\x89PNG\r\n\x00\xff\xfe binary", "not a text file"),
    (b"[1, 2]", "got a list"),
    (b"7", "got a number"),
    (b"{ not json", "not valid JSON"),
    (b'{"widthz": [30, 30]}', "unknown model config keys"),
])
def test_bad_config_files_are_one_clean_error(tmp_path, content, words):
    cfg = tmp_path / "c.json"
    cfg.write_bytes(content)
    with pytest.raises(ConfigError, match=words):
        plan_training("iris", config=cfg)
    with pytest.raises(ConfigError, match="cannot read config"):
        plan_training("iris", config=tmp_path / "missing.json")


def test_plan_resume_restores_the_run_and_refuses_model_changes(iris, tmp_path):
    out = tmp_path / "m.safetensors"
    train(_cfg(iris), iris, out=out, lr=0.02, **{**KW, "batch_size": 16})
    with pytest.raises(ConfigError, match="drop the model options .*widths"):
        plan_training("iris", out=out, resume=True, overrides={"widths": [60, 30]})
    with pytest.raises(ConfigError, match="already trained 30 steps"):
        plan_training("iris", out=out, resume=True).run(device="cpu", progress=False)
    plan = plan_training("iris", out=out, resume=True, steps=40)
    assert plan.config.to_dict() == read_checkpoint(last_path(out))[0]["config"]
    assert plan.options["lr"] == 0.02 and plan.options["batch_size"] == 16 and plan.options["steps"] == 40
    with pytest.raises(DatasetError, match="cannot resume"):
        plan_training("iris", out=out, resume=True, steps=40, split_seed=3)
    res = plan.run(device="cpu", progress=False, curve=False)
    assert res.metrics["steps"] == 40 and [h["step"] for h in res.history] == [10, 20, 30, 40]


@pytest.mark.parametrize("kw, words", [
    (dict(steps=0), "--steps"), (dict(epochs=-1.0), "--epochs"), (dict(batch_size=0), "--batch-size"),
    (dict(lr=0.0), "--lr"), (dict(lr=float("nan")), "--lr"), (dict(weight_decay=-1.0), "--weight-decay"),
    (dict(eval_every=0), "--eval-every"), (dict(steps=5, epochs=1.0), "not both"),
])
def test_bad_hyper_parameters_fail_before_the_data_is_read(tmp_path, monkeypatch, kw, words):
    import warpc.data as wdata

    monkeypatch.setattr(wdata, "load_dataset", lambda *a, **k: pytest.fail("data read before the check"))
    with pytest.raises(ConfigError, match=words):
        plan_training("iris", out=tmp_path / "m.safetensors", **kw)
    assert _files(tmp_path) == []


def test_evaluate_checkpoint_checks_its_data_folder(finished, tmp_path):
    out, _ = finished
    res = evaluate_checkpoint(out)
    assert res["n_samples"] == 30 and res["warnings"] == []
    with pytest.raises(DatasetError, match="data folder not found"):
        evaluate_checkpoint(out, data_dir=tmp_path / "nope")


def test_a_failing_write_is_a_one_line_training_error(iris, tmp_path, monkeypatch):
    def full_disk(path, *a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(loop, "save_checkpoint", full_disk)
    with pytest.raises(TrainingError, match="cannot write .*m.safetensors: No space left on device"):
        train(_cfg(iris), iris, out=tmp_path / "m.safetensors", **KW)
