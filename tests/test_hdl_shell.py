"""UART and shell, simulated with Amaranth's simulator (portable logic only: no SB_LUT4 here)."""
import numpy as np
import pytest
from amaranth.sim import Simulator

from _backend_nets import random_net, random_x
from reference_eval import reference_counts
from warpc.fpga.protocol import frame_bytes, parse_reply, reply_length
from warpc.hdl.shell import UartShell
from warpc.hdl.uart import UARTRx, UARTTx

DIV = 4


async def send_byte(ctx, line, byte, div=DIV):
    for bit in [0] + [(byte >> i) & 1 for i in range(8)] + [1]:
        ctx.set(line, bit)
        await ctx.tick().repeat(div)


async def recv_byte(ctx, line, div=DIV, timeout=100000):
    for _ in range(timeout):
        if not ctx.get(line):
            break
        await ctx.tick()
    else:
        raise TimeoutError("no start bit")
    await ctx.tick().repeat(div + div // 2)
    v = 0
    for i in range(8):
        v |= ctx.get(line) << i
        await ctx.tick().repeat(div)
    assert ctx.get(line) == 1  # stop bit
    return v


def test_uart_loopback():
    rx, tx = UARTRx(DIV), UARTTx(DIV)
    from amaranth.hdl import Module
    m = Module()
    m.submodules.rx, m.submodules.tx = rx, tx
    m.d.comb += rx.rx.eq(tx.tx)
    got = []
    data = [0x00, 0xFF, 0xA5, 0x3C, 0x81]

    async def bench(ctx):
        for b in data:
            while ctx.get(tx.busy):
                await ctx.tick()
            ctx.set(tx.data, b)
            ctx.set(tx.start, 1)
            await ctx.tick()
            ctx.set(tx.start, 0)
            for _ in range(12 * DIV):
                await ctx.tick()
                if ctx.get(rx.rdy):
                    got.append(ctx.get(rx.data))
        for _ in range(4 * DIV):
            await ctx.tick()

    sim = Simulator(m)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert got == data


@pytest.mark.parametrize("scores,input_bits,n_features", [(True, 8, 3), (False, 10, 3), (True, 8, 40)])
def test_shell_answers_like_reference(scores, input_bits, n_features):
    net = random_net(seed=3, n_features=n_features, widths=(12, 6), classes=3, input_bits=input_bits)
    x = random_x(net, 4, seed=5)
    ref = reference_counts(net, x)
    shell = UartShell(net, divisor=DIV, pipeline=1, scores=scores)
    sb = shell.core.shape.score_bits
    n_reply = reply_length(net.classes, sb, scores)
    replies = []

    async def bench(ctx):
        ctx.set(shell.rx, 1)
        await ctx.tick().repeat(3)
        await send_byte(ctx, shell.rx, 0x17)  # garbage before the sync byte is ignored
        for row in x:
            for b in frame_bytes(row, input_bits):
                await send_byte(ctx, shell.rx, b)
            replies.append(bytes([await recv_byte(ctx, shell.tx) for _ in range(n_reply)]))

    sim = Simulator(shell)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    for i, r in enumerate(replies):
        cls, sc = parse_reply(r, net.classes, sb, scores)
        assert cls == int(np.argmax(ref[i]))
        if scores:
            assert sc == ref[i].tolist()
