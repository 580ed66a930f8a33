"""Report parsing on captured tool output, report formatting, CLI error paths (no toolchain runs)."""
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from warpc.fpga.boards import load_board, parse_board, platform_for, supported_boards
from warpc.fpga.report import format_report, load_report, parse_nextpnr, parse_stat
from warpc.fpga.tools import parse_utilisation, raise_if_does_not_fit
from warpc.cli import main
from warpc.errors import BoardError, DoesNotFitError, WarpcError
from warpc.hdl.shell import block_modules

FIX = Path(__file__).parent / "backend_fixtures"
BLOCKS = block_modules("top")


def test_block_modules_are_the_fixture_hierarchy():
    """The names derived from the design objects are the ones a real synthesis wrote (captured stat.json)."""
    mods = {k.lstrip("\\") for k in json.loads((FIX / "stat.json").read_text())["modules"]}
    assert set(BLOCKS.values()) <= mods


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
    assert b.device == "iCE40UP5K" and b.capacity["LC"] == 5280 and b.baud == 115200 and b.clock_hz == 12_000_000
    assert [p.tool for p in b.programmers] == ["iceprog", "openFPGALoader"]
    assert b.programmers[0].command("x.bin", sram=True) == ["iceprog", "-S", "x.bin"]
    assert platform_for(b).default_clk_frequency == b.clock_hz
    with pytest.raises(BoardError, match="supported boards: .*icebreaker"):
        load_board("arty")


def _board_dict():
    return json.loads(Path(load_board("icebreaker").source).read_text())


@pytest.mark.parametrize("change,words", [
    (lambda d: d.pop("uart"), "missing field uart"),
    (lambda d: d.update(clock_hz=0), "clock_hz"),
    (lambda d: d.update(clock_hz=-5), "clock_hz"),
    (lambda d: d.update(clock_hz="12MHz"), "clock_hz"),
    (lambda d: d["uart"].update(baud=0), "uart.baud"),
    (lambda d: d["uart"].update(baud=6_000_000), "uart.baud"),
    (lambda d: d["uart"].update(rx_pin=6), "uart.rx_pin"),
    (lambda d: d.update(platform="os:system"), "platform"),
    (lambda d: d.update(platform="amaranth_boards.icebreaker:ICEBreakerPlatform;x"), "platform"),
    (lambda d: d.update(capacity=[1]), "capacity"),
    (lambda d: d["capacity"].update(LC=-1), "capacity.LC"),
    (lambda d: d.update(nextpnr_device="--up5k --pre-pack x.py"), "nextpnr_device"),
    (lambda d: d.update(programmers=[{"tool": "ls", "flash": ["{bin}"]}]), "programmers[0]"),
    (lambda d: d.update(programmers=[{"tool": "iceprog", "flash": ["; rm", "{bin}"]}]), "programmers[0].flash"),
    (lambda d: d.update(programmers=[{"tool": "iceprog", "flash": ["{bin}"], "flash_at": ["-o", "{bin}"]}]),
     "programmers[0].flash_at"),
    (lambda d: d.update(programmers=[{"tool": "iceprog", "flash": ["{bin}"],
                                      "flash_at": ["-o", "{offset};", "{bin}"]}]), "programmers[0].flash_at"),
    (lambda d: d.update(familly="ice40"), "unknown field"),
    (lambda d: d.update(family="xilinx"), "field family must be one of ice40, ecp5, gowin"),
    (lambda d: d.update(lut_cells="ecp5_lut4"), "lut_cells must be one of sb_lut4, portable"),
    (lambda d: d.update(family="ecp5"), "missing field capacity.LUT"),
    (lambda d: (d.update(family="ecp5", lut_cells="ecp5_lut4"), d["capacity"].update(LUT=100)),
     "synth_device, nextpnr_device, nextpnr_package apply to iCE40 boards only"),
    (lambda d: d.update(programmers=[{"tool": "fujprog", "flash": ["{bin}"]}]), "programmers[0]"),
])
def test_board_files_are_validated_completely(change, words):
    d = _board_dict()
    change(d)
    with pytest.raises(BoardError, match=words.replace("[", "\\[").replace("]", "\\]")):
        parse_board(d, "b.json")


@pytest.mark.parametrize("doc", [{}, [], "icebreaker", 3])
def test_malformed_board_files(doc, tmp_path):
    p = tmp_path / "b.json"
    p.write_text(json.dumps(doc))
    with pytest.raises(BoardError, match="b.json"):
        load_board(str(p))


def test_board_names_never_leave_the_catalogue(tmp_path, monkeypatch):
    """A name is looked up in boards/ only; '../x' or 'a/b' is not a path, and a platform module must be one of
    amaranth_boards' (nothing is imported from the board's folder)."""
    (tmp_path / "x.json").write_text(json.dumps(_board_dict()))
    monkeypatch.chdir(tmp_path / "..")
    for name in ("../x", f"{tmp_path.name}/x", "/etc/passwd", "icebreaker/../icebreaker"):
        with pytest.raises(BoardError, match="unknown board"):
            load_board(name)
    assert load_board(str(tmp_path / "x.json")).name == "icebreaker"  # an explicit .json path is fine
    with pytest.raises(BoardError, match="not found"):
        load_board(str(tmp_path / "missing.json"))


def test_board_clock_must_match_the_platform():
    d = _board_dict()
    d["clock_hz"] = 24_000_000
    d["uart"]["baud"] = 115200
    with pytest.raises(BoardError, match="platform's default clock"):
        platform_for(parse_board(d, "b.json"))


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


@pytest.mark.parametrize("text", ["{not json", "[]", '{"format": "something-else"}'])
def test_bad_reports_are_one_line_errors(tmp_path, text):
    (tmp_path / "report.json").write_text(text)
    with pytest.raises(WarpcError, match="report"):
        load_report(tmp_path)
    broken = dict(_fake_report(), fmax={"clk": {}})
    with pytest.raises(WarpcError, match="incomplete or malformed"):
        format_report(broken)


def test_cli_error_paths(tmp_path):
    r = CliRunner().invoke(main, ["report", str(tmp_path / "nope")])
    assert r.exit_code == 1 and "no build folder" in r.output
    net = tmp_path / "n.json"
    from _backend_nets import random_net

    random_net().save(net)
    r = CliRunner().invoke(main, ["synth", str(net), "--board", "nosuchboard", "-o", str(tmp_path / "b")])
    assert r.exit_code == 1 and "unknown board" in r.output and "icebreaker" in r.output
    r = CliRunner().invoke(main, ["flash", str(tmp_path / "nope")])
    assert r.exit_code == 1 and "no build folder" in r.output
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
    assert load_board("icebreaker").device == "iCE40UP5K"
    monkeypatch.setenv("WARPC_BOARDS", str(tmp_path))
    assert supported_boards() == []
