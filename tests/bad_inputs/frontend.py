"""Bad inputs for `warpc train` and `warpc eval` (see harness.py for what each row asserts)."""
from __future__ import annotations

from .harness import Case

TRAIN = ["train", "--steps", "5", "--quiet", "--device", "cpu", "--widths", "30,30"]

CASES: list[Case] = [
    Case("train-unknown-dataset", lambda d, fx: [*TRAIN, "--dataset", "nosuchset", "--out", d / "m.safetensors"],
         ("nosuchset",)),
    Case("train-unknown-option", lambda d, fx: [*TRAIN, "--dataset", "iris", "--out", d / "m.safetensors",
                                                 "--no-such-flag"], ("no-such-flag",), exit_code=2),
    Case("eval-missing-checkpoint", lambda d, fx: ["eval", d / "none.safetensors"], ("none.safetensors",)),
]
