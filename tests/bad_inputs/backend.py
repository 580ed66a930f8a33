"""Bad inputs for `warpc hdl / synth / report / flash / run` (see harness.py for what each row asserts)."""
from __future__ import annotations

from .harness import Case

CASES: list[Case] = [
    Case("synth-unknown-board", lambda d, fx: ["synth", fx.ckpt, "--board", "nosuchboard", "-o", d / "b"],
         ("nosuchboard",)),
    Case("report-missing-folder", lambda d, fx: ["report", d / "nothing"], ("nothing",)),
]
