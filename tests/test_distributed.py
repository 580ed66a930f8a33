"""Data-parallel training (warpc.training.distributed): torchrun with 2 processes on gloo, on this machine.

- N = 1 and N = 2 at the same global batch and seed train the same model up to float reduction order;
- Ctrl-C of `warpc train --nproc 2` saves a resumable state once, and a resumed run (here with one process) ends
  where the uninterrupted run ends;
- a process killed midway ends the run with one clear line naming the intact resumable state, and --resume
  finishes it.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import torch

from warpc.checkpoint import read_checkpoint
from warpc.training import distributed

STEPS = 240
ARGS = ["--dataset", "digits", "--device", "cpu", "--quiet", "--eval-every", "40", "--widths", "1000,500"]


def _env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "WARPC_NPROC")}
    env.update(OMP_NUM_THREADS="1", **extra)
    return env


def _warpc(args: list, cwd: Path, env=None, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "warpc", *map(str, args)], cwd=cwd, env=env or _env(),
                          capture_output=True, text=True, timeout=300, **kw)


def _history(path: Path) -> list[dict]:
    meta, _ = read_checkpoint(path)
    return meta["train_state"]["history"]


def _weights(path: Path) -> dict[str, torch.Tensor]:
    _, tensors = read_checkpoint(path)
    return {k: v for k, v in tensors.items() if not k.startswith("optim.")}


def _assert_same_run(a: Path, b: Path) -> None:
    """Two runs that differ only in float reduction order: the same loss curve (tight), validation accuracies
    within a point, and nearly the same final weights."""
    ha, hb = _history(a.with_name("m.last.safetensors")), _history(b.with_name("m.last.safetensors"))
    assert [h["step"] for h in ha] == [h["step"] for h in hb]
    for x, y in zip(ha, hb):
        assert abs(x["loss"] - y["loss"]) <= 1e-4 * max(1.0, abs(x["loss"])), (x, y)
        assert abs(x["val_accuracy"] - y["val_accuracy"]) <= 0.01, (x, y)
    wa, wb = _weights(a.with_name("m.last.safetensors")), _weights(b.with_name("m.last.safetensors"))
    assert wa.keys() == wb.keys()
    for k in wa:
        torch.testing.assert_close(wa[k], wb[k], rtol=0, atol=1e-3, msg=k)


@pytest.fixture(scope="module")
def one_process(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("one")
    r = _warpc(["train", *ARGS, "--steps", STEPS, "--out", d / "m.safetensors", "--json"], d)
    assert r.returncode == 0, r.stderr[-2000:]
    return d / "m.safetensors"


def test_two_processes_train_the_one_process_model(one_process, tmp_path):
    """torchrun --nproc-per-node 2 -m warpc train: rank 0 alone writes; the run equals the one-process run."""
    out = tmp_path / "m.safetensors"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "warpc",
           "train", *ARGS, "--steps", str(STEPS), "--out", str(out), "--json"]
    r = subprocess.run(cmd, cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "data-parallel: 2 processes (gloo), global batch 128 (64 per process)" in r.stderr
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("{")]
    assert len(lines) == 1, r.stdout  # rank 0 alone prints
    metrics = json.loads(lines[0])
    assert metrics["processes"] == 2 and metrics["steps"] == STEPS
    meta, _ = read_checkpoint(out)
    assert meta["train"]["processes"] == 2 and meta["train"]["batch_size"] == 128
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.curve.png", "m.last.safetensors", "m.safetensors"]
    _assert_same_run(one_process, out)
    m1, _ = read_checkpoint(one_process)
    assert abs(m1["metrics"]["test_accuracy"] - meta["metrics"]["test_accuracy"]) <= 0.01


def _workers(mark: str) -> dict[int, int]:
    """{rank: pid} of the training processes whose environment carries `mark`."""
    found = {}
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            env = dict(kv.split("=", 1) for kv in (p / "environ").read_bytes().decode(errors="replace")
                       .split("\0") if "=" in kv)
        except OSError:
            continue
        if env.get("WARPC_TEST_MARK") == mark and "RANK" in env and "LOCAL_RANK" in env:
            found[int(env["RANK"])] = int(p.name)
    return found


def _start_two(tmp_path: Path, steps: int) -> tuple[subprocess.Popen, str]:
    mark = uuid.uuid4().hex
    proc = subprocess.Popen([sys.executable, "-m", "warpc", "train", *ARGS, "--steps", str(steps), "--out",
                             str(tmp_path / "m.safetensors"), "--nproc", "2"], cwd=tmp_path,
                            env=_env(WARPC_TEST_MARK=mark), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    last = tmp_path / "m.last.safetensors"
    deadline = time.monotonic() + 120
    while not (last.exists() and len(_workers(mark)) == 2):  # after the first validation's save
        if proc.poll() is not None or time.monotonic() > deadline:
            out, err = proc.communicate()
            pytest.fail(f"the run ended or stalled before its first save: {err[-2000:]}")
        time.sleep(0.05)
    return proc, mark


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="finds the processes through /proc")
def test_ctrl_c_saves_once_and_resume_finishes_with_one_process(one_process, tmp_path):
    proc, _ = _start_two(tmp_path, steps=20 * STEPS)
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does: the launcher and both processes
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGINT, err[-2000:]
    errors = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1, err[-2000:]
    assert "interrupted by SIGINT" in errors[0] and "--nproc 2" in errors[0] and "--resume" in errors[0]
    assert "Traceback" not in err
    # the stored state continues in one process: the same run as one process from the start
    stopped = read_checkpoint(tmp_path / "m.last.safetensors")[0]["train_state"]["step"]
    total = max(STEPS, -(-(stopped + 1) // 40) * 40)  # a validation after the stop (a loaded machine stops later)
    reference = one_process
    if total > STEPS:
        ref = tmp_path / "ref"
        ref.mkdir()
        r = _warpc(["train", *ARGS, "--steps", total, "--out", ref / "m.safetensors"], ref)
        assert r.returncode == 0, r.stderr[-2000:]
        reference = ref / "m.safetensors"
    r = _warpc(["train", "--dataset", "digits", "--device", "cpu", "--quiet", "--out", tmp_path / "m.safetensors",
                "--resume", "--steps", total], tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    _assert_same_run(reference, tmp_path / "m.safetensors")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="finds the processes through /proc")
def test_a_killed_process_ends_the_run_and_resume_finishes_it(tmp_path):
    proc, mark = _start_two(tmp_path, steps=20 * STEPS)
    os.kill(_workers(mark)[1], signal.SIGKILL)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 1, err[-2000:]
    assert "Traceback" not in err
    errors = [ln for ln in err.splitlines() if ln.startswith("error:")]
    # Rank 0 notices the dead peer ("another training process stopped ...") unless the launcher stops it first
    # (a loaded machine); either way the launcher's line names the killed process, the saved state and the way on.
    assert any("training process 1 of 2 was killed by SIGKILL" in e and "--nproc 2" in e and "--resume" in e
               and "m.last.safetensors (step" in e for e in errors), err
    saved = read_checkpoint(tmp_path / "m.last.safetensors")[0]["train_state"]["step"]
    r = _warpc(["train", "--dataset", "digits", "--device", "cpu", "--quiet", "--out", tmp_path / "m.safetensors",
                "--resume", "--steps", saved + 80, "--nproc", "2"], tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    meta, _ = read_checkpoint(tmp_path / "m.safetensors")
    assert meta["train_state"]["done"] and meta["metrics"]["steps"] == saved + 80
    assert meta["metrics"]["processes"] == 2


def test_shards_cover_the_global_batch():
    for world in (1, 2, 3, 8):
        for batch in (world, 7 * world + 3, 128):
            rows = [distributed.Distributed(r, world, r, "gloo", torch.device("cpu"), None).shard(batch)
                    for r in range(world)]
            assert rows[0][0] == 0 and rows[-1][1] == batch
            assert all(a[1] == b[0] for a, b in zip(rows, rows[1:]))
            sizes = [hi - lo for lo, hi in rows]
            assert max(sizes) - min(sizes) <= 1 and min(sizes) >= 1


def test_one_process_outside_torchrun_is_not_distributed(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert distributed.setup(torch.device("cpu")) is None
    assert distributed.launched_nproc() == 0


def test_collective_errors_read_as_one_line():
    e = RuntimeError("[/__w/pytorch/third_party/gloo/gloo/transport/tcp/pair.cc:537] Read error [127.0.0.1]:5: "
                     "Connection reset by peer. This is typically caused by a remote worker hanging.\nmore")
    assert distributed.is_peer_failure(e)
    assert distributed._first_line(e) == "Read error [127.0.0.1]:5: Connection reset by peer"
    assert not distributed.is_peer_failure(RuntimeError("shape mismatch"))
