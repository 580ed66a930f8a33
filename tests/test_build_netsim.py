"""NetSim (the bit-parallel Yosys-JSON simulator used by every build's equivalence check) against plain Python
models of the cells, on hand-written netlists (no Yosys needed)."""
import itertools

import numpy as np
import pytest

from warpc.fpga.netsim import NetSim, bits_of, lut_expr, value_of
from warpc.errors import ToolchainError


@pytest.mark.parametrize("k", [1, 2, 3, 4])
def test_lut_expr_exhaustive(k):
    rng = np.random.default_rng(k)
    names = [f"v{i}" for i in range(k)]
    tables = list(rng.integers(0, 1 << (1 << k), size=30)) + [0, (1 << (1 << k)) - 1]
    for table in tables:
        expr = lut_expr(int(table), names)
        for c in range(1 << k):
            env = {f"v{i}": (c >> i) & 1 for i in range(k)} | {"M": 1}
            assert eval(expr, env) == (int(table) >> c) & 1


def _mod(cells, ports):
    return {"modules": {"t": {"attributes": {"top": "00000000000000000000000000000001"}, "ports": ports,
                              "cells": cells, "netnames": {}}}}


def _cell(t, conns, dirs, params=None):
    return {"type": t, "parameters": params or {}, "port_directions": dirs, "connections": conns}


def test_sb_cells_match_python_models():
    # nets: a=2 b=3 c=4 e=5 r=6 ; lut=10 carry=11 ; q_dffe=12 q_desr=13 q_dffss=14
    init = 0b0110100110010110  # XOR4 of I0..I3 -> with I3 tied 0: XOR3
    cells = {
        "lut": _cell("SB_LUT4", {"I0": [2], "I1": [3], "I2": [4], "I3": ["0"], "O": [10]},
                     {"I0": "input", "I1": "input", "I2": "input", "I3": "input", "O": "output"},
                     {"LUT_INIT": format(init, "016b")}),
        "carry": _cell("SB_CARRY", {"I0": [2], "I1": [3], "CI": [4], "CO": [11]},
                       {"I0": "input", "I1": "input", "CI": "input", "CO": "output"}),
        "ffe": _cell("SB_DFFE", {"C": [1], "D": [10], "E": [5], "Q": [12]},
                     {"C": "input", "D": "input", "E": "input", "Q": "output"}),
        "ffesr": _cell("SB_DFFESR", {"C": [1], "D": [11], "E": [5], "R": [6], "Q": [13]},
                       {"C": "input", "D": "input", "E": "input", "R": "input", "Q": "output"}),
        "ffss": _cell("SB_DFFSS", {"C": [1], "D": [10], "S": [6], "Q": [14]},
                      {"C": "input", "D": "input", "S": "input", "Q": "output"}),
    }
    ports = {"clk": {"direction": "input", "bits": [1]}, "i": {"direction": "input", "bits": [2, 3, 4, 5, 6]},
             "o": {"direction": "output", "bits": [10, 11, 12, 13, 14]}}
    sim = NetSim(_mod(cells, ports))
    rng = np.random.default_rng(0)
    T, lanes = 40, 70
    i = rng.integers(0, 2, size=(T, lanes, 5)).astype(bool)
    out = sim.run({"i": i})["o"]
    q = np.zeros((lanes, 3), dtype=bool)
    for t in range(T):
        a, b, c, e, r = (i[t, :, k] for k in range(5))
        lut = a ^ b ^ c
        carry = (a & b) | ((a | b) & c)
        assert (out[t, :, 0] == lut).all() and (out[t, :, 1] == carry).all()
        assert (out[t, :, 2:] == q).all()
        q = np.stack([np.where(e, lut, q[:, 0]),
                      np.where(e, np.where(r, False, carry), q[:, 1]),  # reset gated by enable (cells_sim.v)
                      np.where(r, True, lut)], 1)


def test_gates_and_dff():
    ops = {"$_AND_": lambda a, b: a & b, "$_OR_": lambda a, b: a | b, "$_XOR_": lambda a, b: a ^ b,
           "$_NAND_": lambda a, b: ~(a & b), "$_NOR_": lambda a, b: ~(a | b), "$_XNOR_": lambda a, b: ~(a ^ b),
           "$_ANDNOT_": lambda a, b: a & ~b, "$_ORNOT_": lambda a, b: a | ~b}
    cells, outs = {}, []
    for n, t in enumerate(ops):
        cells[t] = _cell(t, {"A": [2], "B": [3], "Y": [10 + n]}, {"A": "input", "B": "input", "Y": "output"})
        outs.append(10 + n)
    cells["mux"] = _cell("$_MUX_", {"A": [2], "B": [3], "S": [4], "Y": [30]},
                         {"A": "input", "B": "input", "S": "input", "Y": "output"})
    cells["not"] = _cell("$_NOT_", {"A": [30], "Y": [31]}, {"A": "input", "Y": "output"})
    cells["dff"] = _cell("$_DFF_P_", {"C": [1], "D": [31], "Q": [32]}, {"C": "input", "D": "input", "Q": "output"})
    ports = {"clk": {"direction": "input", "bits": [1]}, "i": {"direction": "input", "bits": [2, 3, 4]},
             "o": {"direction": "output", "bits": outs + [30, 32, "1"]}}
    sim = NetSim(_mod(cells, ports))
    x = np.array(list(itertools.product([0, 1], repeat=3)), dtype=bool)  # 8 lanes
    out = sim.run({"i": np.stack([x, x])})["o"]
    a, b, s = x[:, 0], x[:, 1], x[:, 2]
    for n, f in enumerate(ops.values()):
        assert (out[0, :, n] == f(a, b)).all()
    assert (out[0, :, len(ops)] == np.where(s, b, a)).all()
    assert (out[1, :, len(ops) + 1] == ~np.where(s, b, a)).all()  # registered inverse, one cycle later
    assert out[0, :, -1].all()


def test_unknown_cell_and_loops_are_errors():
    cells = {"x": _cell("$_FOO_", {"A": [2], "Y": [3]}, {"A": "input", "Y": "output"})}
    ports = {"i": {"direction": "input", "bits": [2]}, "o": {"direction": "output", "bits": [3]}}
    with pytest.raises(ToolchainError, match="does not know"):
        NetSim(_mod(cells, ports))
    loop = {"a": _cell("$_NOT_", {"A": [3], "Y": [4]}, {"A": "input", "Y": "output"}),
            "b": _cell("$_NOT_", {"A": [4], "Y": [3]}, {"A": "input", "Y": "output"})}
    with pytest.raises(ToolchainError, match="loop"):
        NetSim(_mod(loop, ports))


def test_bits_roundtrip():
    v = np.array([[0, 5, 1023]])
    assert (value_of(bits_of(v, 10)) == v).all()
