"""Bad checkpoints, configs and data files: every command that reads them must refuse them with one line naming the
bad tensor / field / file (see harness.py for what each row asserts)."""
from __future__ import annotations

from .harness import Case


def _write(path, data: bytes):
    path.write_bytes(data)
    return path


CASES: list[Case] = [
    Case("ckpt-not-safetensors", lambda d, fx: ["eval", _write(d / "x.safetensors", b"garbage")],
         ("x.safetensors",)),
]
