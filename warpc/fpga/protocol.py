"""Host side of the UART protocol documented in warpc.hdl.shell (no hardware imports here): frames, replies, and
`BoardModel`, the board's receive/answer state machine in Python (the simulated board and the tests use it)."""
from __future__ import annotations

from typing import Callable

import numpy as np

from ..hdl.framing import ACK_BYTE, MAX_RATE_ERROR, NAK_BYTE, NOPROG_BYTE, SYNC_BYTE, crc8, idle_timeout_s

__all__ = ["ACK_BYTE", "MAX_RATE_ERROR", "NAK_BYTE", "SYNC_BYTE", "crc8", "idle_timeout_s", "frame_bytes",
           "reply_length", "parse_reply", "reply_bytes", "read_reply", "BoardModel"]


def frame_bytes(x_row, input_bits: int) -> bytes:
    """One sample's raw features -> SYNC_BYTE + each feature as ceil(input_bits/8) little-endian bytes + CRC-8 of
    the feature bytes."""
    fb = -(-input_bits // 8)
    feats = bytearray()
    for v in np.asarray(x_row, dtype=np.int64).tolist():
        feats += int(v).to_bytes(fb, "little")
    return bytes([SYNC_BYTE]) + bytes(feats) + bytes([crc8(feats)])


def reply_length(classes: int, score_bits: int, scores: bool) -> int:
    """Bytes of a reply's payload (class, then the scores when the build sends them), without ACK and check."""
    return 1 + (classes * (-(-score_bits // 8)) if scores else 0)


def parse_reply(payload: bytes, classes: int, score_bits: int, scores: bool) -> tuple[int, list[int] | None]:
    sb = -(-score_bits // 8)
    cls = payload[0]
    if not scores:
        return cls, None
    return cls, [int.from_bytes(payload[1 + c * sb : 1 + (c + 1) * sb], "little") for c in range(classes)]


def reply_bytes(payload: bytes) -> bytes:
    """What the board sends for an accepted frame: ACK + payload + CRC-8 of the payload."""
    return bytes([ACK_BYTE]) + bytes(payload) + bytes([crc8(payload)])


def read_reply(port, n_payload: int) -> tuple[str, bytes]:
    """Read one reply: ("ok", payload), or (problem, what was read) with problem "nak", "noprog" (a folded
    build without a valid program image), "timeout" (fewer bytes
    than a reply within the port's timeout), "bad start" (neither ACK nor NAK) or "bad check" (CRC mismatch)."""
    first = port.read(1)
    if len(first) < 1:
        return "timeout", b""
    if first[0] == NAK_BYTE:
        return "nak", first
    if first[0] == NOPROG_BYTE:
        return "noprog", first
    if first[0] != ACK_BYTE:
        return "bad start", first
    rest = port.read(n_payload + 1)
    got = first + rest
    if len(rest) < n_payload + 1:
        return "timeout", got
    if crc8(got[1:-1]) != got[-1]:
        return "bad check", got
    return "ok", got[1:-1]


class BoardModel:
    """The shell's protocol state machine, byte by byte: `feed(data)` returns the board's replies to it,
    `idle()` what it sends when its idle timeout passes (a NAK if a frame was in progress). `answer(x_row)` gives
    the payload for a sample's raw features (masked to input_bits)."""

    def __init__(self, n_features: int, input_bits: int, answer: Callable[[np.ndarray], bytes]) -> None:
        self.n_features, self.input_bits, self.answer = n_features, input_bits, answer
        self.fb = -(-input_bits // 8)
        self.frame: bytearray | None = None  # bytes of the frame in progress (SYNC included)
        self.frames = 0                       # frames answered (ACK)
        self.rejected = 0                     # frames answered with a NAK

    def feed(self, data: bytes) -> bytes:
        out = bytearray()
        need = 2 + self.n_features * self.fb
        for byte in data:
            if self.frame is None:
                if byte == SYNC_BYTE:
                    self.frame = bytearray([byte])
                continue
            self.frame.append(byte)
            if len(self.frame) == need:
                f, self.frame = bytes(self.frame), None
                if crc8(f[1:-1]) != f[-1]:
                    self.rejected += 1
                    out.append(NAK_BYTE)
                    continue
                mask = (1 << self.input_bits) - 1
                x = np.array([int.from_bytes(f[1 + i * self.fb:1 + (i + 1) * self.fb], "little") & mask
                              for i in range(self.n_features)], dtype=np.int64)
                self.frames += 1
                out += reply_bytes(self.answer(x))
        return bytes(out)

    def idle(self) -> bytes:
        if self.frame is None:
            return b""
        self.frame = None
        self.rejected += 1
        return bytes([NAK_BYTE])
