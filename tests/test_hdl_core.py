"""The Amaranth core against the IR reference, simulated with Amaranth's simulator (portable logic only:
the simulator gets SB_LUT4 instances wrong, see NOTES.md)."""
import numpy as np
import pytest
from amaranth.hdl import Module, Signal
from amaranth.sim import Simulator

from _backend_nets import digits_model, random_net, random_x
from reference_eval import reference_counts
from warpc.errors import ConfigError, NetlistError
from warpc.hdl.core import WarpCore, ge_const, lut4_init
from warpc.ir import from_model
from warpc.ir.netlist import InputBit, Netlist, Node


def simulate_core(net, x, pipeline, gap=0, interval=1):
    """Stream x through a portable core (one sample per interval, or `gap` idle cycles more between samples);
    x is driven only in the cycle valid_in is high (garbage otherwise)."""
    core = WarpCore(net, pipeline=pipeline, lut_cells="portable", interval=interval)
    gap = max(gap, interval - 1)
    rng = np.random.default_rng(5)
    sh = core.shape
    w = net.input_bits
    out, valid_trace = [], []

    async def bench(ctx):
        sched = []
        for row in x:
            sched.append(row)
            sched += [None] * gap
        for i in range(len(sched) + core.latency + 1):
            row = sched[i] if i < len(sched) else None
            if row is None:
                row_ = rng.integers(0, 1 << w, size=net.n_features)  # garbage between samples
                ctx.set(core.x, int(sum(int(v) << (f * w) for f, v in enumerate(row_))))
            else:
                ctx.set(core.x, int(sum(int(v) << (f * w) for f, v in enumerate(row))))
            ctx.set(core.valid_in, row is not None)
            await ctx.delay(1e-9)
            valid_trace.append(ctx.get(core.valid_out))
            if ctx.get(core.valid_out):
                sc = ctx.get(core.scores)
                out.append([(sc >> (c * sh.score_bits)) & ((1 << sh.score_bits) - 1) for c in range(sh.classes)]
                           + [ctx.get(core.cls)])
            if pipeline:
                await ctx.tick()

    sim = Simulator(core)
    if pipeline:
        sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return np.array(out), valid_trace, core


@pytest.mark.parametrize("pipeline", [0, 1, 2, 3])
def test_random_net_matches_reference(pipeline):
    net = random_net(seed=pipeline, widths=(20, 16, 9), k=2, classes=3)  # constants, inputs, repeats in outputs
    x = random_x(net, 40, seed=pipeline)
    ref = reference_counts(net, x)
    out, _, core = simulate_core(net, x, pipeline)
    if pipeline == 0:
        assert core.latency == 0
    else:  # input register + LUT stages after the first + the blocks' own latencies
        stages = -(-net.depth() // pipeline)
        assert core.latency == 1 + max(0, stages - 1) + core.counter.latency + core.argmax.latency
    assert out.shape == (len(x), net.classes + 1)
    assert (out[:, :-1] == ref).all()
    assert (out[:, -1] == np.argmax(ref, 1)).all()


def test_emulator_and_naive_reference_agree():
    from warpc.ir.emulate import emulate_counts

    net = random_net(seed=7, widths=(30, 12), k=3)
    x = random_x(net, 200)
    assert (emulate_counts(net, x) == reference_counts(net, x)).all()


def test_digits_model_core_matches_model():
    torch = pytest.importorskip("torch")
    model, xte, yte = digits_model(widths=(100, 100), steps=5)
    net = from_model(model)
    x = xte[:120]
    out, _, _ = simulate_core(net, x, pipeline=2)
    want = model.counts(torch.tensor(x, dtype=torch.float32)).numpy()
    assert (out[:, :-1] == want).all()
    assert (out[:, -1] == model.predict(torch.tensor(x, dtype=torch.float32)).numpy()).all()


def test_argmax_ties_go_to_lowest_index():
    # one feature, bit b = [x >= 128]; class scores: c0 = 1, c1 = 1 + b, c2 = 1 + b, c3 = b
    inputs = [InputBit(0, 128)]
    net = Netlist(1, inputs, [], [[1], [1, 2], [2, 1], [2]], input_bits=8).validate()
    out, _, _ = simulate_core(net, np.array([[5], [200]]), pipeline=1)
    assert out[:, -1].tolist() == [0, 1]
    assert out[:, :-1].tolist() == [[1, 1, 1, 0], [1, 2, 2, 1]]


def test_valid_follows_latency_with_gaps():
    net = random_net(seed=2, widths=(12, 6), classes=3)
    x = random_x(net, 5)
    out, trace, core = simulate_core(net, x, pipeline=1, gap=2)
    L = core.latency
    expect = [False] * len(trace)
    for i in range(len(x)):
        expect[i * 3 + L] = True
    assert [bool(v) for v in trace] == expect
    assert (out[:, :-1] == reference_counts(net, x)).all()


def test_thresholds_at_the_edges():
    # t <= 0 is always 1, t > max is always 0, t = max is one value
    inputs = [InputBit(0, 0), InputBit(0, 256), InputBit(0, 255), InputBit(1, 1)]
    net = Netlist(2, inputs, [], [[2, 3], [4, 5]], input_bits=8).validate()
    x = np.array([[0, 0], [255, 1], [254, 255]])
    out, _, _ = simulate_core(net, x, pipeline=0)
    assert (out[:, :-1] == reference_counts(net, x)).all()


def test_ge_const_exhaustive():
    v = Signal(6)
    m = Module()
    outs = {}
    for t in range(1, 64):
        o = Signal(name=f"o{t}")
        m.d.comb += o.eq(ge_const(v, t))
        outs[t] = o

    async def bench(ctx):
        for x in range(64):
            ctx.set(v, x)
            await ctx.delay(1e-9)
            assert [ctx.get(o) for o in outs.values()] == [int(x >= t) for t in outs]

    sim = Simulator(m)
    sim.add_testbench(bench)
    sim.run()


def test_lut4_init_ignores_unused_inputs():
    for k in range(5):
        for table in [0, 1, (1 << (1 << k)) - 1, 0b0110 & ((1 << (1 << k)) - 1)]:
            init = lut4_init(table, k)
            for c in range(16):
                assert (init >> c) & 1 == (table >> (c & ((1 << k) - 1))) & 1


def test_sb_lut4_needs_k_at_most_4():
    net = Netlist(1, [InputBit(0, t) for t in range(1, 6)], [Node((2, 3, 4, 5, 6), 0x12345678)],
                  [[7], [2]]).validate()
    with pytest.raises(NetlistError, match="pack"):
        WarpCore(net, lut_cells="sb_lut4")
    WarpCore(net, lut_cells="portable")._MustUse__silence = True  # fine without SB_LUT4
    with pytest.raises(ConfigError):
        WarpCore(net, lut_cells="lut6")


def test_sb_lut4_instances_one_per_node():
    net = random_net(seed=4, widths=(10, 6), k=2, classes=2, extras=False)
    from amaranth.back import rtlil

    from warpc.hdl.core import LutNetwork

    lutnet = LutNetwork(net, pipeline=1, lut_cells="sb_lut4")
    text = rtlil.convert(lutnet, ports=[lutnet.bits, lutnet.outputs])
    assert text.count("cell \\SB_LUT4") == sum(1 for n in net.nodes if n.k > 0)


@pytest.mark.parametrize("pipeline,interval", [(1, 2), (1, 3), (2, 5), (1, 9), (3, 16)])
def test_interval_core_matches_reference(pipeline, interval):
    """II = N: one sample every N cycles, inputs valid only in their valid_in cycle, valid_out exactly latency
    cycles later; scores and class equal the reference (serial counting, sequential or tree argmax)."""
    net = random_net(seed=interval, widths=(20, 24, 48), k=2, classes=3)  # 16 bits per class
    x = random_x(net, 30, seed=interval)
    ref = reference_counts(net, x)
    out, trace, core = simulate_core(net, x, pipeline, interval=interval)
    assert core.interval == interval
    assert (out[:, :-1] == ref).all()
    assert (out[:, -1] == np.argmax(ref, 1)).all()
    expect = [False] * len(trace)
    for i in range(len(x)):
        expect[i * interval + core.latency] = True
    assert [bool(v) for v in trace] == expect


def test_interval_checks():
    net = random_net(seed=1, widths=(12, 6), classes=3)
    widest = max(len(g) for g in net.outputs)
    with pytest.raises(ConfigError, match="needs a pipelined core"):
        WarpCore(net, pipeline=0, interval=2)
    with pytest.raises(ConfigError, match="largest class"):
        WarpCore(net, pipeline=1, interval=widest + 1)
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ConfigError, match="interval"):
            WarpCore(net, pipeline=1, interval=bad)


@pytest.mark.slow
@pytest.mark.parametrize("interval", [1, 2, 5])
def test_sb_lut4_core_streams_like_the_build_check(interval):
    """The cell-based core (SB_LUT4/SB_CARRY instances, as on the board) through Yosys + NetSim, checked by the
    very function the build uses (equiv._compare_core)."""
    from _cellsim import cell_sim, needs_yosys  # noqa: F401
    from warpc.fpga.equiv import _compare_core

    net = random_net(seed=3, widths=(40, 30), k=2, classes=4)
    x = random_x(net, 64, seed=3)
    core = WarpCore(net, pipeline=1, lut_cells="sb_lut4", encoder=False, interval=interval)
    sim = cell_sim(core, core.ports())
    compared, _ = _compare_core(sim, net, x, reference_counts(net, x), core.latency, "core", 0, len(x),
                                interval=interval)
    assert compared == ["cls", "scores", "valid_out"]
