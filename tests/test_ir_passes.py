"""Optimisation passes: each pass alone and the fixed-point pipeline keep every class score, on random netlists
full of edge cases (constant / input / duplicate / inverted outputs, repeated fan-ins, duplicate nodes)."""
import numpy as np
import pytest

from ir_gen import all_features, random_netlist
from reference_eval import reference_counts
from warpc.ir import InputBit, Netlist, Node
from warpc.ir import passes as P
from warpc.ir.emulate import emulate_counts

SEEDS = range(60)


@pytest.mark.parametrize("p", P.ALL_PASSES, ids=lambda p: p.__name__)
def test_each_pass_keeps_scores(p):
    for seed in SEEDS:
        net = random_netlist(seed, n_features=2 + seed % 3)
        x = all_features(net, 200, seed)
        ref = reference_counts(net, x)
        out, rep = p(net)
        out.validate()
        assert (reference_counts(out, x) == ref).all(), (p.__name__, seed)
        assert rep.nodes_after == len(out.nodes) and rep.nodes_before == len(net.nodes)


def test_optimize_fixed_point_and_idempotent():
    for seed in SEEDS:
        net = random_netlist(seed, n_nodes=60, max_k=4, n_features=3)
        x = all_features(net, 200, seed)
        out, reps = P.optimize(net)
        assert (emulate_counts(out, x) == reference_counts(net, x)).all()
        again, _ = P.optimize(out)
        assert P.signature(again) == P.signature(out)
        # no constants, wires, inverters or unused fan-ins are left
        for n in out.nodes:
            assert n.k >= 1 and all(f >= 2 for f in n.fanin) and len(set(n.fanin)) == n.k
            if n.k == 1:
                assert n.table == 0b01  # only output inverters survive
        used = {f for n in out.nodes for f in n.fanin} | {s for g in out.outputs for s in g}
        assert all(out.input_id(i) in used for i in range(len(out.inputs)))


def _net(nodes, outputs, inputs=None):
    inputs = inputs or [InputBit(0, 1), InputBit(1, 1), InputBit(2, 1)]
    return Netlist(n_features=3, inputs=inputs, nodes=nodes, outputs=outputs, input_bits=2).validate()


def test_constant_propagation_folds_constants_and_constant_inputs():
    # inputs: 2 = [x0>=1], 3 = [x1>=0] (always 1), 4 = [x2>=4] (never: input_bits=2)
    net = _net([Node((2, 3), 0b1000), Node((4, 2), 0b0110), Node((0, 1), 0b0100)], [[5, 6], [7, 1]],
               inputs=[InputBit(0, 1), InputBit(1, 0), InputBit(2, 4)])
    out, rep = P.constant_propagation(net)
    assert rep.removed["constant_input_bits"] == 2
    assert rep.removed["nodes_to_constants"] == 1  # AND(0, 1) -> 0 ... table 0b0100 at corner (0,1) = 1
    assert out.nodes[0].k == 1 and out.nodes[1].k == 1
    x = np.array([[a, b, c] for a in range(4) for b in range(4) for c in range(4)])
    assert (reference_counts(out, x) == reference_counts(net, x)).all()


def test_support_reduction_wires_and_inverters():
    # 5 = a (wire of input 0 through a 2-input table), 6 = not b, 7 = AND(5, 6); outputs: 6 (an inverter)
    net = _net([Node((2, 3), 0b1010), Node((2, 3), 0b0011), Node((5, 6), 0b1000)], [[7], [6, 6]])
    out, rep = P.support_reduction(net)
    assert rep.removed["wires_removed"] == 1 and rep.removed["inverters_folded"] == 1
    x = np.array([[a, b, 0] for a in range(4) for b in range(4)])
    assert (reference_counts(out, x) == reference_counts(net, x)).all()
    out, _ = P.optimize(net)
    assert out.k_histogram() == {1: 1, 2: 1}  # the AND, and one inverter for the inverted output


def test_structural_hashing_merges_permuted_and_complemented():
    # AND(a, b), AND(b, a) and NAND(a, b) are one node
    net = _net([Node((2, 3), 0b1000), Node((3, 2), 0b1000), Node((2, 3), 0b0111), Node((5, 6), 0b0110)],
               [[5, 6, 7], [8]])
    out, rep = P.structural_hashing(net)
    assert rep.removed["nodes_merged"] == 2
    x = np.array([[a, b, 0] for a in range(4) for b in range(4)])
    assert (reference_counts(out, x) == reference_counts(net, x)).all()


def test_complementary_outputs_become_constant_and_repeated_fanins_merge():
    net = _net([Node((2, 2, 3), 0b10000001), Node((2,), 0b01)], [[5, 6, 2], [6, 6]])
    out, _ = P.optimize(net)
    x = np.array([[a, b, 0] for a in range(4) for b in range(4)])
    assert (reference_counts(out, x) == reference_counts(net, x)).all()
    assert out.outputs[0].count(1) == 1  # input 2 and its inverter in class 0 add exactly 1


def test_thermometer_dont_cares_drop_implied_bits():
    # [x0>=1] and [x0>=2]: OR of them is just [x0>=1]; AND is [x0>=2]
    ins = [InputBit(0, 1), InputBit(0, 2), InputBit(1, 1)]
    net = _net([Node((2, 3), 0b1110), Node((2, 3), 0b1000)], [[5], [6]], inputs=ins)
    out, rep = P.thermometer_dont_cares(net)
    assert rep.removed["fanins_dropped"] == 2
    assert [n.fanin for n in out.nodes] == [(2,), (3,)]
    x = np.array([[a, b, 0] for a in range(4) for b in range(4)])
    assert (reference_counts(out, x) == reference_counts(net, x)).all()


def test_dead_nodes_and_unused_inputs():
    net = _net([Node((2, 3), 0b1000), Node((3, 4), 0b0110)], [[5], [5]])
    out, rep = P.dead_node_elimination(net)
    assert rep.removed["dead_nodes"] == 1 and len(out.nodes) == 1
    out2, rep2 = P.remove_unused_inputs(out)
    assert rep2.removed["unused_input_bits"] == 1 and len(out2.inputs) == 2


def test_dedupe_inputs():
    ins = [InputBit(0, 1), InputBit(0, 1), InputBit(1, 1)]
    net = _net([Node((2, 3), 0b0110)], [[5], [3]], inputs=ins)
    out, rep = P.dedupe_inputs(net)
    assert rep.removed["duplicate_input_bits"] == 1 and len(out.inputs) == 2
    x = np.array([[a, b, 0] for a in range(4) for b in range(4)])
    assert (reference_counts(out, x) == reference_counts(net, x)).all()


def test_functional_merge_sees_through_structure_and_thermometer_codes():
    # inputs 2 = [x0>=1], 3 = [x0>=2], 4 = [x1>=1]
    ins = [InputBit(0, 1), InputBit(0, 2), InputBit(1, 1)]
    nodes = [Node((2, 4), 0b0110),   # 5 = a1 xor c
             Node((5, 4), 0b0110),   # 6 = (a1 xor c) xor c = a1: an input literal
             Node((2, 4), 0b1000),   # 7 = a1 and c
             Node((3, 7), 0b1000),   # 8 = a2 and a1 and c = a2 and c on valid codes
             Node((3, 4), 0b1000)]   # 9 = a2 and c
    net = _net(nodes, [[6, 8], [9]], inputs=ins)
    out, rep = P.functional_merge(net)
    assert rep.removed["nodes_to_input_literals"] == 1 and rep.removed["nodes_rewritten_over_inputs"] == 1
    x = np.array([[a, b, 0] for a in range(4) for b in range(4)])
    assert (reference_counts(out, x) == reference_counts(net, x)).all()
    opt, _ = P.optimize(net)
    assert len(opt.nodes) == 1  # only a2 and c is left


def test_popcount_rewrite_keeps_class_sums_and_saves_luts():
    # class 0: AND(a, b) + OR(a, b) = a + b (both free); class 1: AND(a, c) + XOR(a, c)... = a OR c + 0 -> one LUT
    nodes = [Node((2, 3), 0b1000), Node((2, 3), 0b1110), Node((2, 4), 0b1000), Node((2, 4), 0b0110)]
    net = _net(nodes, [[5, 6], [7, 8]])
    out, rep = P.popcount_rewrite(net)
    assert rep.removed["output_pairs_rewritten"] == 2 and rep.removed["luts_saved"] == 3
    assert sorted(out.outputs[0]) == [2, 3]
    x = np.array([[a, b, c] for a in range(4) for b in range(4) for c in range(4)])
    assert (reference_counts(out, x) == reference_counts(net, x)).all()
    opt, _ = P.optimize(net)
    assert len(opt.nodes) == 1 and (reference_counts(opt, x) == reference_counts(net, x)).all()
    # an output read elsewhere is left alone (rewriting it would save nothing)
    net2 = _net(nodes + [Node((5, 4), 0b0110)], [[5, 6], [9]])
    out2, _ = P.popcount_rewrite(net2)
    assert out2.outputs[0] == [5, 6]
