"""checkpoint / netlist -> bitstream + report.json, stage by stage (elaborate, synth, pnr, pack, equivalence).

Amaranth's platform build writes the files (RTLIL, .ys, .pcf); warpc runs the tools itself so it can time each
stage, keep every log and choose the flags. The core's blocks keep their hierarchy in synthesis (no cost when the
LUT network is SB_LUT4 instances: ABC never merges across those cells), which gives per-block resources and lets
the equivalence checks pick the core and the encoder out of the very netlist that nextpnr places.
"""
from __future__ import annotations

import hashlib
import json
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import numpy as np

from .. import __version__
from ..errors import ConfigError, ToolchainError, ToolTimeoutError
from ..ir.netlist import Netlist
from ..ir.source import compiled_netlist, sample_data
from . import equiv, tools
from .boards import load_board, platform_for
from .reference import reference_counts
from .report import summarize_build, write_report

ARTEFACTS = ("top.bin", "top.asc", "top.json", "report.json", "nextpnr.json", "stat.json", "top.il")
POPCOUNT_FORMAL_MAX = 32  # widest class group whose popcount block still gets a formal proof
# Measured (docs/backend.md, README): router1 is quicker with higher Fmax on small designs; at ~3,300 LUTs it took
# 32-186 s (quiet / loaded) while router2 took 84 s on one design and never converged on another (4 overused
# wires for 9+ min). Above this size router2 routed every Fashion-MNIST build; a stuck run falls back to router1.
ROUTER2_ABOVE_LUTS = 3500


def stamp(net: Netlist, options: dict) -> dict:
    h = hashlib.sha256(json.dumps(net.to_dict(), sort_keys=True).encode()).hexdigest()
    now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    sid = hashlib.sha256(f"{h}{json.dumps(options, sort_keys=True)}{now}".encode()).hexdigest()[:16]
    return {"id": sid, "netlist_sha256": h, "options_sha256": hashlib.sha256(
        json.dumps(options, sort_keys=True).encode()).hexdigest()[:16], "time_utc": now, "warpc_version": __version__}


def build(source, board: str = "icebreaker", out: str | Path = "build", *, pipeline: int = 1,
          toolchain: str = "yowasp", lut_cells: str | None = None, scores: bool = False, seed: int = 1,
          router: str = "auto", equivalence: bool = True, formal: bool = True, formal_timeout: float = 120,
          x=None, y=None, data_dir=None, max_vectors: int | None = None, allow_timing_fail: bool = False,
          router2_timeout: float = 300.0, progress: Callable[[str], None] | None = print) -> dict:
    """Build a bitstream for `board` from a Netlist / CompiledNet / checkpoint path / netlist JSON.

    Writes into `out`: top.bin, top.asc, every tool's log, report.json (returned as a dict). The equivalence
    check (on by default) simulates the RTL and post-synthesis core on the test set (x / the checkpoint's test
    split; random vectors if neither exists) and proves RTL == netlist formally; a mismatch raises
    EquivalenceError. DoesNotFitError when the device is too small. With router="auto", a router2 run that
    has not finished after `router2_timeout` seconds (seen: router2 cycling on 4 overused wires for 9+ minutes
    on a design that router1 routes) is stopped and place-and-route is redone with router1.
    """
    t_start = time.perf_counter()
    stages: dict[str, float] = {}
    say = progress or (lambda s: None)
    brd = load_board(board)
    lut_cells = lut_cells or brd.get("lut_cells", "sb_lut4")
    if pipeline < 0:
        raise ConfigError("pipeline must be >= 0 (0 = combinational core)")
    if router not in ("auto", "router1", "router2"):
        raise ConfigError(f"router must be auto, router1 or router2, got {router!r}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for name in ARTEFACTS:  # never leave artefacts of an earlier build beside this one's
        (out / name).unlink(missing_ok=True)
    for pattern in ("eq_*.json", "eqf_*", "*.log"):
        for p in out.glob(pattern):
            p.unlink()

    t = time.perf_counter()
    net, src_info = compiled_netlist(source, lut_size=4 if lut_cells == "sb_lut4" else None)
    stages["compile_s"] = time.perf_counter() - t
    net.save(out / "netlist.json")
    samples = sample_data(net, x=x, y=y, data_dir=data_dir)
    if samples is None:
        x_eq, y_eq = np.random.default_rng(seed).integers(0, 1 << net.input_bits, size=(1000, net.n_features)), None
        data_src = "1000 random feature vectors (no test set known)"
    else:
        x_eq, y_eq, data_src = samples.x, samples.y, samples.name
    if max_vectors:
        x_eq, y_eq = x_eq[:max_vectors], (None if y_eq is None else y_eq[:max_vectors])

    options = {"board": brd["name"], "pipeline": pipeline, "toolchain": toolchain, "lut_cells": lut_cells,
               "scores": scores, "seed": seed, "router": router}
    st = stamp(net, options)
    say(f"[elaborate] {len(net.nodes)} nodes, depth {net.depth()}, {len(net.used_inputs())} input bits used, "
        f"{net.classes} classes; build {st['id']}")

    # --- elaborate + write the plan's files ---------------------------------------------------------------
    t = time.perf_counter()
    tools.yosys_env(toolchain)
    from ..hdl.shell import BoardTop, UartShell

    clk = int(brd.get("core_clock_hz") or brd["clock"]["hz"])
    baud = int(brd["uart"]["baud"])
    shell = UartShell(net, divisor=max(4, round(clk / baud)), pipeline=pipeline, lut_cells=lut_cells, scores=scores)
    mods = {"core": "top.shell.core", "encoder": "top.shell.encoder"}
    blocks = {"encoder": "top.shell.encoder", "lutnet": "top.shell.core.lutnet",
              "popcount": "top.shell.core.popcount", "argmax": "top.shell.core.argmax", "core": "top.shell.core"}
    plat = platform_for(brd)
    plan = plat.build(
        BoardTop(shell), name="top", do_build=False,
        # -dffe_min_ce_use: an iCE40 tile's 8 LCs share one clock enable, so the serial encoder's per-feature
        # enables would each claim a tile; below 8 users, yosys folds the enable into the LUT instead
        synth_opts=f"-device {brd.get('synth_device', 'u')} -dffe_min_ce_use 8",
        script_after_read="setattr -mod -set keep_hierarchy 1 " + " ".join(blocks.values()),
        script_after_synth="tee -q -o stat.json stat -json",
    )
    plan.extract(str(out))
    stages["elaborate_s"] = time.perf_counter() - t
    say(f"[elaborate] done in {stages['elaborate_s']:.1f} s (latency {shell.core.latency} cycles)")

    yosys = tools.tool(toolchain, "yosys")
    _, stages["synth_s"] = tools.run([yosys, "-q", "-l", "yosys.log", "top.ys"], out, out / "yosys.stdout.log",
                                     "synth", say)
    stat = json.loads((out / "stat.json").read_text())
    n_lut = _count(stat, "SB_LUT4")
    rt = router if router != "auto" else ("router2" if n_lut > ROUTER2_ABOVE_LUTS else "router1")
    options["router_used"] = rt

    nextpnr = tools.tool(toolchain, "nextpnr-ice40")

    def pnr_cmd(rt: str) -> list[str]:
        cmd = [nextpnr, "--quiet", "--log", "nextpnr.log", brd.get("nextpnr_device", "--up5k"), "--package",
               brd.get("nextpnr_package", "sg48"), "--json", "top.json", "--pcf", "top.pcf", "--asc", "top.asc",
               "--report", "nextpnr.json", "--seed", str(seed), "--router", rt]
        return cmd + (["--timing-allow-fail"] if allow_timing_fail else [])

    t = time.perf_counter()
    try:
        try:
            limit = router2_timeout if (router == "auto" and rt == "router2") else None
            tools.run(pnr_cmd(rt), out, out / "nextpnr.stdout.log", "place-and-route", say, timeout=limit)
        except ToolTimeoutError:
            say("[place-and-route] router2 did not converge in time; routing again with router1")
            options["router_used"] = "router1 (router2 timed out)"
            tools.run(pnr_cmd("router1"), out, out / "nextpnr.stdout.log", "place-and-route", say)
    except ToolchainError as e:
        from .report import parse_stat

        tools.raise_if_does_not_fit(out / "nextpnr.log", brd["device"], parse_stat(stat, blocks)["blocks"])
        log = (out / "nextpnr.log").read_text(errors="replace") if (out / "nextpnr.log").exists() else ""
        if "FAIL at" in log:
            raise ToolchainError(f"timing not met at {clk / 1e6:g} MHz: {_fmax_lines(log)}. Pipeline deeper "
                                 f"(--pipeline N, fewer LUT levels per stage) or pass --allow-timing-fail. "
                                 f"Log: {out / 'nextpnr.log'}") from None
        raise e
    stages["pnr_s"] = time.perf_counter() - t
    icepack = tools.tool(toolchain, "icepack")
    _, stages["pack_s"] = tools.run([icepack, "top.asc", "top.bin"], out, out / "icepack.log", "icepack", say)

    # --- equivalence ---------------------------------------------------------------------------------------
    eq: dict = {"enabled": bool(equivalence), "data": data_src, "vectors": int(len(x_eq))}
    ref = reference_counts(net, x_eq)
    if equivalence:
        t = time.perf_counter()
        eq["export_s"] = round(equiv.export_modules(yosys, out, mods), 2)
        lat = shell.core.latency
        sims = {}
        for level in ("rtl", "gate"):
            what = "RTL core" if level == "rtl" else "post-synthesis core"
            say(f"[equivalence] simulating the {what} on {len(x_eq)} vectors")
            sims[f"core_{level}"] = equiv.check_core(out / f"eq_core_{level}.json", net, x_eq, ref, lat, what)
            what = "RTL serial encoder" if level == "rtl" else "post-synthesis serial encoder"
            say(f"[equivalence] simulating the {what}")
            sims[f"encoder_{level}"] = equiv.check_encoder(out / f"eq_encoder_{level}.json", net, x_eq, what)
        eq["simulation"] = sims
        eq["simulation_passed"] = True
        stages["equiv_sim_s"] = time.perf_counter() - t
        say(f"[equivalence] simulation passed: {len(x_eq)} vectors x (RTL, netlist) x (core, encoder) "
            f"in {stages['equiv_sim_s']:.1f} s")
        if formal:
            t = time.perf_counter()
            say("[formal] yosys equiv_* RTL vs synthesised netlist, per block")
            fmods = {k: v for k, v in blocks.items() if k != "core"}  # per block: small proofs, clear limits
            widest = max(len(g) for g in net.outputs)
            skipped = {}
            if widest > POPCOUNT_FORMAL_MAX:  # measured: a 100-bit popcount was not proven in 600 s
                fmods.pop("popcount")
                skipped["popcount"] = {"status": "skipped", "seconds": 0.0, "equiv_cells": None,
                                       "why": f"{widest}-bit popcount > {POPCOUNT_FORMAL_MAX}: SAT does not finish in "
                                              "minutes (Yosys restructures adder trees); covered by simulation"}
            eq["formal"] = equiv.formal_check(yosys, out, fmods, timeout=formal_timeout)
            eq["formal"]["modules"].update(skipped)
            eq["formal"]["complete"] = eq["formal"]["complete"] and not skipped
            stages["formal_s"] = time.perf_counter() - t
            say("[formal] " + ", ".join(f"{k} {v['status']} ({v['seconds']} s)"
                                        for k, v in eq["formal"]["modules"].items()))
        eq["passed"] = eq["simulation_passed"] and (not formal or eq["formal"]["passed"])
        eq["formally_complete"] = bool(formal and eq["formal"]["complete"])
    pred = np.argmax(ref, axis=1)
    acc = None if y_eq is None else {"accuracy": float((pred == y_eq).mean()), "samples": int(len(y_eq)),
                                     "data": data_src, "how": "predictions of the simulated design (== IR, checked)"
                                     if equivalence else "IR emulator (equivalence disabled)"}
    stages["total_s"] = time.perf_counter() - t_start
    report = summarize_build(out, brd, net, shell, options, st, stages, eq, acc, src_info, blocks)
    write_report(out, report)
    say(f"[done] {out / 'top.bin'}  LC {report.get('LC')}  Fmax {report.get('Fmax_MHz')} MHz  "
        f"latency {report['Latency_cycles']} cycles  in {stages['total_s']:.1f} s")
    return report


def _count(stat: dict, cell: str) -> int:
    d = stat.get("design", {})
    return int(d.get("num_cells_by_type", {}).get(cell, 0))


def _fmax_lines(log: str) -> str:
    lines = [ln.split("Info:")[-1].strip() for ln in log.splitlines() if "Max frequency for clock" in ln]
    return "; ".join(lines[-2:]) or "see log"
