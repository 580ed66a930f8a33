"""SerialCounter (class counting over N cycles per sample) and SerialArgmax against numpy references: portable
logic in Amaranth's simulator, explicit SB_LUT4 / SB_CARRY cells through Yosys into NetSim (tests/_cellsim.py),
and cells() against Yosys' own count after synth_ice40."""
import json
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest

from _backend_nets import random_net
from _cellsim import YOSYS, cell_sim, needs_yosys, sim_portable
from reference_eval import reference_signals
from warpc.errors import ConfigError
from warpc.hdl.core import out_signals_of
from warpc.hdl.serial import SerialArgmax, SerialCounter
from warpc.ir.netlist import InputBit, Netlist, Node


# --- nets ----------------------------------------------------------------------------------------------------
def hand_net() -> Netlist:
    """Classes of different sizes with constants, repeats, inputs, fused k=0/1/2 nodes and a k=3 node."""
    inputs = [InputBit(0, t) for t in (10, 50, 90, 130, 170, 210)]
    I = [2 + i for i in range(6)]
    nodes = [Node((), 1), Node((I[0],), 0b01), Node((I[1], I[2]), 0b0110), Node((I[3], I[4], I[5]), 0x96),
             Node((I[0], I[5]), 0b1000), Node((), 0), Node((I[2], I[3]), 0b1110)]
    n = [8 + j for j in range(len(nodes))]
    outputs = [
        [n[0], n[1], n[2], n[3], 1, 1, 0, I[0], n[2]],           # 9 entries: k=0 const-1 node, repeats, inputs
        [n[4]],                                                  # one bit
        [n[5], 0, 1],                                            # constant score (1)
        [n[2], n[3], n[4], n[6], I[1], I[2], I[3], I[4], n[6], n[6], n[1], 1, n[3]],  # 13 entries
        [I[5]] * 5 + [n[2], n[3], n[2], 1, 1, 1],                # a signal 5 times (weight 101b), ones = 3
    ]
    return Netlist(1, inputs, nodes, outputs, input_bits=8).validate()


def big_net(seed=3) -> Netlist:
    return random_net(seed=seed, widths=(40, 30), k=2, classes=3)  # 10-12 bits per class + extras


# --- drivers -------------------------------------------------------------------------------------------------
def schedule(n_samples: int, interval: int, gaps, tail: int):
    """Cycles at which samples enter (interval apart plus gaps[i % len(gaps)] idle cycles)."""
    t, starts = 1, []
    for i in range(n_samples):
        starts.append(t)
        t += interval + gaps[i % len(gaps)]
    return starts, t + tail


def counter_stimuli(net, blk, n_samples, starts, T, seed=0):
    """Per-cycle values/fanins/valid_in (garbage outside valid cycles) and the expected scores per sample."""
    rng = np.random.default_rng(seed)
    bits = rng.integers(0, 2, size=(n_samples, len(net.inputs)))
    vals = reference_signals(net, bits)
    want = np.stack([vals[:, g].sum(1) if g else np.zeros(n_samples, np.int64) for g in net.outputs], 1)
    nv, nf = len(blk.values), len(blk.fanins)
    values = rng.integers(0, 2, size=(T, nv)).astype(bool)
    fanins = rng.integers(0, 2, size=(T, nf)).astype(bool)
    valid = np.zeros((T, 1), dtype=bool)
    fi = [f for s in blk.fused for f in net.nodes[s - net.first_node].fanin]
    for i, t in enumerate(starts):
        valid[t] = True
        values[t, : len(blk.out_signals)] = vals[i, blk.out_signals].astype(bool)
        if fi:
            fanins[t, : len(fi)] = vals[i, fi].astype(bool)
    return {"values": values, "fanins": fanins, "valid_in": valid}, want


def run_amaranth(blk, stim, outs, T):
    """Drive stim (port -> (T, width) bools) through Amaranth's simulator; returns port -> (T,) ints."""
    ins = [(getattr(blk, name), [int(sum(int(v) << i for i, v in enumerate(a[t]))) for t in range(T)])
           for name, a in stim.items()]
    got = sim_portable(blk, ins, [getattr(blk, o) for o in outs], T)
    return {o: np.array(g, dtype=np.int64) for o, g in zip(outs, got)}


def run_cells(blk, stim, outs, T):
    ports = [getattr(blk, n) for n in stim] + [getattr(blk, o) for o in outs]
    sim = cell_sim(blk, ports=ports)
    out = sim.run({n: a[:, None, :] for n, a in stim.items()}, cycles=T)
    return {o: (out[o][:, 0, :].astype(np.int64) << np.arange(out[o].shape[2])).sum(1) for o in outs}


def check_counter(net, interval, style, gaps=(0,), n_samples=5, fuse=True, seed=0, structure=None):
    out_signals = out_signals_of(net)
    blk = SerialCounter(net, out_signals, interval=interval, lut_cells=style, fuse=fuse, structure=structure)
    starts, T = schedule(n_samples, interval, gaps, blk.latency + 2)
    stim, want = counter_stimuli(net, blk, n_samples, starts, T, seed)
    res = (run_amaranth if style == "portable" else run_cells)(blk, stim, ["scores", "valid_out"], T)
    expect_valid = np.zeros(T, dtype=bool)
    expect_valid[[t + blk.latency for t in starts]] = True
    assert (res["valid_out"].astype(bool) == expect_valid).all(), (res["valid_out"], expect_valid)
    sb = blk.score_bits
    for i, t in enumerate(starts):  # held until the next valid_out
        end = starts[i + 1] + blk.latency if i + 1 < len(starts) else T
        for u in range(t + blk.latency, end):
            got = [(int(res["scores"][u]) >> (c * sb)) & ((1 << sb) - 1) for c in range(net.classes)]
            assert got == want[i].tolist(), (i, u, got, want[i].tolist())
    return blk


# --- SerialCounter -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("interval", [2, 3, 7, 13])
def test_counter_portable_hand_net(interval):
    blk = check_counter(hand_net(), interval, "portable", gaps=(0, 2, 0, 5), n_samples=5)
    assert blk.latency == interval + 1
    assert {8, 9, 10, 12, 13} <= set(blk.fused) and 11 not in blk.fused  # k <= 2 nodes fused, k = 3 not


STRUCTURES = [(v, c, comp, st) for v in "AC" for c in ("sr", "cnt") for comp in ("tree", "fa")
              for st in ("chain", "banks")]


@pytest.mark.parametrize("interval,structure", [
    (2, ("A", "sr", "tree", "banks")), (2, ("C", "sr", "fa", "banks")), (5, ("A", "cnt", "fa", "chain")),
    (5, ("C", "cnt", "tree", "banks")), (4, ("A", "sr", "tree", "chain")), (13, ("A", "cnt", "tree", "banks"))])
def test_counter_portable_structures(interval, structure):
    check_counter(hand_net(), interval, "portable", gaps=(0, 3, 0, 1), n_samples=5, structure=structure)


@pytest.mark.slow
@pytest.mark.parametrize("interval", [2, 3, 6])
def test_counter_portable_every_structure(interval):
    for st in STRUCTURES:
        if st[1] == "sr" and st[3] == "banks" and interval != 2:
            with pytest.raises(ConfigError):
                SerialCounter(hand_net(), out_signals_of(hand_net()), interval=interval, structure=st)
            continue
        check_counter(hand_net(), interval, "portable", gaps=(0, 2), n_samples=4, structure=st, seed=interval)
        check_counter(big_net(), interval, "portable", gaps=(1,), n_samples=3, structure=st, seed=interval)


@needs_yosys
@pytest.mark.parametrize("interval,structure", [(2, ("A", "sr", "tree", "banks")),
                                                pytest.param(6, ("C", "cnt", "tree", "banks"),
                                                             marks=pytest.mark.slow)])
def test_counter_cells_banks(interval, structure):
    check_counter(hand_net(), interval, "sb_lut4", gaps=(0, 2), n_samples=4, structure=structure)


def test_counter_portable_unfused_and_random():
    check_counter(hand_net(), 3, "portable", gaps=(1,), fuse=False)
    net = big_net()
    widest = max(len(g) for g in net.outputs)
    for n in (2, 4, widest):
        check_counter(net, n, "portable", gaps=(0, 3), n_samples=4, seed=n)


@needs_yosys
@pytest.mark.parametrize("interval", [2, pytest.param(3, marks=pytest.mark.slow), pytest.param(7, marks=pytest.mark.slow),
                                      pytest.param(9, marks=pytest.mark.slow), 13])
def test_counter_cells_hand_net(interval):  # N = 9: one chain for every class but the largest; 13: N = G
    check_counter(hand_net(), interval, "sb_lut4", gaps=(0, 1, 0, 4), n_samples=6, seed=interval)


@needs_yosys
@pytest.mark.slow
def test_counter_cells_random_nets():
    net = big_net(seed=5)
    widest = max(len(g) for g in net.outputs)
    for n in (2, 3, 4, 7, widest):
        check_counter(net, n, "sb_lut4", gaps=(0, 2), n_samples=5, seed=n)
    check_counter(net, 4, "sb_lut4", fuse=False, n_samples=4)


def test_counter_rejects_bad_interval():
    net = hand_net()
    for bad in (1, 0, 14, 2.0, True):
        with pytest.raises(ConfigError):
            SerialCounter(net, out_signals_of(net), interval=bad)


def test_counter_chooses_cheaper_structures():
    net = random_net(seed=1, widths=(64, 150), k=2, classes=3, extras=False)
    lcs = [SerialCounter.estimate(net, out_signals_of(net), interval=n)["lc"] for n in (2, 8, 50)]
    assert lcs == sorted(lcs, reverse=True)
    est = SerialCounter.estimate(net, out_signals_of(net), interval=50)
    assert est["lc"] < 150 + 3 * 30  # one cell per counted bit (k = 2 nodes: the node itself), a few per class


# --- cells() vs Yosys ----------------------------------------------------------------------------------------
def yosys_stat(blk, ports) -> dict:
    from amaranth.back import rtlil

    il = rtlil.convert(blk, name="top", ports=ports)
    with tempfile.TemporaryDirectory() as d:
        (Path(d) / "in.il").write_text(il)
        script = "read_rtlil in.il\nsynth_ice40 -top top\ntee -o stat.json stat -json\n"
        (Path(d) / "s.ys").write_text(script)
        r = subprocess.run([YOSYS, "-q", "s.ys"], cwd=d, capture_output=True, text=True)
        assert r.returncode == 0, r.stderr[-2000:]
        text = (Path(d) / "stat.json").read_text()
    cells = json.loads(text[text.index("{"):])["design"]["num_cells_by_type"]
    ff = sum(v for k, v in cells.items() if k.startswith("SB_DFF"))
    return {"lut": cells.get("SB_LUT4", 0), "carry": cells.get("SB_CARRY", 0), "ff": ff}


@needs_yosys
@pytest.mark.slow
@pytest.mark.parametrize("interval", [2, 3, 5, 13])
def test_counter_cells_match_yosys(interval):
    net = hand_net()
    os_ = out_signals_of(net)
    blk = SerialCounter(net, os_, interval=interval, lut_cells="sb_lut4")
    got = yosys_stat(blk, [blk.values, blk.fanins, blk.valid_in, blk.scores, blk.valid_out])
    assert got == SerialCounter.cells(net, os_, interval=interval, lut_cells="sb_lut4")


@needs_yosys
@pytest.mark.slow
def test_counter_cells_match_yosys_random():
    net = big_net(seed=7)
    os_ = out_signals_of(net)
    for n in (2, 4, 9):
        blk = SerialCounter(net, os_, interval=n, lut_cells="sb_lut4")
        got = yosys_stat(blk, [blk.values, blk.fanins, blk.valid_in, blk.scores, blk.valid_out])
        assert got == SerialCounter.cells(net, os_, interval=n, lut_cells="sb_lut4"), n


# --- SerialArgmax --------------------------------------------------------------------------------------------
def check_argmax(classes, sb, interval, style, gaps=(0,), n=6, seed=0):
    blk = SerialArgmax(classes, sb, interval=interval, lut_cells=style)
    rng = np.random.default_rng(seed)
    scores = rng.integers(0, 1 << sb, size=(n, classes))
    scores[0] = (1 << sb) - 1  # all tied: class 0
    scores[1, :] = 0
    scores[1, [2 % classes, classes - 1]] = 3  # tie between two later classes: the lower one
    starts, T = schedule(n, interval, gaps, blk.latency + 2)
    stim = {"scores": rng.integers(0, 2, size=(T, classes * sb)).astype(bool), "valid_in": np.zeros((T, 1), bool)}
    for i, t in enumerate(starts):  # scores stable from valid_in until the next one; garbage before the first
        end = starts[i + 1] if i + 1 < n else T
        row = np.array([(int(scores[i, c]) >> j) & 1 for c in range(classes) for j in range(sb)], dtype=bool)
        stim["scores"][t:end] = row
        stim["valid_in"][t] = True
    res = (run_amaranth if style == "portable" else run_cells)(blk, stim, ["cls", "valid_out"], T)
    expect_valid = np.zeros(T, dtype=bool)
    expect_valid[[t + blk.latency for t in starts]] = True
    assert (res["valid_out"].astype(bool) == expect_valid).all()
    want = np.argmax(scores, 1)
    for i, t in enumerate(starts):
        end = starts[i + 1] + blk.latency if i + 1 < n else T
        assert (res["cls"][t + blk.latency:end] == want[i]).all(), (i, res["cls"][t + blk.latency:end], want[i])


@pytest.mark.parametrize("classes,sb,interval", [(2, 1, 2), (3, 4, 3), (10, 7, 10), (5, 9, 12)])
def test_argmax_portable(classes, sb, interval):
    check_argmax(classes, sb, interval, "portable", gaps=(0, 3, 1))


@needs_yosys
@pytest.mark.parametrize("classes,sb,interval", [pytest.param(2, 2, 2, marks=pytest.mark.slow), (10, 7, 10),
                                                pytest.param(7, 5, 9, marks=pytest.mark.slow)])
def test_argmax_cells(classes, sb, interval):
    check_argmax(classes, sb, interval, "sb_lut4", gaps=(0, 2))


def test_argmax_fits():
    assert SerialArgmax.fits(10, 10) and not SerialArgmax.fits(10, 9)
    with pytest.raises(ConfigError):
        SerialArgmax(10, 7, interval=9)


@needs_yosys
@pytest.mark.slow
@pytest.mark.parametrize("classes,sb", [(2, 3), (10, 7), (17, 9)])
def test_argmax_cells_match_yosys(classes, sb):
    blk = SerialArgmax(classes, sb, interval=classes, lut_cells="sb_lut4")
    got = yosys_stat(blk, [blk.scores, blk.valid_in, blk.cls, blk.valid_out])
    assert got == SerialArgmax.cells(classes, sb, interval=classes, lut_cells="sb_lut4")


def test_lut_init_cache_matches_direct_evaluation(monkeypatch):
    """LUT tables are cached per (function code, closed-over values, defaults): the cache must never hand one
    function's table to another (different and_tree polarities, fused tables, gates...)."""
    import warpc.hdl.serial as S

    net = hand_net()
    os_, fused = out_signals_of(net), [s for s in out_signals_of(net) if net.nodes[s - net.first_node].k <= 2
                                       if net.is_node(s)]
    plans = [(n, v, c, st) for n in (2, 7, 13, 3) for v in "AC" for c in ("sr", "cnt") for st in ("chain", "banks")]
    cached = [S._build_counter(net, os_, fused, n, v, c, "tree", st) for n, v, c, st in plans]
    cached.append(S._build_argmax(10, 7))
    monkeypatch.setattr(S, "_fn_key", lambda fn: None)
    direct = [S._build_counter(net, os_, fused, n, v, c, "tree", st) for n, v, c, st in plans]
    direct.append(S._build_argmax(10, 7))
    for a, b in zip(cached, direct):
        assert (a is None) == (b is None)
        if a is not None:
            assert a[0].luts == b[0].luts


@pytest.mark.slow
def test_carry_chains_stay_short():
    """Adders share a carry chain only with the adder that reads their result: no chain runs through a whole
    class's tree (timing analysis would see every CI -> CO hop), even at II = 2 on a 300-bit class."""
    import warpc.hdl.serial as S

    net = random_net(seed=1, widths=(64, 900), k=4, classes=3, extras=False)
    os_ = out_signals_of(net)
    for n in (2, 3, 8):
        blk = SerialCounter(net, os_, interval=n)
        b, roots, _, _ = S._build_counter(net, os_, blk.fused, n, *blk.structure)
        _, carries, _ = b.live(roots)
        length: dict = {}

        def chain(i):
            if i not in length:
                ci = b.carries[i][2]
                length[i] = 1 + (chain(ci[1]) if ci[0] == "C" else 0)
            return length[i]

        # at most the adders along one path of the class's tree (widths 2, 3, ..., score_bits)
        assert max(chain(i) for i in carries) <= blk.score_bits * (blk.score_bits + 1) // 2, n
