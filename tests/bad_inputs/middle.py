"""Bad inputs for `warpc compile` and `warpc predict` (see harness.py for what each row asserts)."""
from __future__ import annotations

from .harness import Case


def _write(path, text):
    path.write_text(text)
    return path


CASES: list[Case] = [
    Case("compile-netlist-not-json", lambda d, fx: ["compile", _write(d / "n.json", "{not json"), "-o", d / "out"],
         ("n.json",)),
]
