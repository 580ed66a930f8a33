"""The bad-input table's harness. A case builds its inputs in a fresh folder and returns the CLI arguments; the
harness runs `warpc` in-process and asserts the project's promise for user mistakes:

- a non-zero exit (1 for WarpcError, 2 for command-line usage errors),
- exactly one line on stderr, starting with ``error:`` and containing the case's expected words,
- no traceback (no exception escapes the CLI),
- no file that existed before the command was changed, replaced or removed (new files may appear only where the
  case allows it).

Tables live beside this file, one per stage (frontend.py: train/eval runs; checkpoints.py: bad checkpoints,
configs and data files; middle.py; backend.py), each a list `CASES`;
tests/test_bad_inputs.py runs them all. Add rows with every new option or input.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from click.testing import CliRunner


@dataclass
class Fixtures:
    """Valid artefacts the cases start from (built once per session; cases copy what they corrupt)."""

    ckpt: Path            # a small trained iris checkpoint (widths 30,30; 3 classes; 4 features)
    netlist: Path         # its compiled netlist JSON (warpc compile)
    build_dir: Path       # a fake finished build folder: report.json + netlist.json + top.bin (no toolchain run)


@dataclass
class Case:
    id: str
    make: Callable[[Path, Fixtures], list[str]]   # (empty case folder, fixtures) -> CLI arguments
    expect: tuple[str, ...] = ()                   # words the error line must contain (case-insensitive)
    exit_code: int | None = None                   # None: any non-zero
    may_create: tuple[str, ...] = ()               # glob patterns of new files the command may leave behind
    env: dict = field(default_factory=dict)        # environment for the run (e.g. WARPC_BOARDS)


def snapshot(root: Path) -> dict[str, str]:
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_file() and not p.is_symlink():
            out[str(p.relative_to(root))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def run_case(case: Case, folder: Path, fx: Fixtures) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    args = [str(a) for a in case.make(folder, fx)]
    before = snapshot(folder)
    fixtures_before = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in (fx.ckpt, fx.netlist)}
    old_env = {k: os.environ.get(k) for k in case.env}
    os.environ.update({k: str(v) for k, v in case.env.items()})
    old_cwd = Path.cwd()
    os.chdir(folder)
    try:
        from warpc.cli import main

        res = CliRunner().invoke(main, args, catch_exceptions=True)
    finally:
        os.chdir(old_cwd)
        for k, v in old_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    where = f"warpc {' '.join(args)}"
    exc = res.exception
    assert exc is None or isinstance(exc, SystemExit), (
        f"{where}: traceback ({type(exc).__name__}: {exc})")
    assert res.exit_code != 0, f"{where}: exited 0\n{res.output}"
    if case.exit_code is not None:
        assert res.exit_code == case.exit_code, f"{where}: exit {res.exit_code}\n{res.stderr}"
    err_lines = [ln for ln in res.stderr.strip().splitlines() if ln.strip()]
    assert len(err_lines) == 1 and err_lines[0].startswith("error: "), f"{where}: stderr is\n{res.stderr}"
    assert "Traceback" not in res.output
    line = err_lines[0].lower()
    for w in case.expect:
        assert w.lower() in line, f"{where}: {w!r} not in {err_lines[0]!r}"
    after = snapshot(folder)
    changed = [p for p, h in before.items() if after.get(p) != h]
    assert not changed, f"{where}: changed or removed pre-existing files {changed}"
    import fnmatch

    new = [p for p in after if p not in before and not any(fnmatch.fnmatch(p, g) for g in case.may_create)]
    assert not new, f"{where}: left new files {new}"
    for p, h in fixtures_before.items():
        assert hashlib.sha256(p.read_bytes()).hexdigest() == h, f"{where}: modified the shared fixture {p}"
