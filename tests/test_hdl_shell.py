"""UART and shell, simulated with Amaranth's simulator (portable logic only: no SB_LUT4 here)."""
import numpy as np
import pytest
from amaranth.sim import Simulator

from _backend_nets import random_net, random_x
from _faults import damage
from reference_eval import reference_counts
from warpc.fpga.protocol import ACK_BYTE, NAK_BYTE, crc8, frame_bytes, parse_reply, reply_length
from warpc.errors import ConfigError
from warpc.hdl.shell import CORE_DOMAIN, UartShell
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


def _run_shell(shell, script, background=(), core_period=None):
    """Run `script(ctx, got)` (an async testbench) against the shell while a background receiver appends every
    byte the shell sends to `got` (and the `background` testbenches run, e.g. a flash model); returns what the
    script returns."""
    out, got = {}, []

    async def bench(ctx):
        ctx.set(shell.rx, 1)
        await ctx.tick().repeat(3)
        out["r"] = await script(ctx, got)

    async def receiver(ctx):
        while True:
            got.append(await recv_byte(ctx, shell.tx, timeout=10**9))

    sim = Simulator(shell)
    sim.add_clock(1e-6)
    if core_period is not None:  # the core on a clock of its own (warpc synth --core-clock)
        sim.add_clock(core_period, domain=shell.core_domain)
    sim.add_testbench(bench)
    sim.add_testbench(receiver, background=True)
    for tb in background:
        sim.add_testbench(tb, background=True)
    sim.run()
    return out["r"]


async def send(ctx, shell, data):
    for b in data:
        await send_byte(ctx, shell.rx, b)


async def recv_reply(ctx, got, n_payload, timeout=100000):
    """Wait for the next reply in `got` (ACK + payload + check, or a lone NAK) and take it out."""
    for _ in range(timeout):
        if got and (got[0] == NAK_BYTE or len(got) >= n_payload + 2):
            break
        await ctx.tick()
    else:
        raise TimeoutError(f"no reply (got {bytes(got).hex()})")
    n = 1 if got[0] == NAK_BYTE else n_payload + 2
    r = bytes(got[:n])
    del got[:n]
    return r


def _check_ok(reply, net, sb, scores, ref_row):
    assert reply[0] == ACK_BYTE and crc8(reply[1:-1]) == reply[-1], reply.hex()
    cls, sc = parse_reply(reply[1:-1], net.classes, sb, scores)
    assert cls == int(np.argmax(ref_row))
    if scores:
        assert sc == ref_row.tolist()


@pytest.mark.parametrize("scores,input_bits,n_features", [(True, 8, 3), (False, 10, 3), (True, 8, 40)])
def test_shell_answers_like_reference(scores, input_bits, n_features):
    net = random_net(seed=3, n_features=n_features, widths=(12, 6), classes=3, input_bits=input_bits)
    x = random_x(net, 4, seed=5)
    ref = reference_counts(net, x)
    shell = UartShell(net, divisor=DIV, pipeline=1, scores=scores)
    sb = shell.core.shape.score_bits
    n_payload = reply_length(net.classes, sb, scores)
    assert shell.reply_bytes == n_payload + 2 and shell.request_bytes == len(frame_bytes(x[0], input_bits))

    async def script(ctx, got):
        replies = []
        await send_byte(ctx, shell.rx, 0x17)  # garbage before the sync byte is ignored
        for row in x:
            await send(ctx, shell, frame_bytes(row, input_bits))
            replies.append(await recv_reply(ctx, got, n_payload))
        return replies

    for i, r in enumerate(_run_shell(shell, script)):
        _check_ok(r, net, sb, scores, ref[i])


@pytest.mark.parametrize("core_period,interval,scores", [(0.37e-6, 1, True), (2.9e-6, 1, False),
                                                         (0.41e-6, 3, True)])
def test_shell_with_a_core_clock_of_its_own_answers_like_reference(core_period, interval, scores):
    """--core-clock: the core in its own clock domain, faster (or slower) than the shell's and unrelated to it;
    the start and the result cross through synchronisers, the answers are the reference's, frame after frame."""
    net = random_net(seed=4, n_features=5, widths=(16, 9), classes=3, input_bits=8)
    x = random_x(net, 5, seed=6)
    ref = reference_counts(net, x)
    shell = UartShell(net, divisor=DIV, pipeline=1, scores=scores, interval=interval, core_domain=CORE_DOMAIN)
    sb = shell.core.shape.score_bits
    n_payload = reply_length(net.classes, sb, scores)

    async def script(ctx, got):
        replies = []
        for row in x:
            await send(ctx, shell, frame_bytes(row, 8))
            replies.append(await recv_reply(ctx, got, n_payload))
        return replies

    for i, r in enumerate(_run_shell(shell, script, core_period=core_period)):
        _check_ok(r, net, sb, scores, ref[i])


def test_core_domain_needs_a_pipelined_core():
    with pytest.raises(ConfigError, match="pipelined"):
        UartShell(random_net(seed=1), divisor=DIV, pipeline=0, core_domain=CORE_DOMAIN)


IDLE = 30 * DIV * 10  # a short idle timeout for the simulations (30 byte times; 2048 cycles once rounded up)


@pytest.mark.parametrize("fault,at", [("drop", 3), ("drop", -1), ("duplicate", 2), ("corrupt", 1),
                                      ("corrupt", -1), ("extra", 4)])
def test_shell_rejects_a_damaged_frame_and_recovers(fault, at):
    """A frame with a lost, extra or corrupted byte gets a NAK (a lost byte: after the idle timeout), never a
    wrong answer; after the host waits out the idle timeout, the same frame resent gets the right answer."""
    net = random_net(seed=4, n_features=5, widths=(10, 6), classes=3, input_bits=8)
    x = random_x(net, 2, seed=7)
    ref = reference_counts(net, x)
    shell = UartShell(net, divisor=DIV, pipeline=1, scores=True, idle_cycles=IDLE)
    sb = shell.core.shape.score_bits
    n_payload = reply_length(net.classes, sb, True)
    frame = frame_bytes(x[0], 8)
    bad = damage(frame, fault, at, corrupt_mask=0x10)

    async def script(ctx, got):
        await send(ctx, shell, bad)
        first = await recv_reply(ctx, got, n_payload, timeout=3 * shell.idle_cycles)
        await ctx.tick().repeat(2 * shell.idle_cycles)  # the host waits past the idle timeout, drops its input
        got.clear()
        await send(ctx, shell, frame)
        second = await recv_reply(ctx, got, n_payload)
        await send(ctx, shell, frame_bytes(x[1], 8))
        third = await recv_reply(ctx, got, n_payload)
        return first, second, third

    first, second, third = _run_shell(shell, script)
    assert first == bytes([NAK_BYTE])
    _check_ok(second, net, sb, True, ref[0])
    _check_ok(third, net, sb, True, ref[1])


def test_shell_idle_timeout_abandons_a_short_frame():
    """The stale frame is not completed by the next frame's bytes: the NAK comes after about the idle timeout."""
    net = random_net(seed=4, n_features=4, widths=(8, 6), classes=3, input_bits=8)
    shell = UartShell(net, divisor=DIV, pipeline=1, idle_cycles=IDLE)
    x = random_x(net, 1, seed=2)

    async def script(ctx, got):
        await send(ctx, shell, frame_bytes(x[0], 8)[:3])
        waited, busy_during = 0, []
        while ctx.get(shell.tx):
            busy_during.append(ctx.get(shell.busy))
            await ctx.tick()
            waited += 1
        assert all(busy_during[:-2])  # the frame stays open (LED lit) until the timeout
        nak = await recv_reply(ctx, got, 1)
        return waited, nak, ctx.get(shell.busy)

    waited, nak, busy = _run_shell(shell, script)
    assert shell.idle_cycles == 2048
    assert nak == bytes([NAK_BYTE]) and 2048 - 10 <= waited <= 2048 + 20 and busy == 0


def test_idle_timeout_shorter_than_a_byte_is_refused():
    from warpc.errors import ConfigError

    with pytest.raises(ConfigError, match="idle timeout"):
        UartShell(random_net(seed=1), divisor=DIV, idle_cycles=DIV * 5)
