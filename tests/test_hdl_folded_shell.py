"""The folded design behind the UART framing, in Amaranth's simulator: frames answered like the reference, and the
boot path end to end (SPI flash model -> FlashLoader -> program memory -> first answer; a bad image -> NOPROG)."""
from __future__ import annotations

import pytest

from _backend_nets import random_net, random_x
from reference_eval import reference_counts
from test_hdl_shell import DIV, _check_ok, _run_shell, recv_reply, send
from warpc.fpga.protocol import frame_bytes, reply_length
from warpc.fpga.spiflash import SpiFlashModel
from warpc.hdl.boot import FlashLoader
from warpc.hdl.folded import FoldedShell
from warpc.hdl.framing import NOPROG_BYTE
from warpc.ir.fold import WORD_BITS, fold
from warpc.ir.image import IMAGE_OFFSET, pack_image

CLOCK = 12_000_000


def _run(shell, script, flash: SpiFlashModel | None = None):
    async def spi(ctx):  # the flash answers on cipo every cycle
        while True:
            ctx.set(shell.cipo, flash.step(ctx.get(shell.cs_n), ctx.get(shell.sck), ctx.get(shell.copi)))
            await ctx.tick()

    return _run_shell(shell, script, background=[spi] if flash is not None else [])


@pytest.mark.parametrize("scores,input_bits,lanes", [(True, 8, 2), (False, 10, 1), (True, 3, 2)])
def test_folded_shell_answers_like_reference(scores, input_bits, lanes):
    net = random_net(seed=4, n_features=5, widths=(16, 8), classes=3, input_bits=input_bits)
    prog = fold(net, lanes=lanes)
    x = random_x(net, 4, seed=6)
    ref = reference_counts(net, x)
    shell = FoldedShell(net, prog, divisor=DIV, scores=scores, program_mem="portable", boot=False)
    n_payload = reply_length(net.classes, prog.score_bits, scores)
    assert shell.reply_bytes == n_payload + 2

    async def script(ctx, got):
        replies = []
        for row in x:
            await send(ctx, shell, frame_bytes(row, input_bits))
            replies.append(await recv_reply(ctx, got, n_payload))
        return replies

    for i, r in enumerate(_run(shell, script)):
        _check_ok(r, net, prog.score_bits, scores, ref[i])


def _boot_case(image: bytes | None, offset: int = IMAGE_OFFSET, powered_down: bool = True):
    net = random_net(seed=7, n_features=4, widths=(12, 6), classes=3, input_bits=8)
    prog = fold(net)
    x = random_x(net, 2, seed=2)
    shell = FoldedShell(net, prog, divisor=DIV, scores=True, program_mem="portable", boot=True, clock_hz=CLOCK)
    flash = SpiFlashModel({} if image is None else {offset: image}, powered_down=powered_down)
    boot = FlashLoader.boot_cycles(prog.n_words, WORD_BITS, CLOCK)
    n_payload = reply_length(net.classes, prog.score_bits, True)

    async def script(ctx, got):
        replies = []
        # a frame sent while the loader still runs is ignored (no reply): the host's retry covers the boot
        await send(ctx, shell, frame_bytes(x[0], 8))
        assert got == [] and not ctx.get(shell.loader.ready)
        for _ in range(boot + 50):
            if ctx.get(shell.loader.ready) or ctx.get(shell.loader.failed):
                break
            await ctx.tick()
        for row in x:
            await send(ctx, shell, frame_bytes(row, 8))
            for _ in range(200000):
                if got and (got[0] == NOPROG_BYTE or len(got) >= n_payload + 2):
                    break
                await ctx.tick()
            if got and got[0] == NOPROG_BYTE:
                replies.append(bytes(got[:1]))
                await ctx.tick().repeat(100)
                del got[:]
            else:
                replies.append(await recv_reply(ctx, got, n_payload))
        return replies

    return net, prog, x, _run(shell, script, flash)


def test_boot_from_flash_then_answer():
    net = random_net(seed=7, n_features=4, widths=(12, 6), classes=3, input_bits=8)
    prog = fold(net)
    _, prog, x, replies = _boot_case(pack_image(prog.words, WORD_BITS))
    ref = reference_counts(net, x)
    for i, r in enumerate(replies):
        _check_ok(r, net, prog.score_bits, True, ref[i])


@pytest.mark.parametrize("case", ["blank", "corrupt", "foreign", "moved"])
def test_board_without_a_good_image_says_noprog(case):
    net = random_net(seed=7, n_features=4, widths=(12, 6), classes=3, input_bits=8)
    prog = fold(net)
    good = pack_image(prog.words, WORD_BITS)
    if case == "blank":
        image, offset = None, IMAGE_OFFSET
    elif case == "corrupt":
        bad = bytearray(good)
        bad[len(bad) // 2] ^= 0x10
        image, offset = bytes(bad), IMAGE_OFFSET
    elif case == "foreign":  # another model's image: right format, wrong design id
        other = fold(random_net(seed=8, n_features=4, widths=(12, 6), classes=3, input_bits=8))
        image, offset = pack_image(other.words, WORD_BITS), IMAGE_OFFSET
    else:
        image, offset = good, IMAGE_OFFSET + 4096
    *_, replies = _boot_case(image, offset)
    assert replies == [bytes([NOPROG_BYTE])] * 2
