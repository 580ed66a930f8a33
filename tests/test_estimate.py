"""warpc estimate / warpc.estimate: cell counts against the blocks' own cells(), the LC packing model on small cell
plans, the JSON shape, and synth's early refusal of a design that clearly cannot fit."""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

import warpc
from _backend_nets import random_net
from warpc.errors import ConfigError, DoesNotFitError
from warpc.fpga import estimate as E
from warpc.fpga.boards import load_board
from warpc.hdl.core import lutnet_cells, out_signals_of
from warpc.ir.netlist import InputBit, Netlist, Node


def chain_net(n: int = 3000) -> Netlist:
    """n 2-input nodes in a chain (depth n), each also reading one of two input bits: at --pipeline 1 every node
    is a stage and both input bits ride register chains through all of them: far over the UP5K's 5,280 LCs."""
    inputs = [InputBit(0, 128), InputBit(1, 64)]
    nodes = [Node((2, 3), 0b0110, 0)] + [Node((4 + j - 1, 2 + (j % 2)), 0b0110, j) for j in range(1, n)]
    last = 4 + n - 1
    return Netlist(2, inputs, nodes, [[last, last - 1], [last - 2, 2]], input_bits=8).validate()


@pytest.fixture(scope="module")
def board():
    return load_board("icebreaker")


@pytest.fixture(scope="module")
def net():
    return random_net(seed=3, n_features=6, widths=(40, 30, 30), k=4, classes=3)


def test_blocks_match_their_cells(net, board):
    from warpc.hdl.argmax import TreeArgmax
    from warpc.hdl.popcount import TreeCounter
    from warpc.hdl.shell import SerialEncoder

    est = E.estimate_net(net, board, pipeline=1, interval=1)
    b = est["blocks"]
    outs = out_signals_of(net)
    assert (b["encoder"]["LUT"], b["encoder"]["FF"]) == tuple(SerialEncoder.cells(net).get(k) for k in ("lut", "ff"))
    assert b["encoder"]["LC"] == b["encoder"]["LUT"]
    ln = lutnet_cells(net, 1)
    assert (b["lutnet"]["LUT"], b["lutnet"]["FF"]) == (ln["lut"], ln["ff"])
    tc = TreeCounter.cells(net, outs, "sb_lut4")
    assert (b["popcount"]["FF"], b["popcount"]["CARRY"]) == (tc["ff"], tc["carry"])
    assert b["popcount"]["LUT"] >= tc["lut"]  # + a multiplexer LUT per flip-flop of a rarely shared enable
    sb = max(len(g) for g in net.outputs).bit_length()
    ta = TreeArgmax.cells(net.classes, sb, "sb_lut4")
    assert (b["argmax"]["FF"], b["argmax"]["CARRY"]) == (ta["ff"], ta["carry"])
    # the last level's index registers (fewer than 8 share their enable): Yosys folds the enable into a LUT
    assert b["argmax"]["LUT"] == ta["lut"] + (net.classes - 1).bit_length()
    for k in ("LC", "LUT", "FF", "CARRY"):
        assert est[k] == sum(v[k] for v in b.values())
    assert all(v["exact_cells"] for k, v in b.items() if k != "shell")


def test_serial_blocks_match_their_cells(net, board):
    from warpc.hdl.serial import SerialArgmax, SerialCounter

    outs = out_signals_of(net)
    sb = max(len(g) for g in net.outputs).bit_length()
    for interval in (2, 4, 5):
        est = E.estimate_net(net, board, pipeline=1, interval=interval)
        b = est["blocks"]
        sc = SerialCounter.cells(net, outs, interval=interval, lut_cells="sb_lut4")
        assert (b["popcount"]["LUT"], b["popcount"]["FF"], b["popcount"]["CARRY"]) == (
            sc["lut"], sc["ff"], sc["carry"]), interval
        fused = SerialCounter(net, outs, interval=interval, lut_cells="sb_lut4").fused
        ln = lutnet_cells(net, 1, fused)
        assert (b["lutnet"]["LUT"], b["lutnet"]["FF"]) == (ln["lut"], ln["ff"])
        if SerialArgmax.fits(net.classes, interval):
            sa = SerialArgmax.cells(net.classes, sb, interval=interval)
            assert (b["argmax"]["LUT"], b["argmax"]["FF"], b["argmax"]["CARRY"]) == (sa["lut"], sa["ff"], sa["carry"])
        assert est["Interval_cycles"] == interval and est["Latency_cycles"] > 0


def test_lutnet_register_chains():
    # b0 -> n4 (level 1) -> n5 (level 2, also reads b0) -> n6 (level 3, also reads b0); class 0 counts n6 and b0
    inputs = [InputBit(0, 1), InputBit(0, 2)]
    nodes = [Node((2, 3), 0b0110), Node((4, 2), 0b1000), Node((5, 2), 0b1110)]
    net = Netlist(1, inputs, nodes, [[6, 2], [4]], input_bits=2).validate()
    got = E.lutnet_lcs(net, 1)
    # b0 is read in stages 0, 1, 2: a chain of 2 flip-flops fed by the encoder's flip-flop: both cost an LC;
    # n4 (stage 0) is read in stage 1 (n5) and, as a counted bit, in the last stage 2: 2 flip-flops, the first
    # packs with n4's LUT; n5 (stage 1) -> n6 (stage 2): 1 flip-flop, packed
    assert got["lut"] == 3 and got["ff"] == 2 + 2 + 1
    assert got["lone_ff"] == 2 + 1
    # with 3 levels per stage everything is combinational
    assert E.lutnet_lcs(net, 3)["ff"] == 0


def _plan():
    from warpc.hdl.popcount import _Plan

    return _Plan()


def test_pack_plan_rules():
    p = _plan()
    a = p.lut(0x6666, [("v", 0), ("v", 1)])
    p.ff(a)                       # a LUT that drives only a flip-flop: one LC
    b = p.lut(0x8888, [("v", 0), ("v", 2)])
    p.ff(b)
    p.lut(0x6666, [b, ("v", 3)])  # b has a second reader: its flip-flop takes an LC of its own
    f = p.ff(("v", 4))            # fed by the block's input (no LUT here): its own LC
    p.ff(f)                       # fed by a flip-flop: its own LC
    r = E.pack_plan(p)
    assert (r["lut"], r["ff"], r["lone_ff"]) == (3, 4, 3)
    assert r["lc"] == 3 + 3
    # input 4 comes from a LUT with no other reader in the block before: that flip-flop packs there
    assert E.pack_plan(p, value_lut=lambda i, n: i == 4 and n == 1)["lone_ff"] == 2


def test_pack_plan_carries_and_chains():
    C0 = ("c", 0)
    p = _plan()
    # a 3-bit ripple adder in the usual form: LUT (I1, I2 = the carry's inputs, I3 = its carry-in) + carry
    ci = C0
    for i in range(3):
        x, y = ("v", i), ("v", 3 + i)
        s = p.lut(0x6996, [C0, x, y, ci])
        p.ff(s)
        ci = p.carry(x, y, ci)
    p.ff(p.lut(0xFF00, [C0, C0, C0, ci]))  # the carry-out into the fabric through the LUT on its I3
    r = E.pack_plan(p)
    assert (r["carry_only"], r["feed"], r["lone_ff"]) == (0, 0, 0)
    assert r["lc"] == 4
    # a carry with no matching LUT: a carry-only LC; a chain started from a fabric signal: a feed-in LC; a
    # carry-out read by a flip-flop at the chain's end: a pass-out LC
    q = _plan()
    co = q.carry(("v", 0), ("v", 1), ("v", 2))
    q.ff(co)
    r = E.pack_plan(q)
    assert (r["carry_only"], r["feed"], r["lone_ff"]) == (1, 2, 1)
    assert r["lc"] == 4


def test_json_cli_shape(net, tmp_path):
    p = net.save(tmp_path / "n.json")
    from warpc.cli import main

    res = CliRunner().invoke(main, ["estimate", str(p), "--json", "--interval", "2"])
    assert res.exit_code == 0, res.output
    d = json.loads(res.stdout)
    assert d["format"] == "warpc-estimate"
    for k in ("LC", "LUT", "FF", "CARRY", "BRAM", "IO"):
        assert isinstance(d[k], int)
    assert set(d["blocks"]) == {"encoder", "lutnet", "popcount", "argmax", "core", "shell"}
    for v in d["blocks"].values():
        assert {"LC", "LUT", "FF", "CARRY", "exact_cells", "model"} <= set(v)
    assert d["capacity"]["LC"] == 5280 and d["fits"] is True and d["clearly_over"] is False
    assert d["Fmax"]["class"] and d["Fmax"]["limited_by"] in d["Fmax"]["paths_ns"]
    assert d["options"] == {"pipeline": 1, "interval": 2, "lut_cells": "sb_lut4", "scores": False}
    text = CliRunner().invoke(main, ["estimate", str(p)])
    assert text.exit_code == 0 and "lutnet" in text.stdout and "of 5,280" in text.stdout


def test_api_and_options(net):
    est = warpc.estimate(net, interval=1, pipeline=2)
    assert est["options"]["pipeline"] == 2 and est["LC"] > 0
    assert warpc.estimate(net, scores=True)["blocks"]["shell"]["LC"] > est["blocks"]["shell"]["LC"]
    with pytest.raises(ConfigError, match="--interval"):
        warpc.estimate(net, interval=0)
    with pytest.raises(ConfigError, match="pipeline"):
        warpc.estimate(net, pipeline=0, interval=2)


def test_fmax_class_follows_logic_depth(board):
    deep = random_net(seed=1, widths=(30, 30, 30, 30, 30, 30), k=4, classes=3, extras=False)
    comb = E.estimate_net(deep, board, pipeline=0)["Fmax"]
    piped = E.estimate_net(deep, board, pipeline=1)["Fmax"]
    assert comb["path_estimate_MHz"] < piped["path_estimate_MHz"]
    assert comb["limited_by"] == "core (combinational)"


def test_over_capacity(board):
    est = E.estimate_net(chain_net(), board)
    assert est["clearly_over"] and not est["fits"] and est["LC"] > 1.1 * 5280
    with pytest.raises(DoesNotFitError, match=r"needs ~[\d,]+ LCs \(estimate\), the iCE40UP5K has 5,280"):
        E.check_fits(est)


def test_synth_refuses_early_and_leaves_the_folder(tmp_path):
    from warpc.cli import main

    p = chain_net().save(tmp_path / "big.json")
    out = tmp_path / "out"
    out.mkdir()
    (out / "mine.txt").write_text("keep")
    res = CliRunner().invoke(main, ["synth", str(p), "-o", str(out), "--arch", "spatial"])
    assert res.exit_code == 1
    err = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(err) == 1 and err[0].startswith("error: the design does not fit the iCE40UP5K: needs ~"), res.stderr
    assert "--no-estimate-check" in err[0] and "5,280" in err[0]
    assert sorted(x.name for x in out.iterdir()) == ["mine.txt"] and (out / "mine.txt").read_text() == "keep"
    res = CliRunner().invoke(main, ["synth", str(p), "-o", str(tmp_path / "new"), "--arch", "spatial"])
    assert res.exit_code == 1 and not (tmp_path / "new").exists()


def test_no_estimate_check_gets_past_the_check(tmp_path):
    from warpc.fpga.flow import BuildOptions, prepare

    p = chain_net().save(tmp_path / "big.json")
    with pytest.raises(DoesNotFitError):
        prepare(p, "icebreaker", tmp_path / "o", BuildOptions(arch="spatial"), say=lambda s: None)
    b = prepare(p, "icebreaker", tmp_path / "o", BuildOptions(arch="spatial", estimate_check=False),
                say=lambda s: None)
    assert b.estimate["clearly_over"] and not (tmp_path / "o").exists()
    with pytest.raises(ConfigError, match="estimate_check"):
        BuildOptions(estimate_check="no").validate()


# (netlist recorded from the build, interval, LCs nextpnr placed / packed) — `warpc synth` builds of 2026-12-03
# (scripts/results/estimate_error.md) and the interval table's nextpnr --pack-only counts (interval_table.md)
RECORDED = [
    ("digits_default_netlist.json", 1, 3379),
    ("digits_1000_200_netlist.json", 20, 938),
    ("fashion_dlgn_2400_1000_netlist.json", 1, 4200),
    ("fashion_dlgn_2400_1000_netlist.json", 4, 3508),
    ("fashion_dlgn_2400_1000_netlist.json", 32, 3152),
]


@pytest.mark.parametrize("name,interval,built", RECORDED)
def test_estimate_within_5_percent_of_recorded_builds(name, interval, built):
    from pathlib import Path

    from warpc.fpga.boards import load_board
    from warpc.fpga.estimate import estimate_net
    from warpc.ir.netlist import Netlist

    net = Netlist.load(Path(__file__).parent / "backend_fixtures" / "recorded" / name)
    est = estimate_net(net, load_board("icebreaker"), interval=interval, pipeline=1, lut_cells="sb_lut4")
    assert abs(est["LC"] - built) <= 0.05 * built, (est["LC"], built)
