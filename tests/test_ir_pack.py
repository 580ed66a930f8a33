"""K-LUT packing: exact functions, k <= K, node-per-LUT bound for k <= K nets, depth bounds, decomposition."""
import numpy as np
import pytest

from ir_gen import all_features, random_netlist
from reference_eval import reference_counts
from warpc.errors import NetlistError
from warpc.ir import InputBit, Netlist, Node
from warpc.ir.emulate import emulate_counts
from warpc.ir.pack import decompose, pack
from warpc.ir.passes import optimize


def layered(seed, n_in=48, widths=(120, 60), k=2, classes=3):
    rng = np.random.default_rng(seed)
    inputs = [InputBit(i // 3, 1 + (i % 3) * 5) for i in range(n_in)]
    nodes, prev = [], list(range(2, 2 + n_in))
    for li, w in enumerate(widths):
        first = 2 + n_in + len(nodes)
        for _ in range(w):
            fan = tuple(int(v) for v in rng.choice(prev, size=k, replace=False))
            nodes.append(Node(fan, int.from_bytes(rng.bytes(8), "little") & ((1 << (1 << k)) - 1), li))
        prev = list(range(first, first + w))
    g = len(prev) // classes
    return Netlist(n_in // 3, inputs, nodes, [prev[c * g:(c + 1) * g] for c in range(classes)], input_bits=4)


@pytest.mark.parametrize("K", [3, 4, 6])
def test_pack_random_netlists_exact(K):
    for seed in range(25):
        net = random_netlist(seed, n_nodes=50, n_features=3)
        x = all_features(net, 200, seed)
        ref = reference_counts(net, x)
        for depth in (None, "min"):
            out, rep = pack(optimize(net)[0], K=K, depth=depth)
            assert all(n.k <= K for n in out.nodes)
            assert (emulate_counts(out, x) == ref).all(), (seed, K, depth)
            assert rep.luts == len(out.nodes)


@pytest.mark.parametrize("k", [2, 3, 4, 6])
@pytest.mark.parametrize("K", [4, 6])
def test_pack_layered_exact_and_bounded(k, K):
    net = layered(k, k=k)
    x = all_features(net, 300, k)
    ref = reference_counts(net, x)
    opt, _ = optimize(net)
    out, rep = pack(opt, K=K)
    assert all(n.k <= K for n in out.nodes)
    assert (emulate_counts(out, x) == ref).all()
    if k <= K:
        assert rep.luts <= len(opt.nodes)  # never more than one LUT per surviving node
    if k == 2:
        assert rep.luts < len(opt.nodes)  # 2-input nodes do merge into LUT4/6s


def test_depth_bound():
    net = layered(1, k=2, widths=(100, 80, 60, 30))
    opt, _ = optimize(net)
    x = all_features(net, 300, 1)
    ref = reference_counts(net, x)
    area, ra = pack(opt, K=4)
    fast, rf = pack(opt, K=4, depth="min")
    assert fast.depth() == rf.min_depth <= area.depth()
    assert (emulate_counts(fast, x) == ref).all()
    mid, rm = pack(opt, K=4, depth=rf.min_depth + 1)
    assert mid.depth() <= rf.min_depth + 1 and (emulate_counts(mid, x) == ref).all()
    with pytest.raises(NetlistError):
        pack(opt, K=4, depth=rf.min_depth - 1)


def test_decompose_wide_nodes():
    for seed in range(20):
        net = random_netlist(seed, n_nodes=30, max_k=6, n_features=4)
        x = all_features(net, 200, seed)
        for K in (3, 4, 5):
            out, rep = decompose(net, K)
            assert all(n.k <= K for n in out.nodes)
            assert (reference_counts(out, x) == reference_counts(net, x)).all()
    with pytest.raises(NetlistError):
        decompose(net, 2)


def test_pack_edge_outputs():
    # outputs that are constants, inputs, repeated and inverted; a node with a repeated fan-in
    ins = [InputBit(0, 1), InputBit(1, 1), InputBit(2, 2)]
    nodes = [Node((2, 3), 0b0110), Node((5, 4, 5), 0b10010110), Node((6,), 0b01)]
    net = Netlist(3, ins, nodes, [[0, 1, 2, 6, 6], [7, 7, 3], [1]], input_bits=2).validate()
    x = np.array([[a, b, c] for a in range(4) for b in range(4) for c in range(4)])
    for K in (3, 4, 6):
        out, _ = pack(optimize(net)[0], K=K)
        assert (emulate_counts(out, x) == reference_counts(net, x)).all()
