"""Running the FPGA tools: which executables (YoWASP from PyPI or native from PATH), one log per run, progress
while it runs, and one clear error with the log's last lines when a tool fails."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Callable

from ..errors import DoesNotFitError, ToolchainError, ToolTimeoutError
from ..families import ICE40, Family

TOOLCHAINS = ("yowasp", "native")  # the tools of each family per toolchain: warpc.families
Progress = Callable[[str], None]


def tool(toolchain: str, role: str, family: Family = ICE40) -> str:
    """The executable for `role` (yosys, nextpnr, pack) of `family` in `toolchain`; ToolchainError if missing."""
    if toolchain not in TOOLCHAINS:
        raise ToolchainError(f"unknown toolchain {toolchain!r}; choose one of {', '.join(TOOLCHAINS)}")
    exe = family.tools[toolchain][role]
    if shutil.which(exe) is None:
        hint = family.pip_hint if toolchain == "yowasp" else "install it or use --toolchain yowasp"
        raise ToolchainError(f"{exe} not found on PATH ({hint})")
    return exe


def yosys_env(toolchain: str = "yowasp") -> None:
    """Amaranth's Verilog backend finds Yosys through $YOSYS; Debian's /usr/bin/yosys 0.23 is too old for it,
    so point it at the chosen toolchain explicitly (unless the user already set it)."""
    os.environ.setdefault("YOSYS", ICE40.tools.get(toolchain, ICE40.tools["yowasp"])["yosys"])


def tail(path: Path, n: int = 15) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join("    " + ln for ln in lines[-n:])


_R2 = re.compile(r"iter=(\d+) wires=\d+ overused=(\d+)")
_R1 = re.compile(r"^Info:\s+(\d+) \|\s+\d+\s+\d+ \|\s+\d+\s+\d+ \|\s+(\d+)\|", re.M)


def nextpnr_status(log: Path) -> str:
    """Where a running nextpnr is, from the tail of its log: placing, or routing with router2's overused wires /
    router1's arcs left (so a long place-and-route on a big device shows that it moves)."""
    try:
        with open(log, "rb") as fh:
            fh.seek(0, 2)
            fh.seek(max(0, fh.tell() - 6000))
            text = fh.read().decode(errors="replace")
    except OSError:
        return ""
    r2 = _R2.findall(text)
    if r2:
        return f"routing (router2 iteration {r2[-1][0]}, {int(r2[-1][1]):,} overused wires)"
    r1 = _R1.findall(text)
    if r1:
        return f"routing (router1 iteration {int(r1[-1][0]):,}, {int(r1[-1][1]):,} arcs left)"
    if "Routing" in text or "router" in text:
        return "routing"
    if "placer" in text or "Placed" in text or "HeAP" in text:
        return "placing"
    return ""


def run(cmd: list[str], cwd: Path, log: Path, stage: str, progress: Progress | None = None,
        every: float = 15.0, ok: tuple[int, ...] = (0,), timeout: float | None = None,
        status: Callable[[], str] | None = None) -> tuple[int, float]:
    """Run cmd in cwd with stdout+stderr into `log`; report `stage` progress every `every` seconds (with
    `status()` appended, e.g. nextpnr_status).
    Returns (exit code, seconds); raises ToolchainError for an exit code not in `ok`, ToolTimeoutError (after
    killing the tool) when it runs longer than `timeout` seconds."""
    t0 = time.perf_counter()
    if progress:
        progress(f"[{stage}] {' '.join(cmd)}")
    with open(log, "w") as fh:
        try:
            p = subprocess.Popen(cmd, cwd=cwd, stdout=fh, stderr=subprocess.STDOUT)
        except OSError as e:
            raise ToolchainError(f"{stage}: cannot start {cmd[0]}: {e}") from None
        nxt = every
        while True:
            try:
                rc = p.wait(timeout=0.5)
                break
            except subprocess.TimeoutExpired:
                el = time.perf_counter() - t0
                if timeout is not None and el > timeout:
                    p.kill()
                    p.wait()
                    if progress:
                        progress(f"[{stage}] stopped after {el:.0f} s (limit {timeout:g} s)")
                    raise ToolTimeoutError(f"{stage}: {cmd[0]} stopped after {el:.0f} s (limit {timeout:g} s); "
                                           f"log: {log}") from None
                if progress and el >= nxt:
                    extra = status() if status else ""
                    progress(f"[{stage}] running, {el:.0f} s" + (f": {extra}" if extra else ""))
                    nxt += every
            except KeyboardInterrupt:
                p.kill()
                raise
    dt = time.perf_counter() - t0
    if progress:
        progress(f"[{stage}] done in {dt:.1f} s (exit {rc})")
    if rc not in ok:
        raise ToolchainError(f"{stage} failed ({cmd[0]} exit {rc}) after {dt:.1f} s; last lines of {log}:\n{tail(log)}")
    return rc, dt


_UTIL = re.compile(r"^\s*(?:Info:\s*)?\s*([A-Z][A-Z0-9_]+):\s+(\d+)\s*/\s*(\d+)\s+(\d+)%", re.M)


def parse_utilisation(log_text: str) -> dict[str, dict[str, int]]:
    """nextpnr's 'Device utilisation' table -> {cell: {used, available}} (the last table in the log)."""
    found: dict[str, dict[str, int]] = {}
    for m in _UTIL.finditer(log_text):
        found[m.group(1)] = {"used": int(m.group(2)), "available": int(m.group(3))}
    return found


def raise_if_does_not_fit(log: Path, device: str, blocks: dict | None = None, family: Family = ICE40) -> None:
    text = log.read_text(errors="replace") if log.exists() else ""
    legal = "Unable to find legal placement" in text
    if not (legal or any(m in text for m in ("no BELs remaining", "Unable to place", "Failed to expand region"))):
        return
    util = parse_utilisation(text)
    over = {k: v for k, v in util.items() if v["used"] > v["available"]}
    parts = [f"{k} {v['used']}/{v['available']}" for k, v in (over or util).items()]
    io = util.get(family.util_keys["IO"]) or util.get("ICESTORM_IO")
    bram = util.get(family.util_keys["BRAM"])
    extra = []
    if io and io not in over.values():
        extra.append(f"IO {io['used']}/{io['available']}")
    if bram and bram not in over.values():
        extra.append(f"BRAM {bram['used']}/{bram['available']}")
    per_block = ", ".join(f"{k} {v.get('LUT', 0)}" for k, v in (blocks or {}).items())
    lc = family.logic_cells(util)
    unit = "LCs" if family.logic_unit == "LC" else f"logic cells ({family.logic_cell_name})"
    need = (f"needs {lc['used']} {unit}, the {device} has {lc['available']}" if lc else "does not fit")
    if legal and lc:
        need = (f"placement failed with {lc['used']} of {lc['available']} {unit} used (tiles share clock enables "
                "and resets, so a nearly full device may not place)")
    raise DoesNotFitError(
        f"the design does not fit the {device}: {need} (over capacity: {', '.join(parts) or 'see log'}"
        + (f"; also {', '.join(extra)}" if extra else "")
        + ")" + (f"; synthesised LUTs per block: {per_block}"
                 " (class counting costs ~1.7 LCs per counted bit at one sample per clock)" if blocks else "")
        + f". Shrink the model (narrower last layer, fewer nodes), count over more cycles (--interval N) or "
          f"choose a bigger device. Log: {log}"
    )
