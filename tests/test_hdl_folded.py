"""The folded engine's RTL (Amaranth simulator, portable memories) against the IR emulator on random nets."""
from __future__ import annotations

import numpy as np
import pytest
from amaranth.sim import Simulator

from warpc.errors import ConfigError
from warpc.hdl.folded import FoldedEngine, latency, spram_count
from warpc.ir.emulate import argmax_lowest, emulate_counts
from warpc.ir.fold import WORD_BITS, fold

from _cellsim import needs_yosys
from ir_gen import all_features, random_netlist


def sim_engine(prog, x: np.ndarray, *, load_program: bool = False) -> tuple[list[int], list[list[int]], list[int]]:
    """Each sample: write its features through the feature port, strobe start, wait for done. Returns the
    classes, the scores and the cycles from start to done. load_program: write the words through the program
    port first (as the boot loader does) instead of starting with an initialised memory."""
    eng = FoldedEngine(prog, init_program=not load_program, scores=True)
    classes, scores, cycles = [], [], []

    async def bench(ctx):
        if load_program:
            for a, w in enumerate(prog.words):
                ctx.set(eng.prog_we, 1)
                ctx.set(eng.prog_addr, a)
                ctx.set(eng.prog_data, w)
                await ctx.tick()
            ctx.set(eng.prog_we, 0)
        for row in x:
            for f, v in enumerate(row):
                ctx.set(eng.feat_we, 1)
                ctx.set(eng.feat_addr, f)
                ctx.set(eng.feat_data, int(v))
                await ctx.tick()
            ctx.set(eng.feat_we, 0)
            ctx.set(eng.start, 1)
            await ctx.tick()
            ctx.set(eng.start, 0)
            t = 1
            while not ctx.get(eng.done):
                await ctx.tick()
                t += 1
                if t > latency(prog) + 10:
                    raise AssertionError("no done")
            cycles.append(t)
            classes.append(ctx.get(eng.cls))
            scores.append([ctx.get(s) for s in eng.scores])

    sim = Simulator(eng)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return classes, scores, cycles


@pytest.mark.parametrize("lanes", [1, 2])
@pytest.mark.parametrize("seed", range(6))
def test_engine_equals_emulator_on_random_nets(seed, lanes):
    net = random_netlist(seed, max_k=6, n_nodes=30, classes=2 + seed % 3)
    prog = fold(net, lanes=lanes)
    x = all_features(net, 12, seed)
    ref = emulate_counts(net, x)
    cls, scores, cycles = sim_engine(prog, x)
    assert scores == ref.tolist()
    assert cls == argmax_lowest(ref).tolist()
    assert cycles == [latency(prog)] * len(x)


def test_engine_loaded_through_the_program_port():
    net = random_netlist(3, max_k=4, n_nodes=25)
    prog = fold(net)
    x = all_features(net, 4, 1)
    ref = emulate_counts(net, x)
    _, scores, _ = sim_engine(prog, x, load_program=True)
    assert scores == ref.tolist()


def test_engine_on_a_dependent_chain():
    # each node reads the previous one: exercises the read-after-write distance the compiler schedules for
    from test_ir_fold import _chain

    net = _chain(9)
    prog = fold(net, lanes=2)
    x = all_features(net, 16)
    _, scores, _ = sim_engine(prog, x)
    assert scores == emulate_counts(net, x).tolist()


def test_spram_needs_a_loader():
    prog = fold(random_netlist(0))
    with pytest.raises(ConfigError, match="loaded at boot"):
        FoldedEngine(prog, program_mem="spram", init_program=True)
    assert spram_count(prog) == -(-prog.layout.width // 16)
    assert prog.layout.width <= WORD_BITS


@needs_yosys
@pytest.mark.parametrize("synth", [False, True])
@pytest.mark.parametrize("seed,lanes", [(1, 2), (2, 1), (5, 2)])
def test_engine_with_ice40_memories_equals_emulator(seed, lanes, synth):
    """The board variant (SPRAM program, explicit SB_RAM40_4K activation and feature memories, banked when deep)
    in netsim, RTL and after synth_ice40, program loaded as the boot loader leaves it."""
    from _cellsim import cell_sim
    from warpc.fpga.folded import load_program, run_engine

    net = random_netlist(seed, max_k=4, n_nodes=60, classes=3, n_features=40 if seed == 5 else 4,
                         input_bits=6 if seed == 5 else 4)
    prog = fold(net, lanes=lanes)
    eng = FoldedEngine(prog, program_mem="spram", scores=True)
    sim = cell_sim(eng, eng.ports(), synth=synth)
    sim.x_fill = "random"
    load_program(sim, prog, "engine")
    x = all_features(net, 200, seed)
    cls, scores = run_engine(sim, prog, x, "engine")
    ref = emulate_counts(net, x)
    assert scores.tolist() == ref.tolist() and cls.tolist() == argmax_lowest(ref).tolist()


def test_ebr_shapes():
    from warpc.hdl.folded import ebr_shape

    assert ebr_shape(2048, 2) == (3, 1, 1)      # one 2048 x 2 block
    assert ebr_shape(3156, 2) == (3, 2, 1)      # two banks
    assert ebr_shape(784, 8) == (2, 1, 2)       # two 1024 x 4 slices: no read multiplexer
    assert ebr_shape(64, 8) == (0, 1, 1)


@needs_yosys
@pytest.mark.parametrize("depth,width", [(3000, 2), (700, 8), (300, 20)])
def test_ebr_memory_banks_and_slices(depth, width):
    """EbrMemory against a plain array: every word written (per-lane data), then read back; banked and sliced
    tilings included."""
    from _cellsim import cell_sim
    from warpc.fpga.netsim import lanes_of, values_of
    from warpc.hdl.folded import EbrMemory, ebr_shape

    mode, banks, slices = ebr_shape(depth, width)
    assert banks * slices > 1
    mem = EbrMemory(depth, width)
    sim = cell_sim(mem, [mem.raddr, mem.ren, mem.rdata, mem.waddr, mem.wdata, mem.wen])
    lanes = 8
    rng = np.random.default_rng(depth)
    data = rng.integers(0, 1 << width, size=(depth, lanes))
    sess = sim.session(lanes)
    for a in range(depth):
        sess.step({"waddr": a, "wen": 1, "wdata": lanes_of(data[a], width)})
    order = rng.permutation(depth)
    got = np.zeros_like(data)
    prev = None
    for a in list(order) + [None]:
        out = sess.step({"raddr": a, "ren": 1} if a is not None else {})
        if prev is not None:
            got[prev] = values_of(out["rdata"], lanes)
        prev = a
    assert np.array_equal(got, data)
