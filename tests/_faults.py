"""Line faults for the UART protocol tests (board shell in simulation, host against a fake serial port)."""
from __future__ import annotations

from warpc.hdl.framing import SYNC_BYTE


def damage(data: bytes, kind: str, at: int, corrupt_mask: int = 0x41) -> bytes:
    """`data` with one fault at byte `at` (modulo the length): "drop", "duplicate", "corrupt" (xor
    `corrupt_mask`), "extra" (a SYNC byte inserted) or "noise" (three bytes, one of them SYNC, in front)."""
    f = bytearray(data)
    at = at % len(f) if f else 0
    if kind == "drop":
        del f[at]
    elif kind == "duplicate":
        f.insert(at, f[at])
    elif kind == "corrupt":
        f[at] ^= corrupt_mask
    elif kind == "extra":
        f.insert(at, SYNC_BYTE)
    elif kind == "noise":
        f[:0] = bytes([0x00, SYNC_BYTE, 0x12])
    else:
        raise ValueError(f"unknown fault {kind!r}")
    return bytes(f)
