"""The build flow without the FPGA toolchain: options validated in one place, everything validated before the
build folder is touched, and only files of a previous warpc build ever removed (tools replaced by a stub that
writes captured outputs)."""
import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from _backend_nets import random_net
from warpc.errors import BoardError, ConfigError, NetlistError, ShapeError, ToolchainError
from warpc.fpga import tools
from warpc.fpga.flow import BuildOptions, build
from warpc.fpga.outdir import MANIFEST, BuildDir

FIX = Path(__file__).parent / "backend_fixtures"
USER_FILES = {"x.log": "my notes", "eq_1.json": '{"mine": 1}', "notes.txt": "keep"}


def _fake_tools(monkeypatch, fail_at: str | None = None):
    """tools.run stand-in: writes what each stage's tool would (captured stat/nextpnr reports), or fails."""
    stages = []

    def run(cmd, cwd, log, stage, progress=None, every=15.0, ok=(0,), timeout=None, status=None):
        stages.append(stage)
        Path(log).write_text("stub\n")
        if stage == fail_at:
            raise ToolchainError(f"{stage} failed (stub)")
        if stage == "synth":
            shutil.copy(FIX / "stat.json", cwd / "stat.json")
            (cwd / "top.json").write_text("{}")
            (cwd / "yosys.log").write_text("stub\n")
        elif stage == "place-and-route":
            shutil.copy(FIX / "nextpnr.json", cwd / "nextpnr.json")
            (cwd / "top.asc").write_text("stub\n")
            (cwd / "nextpnr.log").write_text("stub\n")
        elif stage == "pack":
            (cwd / "top.bin").write_bytes(b"\x00" * 32)
        return 0, 0.01

    monkeypatch.setattr(tools, "run", run)
    monkeypatch.setattr(tools, "tool", lambda toolchain, role, family=None: f"stub-{role}")
    return stages


def _digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.iterdir() if p.is_file()}


def _user_folder(tmp_path) -> Path:
    out = tmp_path / "out"
    out.mkdir()
    for name, text in USER_FILES.items():
        (out / name).write_text(text)
    return out


def _net_file(tmp_path, **kw) -> Path:
    p = tmp_path / "net.json"
    random_net(seed=2, **kw).save(p)
    return p


def _build(src, out, **kw):
    said = []
    rep = build(src, out=out, equivalence=False, progress=said.append, **kw)
    return rep, said


@pytest.mark.parametrize("kwargs,words", [
    ({"pipeline": -1}, "pipeline"), ({"max_vectors": 0}, "max_vectors"), ({"formal_timeout": 0}, "formal_timeout"),
    ({"router2_timeout": -1.0}, "router2_timeout"), ({"router": "router3"}, "router"), ({"seed": -1}, "seed"),
    ({"toolchain": "vivado"}, "toolchain"), ({"lut_cells": "lut6"}, "lut_cells"), ({"pipline": 1}, "pipline"),
    ({"formal_timeout": float("nan")}, "formal_timeout"), ({"pipeline": 1.5}, "pipeline"),
    ({"equivalence": "no"}, "equivalence"),
])
def test_options_validated_in_one_place(kwargs, words):
    with pytest.raises(ConfigError, match=words):
        BuildOptions.from_kwargs(**kwargs)


def test_every_bad_input_fails_before_the_folder_is_touched(tmp_path, monkeypatch):
    stages = _fake_tools(monkeypatch)
    out = _user_folder(tmp_path)
    before = _digest(out)
    net = _net_file(tmp_path)
    bad_ckpt = tmp_path / "bad.safetensors"
    bad_ckpt.write_bytes(b"not a checkpoint")
    attempts = [
        (lambda: build(bad_ckpt, out=out, progress=None), Exception),
        (lambda: build(net, board="nosuchboard", out=out, progress=None), BoardError),
        (lambda: build(net, out=out, pipeline=-1, progress=None), ConfigError),
        (lambda: build(net, out=out, max_vectors=0, progress=None), ConfigError),
        (lambda: build(net, out=out, x=np.zeros((3, 99), dtype=np.int64), progress=None), ShapeError),
        (lambda: build(net, out=out / "x.log", progress=None), ConfigError),
    ]
    for call, exc in attempts:
        with pytest.raises(exc):
            call()
    assert _digest(out) == before and not (out / MANIFEST).exists() and stages == []
    with pytest.raises(ConfigError):
        build(net, out=tmp_path / "new", pipeline=-1, progress=None)
    assert not (tmp_path / "new").exists()


def test_a_netlist_without_nodes_or_input_bits_is_refused(tmp_path, monkeypatch):
    _fake_tools(monkeypatch)
    from warpc.ir.netlist import InputBit, Netlist

    empty = Netlist(2, [InputBit(0, 3)], [], [[1], [0]], input_bits=8)
    with pytest.raises(NetlistError, match="0 LUT nodes"):
        build(empty, out=tmp_path / "o", progress=None)
    no_bits = random_net(seed=1)
    no_bits.input_bits = 0
    with pytest.raises(NetlistError, match="input"):
        build(no_bits, out=tmp_path / "o", progress=None)
    assert not (tmp_path / "o").exists()


def test_user_files_survive_builds_and_reruns(tmp_path, monkeypatch):
    stages = _fake_tools(monkeypatch)
    out = _user_folder(tmp_path)
    net = _net_file(tmp_path)
    rep, said = _build(net, out)
    assert stages == ["synth", "place-and-route", "pack"]
    assert rep["LUT"] > 0 and rep["format"] == "warpc-build-report" and (out / "top.bin").is_file()
    for name, text in USER_FILES.items():
        assert (out / name).read_text() == text
    man = json.loads((out / MANIFEST).read_text())
    assert man["status"] == "done" and man["build"] == rep["stamp"]["id"]
    assert set(man["files"]) == set(_digest(out)) - set(USER_FILES) - {MANIFEST}
    assert {"top.bin", "report.json", "netlist.json", "top.il", "yosys.log"} <= set(man["files"])
    # every stage announced itself on the progress channel
    for tag in ("[compile]", "[elaborate]", "[synth]", "[pack]", "[done]"):
        assert any(line.startswith(tag) for line in said), tag

    rep2, _ = _build(net, out, pipeline=2)  # a re-run replaces exactly the previous build's files
    assert rep2["stamp"]["id"] != rep["stamp"]["id"] or rep2["options"]["pipeline"] == 2
    for name, text in USER_FILES.items():
        assert (out / name).read_text() == text
    assert json.loads((out / MANIFEST).read_text())["build"] == rep2["stamp"]["id"]


def test_a_failing_build_records_its_files_and_keeps_the_users(tmp_path, monkeypatch):
    _fake_tools(monkeypatch, fail_at="place-and-route")
    out = _user_folder(tmp_path)
    net = _net_file(tmp_path)
    with pytest.raises(ToolchainError, match="stub"):
        _build(net, out)
    man = json.loads((out / MANIFEST).read_text())
    assert man["status"] == "failed" and "stat.json" in man["files"] and "top.bin" not in man["files"]
    for name, text in USER_FILES.items():
        assert (out / name).read_text() == text
    _fake_tools(monkeypatch)
    _build(net, out)  # the failed build's files are warpc's: replaced without complaint
    assert json.loads((out / MANIFEST).read_text())["status"] == "done"


def test_refuses_a_users_file_with_a_name_the_build_writes(tmp_path, monkeypatch):
    stages = _fake_tools(monkeypatch)
    out = _user_folder(tmp_path)
    (out / "top.bin").write_bytes(b"my own bitstream")
    net = _net_file(tmp_path)
    before = _digest(out)
    with pytest.raises(ConfigError, match="top.bin.*empty folder or remove it yourself"):
        _build(net, out)
    assert _digest(out) == before and stages == []

    (out / "top.bin").unlink()
    _build(net, out)
    (out / "report.json").write_text("edited by the user")  # a file warpc wrote, changed since
    before = _digest(out)
    with pytest.raises(ConfigError, match="report.json changed since warpc wrote it"):
        _build(net, out)
    assert _digest(out) == before


def test_a_crafted_manifest_cannot_reach_outside_the_folder(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_text("x")
    sha = hashlib.sha256(b"x").hexdigest()
    (out / MANIFEST).write_text(json.dumps({"format": "warpc-build-manifest", "files": {"../victim.txt": sha}}))
    with pytest.raises(ConfigError, match="not a warpc build manifest"):
        BuildDir(out, {"top.bin"}).check()
    (out / MANIFEST).write_text("[]")
    with pytest.raises(ConfigError, match="not a warpc build manifest"):
        BuildDir(out, {"top.bin"}).check()
    assert victim.read_text() == "x"


def test_hdl_export_keeps_the_users_files(tmp_path):
    from warpc.fpga.hdl_export import export_hdl

    out = _user_folder(tmp_path)
    (out / "netlist.json").write_text("my netlist")
    net = _net_file(tmp_path)
    with pytest.raises(ConfigError, match="netlist.json"):
        export_hdl(net, out)
    assert (out / "netlist.json").read_text() == "my netlist" and not (out / "warp_core.v").exists()
    with pytest.raises(ConfigError, match="Verilog identifier"):
        export_hdl(net, tmp_path / "o2", name="../evil")
    (out / "netlist.json").unlink()
    info = export_hdl(net, out, pipeline=0)
    assert Path(info["files"]["verilog"]).is_file() and (out / "notes.txt").read_text() == "keep"
    export_hdl(net, out, pipeline=1)  # its own files are replaced on a re-run


def test_equivalence_progress_counts_vectors():
    from warpc.fpga.equiv import _ticker

    said = []
    tick = _ticker("RTL core", lambda c: 10 * max(0, c - 2), 300, said.append, every=0.0)
    for c in range(1, 35):
        tick(c, 34)
    assert said[-1].startswith("[equivalence] RTL core: 300/300 vectors") and "100/300 vectors" in said[11]


def test_a_failed_seed_is_dropped_when_another_routed(tmp_path, monkeypatch):
    """--pnr-seeds 2 where seed 2's nextpnr dies (killed, or timing not met): seed 1's layout is kept and the
    report says in one line why seed 2 is not."""
    stages = _fake_tools(monkeypatch)
    fake = tools.run

    def run(cmd, cwd, log, stage, *args, **kw):
        if not stage.startswith("place-and-route seed "):
            return fake(cmd, cwd, log, stage, *args, **kw)
        stages.append(stage)
        Path(log).write_text("stub\n")
        seed = stage.rsplit(" ", 1)[1]
        if seed == "2":
            raise ToolchainError(f"{stage} failed (stub-nextpnr exit -15) after 1.0 s; last lines of {log}:\n\n")
        shutil.copy(FIX / "nextpnr.json", cwd / f"nextpnr.seed{seed}.json")
        for name in (f"top.seed{seed}.asc", f"nextpnr.seed{seed}.log"):
            (cwd / name).write_text("stub\n")
        return 0, 0.01

    monkeypatch.setattr(tools, "run", run)
    rep, said = _build(_net_file(tmp_path), tmp_path / "out", pnr_seeds=2)
    assert sorted(stages) == ["pack", "place-and-route seed 1", "place-and-route seed 2", "synth"]
    tries = rep["options"]["seed_tries_MHz"]
    assert rep["options"]["seed_kept"] == 1 and isinstance(tries["1"], float)
    assert tries["2"] == "failed (place-and-route seed 2 failed (stub-nextpnr exit -15) after 1.0 s)"
    assert (tmp_path / "out" / "top.asc").is_file() and not (tmp_path / "out" / "top.seed1.asc").exists()
