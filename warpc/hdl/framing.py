"""The UART framing's constants and check function, shared by the board shell (warpc.hdl.shell, which documents
the protocol) and the host side (warpc.fpga.protocol / host); plain Python, no Amaranth import."""
from __future__ import annotations

import math

SYNC_BYTE = 0xA5  # starts every host -> board frame; bytes outside a frame are ignored until the next one
ACK_BYTE = 0x06   # starts the board's answer to a frame whose check byte matched
NAK_BYTE = 0x15   # the board's whole answer to a rejected frame (bad check byte, or no byte for the idle timeout)
NOPROG_BYTE = 0x18  # a folded build's whole answer while it has no valid program (its flash image was bad or absent)

MAX_RATE_ERROR = 0.02  # |clock / divisor / baud - 1| the board's UART may have (warpc.hdl.uart.uart_divisor)

CRC8_POLY = 0x07  # CRC-8/SMBUS: x^8 + x^2 + x + 1, init 0, not reflected, no final xor (check "123456789" = 0xF4)

# The board abandons a frame when no byte arrives for IDLE_BYTES byte times (10 bits each), but never sooner than
# IDLE_MIN_S (a USB serial adapter may pause between its packets far longer than a byte time at MBaud rates);
# in clock cycles that is rounded up to a power of two (the board's timer then needs no comparator).
IDLE_BYTES = 32
IDLE_MIN_S = 0.002


def crc8(data: bytes, crc: int = 0) -> int:
    """CRC-8/SMBUS of `data`, continuing from `crc`."""
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = ((crc << 1) ^ CRC8_POLY) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc


def crc8_matrix() -> list[list[int]]:
    """CRC-8 of one byte is linear in x = crc ^ byte: bit j of the new crc is the xor of x's bits listed in row j
    (the board builds its byte-parallel update from this)."""
    state = [{j} for j in range(8)]
    for _ in range(8):
        msb = state[7]
        state = [set()] + state[:7]
        for j in range(8):
            if (CRC8_POLY >> j) & 1:
                state[j] = state[j] ^ msb
    return [sorted(s) for s in state]


def idle_cycles(clock_hz: int, divisor: int) -> int:
    """The board's idle timeout in clock cycles for a UART of `divisor` clock cycles per bit."""
    need = max(IDLE_BYTES * 10 * divisor, math.ceil(clock_hz * IDLE_MIN_S))
    return 1 << (need - 1).bit_length()


def idle_timeout_s(baud: int) -> float:
    """An upper bound of the board's idle timeout in seconds at `baud`, whatever its clock: the power-of-two
    rounding at most doubles it, and the divisor is within MAX_RATE_ERROR of clock / baud."""
    return 2 * max(IDLE_BYTES * 10 / baud / (1 - MAX_RATE_ERROR), IDLE_MIN_S)
