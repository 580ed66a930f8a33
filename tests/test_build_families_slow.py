"""Real toolchain runs on every family (YoWASP Yosys + nextpnr-ecp5 / nextpnr-himbaechel + ecppack / gowin_pack):
the small digits model through `warpc synth` for an ECP5 and a Gowin board, with equivalence on the whole test split,
every block proven, and the same report keys as the iCE40 build (test_build_synth_slow.py). Marked slow."""
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from warpc.cli import main
from warpc.fpga.boards import load_board

from _backend_nets import train_small_digits

pytestmark = pytest.mark.slow

REPORT_KEYS = {"LUT", "FF", "CARRY", "BRAM", "DSP", "IO", "LC", "Fmax_MHz", "fmax", "Latency_cycles",
               "Interval_cycles", "blocks", "equivalence", "accuracy", "capacity", "critical_paths", "family"}


@pytest.fixture(scope="module")
def small_digits(tmp_path_factory):
    return train_small_digits(tmp_path_factory.mktemp("families"))


@pytest.mark.parametrize("board,family,bitstream", [("ulx3s-12f", "ecp5", "top.bit"),
                                                    ("tangnano9k", "gowin", "top.fs"),
                                                    ("ulx3s-12f@50MHz", "ecp5", "top.bit"),
                                                    ("ulx3s-12f/core-clock-60", "ecp5", "top.bit"),
                                                    ("tangnano9k/core-clock-81", "gowin", "top.fs")])
def test_synth_on_each_family(small_digits, tmp_path, board, family, bitstream, monkeypatch):
    out = tmp_path / "build"
    name = board
    if "@" in board:  # the same board with its core clock from the ECP5's PLL (a board file of one's own)
        name, _, mhz = board.partition("@")
        doc = json.loads(open(load_board(name).source).read())
        board = str(tmp_path / "pll_board.json")
        Path(board).write_text(json.dumps({**doc, "core_clock_hz": int(mhz[:-3]) * 1_000_000}))
    extra = []
    if "/core-clock-" in board:  # the core alone on the PLL (--core-clock), the shell on the board clock
        board, _, mhz = board.partition("/core-clock-")
        name, extra = board, ["--core-clock", mhz]
    r = CliRunner().invoke(main, ["synth", str(small_digits), "--board", board, "-o", str(out), *extra])
    assert r.exit_code == 0, r.output
    rep = json.loads((out / "report.json").read_text())
    assert REPORT_KEYS <= set(rep) and rep["family"] == family and rep["files"]["bitstream"] == bitstream
    assert (out / bitstream).stat().st_size > 10_000
    eq = rep["equivalence"]
    assert eq["passed"] and eq["vectors"] == 360 and all(v["vectors"] == 360 for v in eq["simulation"].values())
    assert eq["formal"]["complete"] and all(v["status"] == "proven" for v in eq["formal"]["modules"].values())
    # every block is the family's explicit cells: proven cell by cell, as on iCE40
    assert {k: v["how"] for k, v in eq["formal"]["modules"].items()} == dict.fromkeys(
        ("encoder", "lutnet", "popcount", "argmax"), "cell by cell")
    assert set(rep["blocks"]) == {"encoder", "lutnet", "popcount", "argmax", "core", "shell"}
    assert rep["blocks"]["lutnet"]["LUT"] > 0 and rep["LUT"] >= sum(b["LUT"] for b in rep["blocks"].values())
    assert 0 < rep["LC"] <= rep["capacity"]["LC"] and rep["Fmax_MHz"] >= rep["clock_MHz"]
    assert rep["accuracy"]["samples"] == 360 and rep["accuracy"]["accuracy"] > 0.5
    r = CliRunner().invoke(main, ["report", str(out)])
    assert r.exit_code == 0 and "PASSED" in r.output and name in r.output
    if "pll" in board:
        assert rep["clocks"] == {"board_MHz": 25.0, "core_MHz": 50.0, "shell_MHz": 50.0, "pll": True, "split": False}
        assert [f["constraint_MHz"] for f in rep["fmax"].values()] == [50.0]
    if extra:  # each domain timed against its own clock (board 25 / 27 MHz)
        core = float(extra[1])
        assert rep["clocks"]["split"] and rep["clocks"]["shell_MHz"] == rep["clocks"]["board_MHz"] in (25.0, 27.0)
        assert rep["clocks"]["core_MHz"] == core
        assert sorted(f["constraint_MHz"] for f in rep["fmax"].values()) == [rep["clocks"]["board_MHz"], core]
        assert rep["Fmax_MHz"] == rep["clocks"]["fmax_by_domain"]["core"]["achieved_MHz"] >= 60.0
    r = CliRunner().invoke(main, ["run", "--build", str(out), "--simulate", "--limit", "4", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["agreement_with_model"] == 1.0
    # flashing runs the board's programmer on the family's bitstream
    import warpc.fpga.host as host

    ran = []
    monkeypatch.setattr(host.shutil, "which", lambda t: f"/usr/bin/{t}")
    monkeypatch.setattr(host.subprocess, "run", lambda cmd, **kw: ran.append(cmd) or
                        type("R", (), {"returncode": 0, "stdout": "", "stderr": ""})())
    r = CliRunner().invoke(main, ["flash", str(out), "--sram"])
    assert r.exit_code == 0, r.output
    assert ran[-1][0] == "openFPGALoader" and ran[-1][-1] == str(out / bitstream)
