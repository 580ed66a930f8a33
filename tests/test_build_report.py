"""Report parsing on captured tool output, report formatting, CLI error paths (no toolchain runs)."""
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from warpc.fpga.boards import load_board, supported_boards
from warpc.fpga.report import format_report, load_report, parse_nextpnr, parse_stat
from warpc.fpga.tools import parse_utilisation, raise_if_does_not_fit
from warpc.cli import main
from warpc.errors import BoardError, DoesNotFitError

FIX = Path(__file__).parent / "backend_fixtures"
BLOCKS = {"encoder": "top.shell.encoder", "lutnet": "top.shell.core.lutnet", "popcount": "top.shell.core.popcount",
          "argmax": "top.shell.core.argmax", "core": "top.shell.core"}


def test_parse_stat_blocks_add_up():
    r = parse_stat(json.loads((FIX / "stat.json").read_text()), BLOCKS)
    assert set(r["blocks"]) == set(BLOCKS) | {"shell"}
    for k in ("LUT", "FF", "CARRY"):
        assert sum(b[k] for b in r["blocks"].values()) == r["total"][k]
        assert all(b[k] >= 0 for b in r["blocks"].values())
    assert r["total"]["LUT"] > 0 and r["blocks"]["lutnet"]["LUT"] > 0


def test_parse_nextpnr_report():
    r = parse_nextpnr(json.loads((FIX / "nextpnr.json").read_text()))
    assert r["utilization"]["ICESTORM_LC"]["available"] == 5280
    (clk, f), = r["fmax"].items()
    assert f["achieved_MHz"] > f["constraint_MHz"] == 12.0
    cp = r["critical_paths"][0]
    assert cp["delay_ns"] == pytest.approx(cp["logic_ns"] + cp["routing_ns"], abs=0.02) and cp["segments"] > 0


def test_does_not_fit_message():
    log = FIX / "nextpnr_does_not_fit.log"
    util = parse_utilisation(log.read_text())
    assert util["ICESTORM_LC"] == {"used": 6113, "available": 5280}
    with pytest.raises(DoesNotFitError, match=r"needs 6113 LCs.*has 5280.*popcount 3000"):
        raise_if_does_not_fit(log, "iCE40UP5K", {"popcount": {"LUT": 3000}})


def test_does_not_fit_heap_placer_message():
    with pytest.raises(DoesNotFitError, match=r"needs 5372 LCs"):
        raise_if_does_not_fit(FIX / "nextpnr_expand_region.log", "iCE40UP5K")


def test_boards_are_data():
    assert "icebreaker" in supported_boards()
    b = load_board("icebreaker")
    assert b["device"] == "iCE40UP5K" and b["capacity"]["LC"] == 5280 and b["uart"]["baud"] == 115200
    with pytest.raises(BoardError, match="supported boards: .*icebreaker"):
        load_board("arty")


def _fake_report():
    return {"stamp": {"id": "abc", "time_utc": "t", "warpc_version": "0"}, "board": "icebreaker",
            "device": "iCE40UP5K", "package": "SG48", "options": {"pipeline": 1}, "model": {"nodes": 3},
            "LUT": 10, "FF": 5, "CARRY": 2, "BRAM": 0, "IO": 4, "LC": 12, "capacity": {"LC": 5280, "IO": 39},
            "utilization_pct": {"LC": 0.2}, "blocks": {"lutnet": {"LUT": 3, "FF": 0, "CARRY": 0}},
            "fmax": {"clk": {"achieved_MHz": 50.0, "constraint_MHz": 12.0}}, "critical_paths": [],
            "Latency_cycles": 4, "Interval_cycles": 1, "Latency_ns": 333.3, "clock_MHz": 12.0,
            "equivalence": {"enabled": True, "passed": True, "vectors": 7, "data": "x", "simulation": {}},
            "accuracy": {"accuracy": 0.5, "samples": 2, "data": "x"}, "stages_s": {"synth_s": 1.0}}


def test_report_cli(tmp_path):
    (tmp_path / "report.json").write_text(json.dumps(_fake_report()))
    r = CliRunner().invoke(main, ["report", str(tmp_path)])
    assert r.exit_code == 0 and "LC" in r.output and "50.0 MHz" in r.output and "PASSED on 7" in r.output
    r = CliRunner().invoke(main, ["report", str(tmp_path), "--json"])
    assert json.loads(r.output)["LUT"] == 10
    assert load_report(tmp_path)["stamp"]["id"] == "abc"
    assert "latency 4 cycles" in format_report(_fake_report())


def test_cli_error_paths(tmp_path):
    r = CliRunner().invoke(main, ["report", str(tmp_path / "nope")])
    assert r.exit_code == 1 and "no build report" in r.output
    net = tmp_path / "n.json"
    from _backend_nets import random_net

    random_net().save(net)
    r = CliRunner().invoke(main, ["synth", str(net), "--board", "nosuchboard", "-o", str(tmp_path / "b")])
    assert r.exit_code == 1 and "unknown board" in r.output and "icebreaker" in r.output
    r = CliRunner().invoke(main, ["flash", str(tmp_path / "nope")])
    assert r.exit_code == 1 and "no build report" in r.output
    (tmp_path / "report.json").write_text(json.dumps(_fake_report()))
    r = CliRunner().invoke(main, ["flash", str(tmp_path)])
    assert r.exit_code == 1 and "no bitstream" in r.output
    r = CliRunner().invoke(main, ["run", "--build", str(tmp_path)])
    assert r.exit_code == 1 and "--port" in r.output


def test_tool_run_stops_a_tool_past_its_time_limit(tmp_path):
    import sys
    import time

    from warpc.fpga.tools import run
    from warpc.errors import ToolTimeoutError

    said = []
    t = time.perf_counter()
    with pytest.raises(ToolTimeoutError, match="stopped after"):
        run([sys.executable, "-c", "import time; time.sleep(30)"], tmp_path, tmp_path / "t.log", "sleepy",
            said.append, timeout=1.0)
    assert time.perf_counter() - t < 10
    assert any("stopped after" in line for line in said)


def test_boards_found_from_env_source_tree_or_installed_prefix(monkeypatch, tmp_path):
    """Editable installs read the repository's boards/; a wheel installs them under <prefix>/share/warpc/boards."""
    import sys

    from warpc.fpga import boards

    assert boards.boards_dir().name == "boards" and (boards.boards_dir() / "icebreaker.json").is_file()
    installed = tmp_path / "prefix" / "share" / "warpc" / "boards"
    installed.mkdir(parents=True)
    (installed / "icebreaker.json").write_text((boards.boards_dir() / "icebreaker.json").read_text())
    monkeypatch.setattr(boards, "__file__", str(tmp_path / "site" / "warpc" / "build" / "boards.py"))
    monkeypatch.setattr(sys, "prefix", str(tmp_path / "prefix"))
    assert boards.boards_dir() == installed
    assert load_board("icebreaker")["device"] == "iCE40UP5K"
    monkeypatch.setenv("WARPC_BOARDS", str(tmp_path))
    assert supported_boards() == []
