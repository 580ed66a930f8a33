"""The folded compiler (warpc.ir.fold) against the IR emulator, and its reference interpreter's checks."""
from __future__ import annotations

import numpy as np
import pytest

from warpc.errors import NetlistError
from warpc.ir.emulate import emulate_counts
from warpc.ir.fold import HAZARD, KIND_NODE, Layout, fold, lower_to_k2, run_program
from warpc.ir.netlist import InputBit, Netlist, Node

from ir_gen import all_features, random_netlist


@pytest.mark.parametrize("seed", range(40))
def test_lowering_keeps_the_function(seed):
    net = random_netlist(seed, max_k=6, n_nodes=30)
    low = lower_to_k2(net)
    assert all(n.k <= 2 for n in low.nodes)
    x = all_features(net, 256, seed)
    assert np.array_equal(emulate_counts(low, x), emulate_counts(net, x))


@pytest.mark.parametrize("lanes", [1, 2])
@pytest.mark.parametrize("seed", range(40))
def test_program_equals_emulator_on_random_nets(seed, lanes):
    # k = 1..6, constant / wire tables, repeated fan-ins, duplicate inputs, constant thresholds, outputs that
    # are constants, inputs or repeated signals, empty classes
    net = random_netlist(seed, max_k=6, n_nodes=35, classes=2 + seed % 4)
    prog = fold(net, lanes=lanes)
    assert prog.layout.lanes == lanes and prog.layout.width <= 64
    x = all_features(net, 300, seed)
    assert np.array_equal(run_program(prog, x), emulate_counts(net, x))


def _chain(n: int) -> Netlist:
    """Each node reads the one before it: every word waits for its predecessor (worst case for hazards)."""
    nodes = [Node((2, 3), 0b0110)]
    for j in range(1, n):
        nodes.append(Node((2 + 2 + j - 1, 2 + j % 2), 0b0110 if j % 3 else 0b1000))
    last = 2 + 2 + n - 1
    return Netlist(n_features=2, inputs=[InputBit(0, 2), InputBit(1, 3)], nodes=nodes,
                   outputs=[[last, last - 1], [last - 2, 2]], input_bits=2).validate()


def test_dependent_chain_gets_nops_and_stays_exact():
    net = _chain(12)
    prog = fold(net, lanes=2)
    assert prog.counts["nops"] >= (HAZARD - 1) * 10  # one node per HAZARD words along the chain
    x = all_features(net, 64)
    assert np.array_equal(run_program(prog, x), emulate_counts(net, x))


def test_interpreter_catches_a_schedule_that_ignores_the_pipeline():
    net = _chain(6)
    prog = fold(net, lanes=1, hazard=1)  # scheduled for an engine without pipeline
    x = all_features(net, 16)
    assert np.array_equal(run_program(prog, x, hazard=1), emulate_counts(net, x))
    with pytest.raises(NetlistError, match="words after"):
        run_program(prog, x, hazard=HAZARD)


def test_interpreter_catches_reads_of_unwritten_addresses():
    net = _chain(4)
    prog = fold(net, lanes=1)
    lay = prog.layout
    # point the first NODE word's input 0 at an address no word writes
    pc = next(i for i, w in enumerate(prog.words) if w & 3 == KIND_NODE)
    lane = lay.lane(prog.words[pc], 0)
    a0, a1, table = lay.node_fields(lane)
    prog.words[pc] = lay.word(KIND_NODE, False, [lay.node_lane((1 << lay.addr_bits) - 1, a1, table)])
    with pytest.raises(NetlistError, match="no earlier word wrote"):
        run_program(prog, all_features(net, 8))


def test_ties_and_all_constant_classes():
    # class 0: nothing; class 1: constant 1 twice; class 2: two input bits (SUM); ties go to the lowest class
    net = Netlist(n_features=1, inputs=[InputBit(0, 1), InputBit(0, 2)], nodes=[],
                  outputs=[[], [1, 1, 0], [2, 3]], input_bits=2).validate()
    prog = fold(net)
    x = np.arange(4).reshape(-1, 1)
    got = run_program(prog, x)
    assert got.tolist() == [[0, 2, 0], [0, 2, 1], [0, 2, 2], [0, 2, 2]]
    assert np.array_equal(got, emulate_counts(net, x))


def test_layout_round_trip():
    lay = Layout(lanes=2, addr_bits=12, feature_bits=10, input_bits=8)
    w = lay.word(KIND_NODE, True, [lay.node_lane(5, 4095, 0b1001), lay.enc_lane(783, 256)])
    assert w & 3 == KIND_NODE and (w >> 2) & 1 == 1
    assert lay.node_fields(lay.lane(w, 0)) == (5, 4095, 0b1001)
    assert lay.enc_fields(lay.lane(w, 1)) == (783, 256)
    assert lay.width == 3 + 2 * 28


def test_too_many_lanes_refused():
    net = random_netlist(0)
    with pytest.raises(NetlistError, match="lanes must be 1 or 2"):
        fold(net, lanes=3)
