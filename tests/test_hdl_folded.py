"""The folded engine's RTL (Amaranth simulator, portable memories) against the IR emulator on random nets."""
from __future__ import annotations

import numpy as np
import pytest
from amaranth.sim import Simulator

from warpc.errors import ConfigError
from warpc.hdl.folded import FoldedEngine, latency, spram_count
from warpc.ir.emulate import argmax_lowest, emulate_counts
from warpc.ir.fold import WORD_BITS, fold

from ir_gen import all_features, random_netlist


def run_engine(prog, x: np.ndarray, *, load_program: bool = False) -> tuple[list[int], list[list[int]], list[int]]:
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
    cls, scores, cycles = run_engine(prog, x)
    assert scores == ref.tolist()
    assert cls == argmax_lowest(ref).tolist()
    assert cycles == [latency(prog)] * len(x)


def test_engine_loaded_through_the_program_port():
    net = random_netlist(3, max_k=4, n_nodes=25)
    prog = fold(net)
    x = all_features(net, 4, 1)
    ref = emulate_counts(net, x)
    _, scores, _ = run_engine(prog, x, load_program=True)
    assert scores == ref.tolist()


def test_engine_on_a_dependent_chain():
    # each node reads the previous one: exercises the read-after-write distance the compiler schedules for
    from test_ir_fold import _chain

    net = _chain(9)
    prog = fold(net, lanes=2)
    x = all_features(net, 16)
    _, scores, _ = run_engine(prog, x)
    assert scores == emulate_counts(net, x).tolist()


def test_spram_needs_a_loader():
    prog = fold(random_netlist(0))
    with pytest.raises(ConfigError, match="loaded at boot"):
        FoldedEngine(prog, program_mem="spram", init_program=True)
    assert spram_count(prog) == -(-prog.layout.width // 16)
    assert prog.layout.width <= WORD_BITS
