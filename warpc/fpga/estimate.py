"""What a board build will cost, from the netlist IR alone (no Yosys, no nextpnr): logic cells (LCs) per block
and in total, LUT4s, flip-flops, carries, BRAM, IO and an Fmax class, in well under 2 s for a Fashion-MNIST-size
netlist. `warpc estimate` prints it; `warpc synth` prints it first and refuses a design that clearly cannot fit
(more than FIT_MARGIN x the device's LCs) before it synthesises anything or touches its output folder.

Cells. Every block of the board design knows the cells it instantiates (exact for sb_lut4 cells):
  encoder  `SerialEncoder.cells` (shell.py)             lutnet   `core.lutnet_cells`
  counter  `TreeCounter.cells` (II = 1, popcount.py) or `SerialCounter.cells` (II > 1, serial.py)
  argmax   `TreeArgmax.cells` (argmax.py) or `SerialArgmax.cells` (serial.py, when `SerialArgmax.fits`)
  core     the valid strobe's delay line (+ the scores' delay line when the argmax takes longer than an interval)
  shell    UART, framing, CRC, idle timer, reply register: a calibrated constant (SHELL) plus the reply's bits.
A block whose module is not importable gets a rough formula (`_fallback_counter` / `_fallback_argmax`), marked
(`exact_cells: false` for that block).

Packing (nextpnr-ice40): an LC holds one LUT4, one carry and one flip-flop. nextpnr puts a flip-flop into the LC
of the LUT that drives it when that LUT drives nothing else, and a carry into the LC of the LUT that sits on it
(I1 / I2 = the carry's inputs, I3 = its carry-in); every other flip-flop (fed by a flip-flop, or by a LUT with
other readers) and every other carry takes an LC of its own, and carry chains that enter from or leave into the
fabric cost feed-in / pass-out LCs. So LC = LUT + lone FFs + carry-only LCs - merged LUTs + feed LCs, per block:
  encoder  every stored bit is a LUT that feeds only its flip-flop: LC = LUT (exact).
  lutnet   LUTs + the register chains' flip-flops that cannot pack (`lutnet_lcs`: all but the first of a chain,
           and the first too when it follows an input bit (a flip-flop) or a LUT that other nodes of its own stage
           also read).
  counter, argmax   nextpnr's packing rules (pack.cc, chains.cc) applied to the block's own cell plan
           (`pack_plan`: the same cells its cells() counts, plus Yosys' enable multiplexers for flip-flops that
           share an enable with fewer than 8 others); a block without a plan: LUT + PACKING fractions of cells().
  core     its delay lines' flip-flops (fed by flip-flops): one LC each.
  shell    the calibrated constant SHELL.
Measured (scripts/results/estimate_error.md; UP5K, nextpnr's LC count): digits (877 LUT nodes) II 1 / 4 / 10:
3,395 / 2,761 / 2,566 estimated vs 3,395 / 2,761 / 2,586 built; P2 II2 --scores 3,517 vs 3,519; a 4-level net with
skip connections (register chains) at P1 / P2: 2,254 / 1,920 vs 2,253 / 1,922; iris 318 vs 310. Re-run
scripts/estimate_error.py on new builds (it also prints the shell LC the builds imply, for SHELL).

Fmax class: the longest register-to-register path: inside the counter and argmax plans (LUT and carry delays,
the counter's inputs arriving after the LUT network's last stage), a LUT-network stage (`pipeline` levels) and the
shell's (SHELL_PATH_NS), times the TIMING constants, mapped to a class (FMAX_CLASSES): a class, not a number
(routing decides the rest; not yet calibrated on placed-and-routed builds of the pipelined blocks).
"""
from __future__ import annotations

import time
from pathlib import Path

from ..errors import ConfigError, DoesNotFitError
from ..ir.netlist import Netlist

FORMAT = "warpc-estimate"
DFFE_MIN_CE_USE = 8  # flow.py's synth_ice40 -dffe_min_ce_use
FIT_MARGIN = 1.10  # `warpc synth` refuses when the estimated LCs exceed capacity x this (the estimate's own margin)

# --- calibration: the one place for fitted constants ------------------------------------------------------------
# Shell (UART, framing, CRC, idle timer, reply register; the rest of the design after the named blocks): fitted to
# pack-only builds of the digits netlist (64 features: a 7-bit feature counter) on the current shell (yosys stat
# 194 LUT, 120 FF, 41 CARRY; nextpnr LC minus the other blocks' estimates: 240), written as a base for <= 8
# features plus terms per further feature-counter bit (from the iris / digits difference) and per reply bit with
# --scores (digits, 10 scores x 1 byte: +81 LUT, +76 FF, +82 LC for 80 bits: the reply register).
SHELL = {"lut": 184, "ff": 112, "carry": 37, "lc": 229,
         "lut_per_feature_bit": 2.5, "ff_per_feature_bit": 2.0, "carry_per_feature_bit": 1.0,
         "lc_per_feature_bit": 2.75,
         "lut_per_reply_bit": 1.0, "ff_per_reply_bit": 1.0, "lc_per_reply_bit": 1.0}
# pipeline 0 (combinational core, Yosys maps the arithmetic): the recorded build's adder trees and tournament
COMB_POPCOUNT = {"lut_per_bit": 1.9, "carry_per_class": 6}
# fraction of a block's flip-flops / carries that take an LC of their own (the rest pack with a LUT)
PACKING = {
    "encoder": {"lone_ff": 0.0, "lone_carry": 1.0},
    "counter_tree": {"lone_ff": 0.0, "lone_carry": 0.0},
    "counter_serial": {"lone_ff": 0.5, "lone_carry": 0.0},
    "argmax_tree": {"lone_ff": 0.5, "lone_carry": 1.0},
    "argmax_serial": {"lone_ff": 0.5, "lone_carry": 1.0},
    "core": {"lone_ff": 1.0, "lone_carry": 1.0},   # the core's own flip-flops are delay lines: FF fed by FF
}
# timing (iCE40UP5K, nextpnr-ice40; ns): clock-to-out + setup, one routed hop between cells, a LUT's logic, one
# carry step (CI -> CO inside a chain; a carry-out read on the I3 of the LC it enters needs no route)
# (iris P1 build: the shell's FSM -> feature register path, 4 LUTs + 5 routes = 4.5 + 19.3 ns: 1.1 ns per LUT,
# ~3.9 ns per high-fanout route: the shell has its own SHELL_PATH_NS; inside the blocks routes are local: digits
# II 4, whose serial counter sums its chain heads through ~20 LUTs and ~30 carries in one cycle, was estimated by
# nextpnr at 23.2 MHz after placement, which route_ns 2.2 puts at 20.4 MHz)
TIMING = {"base_ns": 1.5, "route_ns": 2.2, "lut_ns": 1.1, "carry_ns": 0.3, "congested_over_pct": 80,
          "congestion": 1.25}
SHELL_PATH_NS = 22.3  # the shell's longest path without base_ns (iris P1 build: 23.85 ns, 41.9 MHz)
FMAX_CLASSES = ((48.0, "≥ 48 MHz likely"), (30.0, "~30-48 MHz"), (20.0, "~20-30 MHz"), (12.0, "~12-20 MHz"),
                (0.0, "< 12 MHz: may fail timing at a 12 MHz clock"))


def _bits(v: int) -> int:
    return max(1, int(v).bit_length())


def _fallback_counter(net: Netlist, n_values: int, score_bits: int, interval: int) -> dict[str, int]:
    """Fallback when the counter's module or cells() cannot be used (an unknown signature): rough costs."""
    if interval == 1:  # compressor tree: ~2 LUTs per counted bit, registered levels
        return {"lut": 2 * n_values, "carry": 0, "ff": n_values}
    per_class = net.classes * score_bits
    return {"lut": -(-n_values // interval) + 2 * per_class, "carry": per_class, "ff": n_values + per_class}


def _fallback_argmax(classes: int, score_bits: int, class_bits: int) -> dict[str, int]:
    """Fallback when the argmax's module or cells() cannot be used: a tournament, a comparator + mux per match."""
    m = max(0, classes - 1)
    return {"lut": m * (score_bits + class_bits + 1), "carry": m * score_bits, "ff": m * (score_bits + class_bits)}


def lutnet_lcs(net: Netlist, pipeline: int, fused=()) -> dict[str, int]:
    """The LUT network's LUTs and flip-flops (as `core.lutnet_cells`) and how many of those flip-flops take an LC
    of their own: in a register chain of d flip-flops for signal s, d - 1 are fed by a flip-flop; the first packs
    with s's LUT unless s is an input bit (the encoder's flip-flop) or s's LUT has other readers (a node of its own
    stage, or the counter when s is read in the last stage)."""
    from ..hdl.core import core_shape, lutnet_cells, out_signals_of

    cells = lutnet_cells(net, pipeline, fused)
    N = max(0, int(pipeline))
    if N == 0:
        return {**cells, "lone_ff": 0, "comb_users": {}, "live": set(), "last": 0, "stage": {}, "in_stage": {}}
    levels = net.levels()
    first = net.first_node
    stage = {}
    for j in range(len(net.nodes)):
        sid = net.node_id(j)
        stage[sid] = (int(levels[sid]) - 1) // N
    out_signals = out_signals_of(net)
    read = {f for node in net.nodes for f in node.fanin}
    skip = {s for s in fused if s not in read}
    # liveness, as lutnet_cells: only nodes that reach a counted signal survive synthesis
    live, todo = set(), [s for s in out_signals if s not in skip]
    todo += [f for s in fused for f in net.nodes[s - first].fanin]
    while todo:
        s = todo.pop()
        if s in live or not net.is_node(s):
            continue
        live.add(s)
        todo += net.nodes[s - first].fanin
    need: dict[int, int] = {}
    same_stage: set[int] = set()  # LUT outputs read combinationally (same stage) besides any register
    comb_users: dict[int, int] = {}  # signal -> reads of its combinational value (same stage) in the network

    def use(s: int, when: int, count: bool = True) -> None:
        if net.is_const(s):
            return
        st = stage.get(s, 0)
        if when == st:
            same_stage.add(s)
            if count:
                comb_users[s] = comb_users.get(s, 0) + 1
        need[s] = max(need.get(s, 0), when - st)

    for j, node in enumerate(net.nodes):
        sid = net.node_id(j)
        if sid in skip or sid not in live:
            continue
        for f in node.fanin:
            use(f, stage[sid])
    last = core_shape(net, N).last_stage
    for s in out_signals:
        if s not in skip:
            use(s, last, count=False)  # the counter's reads are counted from its own plan
    for s in fused:
        for f in net.nodes[s - first].fanin:
            use(f, last, count=False)
    lone = 0
    for s, d in need.items():
        if d <= 0:
            continue
        packs = net.is_node(s) and net.nodes[s - first].k > 0 and s not in same_stage
        lone += d - 1 + (0 if packs else 1)
    # LUT levels of each last-stage value within its stage (what the counter's first logic adds to)
    in_stage = {s: int(levels[s]) - stage[s] * N for s in stage if stage[s] == last and s in live}
    return {**cells, "lone_ff": lone, "comb_users": comb_users, "live": live, "last": last, "stage": stage,
            "in_stage": in_stage}


def _ext_refs(block) -> list:
    """The plan references a block hands out (its outputs: final heaps, index, valid), found in its private
    attributes: nested lists / tuples of ("kind", int) references."""
    out: list = []

    def walk(v) -> None:
        if isinstance(v, tuple) and len(v) == 2 and isinstance(v[0], str) and isinstance(v[1], (int, str)):
            out.append(v)
        elif isinstance(v, (list, tuple)):
            for x in v:
                walk(x)

    for name, v in vars(block).items():
        if name.startswith("_") and name != "_plan":
            walk(v)
    return out


def _is_plan(plan) -> bool:
    return all(hasattr(plan, a) for a in ("luts", "carries", "ffs"))


def pack_plan(plan, ext: list = (), value_lut=None) -> dict:
    """nextpnr-ice40's packing of a cell plan (popcount._Plan: SB_LUT4 `luts` (init, 4 pins), SB_CARRY
    `carries` (I0, I1, CI), flip-flops `ffs` [D, enable, reset]; references ("l", k) LUT k, ("k", k) carry k's CO,
    ("f", k) flip-flop k, ("v", i) the block's input i, ("x", name) a strobe, ("c", 0 | 1) constants).

    Follows pack.cc / chains.cc: a flip-flop shares the LC of the LUT whose output drives only it (or of an input's
    LUT in the block before: `value_lut(i, users)` says whether input i comes from a LUT with no other users); a
    carry shares the LC of a LUT with I1 = its I0 and I2 = its I1 (and I3 = its CI when CI is a signal); a carry-only
    LC swallows a LUT of <= 2 inputs (I2, I3) that feeds it and nothing else is known about; a chain whose first
    CI is a fabric signal costs a feed-in LC, a carry-out read by more than the next LC (or at the end by anything
    but one LUT's I3) a pass-out LC. Returns lut, ff, carry, lone_ff, carry_only, merged, feed, lc."""
    from collections import defaultdict

    users: dict = defaultdict(list)  # ref -> [(cell kind, index, port)]
    for k, (_, pins) in enumerate(plan.luts):
        for p, r in enumerate(pins):
            users[r].append(("lut", k, p))
    for k, (i0, i1, ci) in enumerate(plan.carries):
        users[i0].append(("carry", k, "I0"))
        users[i1].append(("carry", k, "I1"))
        users[ci].append(("carry", k, "CI"))
    for k, ff in enumerate(plan.ffs):
        users[ff[0]].append(("ff", k, "D"))
        if ff[1] is not None:
            users[ff[1]].append(("ff", k, "E"))
    for r in ext:
        users[r].append(("ext", 0, "O"))
    gnd = ("c", 0)

    def net(r):  # pack_constants: ground on a LUT / carry input is disconnected
        return None if r == gnd else r

    # synth_ice40 -dffe_min_ce_use 8: an enable shared by fewer than 8 flip-flops becomes a LUT (a multiplexer)
    # in front of each of them, which then packs with its flip-flop
    en_users: dict = defaultdict(int)
    for ff in plan.ffs:
        if ff[1] is not None:
            en_users[ff[1]] += 1
    lut_ff: dict[int, int] = {}
    lone_ff = 0
    en_luts = 0
    for k, ff in enumerate(plan.ffs):
        d = ff[0]
        if ff[1] is not None and en_users[ff[1]] < DFFE_MIN_CE_USE:
            en_luts += 1
        elif d[0] == "l" and len(users[d]) == 1 and d[1] not in lut_ff:
            lut_ff[d[1]] = k
        elif d[0] == "v" and value_lut is not None and value_lut(d[1], len(users[d])):
            pass  # packs into the LC of the LUT in the block before (counted there)
        else:
            lone_ff += 1
    by_i1: dict = defaultdict(list)
    by_i2: dict = defaultdict(list)
    by_i3: dict = defaultdict(list)
    for k, (_, pins) in enumerate(plan.luts):
        by_i1[net(pins[1])].append(k)
        by_i2[net(pins[2])].append(k)
        by_i3[net(pins[3])].append(k)
    exhausted: set[int] = set()
    carry_lc: dict[int, tuple] = {}  # carry -> ("lut", k) or ("own", k)
    carry_only = 0
    for c, (i0, i1, ci) in enumerate(plan.carries):
        n0, n1 = net(i0), net(i1)
        m0 = {k for k in by_i1.get(n0, ()) if k not in exhausted} if n0 is not None else set()
        m1 = {k for k in by_i2.get(n1, ()) if k not in exhausted} if n1 is not None else set()
        if n0 is not None and n1 is None:
            m1 |= {k for k in m0 if net(plan.luts[k][1][2]) is None}
        if n1 is not None and n0 is None:
            m0 |= {k for k in m1 if net(plan.luts[k][1][1]) is None}
        cands = m0 & m1
        ci_const = ci[0] == "c"
        i3 = [k for k in by_i3.get(ci, ())] if not ci_const else []
        ci_lc = i3[0] if len(i3) == 1 else None
        if ci_lc is not None and ci_lc in cands:
            pick = ci_lc
        elif ci_const and len(cands) == 1:
            pick = next(iter(cands))
        else:
            pick = None
        if pick is None:
            carry_only += 1
            carry_lc[c] = ("own", c)
        else:
            exhausted.add(pick)
            carry_lc[c] = ("lut", pick)
    # merge_carry_luts: a carry-only LC takes in a LUT of <= 2 inputs (on I2, I3) that drives one of its inputs
    merged: set[int] = set()
    for c, where in carry_lc.items():
        if where[0] != "own":
            continue
        for r in plan.carries[c][:2]:
            if r[0] != "l" or r[1] in merged or r[1] in exhausted or r[1] in lut_ff:
                continue
            pins = plan.luts[r[1]][1]
            if net(pins[0]) is None and net(pins[1]) is None:
                merged.add(r[1])
                break
    # chains: feed-in when the first CI is a fabric signal, pass-out when a carry-out leaves the chain
    nxt = {}
    for c, (_, _, ci) in enumerate(plan.carries):
        if ci[0] == "k":
            nxt[ci[1]] = c
    feed = 0
    for c, (_, _, ci) in enumerate(plan.carries):
        if ci[0] == "k":
            continue
        if ci[0] != "c":
            feed += 1  # feed-in LC
        cur = c
        while True:
            us = users.get(("k", cur), [])
            i3_cells = [("lut", k) for kind, k, p in us if kind == "lut" and p == 3]
            cin_cells = [carry_lc[k] for kind, k, p in us if kind == "carry" and p == "CI"]
            i3 = i3_cells[0] if len(i3_cells) == 1 else None
            cin = cin_cells[0] if len(cin_cells) == 1 else None
            # the chain goes on into the next carry's LC, else into the one LC reading the carry-out on I3
            at_end = cin is None and i3 is None
            if us and (len(us) > 1 or at_end) and (len(us) > 2 or i3 != cin or at_end):
                feed += 1  # pass-out LC
            if cur not in nxt:
                break
            cur = nxt[cur]
    n_lut = len(plan.luts) + en_luts
    lc = n_lut - len(merged) + lone_ff + carry_only + feed
    return {"lut": n_lut, "ff": len(plan.ffs), "carry": len(plan.carries), "lone_ff": lone_ff,
            "carry_only": carry_only, "merged": len(merged), "feed": feed, "lc": lc}


def _level() -> float:
    """One LUT level: a routed hop and a LUT."""
    return TIMING["route_ns"] + TIMING["lut_ns"]


def plan_arrival(plan, value_ns=None) -> float:
    """The longest path inside a cell plan, register to register, in ns (TIMING, without base_ns): ("v", i) inputs
    arrive at value_ns(i) (0 when they come from flip-flops), flip-flop outputs and strobes at 0; every hop between
    cells is routed except a carry chain's CO -> CI and a carry-out read on I3 (the LC's own carry input)."""
    t = TIMING
    memo: dict = {}

    def arr(r) -> float:
        kind = r[0]
        if kind in ("c", "f", "x"):
            return 0.0
        if kind == "v":
            return float(value_ns(r[1])) if value_ns is not None else 0.0
        if r in memo:
            return memo[r]
        if kind == "l":
            pins = plan.luts[r[1]][1]
            v = max(arr(p) + (0.0 if (p[0] == "k" and n == 3) else t["route_ns"]) for n, p in enumerate(pins)
                    if p[0] != "c") if any(p[0] != "c" for p in pins) else 0.0
            v += t["lut_ns"]
        else:
            i0, i1, ci = plan.carries[r[1]]
            v = max(arr(i0) + t["route_ns"], arr(i1) + t["route_ns"], arr(ci)) + t["carry_ns"]
        memo[r] = v
        return v

    import sys

    old = sys.getrecursionlimit()
    sys.setrecursionlimit(max(old, 20000))
    try:
        worst = 0.0
        for d, en, _ in plan.ffs:
            worst = max(worst, arr(d), arr(en) if en is not None else 0.0)
    finally:
        sys.setrecursionlimit(old)
    return worst + t["route_ns"]  # into the flip-flop


def _packed(cells: dict, kind: str) -> int:
    if "lc" in cells:  # the block knows its own packing
        return int(cells["lc"])
    p = PACKING[kind]
    return int(round(cells["lut"] + p["lone_ff"] * cells["ff"] + p["lone_carry"] * cells["carry"]))



def _core_blocks(net: Netlist, out_signals, sh, interval: int, lut_cells: str):
    """The counter and argmax WarpCore would build (core.make_counter / make_argmax; not elaborated), each None
    when its module is missing (at II = 1 the tree argmax is taken directly if serial.py cannot be imported)."""
    from ..hdl import core as hc

    try:
        counter = hc.make_counter(net, out_signals, interval=interval, lut_cells=lut_cells)
    except ImportError:
        counter = None
    try:
        argmax = hc.make_argmax(sh.classes, sh.score_bits, interval=interval, lut_cells=lut_cells)
    except ImportError:
        argmax = None
        if interval == 1:
            try:
                from ..hdl.argmax import TreeArgmax

                argmax = TreeArgmax(sh.classes, sh.score_bits, lut_cells=lut_cells)
            except ImportError:
                pass
    for block in (counter, argmax):  # measured, never elaborated: no "created but never used" warning
        if block is not None:
            block._MustUse__silence = True
    return counter, argmax


class _PlanView:
    """A serial.py cell graph (`_Cells`: ("L", i) LUT, ("C", i) carry, ("F", i) flip-flop, ("k", 0 | 1) constant,
    ("i", port, index) input), live part only, in pack_plan's form."""

    def __init__(self, cells, roots) -> None:
        luts, carries, ffs = cells.live(roots)
        lmap = {i: n for n, i in enumerate(sorted(luts))}
        cmap = {i: n for n, i in enumerate(sorted(carries))}
        fmap = {i: n for n, i in enumerate(sorted(ffs))}

        def ref(r):
            kind = r[0]
            if kind == "L":
                return ("l", lmap[r[1]])
            if kind == "C":
                return ("k", cmap[r[1]])
            if kind == "F":
                return ("f", fmap[r[1]])
            if kind == "k":
                return ("c", int(r[1]))
            if kind == "i" and r[1] == "values":
                return ("v", int(r[2]))
            return ("x", f"{r[1]}[{r[2]}]")  # valid strobe, fused fanins, the counter's scores

        self.luts = [(cells.luts[i][0], [ref(x) for x in cells.luts[i][1]]) for i in sorted(luts)]
        self.carries = [tuple(ref(x) for x in cells.carries[i]) for i in sorted(carries)]
        self.ffs = [[ref(cells.ffs[i]), None, False] for i in sorted(ffs)]
        self.ext = [ref(r) for r in roots]


def _serial_plan(block):
    """(plan, outputs) of a SerialCounter / SerialArgmax, rebuilt from serial.py's cell graph; None if unknown."""
    try:
        from ..hdl import serial

        name = type(block).__name__
        if name == "SerialCounter":
            structure = getattr(block, "structure", None) or (block.variant, block.control)
            cells, roots, _, _ = serial._build_counter(block.net, block.out_signals, block.fused, block.interval,
                                                       *structure)
        elif name == "SerialArgmax":
            cells, roots, _, _ = serial._build_argmax(block.classes, block.score_bits)
        else:
            return None
        view = _PlanView(cells, roots)
        return view, view.ext
    except Exception:  # a changed private structure: fall back to cells() and the PACKING fractions
        return None


def _plan_of(block):
    """(plan, the refs it hands out) for a counter / argmax block, or None."""
    if block is None:
        return None
    plan = getattr(block, "_plan", None)
    if plan is not None and _is_plan(plan):
        return plan, _ext_refs(block)
    return _serial_plan(block)


def _block_cells(block, call):
    """The block's own cells() (exact), or None when the block or its cells() is missing."""
    if block is None or not hasattr(type(block), "cells"):
        return None
    try:
        return dict(call(type(block)))
    except TypeError:  # a cells() signature this estimator does not know
        return None


def _block_entry(block, get_cells, kind: str, value_lut, fallback) -> dict:
    """A counter / argmax block's numbers: exact packing of its cell plan (the same cells its cells() counts),
    else LUT + PACKING fractions of its cells() (or of the fallback formula without cells())."""
    got = _plan_of(block)
    if got is not None:
        p = pack_plan(got[0], got[1], value_lut)
        cells_style = getattr(block, "lut_cells", "sb_lut4")
        return {**p, "exact_cells": cells_style == "sb_lut4",
                "model": "nextpnr packing of the block's cell plan (LUT + lone FF + carry-only - merged + "
                         "chain feed-in/out)" + ("" if cells_style == "sb_lut4" else
                                                 f"; {cells_style} logic: Yosys/ABC maps it, counts approximate")}
    cells = get_cells()
    exact = cells is not None
    cells = cells if exact else fallback()
    return {**cells, "lc": _packed(cells, kind), "exact_cells": exact,
            "model": f"LC = LUT + lone FF / carry fractions ({kind})" + ("" if exact else "; approximate cells")}


def _blocks(net: Netlist, *, pipeline: int, interval: int, lut_cells: str, scores: bool) -> tuple[dict, dict]:
    """(block -> {lut, ff, carry, lc, exact_cells, model}, facts: latency, depths for the Fmax class)."""
    from ..hdl.core import core_shape, out_signals_of

    sh = core_shape(net, pipeline, input_reg=pipeline == 0, interval=interval)
    out_signals = out_signals_of(net)
    blocks: dict[str, dict] = {}
    facts: dict = {"latency": None, "paths_ns": {}}

    try:
        from ..hdl.shell import SerialEncoder

        enc = dict(SerialEncoder.cells(net, lut_cells="sb_lut4" if lut_cells == "sb_lut4" else "portable"))
        exact = True
    except (ImportError, AttributeError):  # fallback: an encoder without cells()
        used = len(net.used_inputs())
        enc, exact = {"lut": used + 40, "carry": 0, "ff": used}, False
    blocks["encoder"] = {**enc, "lc": _packed(enc, "encoder"), "exact_cells": exact,
                         "model": "LC = LUT (each stored bit's LUT feeds only its flip-flop)"}

    counter = argmax = None
    fused = ()
    if pipeline > 0:
        counter, argmax = _core_blocks(net, out_signals, sh, interval, lut_cells)
        fused = tuple(getattr(counter, "fused", ()))
        if counter is not None and argmax is not None:
            facts["latency"] = sh.last_stage + counter.latency + argmax.latency

    ln = lutnet_lcs(net, pipeline, fused)
    portable = lut_cells != "sb_lut4"
    blocks["lutnet"] = {"lut": ln["lut"], "ff": ln["ff"], "carry": 0, "lc": ln["lut"] + ln["lone_ff"],
                        "lone_ff": ln["lone_ff"], "exact_cells": not portable,
                        "model": "LC = LUT + register-chain flip-flops that cannot pack with their LUT"
                                 + ("; portable cells: one LUT per node, which ABC may map to fewer (or, for nodes "
                                    "of more than 4 inputs, more) LUT4s" if portable else "")}

    # counter and argmax: exact packing of their cell plans when the blocks expose them
    if pipeline > 0:
        lut_ns = _level()  # one LUT level of the network: a route and a LUT
        users = ln["comb_users"]
        lut_at_last = {s for s in ln["in_stage"] if net.is_node(s) and net.nodes[s - net.first_node].k > 0}

        def value_lut(i: int, n_users: int) -> bool:
            s = out_signals[i]
            return s in lut_at_last and users.get(s, 0) == 0 and n_users == 1

        def val_ns(i: int) -> float:
            return ln["in_stage"].get(out_signals[i], 0) * lut_ns
    else:
        value_lut = val_ns = None
    if pipeline == 0:
        cnt = _comb_counter(net, out_signals, sh.score_bits)
        blocks["popcount"] = {**cnt, "lc": cnt["lut"], "exact_cells": False,
                              "model": "combinational adder trees (Yosys maps them; calibrated): LUT"}
    else:
        kind_c = "counter_tree" if interval == 1 else "counter_serial"
        cnt = lambda: _block_cells(counter, lambda cls: (  # noqa: E731
            cls.cells(net, out_signals, lut_cells) if interval == 1 else
            cls.cells(net, out_signals, interval=interval, lut_cells=lut_cells, fuse=bool(fused))))
        blocks["popcount"] = _block_entry(counter, cnt, kind_c, value_lut,
                                          lambda: _fallback_counter(net, len(out_signals), sh.score_bits, interval))
        got = _plan_of(counter)
        if got is not None:
            facts["paths_ns"]["counter"] = plan_arrival(got[0], val_ns)
        else:
            facts["paths_ns"]["counter"] = (2 if interval == 1 else 1) * _level() + sh.score_bits * TIMING["carry_ns"]
        last_levels = max(ln["in_stage"].values(), default=0)
        facts["paths_ns"]["lutnet stage"] = min(pipeline, max(1, sh.depth)) * _level() if sh.depth else 0.0
        facts["paths_ns"].setdefault("counter", last_levels * _level())

    if pipeline == 0:
        m = max(0, sh.classes - 1)
        am = {"lut": m * (2 * sh.score_bits + sh.class_bits), "carry": m * sh.score_bits, "ff": 0}
        blocks["argmax"] = {**am, "lc": am["lut"] + am["carry"] // 2, "exact_cells": False,
                            "model": "combinational tournament (Yosys maps it; calibrated): LUT + half the carries"}
    else:
        kind_a = "argmax_serial" if type(argmax).__name__ == "SerialArgmax" else "argmax_tree"
        am = lambda: _block_cells(argmax, lambda cls: (  # noqa: E731
            cls.cells(sh.classes, sh.score_bits, interval=interval) if kind_a == "argmax_serial" else
            cls.cells(sh.classes, sh.score_bits, lut_cells)))
        blocks["argmax"] = _block_entry(argmax, am, kind_a, None,
                                        lambda: _fallback_argmax(sh.classes, sh.score_bits, sh.class_bits))
        got = _plan_of(argmax)
        facts["paths_ns"]["argmax"] = (plan_arrival(got[0]) if got is not None else
                                       2 * _level() + sh.score_bits * TIMING["carry_ns"])

    # the core's own flip-flops: the valid strobe's delay line, the scores' delay line
    ff = 0
    if pipeline > 0:
        ff += sh.last_stage  # front_latency with the shell's encoder as the input register
        if scores and argmax is not None and argmax.latency >= interval:
            ff += argmax.latency * sh.classes * sh.score_bits
    cc = {"lut": 0, "carry": 0, "ff": ff}
    blocks["core"] = {**cc, "lc": _packed(cc, "core"), "exact_cells": argmax is not None or pipeline == 0,
                      "model": "delay-line flip-flops (fed by flip-flops): one LC each"}

    # shell
    score_bytes = -(-sh.score_bits // 8)
    reply_bits = 8 * sh.classes * score_bytes if scores else 0
    fbits = max(0, _bits(net.n_features) - 3)

    def shell(key: str) -> int:
        return int(round(SHELL[key] + SHELL.get(f"{key}_per_feature_bit", 0) * fbits
                         + SHELL.get(f"{key}_per_reply_bit", 0) * reply_bits))

    blocks["shell"] = {"lut": shell("lut"), "ff": shell("ff"), "carry": shell("carry"), "lc": shell("lc"),
                       "exact_cells": False, "model": "calibrated constant (UART, framing, CRC, idle timer, reply)"}
    facts["shape"] = sh
    facts["counter"] = counter  # its plan's carry chains are counted only where a family has a hard chain
    return blocks, facts


def _counter_chains(counter) -> int:
    """Physical carry chains of a tree counter on a family with a hard chain (the plan's own grouping, as the
    build instantiates it); 0 when there is no counter or plan (pipeline 0)."""
    got = _plan_of(counter)
    if got is None or not hasattr(got[0], "carry_chains"):
        return 0
    return len(got[0].carry_chains(got[1])[0])


def _comb_counter(net: Netlist, out_signals, score_bits: int) -> dict[str, int]:
    """pipeline 0: one adder tree per class (Yosys $add -> SB_LUT4 + SB_CARRY per sum bit)."""
    n = sum(1 for g in net.outputs for s in g if s >= 2)
    # Yosys maps the narrow adders into LUTs (recorded UP5K build, 1,100 counted bits in 10 classes: 2,084 LUT,
    # 60 CARRY): ~1.9 LUTs per counted bit, a few carries per class
    return {"lut": int(round(COMB_POPCOUNT["lut_per_bit"] * n)), "carry": COMB_POPCOUNT["carry_per_class"] * net.classes,
            "ff": 0}


def fmax_class(facts: dict, pipeline: int, util_pct: float) -> dict:
    """The longest register-to-register path (logic + typical routing, TIMING) -> an Fmax class."""
    sh = facts["shape"]
    t = TIMING
    sb = sh.score_bits
    paths = dict(facts["paths_ns"])
    paths["shell"] = SHELL_PATH_NS
    if pipeline == 0:
        # encoder register -> LUT network -> adder trees (~2 LUT levels per tree level) -> tournament -> reply
        widest = max((len(g) for g in net_outputs(facts)), default=1)
        tree = max(1, (widest - 1).bit_length())
        rounds = max(1, (sh.classes - 1).bit_length())
        paths["core (combinational)"] = ((sh.depth + 2 * tree + 2 * rounds) * _level()
                                         + (tree * sb // 2 + rounds * sb) * t["carry_ns"])
    cong = t["congestion"] if util_pct > t["congested_over_pct"] else 1.0
    ns = {k: round((t["base_ns"] + v) * cong, 1) for k, v in paths.items()}
    worst = max(ns, key=ns.get)
    mhz = 1000.0 / ns[worst]
    label = next(lbl for lo, lbl in FMAX_CLASSES if mhz >= lo)
    return {"class": label, "path_estimate_MHz": round(mhz, 1), "limited_by": worst, "paths_ns": ns}


def net_outputs(facts: dict):
    return facts.get("outputs") or []


# Measured on the ULX3S-85F (docs/families.md): designs of 3,700-4,600 logic cells route in ~20 s with the counters
# on the carry chain (and run 1.6-1.9x faster); a 23,000-cell one did not converge in router2 (12,000-15,000
# overused wires after 16 min) where the same net with LUT carries routed in 9 min. Above this estimate (with the
# chain) the counters use LUT carries unless the chain is asked for.
HARD_CARRY_MAX_LUTS = 12_000

# Logic cells each hard carry chain costs beyond its elements, fitted per family on placed builds (2026-12-05,
# docs/families.md): nextpnr-ecp5 adds a feed-in and a feed-out CCU2C to every chain (4 TRELLIS_COMB, counted
# exactly in three builds), and warpc's chain cells add their own feed / extract / pad halves; on Gowin the ALU
# chain ends nextpnr adds and the pass-through LUT4s. Fitted on 3 ECP5 / 2 Gowin builds (25-302 chains), checked
# on four more: within +-3.1 % of the placed count where the plain count was 14-15 % low.
CHAIN_OVERHEAD_CELLS = {"ecp5": 6.2, "gowin": 6.1}
SHELL_CHAINS = 4  # the UART shell's own counters (Yosys-inferred chains), the same in every build measured


def estimate_net(net: Netlist, board, *, interval: int = 1, pipeline: int = 1, lut_cells: str | None = None,
                 scores: bool = False, hard_carry: bool | None = None) -> dict:
    """The estimate for a netlist that is already compiled and checked (board: a Board). hard_carry (families
    with a carry chain): as `warpc synth --hard-carry/--no-hard-carry`; None = by size, as synth chooses; the
    choice is in est["hard_carry"]."""
    from ..hdl.core import check_interval, check_lut_cells

    t0 = time.perf_counter()
    lut_cells = lut_cells or board.lut_cells
    check_lut_cells(net, lut_cells)
    check_interval(net, pipeline, interval)
    blocks, facts = _blocks(net, pipeline=pipeline, interval=interval, lut_cells=lut_cells, scores=scores)
    facts["outputs"] = net.outputs
    tot = {k: sum(int(b[k]) for b in blocks.values()) for k in ("lut", "ff", "carry", "lc")}
    chain_info = None
    cap = dict(board.capacity)
    lc_cap = board.logic_capacity or None
    unit = board.family.logic_unit
    if unit != "LC":
        # ECP5 / Gowin: flip-flops have their own slots beside the LUT4s; the capacity to compare is LUT4s (the
        # per-block cell counts are the iCE40 plans', approximate here). The tree counters' carries run on the hard
        # chain, each element in the slot of the sum LUT it absorbs (CCU2C half, ALU); other carries are LUTs
        chain = bool(board.family.primitives.chain_cell) and interval == 1

        def luts(name: str, b: dict, on: bool) -> int:  # the argmax is on the chain either way (core.py)
            return int(b["lut"]) + (0 if (on and name == "popcount") or (chain and name == "argmax")
                                    else int(b["carry"]))

        if chain and hard_carry is None:
            hard_carry = sum(luts(k, b, True) for k, b in blocks.items()) <= HARD_CARRY_MAX_LUTS
        per_chain = CHAIN_OVERHEAD_CELLS.get(board.family.name, 0.0) if chain else 0.0
        chains = {"popcount": _counter_chains(facts["counter"]) if chain and hard_carry else 0,
                  "argmax": max(0, facts["shape"].classes - 1) if pipeline > 0 else 0, "shell": SHELL_CHAINS}
        for name, b in blocks.items():
            b["lc"], b["exact_cells"] = luts(name, b, chain and bool(hard_carry)), False
            b["lc"] += int(round(per_chain * chains.get(name, 0)))
        tot["lc"] = sum(int(b["lc"]) for b in blocks.values())
        chain_info = {"per_block": chains, "cells_each": per_chain} if chain else None
    util = round(100.0 * tot["lc"] / lc_cap, 1) if lc_cap else None
    from .boards import platform_for

    try:
        has_led = ("led", 0) in platform_for(board).resources
    except Exception:  # the platform is checked elsewhere; IO is a detail here
        has_led = True
    io = 3 + int(has_led)  # clock, uart rx / tx, the busy LED
    sh = facts["shape"]
    return {
        "format": FORMAT,
        "board": board.name, "device": board.device, "family": board.family.name, "unit": unit,
        "hard_carry": bool(hard_carry) if board.family.primitives.chain_cell else None,
        # hard carry chains per block and the logic cells each costs beyond its elements (CHAIN_OVERHEAD_CELLS)
        "carry_chains": chain_info,
        "options": {"pipeline": pipeline, "interval": interval, "lut_cells": lut_cells, "scores": scores},
        "model": net.stats(),
        "LC": tot["lc"], "LUT": tot["lut"], "FF": tot["ff"], "CARRY": tot["carry"], "BRAM": 0, "IO": io,
        "capacity": {"LC": lc_cap, "BRAM": cap.get("BRAM"), "IO": cap.get("IO")},
        "utilization_pct": {"LC": util},
        "fits": None if not lc_cap else tot["lc"] <= lc_cap,
        "clearly_over": None if not lc_cap else tot["lc"] > FIT_MARGIN * lc_cap,
        "blocks": {k: {"LC": v["lc"], "LUT": v["lut"], "FF": v["ff"], "CARRY": v["carry"],
                       "exact_cells": v["exact_cells"], "model": v["model"]} for k, v in blocks.items()},
        # the path model is calibrated on the UP5K; ECP5 / Gowin builds of the same designs measured faster
        # (docs/families.md), so elsewhere the class is a lower bound
        "Fmax": {**fmax_class(facts, pipeline, util or 0.0), "calibrated_on": "iCE40UP5K",
                 "lower_bound": board.family.name != "ice40"},
        "Latency_cycles": facts["latency"] if pipeline > 0 else 0,
        "Interval_cycles": interval,
        "pipeline": {"lut_levels_per_stage": pipeline, "lut_stages": sh.lut_stages, "depth": sh.depth},
        "seconds": round(time.perf_counter() - t0, 3),
    }


def estimate(source, board="icebreaker", *, interval: int = 1, pipeline: int = 1, lut_cells: str | None = None,
             scores: bool = False, arch: str = "spatial") -> dict:
    """Estimate a board build of `source` (checkpoint path, netlist JSON, Netlist or CompiledNet) on `board` (a
    catalogue name, a board .json path or a Board) without synthesis: a dict with LC / LUT / FF / CARRY / BRAM /
    IO totals, per-block numbers ("blocks"), utilisation, whether it fits, and an Fmax class ("Fmax").
    arch: "spatial" (a LUT per node), "folded" (the program, its memories and cycles per sample: "folded"), or
    "auto" (spatial when it fits, else folded, as `warpc synth --arch auto` chooses)."""
    from ..ir.source import compiled_netlist
    from .boards import Board, load_board

    brd = board if isinstance(board, Board) else load_board(board)
    lc = lut_cells or brd.lut_cells
    for name, v, low in (("pipeline", pipeline, 0), ("interval", interval, 1)):
        if not isinstance(v, int) or isinstance(v, bool) or v < low:
            raise ConfigError(f"{name} (--{name}) must be an integer >= {low}, got {v!r}")
    if arch not in ("spatial", "folded", "auto"):
        raise ConfigError(f"arch (--arch) must be one of spatial, folded, auto, got {arch!r}")
    from ..hdl.core import check_buildable

    t0 = time.perf_counter()
    est = None
    if arch != "folded":
        net, info = compiled_netlist(source, lut_size=4 if lc != "portable" else None)
        check_buildable(net)
        est = estimate_net(net, brd, interval=interval, pipeline=pipeline, lut_cells=lut_cells, scores=scores)
        est["arch"] = "spatial"
    if brd.family.name != "ice40" and arch == "folded":
        raise ConfigError(f"the folded architecture needs the iCE40 UP5K's SPRAM; the {brd.name} "
                          f"({brd.family.title}) builds spatial designs")
    if arch == "folded" or (arch == "auto" and est["fits"] is False and brd.family.name == "ice40"):
        from .folded import plan_folded

        est = plan_folded(source, brd, scores=scores)[3]
    est["source"] = str(source) if isinstance(source, (str, Path)) else type(source).__name__
    est["compile_seconds"] = round(time.perf_counter() - t0, 3)
    return est


def does_not_fit_message(est: dict, capacity: int | None = None) -> str:
    cap = capacity or est["capacity"]["LC"]
    per = ", ".join(f"{k} {v['LC']:,}" for k, v in est["blocks"].items())
    unit = "LCs" if est.get("unit", "LC") == "LC" else "LUT4s"
    return (f"the design does not fit the {est['device']}: needs ~{est['LC']:,} {unit} (estimate), the "
            f"{est['device']} has {cap:,} ({100.0 * est['LC'] / cap:.0f} %; estimated LCs per block: {per}). "
            "Shrink the model (narrower last layer, fewer nodes), count over more cycles (--interval N) or choose a "
            "bigger device; --no-estimate-check synthesises anyway")


def check_fits(est: dict) -> None:
    """DoesNotFitError when the estimate is clearly over the device (more than FIT_MARGIN x its LCs)."""
    if est.get("clearly_over"):
        raise DoesNotFitError(does_not_fit_message(est))


def estimate_line(est: dict) -> str:
    """One line for a build's progress output."""
    cap = est["capacity"]["LC"]
    pct = f" of {cap:,} ({est['utilization_pct']['LC']} %)" if cap else ""
    unit = "LCs" if est.get("unit", "LC") == "LC" else "LUT4s"
    return (f"[estimate] ~{est['LC']:,} {unit}{pct}: " + ", ".join(f"{k} {v['LC']:,}" for k, v in est["blocks"].items())
            + f"; Fmax {est['Fmax']['class']}" + (" (iCE40 scale: a lower bound here)"
                                                   if est["Fmax"].get("lower_bound") else ""))


def format_estimate(est: dict) -> str:
    if est.get("arch") == "folded":
        return _format_folded(est)
    L = [f"estimate for {est.get('source', 'netlist')} on {est['board']} ({est['device']}); options "
         + ", ".join(f"{k}={v}" for k, v in est["options"].items())]
    m = est["model"]
    L.append(f"model: {m.get('nodes')} nodes, depth {m.get('depth')}, {m.get('inputs_used')}/{m.get('inputs')} "
             f"input bits used, {m.get('classes')} classes")
    L.append("")
    L.append(f"{'block':<10}{est.get('unit', 'LC'):>8}{'LUT':>8}{'FF':>8}{'CARRY':>8}  cells")
    for k, v in est["blocks"].items():
        L.append(f"{k:<10}{v['LC']:>8}{v['LUT']:>8}{v['FF']:>8}{v['CARRY']:>8}  "
                 + ("exact" if v["exact_cells"] else "approx."))
    L.append(f"{'total':<10}{est['LC']:>8}{est['LUT']:>8}{est['FF']:>8}{est['CARRY']:>8}")
    L.append("")
    cap = est["capacity"]["LC"]
    if cap:
        verdict = ("fits" if est["fits"] else "clearly over: `warpc synth` refuses it" if est["clearly_over"]
                   else "over capacity by the estimate (within its margin: synth tries)")
        L.append(f"{est.get('unit', 'LC')} {est['LC']:,} of {cap:,} ({est['utilization_pct']['LC']} %): {verdict}")
    ch = est.get("carry_chains")
    if ch and any(ch["per_block"].values()):
        L.append("carry chains: " + ", ".join(f"{k} {v:,}" for k, v in ch["per_block"].items() if v)
                 + f"; ~{ch['cells_each']:g} cells each beyond their elements (the chain ends nextpnr adds)")
    L.append(f"BRAM {est['BRAM']}, IO {est['IO']}")
    f = est["Fmax"]
    L.append(f"Fmax {f['class']} (longest path estimate ~{f['path_estimate_MHz']} MHz, in the {f['limited_by']})"
             + ("; calibrated on the iCE40 UP5K, a lower bound on this family" if f.get("lower_bound") else ""))
    lat = est.get("Latency_cycles")
    L.append(f"latency {lat if lat is not None else '?'} cycles, interval {est['Interval_cycles']} cycle(s) per "
             f"sample; estimated in {est['seconds']} s (+ {est.get('compile_seconds', 0)} s reading/compiling)")
    return "\n".join(L)


def _format_folded(est: dict) -> str:
    f = est["folded"]
    mem, lay = f["memory"], f["layout"]
    cap = est["capacity"]
    return "\n".join([
        f"estimate for {est.get('source', 'netlist')} on {est['board']} ({est['device']}): folded architecture "
        f"(the net runs from memory)",
        f"program: {f['words']:,} words of {lay['word_bits']} bits, {lay['lanes']} node(s) per word; "
        f"{f['nodes_after_lowering']:,} two-input nodes, {f['activation_bits']:,} activation bits",
        f"memories: SPRAM {mem['SPRAM']} of {cap.get('SPRAM')} ({mem['program']['bits_used']:,} bits used), "
        f"EBR {mem['EBR']} of {cap.get('BRAM')} (activations {mem['activations']['blocks']}, "
        f"features {mem['features']['blocks']})",
        f"LC ~{est['LC']:,} of {cap.get('LC'):,} ({est['utilization_pct']['LC']} %, approx.); "
        f"{est['Interval_cycles']:,} cycles per sample (a program pass of {est['Latency_cycles']:,} + 1)",
        f"estimated in {est.get('compile_seconds', 0)} s"])
