"""Host side of the UART framing documented in warpc.hdl.shell (no hardware imports here)."""
from __future__ import annotations

import numpy as np

from ..hdl.framing import SYNC_BYTE


def frame_bytes(x_row, input_bits: int) -> bytes:
    """One sample's raw features -> SYNC_BYTE + each feature as ceil(input_bits/8) little-endian bytes."""
    fb = -(-input_bits // 8)
    out = bytearray([SYNC_BYTE])
    for v in np.asarray(x_row, dtype=np.int64).tolist():
        out += int(v).to_bytes(fb, "little")
    return bytes(out)


def reply_length(classes: int, score_bits: int, scores: bool) -> int:
    return 1 + (classes * (-(-score_bits // 8)) if scores else 0)


def parse_reply(data: bytes, classes: int, score_bits: int, scores: bool) -> tuple[int, list[int] | None]:
    sb = -(-score_bits // 8)
    cls = data[0]
    if not scores:
        return cls, None
    return cls, [int.from_bytes(data[1 + c * sb : 1 + (c + 1) * sb], "little") for c in range(classes)]
