"""checkpoint / netlist -> bitstream + report.json, stage by stage:

prepare (validate options, board, toolchain, source, samples: nothing on disk yet) -> elaborate (in memory) ->
claim the build folder (remove only the previous build's own files, see outdir.py) -> synth -> place-and-route
(router fallback) -> pack -> equivalence simulation -> formal -> report.

Amaranth's platform build writes the files (RTLIL, .ys, .pcf); warpc runs the tools itself so it can time each
stage, keep every log and choose the flags. The core's blocks keep their hierarchy in synthesis (no cost when the
LUT network is SB_LUT4 instances: ABC never merges across those cells), which gives per-block resources and lets
the equivalence checks pick the core and the encoder out of the very netlist that nextpnr places.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, fields, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .. import __version__
from ..errors import ConfigError, DoesNotFitError, ToolchainError, ToolTimeoutError, WarpcError
from ..ir.emulate import argmax_lowest, emulate_counts
from ..ir.netlist import Netlist
from ..ir.source import compiled_netlist, sample_data
from . import equiv, tools
from .boards import LUT_CELLS, Board, load_board, platform_for
from .outdir import BuildDir
from .report import parse_nextpnr, parse_stat, summarize_build, write_report

TOP = "top"  # the design's name: top.il, top.json, top.bin and the hierarchy's root module
# Measured (docs/backend.md): on the combinational-popcount designs router1 was quicker below ~3,500 LUTs; on the
# pipelined cell-based counters router1 stalled for 6+ minutes on the default digits design (14,423 arcs left,
# no progress) while router2 routed it in 50 s. Router2 first; a run that does not converge falls back to router1.
ROUTER2_ABOVE_LUTS = 0
ROUTERS = ("auto", "router1", "router2")
ARCHS = ("auto", "spatial", "folded")
PLACER_DENSITY = (0.9, 0.98)  # nextpnr heap placer density: its default, and the retry for nearly full devices
RANDOM_VECTORS = 1000  # equivalence vectors when no test set is known
MAX_PNR_SEEDS = 16
# what the tool stages write (the family's packer files, the elaborated plan's files and the equivalence files are
# added per build)
TOOL_FILES = {"netlist.json", "yosys.log", "yosys.stdout.log", f"{TOP}.json", "stat.json", "nextpnr.log",
              "nextpnr.stdout.log", "nextpnr.json", "report.json"}
Progress = Callable[[str], None]


@dataclass
class BuildOptions:
    """How a build runs; `validate` is the one place that checks them."""

    pipeline: int = 1                 # LUT levels per pipeline stage (0 = combinational core)
    interval: int = 1                 # cycles per sample (II): 1 = a sample per clock; N > 1 counts over N cycles
    toolchain: str = "yowasp"         # yowasp (PyPI) or native (PATH)
    lut_cells: str | None = None      # sb_lut4 / portable; None = the board's choice
    scores: bool = False              # the UART reply carries the class scores
    seed: int = 1                     # nextpnr placement seed (and the random vectors' seed)
    pnr_seeds: int = 1                # place and route with seeds seed .. seed + N - 1 (in parallel), keep the fastest
    router: str = "auto"              # auto, router1, router2
    router2_timeout: float = 300.0    # with router auto: seconds before a stuck router2 is redone with router1
    equivalence: bool = True          # simulate RTL and netlist against the IR
    formal: bool = True               # prove RTL == netlist per block (needs equivalence)
    formal_timeout: float = 120.0     # seconds per block
    max_vectors: int | None = None    # check only the first N vectors
    allow_timing_fail: bool = False   # keep the bitstream even if Fmax < the board clock
    baud: int | None = None           # UART rate (bits/s); None = the board's (uart.baud in its .json)
    estimate_check: bool = True       # refuse before synthesis when the estimate is clearly over the device
    arch: str = "auto"                # spatial (a LUT per node), folded (nodes streamed from memory), auto
    hard_carry: bool | None = None    # ECP5 / Gowin: the tree counters on the hard carry chain (CCU2C / ALU);
                                      # None = by size (HARD_CARRY_MAX_LUTS)
    core_clock: float | None = None   # MHz: the core on a PLL clock of its own, the shell on the board's

    @classmethod
    def from_kwargs(cls, **kwargs: Any) -> "BuildOptions":
        names = [f.name for f in fields(cls)]
        unknown = sorted(set(kwargs) - set(names))
        if unknown:
            raise ConfigError(f"unknown build option(s) {', '.join(unknown)}; known: {', '.join(names)}")
        return cls(**kwargs).validate()

    def validate(self) -> "BuildOptions":
        def flag(name: str) -> str:
            return f"{name} (--{name.replace('_', '-')})"

        def integer(name: str, low: int) -> None:
            v = getattr(self, name)
            if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < low:
                raise ConfigError(f"{flag(name)} must be an integer >= {low}, got {v!r}")

        integer("pipeline", 0)
        integer("interval", 1)
        integer("seed", 0)
        integer("pnr_seeds", 1)
        if self.pnr_seeds > MAX_PNR_SEEDS:
            raise ConfigError(f"pnr_seeds (--pnr-seeds) must be at most {MAX_PNR_SEEDS}, got {self.pnr_seeds}")
        if self.baud is not None:
            integer("baud", 1)
        if self.max_vectors is not None:
            integer("max_vectors", 1)
        for name in ("router2_timeout", "formal_timeout"):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or isinstance(v, bool) or not (0 < v < math.inf):
                raise ConfigError(f"{flag(name)} must be a positive number of seconds, got {v!r}")
        if self.core_clock is not None:
            v = self.core_clock
            if not isinstance(v, (int, float, np.integer, np.floating)) or isinstance(v, bool) or not 0 < v < math.inf:
                raise ConfigError(f"core_clock (--core-clock) must be a positive number of MHz, got {v!r}")
        if self.hard_carry is not None and not isinstance(self.hard_carry, (bool, np.bool_)):
            raise ConfigError(f"hard_carry must be True, False or None (by size), got {self.hard_carry!r}")
        for name in ("scores", "equivalence", "formal", "allow_timing_fail", "estimate_check"):
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                raise ConfigError(f"{name} must be True or False, got {getattr(self, name)!r}")
        if self.arch not in ARCHS:
            raise ConfigError(f"arch (--arch) must be one of {', '.join(ARCHS)}, got {self.arch!r}")
        if self.router not in ROUTERS:
            raise ConfigError(f"router (--router) must be one of {', '.join(ROUTERS)}, got {self.router!r}")
        if self.toolchain not in tools.TOOLCHAINS:
            raise ConfigError(f"toolchain (--toolchain) must be one of {', '.join(tools.TOOLCHAINS)}, "
                              f"got {self.toolchain!r}")
        if self.lut_cells is not None and self.lut_cells not in LUT_CELLS:
            raise ConfigError(f"lut_cells (--lut-cells) must be one of {', '.join(LUT_CELLS)}, got {self.lut_cells!r}")
        return self


@dataclass
class Build:
    """One build's state, handed from stage to stage."""

    out: Path
    board: Board
    board_arg: str
    opts: BuildOptions
    lut_cells: str
    net: Netlist
    src_info: dict
    x: np.ndarray                     # equivalence / accuracy vectors
    y: np.ndarray | None
    data_name: str
    say: Progress
    exe: dict[str, str]               # tool name -> executable
    stamp: dict = field(default_factory=dict)
    stages: dict[str, float] = field(default_factory=dict)
    options: dict = field(default_factory=dict)   # recorded in the report
    blocks: dict[str, str] = field(default_factory=dict)
    shell: Any = None
    plan: Any = None
    platform: Any = None              # the board's Amaranth platform (its device / package / constraint files)
    stat: dict = field(default_factory=dict)
    eq: dict = field(default_factory=dict)
    estimate: dict = field(default_factory=dict)  # warpc.fpga.estimate's prediction (checked before synthesis)
    arch: str = "spatial"             # the architecture chosen (BuildOptions.arch resolved)
    prog: Any = None                  # the folded program (arch folded)
    image: dict = field(default_factory=dict)     # the program image file (arch folded)
    hard_carry: bool = True           # BuildOptions.hard_carry resolved


def build(source, board: str | Path = "icebreaker", out: str | Path = "build", *, x=None, y=None,
          dataset: str | Path | None = None, data_dir=None, progress: Progress | None = print,
          options: BuildOptions | None = None, **kwargs: Any) -> dict:
    """Build a bitstream for `board` (a catalogue name or a board .json path) from a Netlist / CompiledNet /
    checkpoint path / netlist JSON; `kwargs` are BuildOptions fields (pipeline, router, seed, ...).

    Writes into `out`: top.bin, top.asc, every tool's log, report.json (returned as a dict) and a manifest of
    these files. Everything is validated before `out` is touched, and only files an earlier warpc build wrote
    there are removed. The equivalence check (on by default) simulates the RTL and post-synthesis core on the
    test set (x / `dataset` / the checkpoint's test split; random vectors if none is known) and proves RTL ==
    netlist formally; a mismatch raises EquivalenceError. DoesNotFitError when the device is too small.
    """
    if options is not None and kwargs:
        raise ConfigError("pass either options=BuildOptions(...) or option keywords, not both")
    opts = (options.validate() if options is not None else BuildOptions.from_kwargs(**kwargs))
    say = progress or (lambda s: None)
    t_start = time.perf_counter()
    held = _HeldProgress(say)
    try:
        b = prepare(source, board, out, opts, x=x, y=y, dataset=dataset, data_dir=data_dir, say=held)
        elaborate(b)
        bdir = BuildDir(b.out, planned_files(b))
        bdir.check()
        bdir.open(b.stamp["id"])  # the first change on disk
    finally:
        held.stop()
    held.release()
    b.say = say
    status = "failed"
    try:
        write_sources(b)
        synthesize(b)
        place_and_route(b)
        pack(b)
        ref = emulate_counts(b.net, b.x)
        if b.opts.equivalence:
            simulate_equivalence(b, ref)
            if b.opts.formal:
                prove_formal(b)
        b.stages["total_s"] = time.perf_counter() - t_start
        report = make_report(b, ref)
        status = "done"
    finally:
        bdir.close(status)
    say(f"[done] {b.out / b.board.family.bitstream}  LC {report.get('LC')}  Fmax {report.get('Fmax_MHz')} MHz  "
        f"latency {report['Latency_cycles']} cycles  in {b.stages['total_s']:.1f} s")
    return report


class _HeldProgress:
    """Progress lines of the validation stages are held back for `grace` seconds: input that fails at once gives
    its one error line alone, while a slow validation (compiling a large checkpoint) still says what it does."""

    def __init__(self, say: Progress, grace: float = 1.0) -> None:
        self.say, self.held, self.live = say, [], False
        self.lock = threading.Lock()
        self.timer = threading.Timer(grace, self.release)
        self.timer.daemon = True
        self.timer.start()

    def __call__(self, msg: str) -> None:
        with self.lock:
            if self.live:
                self.say(msg)
            else:
                self.held.append(msg)

    def release(self) -> None:
        with self.lock:
            self.live = True
            for msg in self.held:
                self.say(msg)
            self.held.clear()

    def stop(self) -> None:
        self.timer.cancel()


def _timed(b: Build, key: str, t0: float) -> float:
    b.stages[key] = time.perf_counter() - t0
    return b.stages[key]


def prepare(source, board: str | Path, out: str | Path, opts: BuildOptions, *, x=None, y=None, dataset=None,
            data_dir=None, say: Progress = print) -> Build:
    """Every check that can fail on the user's input, before anything is written: board and its platform, the
    toolchain's executables, the output path, the source (compiled here), the samples (shape and labels)."""
    brd = load_board(board)
    platform_for(brd)
    from ..hdl.uart import uart_divisor

    if opts.core_clock is not None:
        brd = _split_clock_board(brd, opts)
    uart_divisor(brd.shell_clock_hz, opts.baud or brd.baud)  # ConfigError: too fast, or > 2 % off at this clock
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"-o {out} is a file, not a folder; give a folder for the build")
    lut_cells = opts.lut_cells or brd.lut_cells
    fam = brd.family
    if lut_cells not in (fam.cell_style, "portable"):
        raise ConfigError(f"lut_cells (--lut-cells) {lut_cells!r} does not apply to the {brd.name} ({fam.title}); "
                          f"choose {fam.cell_style} or portable")
    if opts.arch == "folded" and fam.name != "ice40":
        raise ConfigError(f"the folded architecture needs the iCE40 UP5K's SPRAM and SPI-flash boot; the "
                          f"{brd.name} ({fam.title}) builds spatial designs (--arch spatial)")
    if opts.arch == "folded" and opts.interval != 1:
        raise ConfigError("--interval applies to the spatial architecture; a folded build takes as many cycles per "
                          "sample as its program has words (the report gives them)")
    t = time.perf_counter()
    arch, prog = opts.arch, None
    if arch != "folded":
        say(f"[compile] {source if isinstance(source, (str, Path)) else type(source).__name__} -> netlist "
            f"({'4-input LUTs' if lut_cells != 'portable' else 'any LUT size'})")
        net, src_info = compiled_netlist(source, lut_size=4 if lut_cells != "portable" else None)
        from ..hdl.core import check_buildable, check_interval, check_lut_cells

        check_buildable(net)
        check_lut_cells(net, lut_cells)
        check_interval(net, opts.pipeline, opts.interval)
        compile_s = time.perf_counter() - t
        say(f"[compile] done in {compile_s:.1f} s: {len(net.nodes)} nodes, depth {net.depth()}, "
            f"{len(net.used_inputs())} input bits used, {net.classes} classes")
        est = _estimate(net, brd, opts, lut_cells, say, check=arch == "spatial" or fam.name != "ice40")
        if arch == "auto" and fam.name != "ice40":
            arch = "spatial"
        if arch == "auto":
            arch = "spatial" if not est or est.get("fits") is not False else "folded"
            say(f"[arch] {arch}: " + ("the spatial design fits" if arch == "spatial" else
                                      "the spatial design does not fit; the net runs folded from memory"))
    if arch == "folded" and brd.pll_split:
        raise DoesNotFitError(f"the spatial design does not fit the {brd.device}, and --core-clock applies to the "
                              "spatial architecture only (the folded engine runs on the board clock): drop "
                              "--core-clock or build a smaller net")
    if arch == "folded":
        net, src_info, prog, est, compile_s = _prepare_folded(source, brd, opts, say, t)
        if opts.interval > 1 and est["Interval_cycles"] > opts.interval:
            # auto with an explicit --interval: the folded design must meet it too
            raise DoesNotFitError(f"the spatial design does not fit the {brd.device} at --interval {opts.interval}, "
                                  f"and the folded one takes {est['Interval_cycles']:,} cycles per sample; ask for "
                                  f"--interval {est['Interval_cycles']} or more, or a smaller net")
    if x is None and (dataset is not None or net.dataset):
        what = dataset if dataset is not None else "the model's dataset"
        say(f"[data] loading the test split of {what}")
    samples = sample_data(net, x=x, y=y, dataset=dataset, data_dir=data_dir)
    if samples is None:
        xs = np.random.default_rng(opts.seed).integers(0, 1 << net.input_bits, size=(RANDOM_VECTORS, net.n_features))
        ys, name = None, f"{RANDOM_VECTORS} random feature vectors (no test set known)"
    else:
        xs, ys, name = samples.x, samples.y, samples.name
    if opts.max_vectors:
        xs, ys = xs[:opts.max_vectors], (None if ys is None else ys[:opts.max_vectors])
    exe = {role: tools.tool(opts.toolchain, role, fam) for role in ("yosys", "nextpnr", "pack")}
    b = Build(out=out, board=brd, board_arg=str(board), opts=opts, lut_cells=lut_cells, net=net, src_info=src_info,
              x=xs, y=ys, data_name=name, say=say, exe=exe, arch=arch, prog=prog)
    b.stages["compile_s"] = compile_s
    b.estimate = est
    b.options = {"board": brd.name, "arch": arch, "pipeline": opts.pipeline, "interval": opts.interval,
                 "baud": opts.baud or brd.baud, "toolchain": opts.toolchain, "lut_cells": lut_cells,
                 "scores": opts.scores, "seed": opts.seed, "pnr_seeds": opts.pnr_seeds,
                 "router": opts.router}
    b.hard_carry = _hard_carry(opts, fam, est, say)
    if fam.primitives.chain_cell is not None:
        b.options["hard_carry"] = b.hard_carry
    b.stamp = stamp(net, b.options)
    return b


def _hard_carry(opts: BuildOptions, fam, est: dict, say: Progress) -> bool:
    """Whether the tree counters use the family's carry chain: as asked, else as the estimate chose by size
    (estimate.HARD_CARRY_MAX_LUTS)."""
    from .estimate import HARD_CARRY_MAX_LUTS

    if opts.hard_carry is not None:
        return bool(opts.hard_carry)
    if fam.primitives.chain_cell is not None and (est or {}).get("hard_carry") is False:
        say(f"[carry] counters with LUT carries: the design is above {HARD_CARRY_MAX_LUTS:,} LUT4s, where the carry "
            "chains made random-wired nets unroutable (docs/families.md); --hard-carry forces the chain")
        return False
    return True


def _prepare_folded(source, brd: Board, opts: BuildOptions, say: Progress, t: float):
    """The folded build's netlist (optimised, not packed: the engine evaluates two-input nodes), its program and
    estimate; DoesNotFitError when the board's memories cannot hold the program."""
    from .folded import plan_folded

    say(f"[compile] {source if isinstance(source, (str, Path)) else type(source).__name__} -> netlist "
        "(no LUT packing: the folded engine evaluates two-input nodes)")
    net, src_info, prog, est = plan_folded(source, brd, scores=opts.scores)
    compile_s = time.perf_counter() - t
    lay = prog.layout
    say(f"[compile] done in {compile_s:.1f} s: {len(net.nodes)} nodes -> a {prog.n_words:,}-word program "
        f"({lay.lanes} node(s) per word, {lay.width}-bit words, {prog.stored:,} activation bits)")
    mem = est["folded"]["memory"]
    say(f"[estimate] folded: ~{est['LC']:,} LCs, {mem['EBR']} EBR, {mem['SPRAM']} SPRAM; "
        f"{est['Interval_cycles']:,} cycles per sample")
    return net, src_info, prog, est, compile_s


def _estimate(net: Netlist, brd: Board, opts: BuildOptions, lut_cells: str, say: Progress, check: bool = True
              ) -> dict:
    """The pre-synthesis estimate (warpc.fpga.estimate), said as one progress line; DoesNotFitError when it is
    clearly over the device (unless opts.estimate_check is off). An estimator failure never stops a build."""
    from ..errors import WarpcError
    from .estimate import check_fits, estimate_line, estimate_net

    try:
        est = estimate_net(net, brd, interval=opts.interval, pipeline=opts.pipeline, lut_cells=lut_cells,
                           hard_carry=opts.hard_carry,
                           scores=opts.scores)
    except WarpcError:
        raise
    except Exception as e:  # a bug in the estimate must not cost the build
        say(f"[estimate] unavailable ({type(e).__name__}: {e})")
        return {}
    say(estimate_line(est))
    if opts.estimate_check and check:
        check_fits(est)
    return est


def stamp(net: Netlist, options: dict) -> dict:
    h = hashlib.sha256(json.dumps(net.to_dict(), sort_keys=True).encode()).hexdigest()
    now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    sid = hashlib.sha256(f"{h}{json.dumps(options, sort_keys=True)}{now}".encode()).hexdigest()[:16]
    return {"id": sid, "netlist_sha256": h, "options_sha256": hashlib.sha256(
        json.dumps(options, sort_keys=True).encode()).hexdigest()[:16], "time_utc": now, "warpc_version": __version__}


def elaborate(b: Build) -> None:
    """The board design in memory (Amaranth elaboration, RTLIL, the synthesis script); nothing is written."""
    from ..hdl.framing import idle_cycles
    from ..hdl.shell import CORE_DOMAIN, BoardTop, UartShell, block_modules
    from ..hdl.uart import uart_divisor

    t = time.perf_counter()
    if b.arch == "folded":
        b.say(f"[elaborate] UART shell + folded engine + SPI flash loader; build {b.stamp['id']}")
    else:
        b.say(f"[elaborate] UART shell + core, pipeline {b.opts.pipeline}, interval {b.opts.interval}, "
              f"{b.lut_cells} cells; build {b.stamp['id']}")
    tools.yosys_env(b.opts.toolchain)
    baud = b.opts.baud or b.board.baud
    divisor = uart_divisor(b.board.shell_clock_hz, baud)
    b.board = replace(b.board, baud=baud)  # the report's uart section describes the line as built
    if b.arch == "folded":
        from ..hdl.folded import FoldedShell, folded_block_modules

        b.shell = FoldedShell(b.net, b.prog, divisor=divisor, scores=b.opts.scores,
                              idle_cycles=idle_cycles(b.board.core_clock_hz, divisor), clock_hz=b.board.core_clock_hz)
        b.blocks = folded_block_modules(TOP)
        done = f"folded: {b.prog.n_words:,} words, {b.shell.describe()['Interval_cycles']:,} cycles per sample"
    else:
        b.shell = UartShell(b.net, divisor=divisor, pipeline=b.opts.pipeline, lut_cells=b.lut_cells,
                            scores=b.opts.scores, interval=b.opts.interval,
                            idle_cycles=idle_cycles(b.board.shell_clock_hz, divisor), hard_carry=b.hard_carry,
                            core_domain=CORE_DOMAIN if b.board.pll_split else None)
        b.blocks = block_modules(TOP)
        done = f"latency {b.shell.core.latency} cycles"
        if b.board.pll_split:
            done += (f"; core clock {b.board.core_clock_hz / 1e6:g} MHz from the PLL (asked {b.opts.core_clock:g}), "
                     f"shell {b.board.clock_hz / 1e6:g} MHz")
    b.platform = platform_for(b.board)
    b.plan = b.platform.build(
        BoardTop(b.shell, pll=_pll_of(b.board), split_pll=_split_pll_of(b.board)), name=TOP, do_build=False,
        synth_opts=b.board.family.synth_opts(b.board, b.platform),
        script_after_read="setattr -mod -set keep_hierarchy 1 " + " ".join(b.blocks.values()),
        script_after_synth="tee -q -o stat.json stat -json",
    )
    for name, text in b.board.family.extra_files(b.board, b.platform).items():
        b.plan.add_file(name, text)
    b.say(f"[elaborate] done in {_timed(b, 'elaborate_s', t):.1f} s ({done})")


def _split_clock_board(brd: Board, opts: BuildOptions) -> Board:
    """The board with --core-clock: the core on the family's PLL, the shell on the board clock."""
    fam = brd.family
    if fam.pll_split is None:
        raise ConfigError(f"--core-clock: warpc drives no PLL on the {brd.name} ({fam.title}); it runs its design "
                          "on its board clock")
    if brd.pll_clock_hz is not None:
        raise ConfigError(f"--core-clock: the {brd.name} board file already runs the design from its PLL "
                          f"(core_clock_hz {brd.pll_clock_hz})")
    if opts.arch == "folded":
        raise ConfigError("--core-clock applies to the spatial architecture (the folded engine runs on the board "
                          "clock); use --arch spatial")
    if opts.pipeline < 1:
        raise ConfigError("--core-clock needs a pipelined core (--pipeline 1 or more): the clock-domain crossing "
                          "starts the core with a registered strobe")
    plan = fam.pll_plan(brd.clock_hz, opts.core_clock * 1e6)  # ConfigError when the PLL cannot make it
    return replace(brd, pll_clock_hz=int(round(plan["f_out"])), pll_split=True)


def _pll_of(board: Board):
    """(family PLL, board clock, core clock) when the board file asks for a core clock other than the board's."""
    if board.core_clock_hz == board.clock_hz or board.pll_split:
        return None
    return board.family.pll, board.clock_hz, board.core_clock_hz


def _split_pll_of(board: Board):
    """(family split PLL, board clock, core clock) with --core-clock."""
    if not board.pll_split:
        return None
    return board.family.pll_split, board.clock_hz, board.core_clock_hz


def _formal_blocks(b: Build) -> tuple[dict[str, str], dict]:
    """Blocks proven one by one (small proofs, clear limits; the core is the sum of its blocks), and those
    skipped with the reason (none: every block is written as explicit cells or small logic that equiv_simple
    matches cell by cell; the folded engine's memories are explicit SB_RAM40_4K / SB_SPRAM256KA cells)."""
    if b.arch == "folded":  # its memories are explicit cells: paired as blackboxes, like the LUTs of a spatial core
        return dict(b.blocks), {}
    return {k: v for k, v in b.blocks.items() if k != "core"}, {}


SIM_MODULES = ("core", "encoder")  # the blocks the equivalence simulation runs


FOLDED_SIM_MODULES = ("engine", "loader")


def planned_files(b: Build) -> set[str]:
    """Every file this build may write into its folder (checked against the user's files before it starts)."""
    if b.arch == "folded":
        from .folded import IMAGE_FILE

        names = set(b.plan.files) | TOOL_FILES | equiv.export_files(FOLDED_SIM_MODULES) | {IMAGE_FILE}
    else:
        names = set(b.plan.files) | TOOL_FILES | equiv.export_files(SIM_MODULES)
    tries = range(b.opts.seed, b.opts.seed + b.opts.pnr_seeds) if b.opts.pnr_seeds > 1 else ()
    names |= {_tagged(n, _seed_tag(seed)) for seed in tries for n in _pnr_outputs(b)}
    return names | set(b.board.family.tool_files) | equiv.formal_files(_formal_blocks(b)[0])


def write_sources(b: Build) -> None:
    b.plan.extract(str(b.out))
    b.net.save(b.out / "netlist.json")
    if b.arch == "folded":
        from .folded import write_image

        b.image = write_image(b.prog, b.out)


def synthesize(b: Build) -> None:
    b.say(f"[synth] yosys {b.board.family.synth} (hierarchy kept per block)")
    _, b.stages["synth_s"] = tools.run([b.exe["yosys"], "-q", "-l", "yosys.log", f"{TOP}.ys"], b.out,
                                       b.out / "yosys.stdout.log", "synth", b.say)
    b.stat = json.loads((b.out / "stat.json").read_text())


def place_and_route(b: Build) -> None:
    """nextpnr; with router auto, router2 (above ROUTER2_ABOVE_LUTS), and router1 when router2 does not converge
    within router2_timeout (seen once: router2 cycling on 4 overused wires for 9+ minutes) on families where router1
    is the better second try (Family.router1_fallback: iCE40 only). With pnr_seeds N > 1, N placements (seeds
    seed .. seed + N - 1) run side by side, as many at a time as there are cores, and the one with the best Fmax
    (against its clock constraint) is kept; every try's Fmax goes into the report."""
    o = b.opts
    fam = b.board.family
    n_lut = sum(int(v) for k, v in ((b.stat.get("design") or {}).get("num_cells_by_type") or {}).items()
                if fam.kind_of(k) == "LUT")
    rt = o.router if o.router != "auto" else ("router2" if n_lut > ROUTER2_ABOVE_LUTS else "router1")
    if o.router == "auto" and b.arch == "folded":
        # measured: a folded digits design (~700 LCs, SPRAM + EBR) stalled router2 for 300 s; router1: 2.5 s
        rt = "router1"
    t = time.perf_counter()
    if o.pnr_seeds == 1:
        b.options.update(_pnr_try(b, o.seed, rt, ""))
        _timed(b, "pnr_s", t)
        return
    seeds = list(range(o.seed, o.seed + o.pnr_seeds))
    b.say(f"[place-and-route] seeds {seeds[0]}..{seeds[-1]}, {min(len(seeds), os.cpu_count() or 1)} at a time; "
          f"the fastest is kept")
    done: dict[int, dict] = {}
    failed: dict[int, WarpcError] = {}
    with ThreadPoolExecutor(max_workers=min(len(seeds), os.cpu_count() or 1)) as pool:
        routed = threading.Event()
        runs = {seed: pool.submit(_pnr_try, b, seed, rt, _seed_tag(seed), routed) for seed in seeds}
        for seed, run in runs.items():
            try:
                done[seed] = run.result()
            except WarpcError as e:
                failed[seed] = e
    if not done:
        _explain_pnr_failure(b, _seed_tag(seeds[0]))
        raise failed[seeds[0]]
    fmax = {seed: parse_nextpnr(json.loads((b.out / f"nextpnr{_seed_tag(seed)}.json").read_text()))["fmax"]
            for seed in done}
    # the slowest clock against its constraint ranks a try; its MHz go into the report
    score = {seed: min((f["achieved_MHz"] / f["constraint_MHz"] for f in v.values() if f["constraint_MHz"]),
                       default=0.0) for seed, v in fmax.items()}
    if b.board.pll_split:  # --core-clock: the core's clock is the one reported (the shell's runs at 12 MHz)
        core = b.board.core_clock_hz / 1e6
        mhz = {seed: min(v.values(), key=lambda f: abs(f["constraint_MHz"] - core))["achieved_MHz"] if v else 0.0
               for seed, v in fmax.items()}
    else:
        mhz = {seed: min((f["achieved_MHz"] for f in v.values()), default=0.0) for seed, v in fmax.items()}
    best = max(done, key=lambda seed: (score[seed], -seed))
    for name in _pnr_outputs(b):  # the kept try's files under the names the later stages read
        (b.out / _tagged(name, _seed_tag(best))).replace(b.out / name)
    for seed in seeds:
        if seed != best:  # the other layouts are not needed; their logs and reports stay for the record
            for name in _pnr_layout(b):
                (b.out / _tagged(name, _seed_tag(seed))).unlink(missing_ok=True)
    b.options.update(done[best])
    b.options["seed_kept"] = best
    b.options["seed_tries_MHz"] = {str(seed): (mhz[seed] if seed in done else f"failed ({_first_clause(failed[seed])})")
                                   for seed in seeds}
    b.say(f"[place-and-route] kept seed {best}: " + ", ".join(
        f"seed {k} {v} MHz" if isinstance(v, float) else f"seed {k} {v}"
        for k, v in b.options["seed_tries_MHz"].items()))
    _timed(b, "pnr_s", t)


def _first_clause(e: Exception) -> str:
    """A failed seed's error for one report line: its first line, without the log excerpt or path."""
    text = str(e).strip()
    return re.split(r"; (?:log:|last lines of )", text.splitlines()[0] if text else "")[0]


def _seed_tag(seed: int) -> str:
    return f".seed{seed}"


def _tagged(name: str, tag: str) -> str:
    """top.asc -> top.seed2.asc, nextpnr.stdout.log -> nextpnr.seed2.stdout.log (tag '' -> name)."""
    stem, dot, ext = name.partition(".")
    return f"{stem}{tag}{dot}{ext}" if tag else name


PNR_REPORTS = ("nextpnr.log", "nextpnr.json", "nextpnr.stdout.log")
PNR_LAYOUT_FLAGS = ("--asc", "--textcfg", "--write")  # the nextpnr options that name its layout output


def _pnr_layout(b: Build) -> list[str]:
    """The layout file(s) nextpnr writes for this family (top.asc, top.config, top.pnr.json)."""
    args = b.board.family.nextpnr_args(b.board, b.platform)
    return [args[i + 1] for i, a in enumerate(args[:-1]) if a in PNR_LAYOUT_FLAGS]


def _pnr_outputs(b: Build) -> list[str]:
    """The files one nextpnr run writes: its logs, its report and its layout."""
    return [*PNR_REPORTS, *_pnr_layout(b)]


def _pnr_try(b: Build, seed: int, rt: str, tag: str, routed: threading.Event | None = None) -> dict:
    """One nextpnr placement and routing with `seed`, its files named with `tag`; returns the options it used.
    `routed` (several seeds): set when this try has a layout; a try that times out in router2 after another has
    routed is dropped instead of routed again with router1."""
    o = b.opts
    fam = b.board.family
    used = {"router_used": rt}

    def cmd(router: str, extra: list[str]) -> list[str]:
        args = fam.nextpnr_args(b.board, b.platform)
        args = [_tagged(a, tag) if i and args[i - 1] in PNR_LAYOUT_FLAGS else a for i, a in enumerate(args)]
        c = [b.exe["nextpnr"], "--quiet", "--log", _tagged("nextpnr.log", tag), *args,
             "--report", _tagged("nextpnr.json", tag), "--seed", str(seed), "--router", router, *extra]
        return c + (["--timing-allow-fail"] if o.allow_timing_fail else [])

    log = b.out / _tagged("nextpnr.stdout.log", tag)
    stage = f"place-and-route{' seed ' + str(seed) if tag else ''}"
    dense: list[str] = []

    def status() -> str:
        return tools.nextpnr_status(b.out / _tagged("nextpnr.log", tag))
    while True:
        try:
            try:
                limit = (o.router2_timeout if (o.router == "auto" and rt == "router2" and fam.router1_fallback)
                         else None)
                tools.run(cmd(rt, dense), b.out, log, stage, b.say, timeout=limit, status=status)
            except ToolTimeoutError:
                if routed is not None and routed.is_set():
                    # another seed has a layout already; router1 on a design router2 could not finish can stall
                    # for many minutes (seen: 8,521 arcs left after 1.2 million iterations), so drop this seed
                    b.say(f"[{stage}] router2 did not converge in time; dropped (another seed has routed)")
                    raise
                b.say(f"[{stage}] router2 did not converge in time; routing again with router1")
                used["router_used"] = "router1 (router2 timed out)"
                tools.run(cmd("router1", dense), b.out, log, stage, b.say, status=status)
            if routed is not None:
                routed.set()
            return used
        except ToolchainError:
            if not dense and _legalisation_failed(b, tag):
                # measured: a Fashion-MNIST design at 86 % of the UP5K failed the heap placer's legaliser at its
                # default density 0.9 (with any seed, and with SA placement router2 did not converge); at 0.98
                # it placed and routed
                b.say(f"[{stage}] the placer could not legalise the design at {PLACER_DENSITY[0]} "
                      f"density; placing again at {PLACER_DENSITY[1]}")
                dense = ["--placer-heap-beta", str(PLACER_DENSITY[1])]
                used["placer_heap_beta"] = PLACER_DENSITY[1]
                continue
            if not tag:
                _explain_pnr_failure(b)
            raise


def _legalisation_failed(b: Build, tag: str = "") -> bool:
    p = b.out / _tagged("nextpnr.log", tag)
    text = p.read_text(errors="replace") if p.exists() else ""
    return "Unable to find legal placement" in text and "no BELs remaining" not in text


def _explain_pnr_failure(b: Build, tag: str = "") -> None:
    """Turn a failed nextpnr run into the user's terms: does not fit (with per-block LUTs) or timing not met."""
    log_path = b.out / _tagged("nextpnr.log", tag)
    tools.raise_if_does_not_fit(log_path, b.board.device,
                                parse_stat(b.stat, b.blocks, b.board.family)["blocks"], b.board.family)
    log = log_path.read_text(errors="replace") if log_path.exists() else ""
    if "FAIL at" in log:
        raise ToolchainError(f"timing not met at {b.board.core_clock_hz / 1e6:g} MHz: {_fmax_lines(log)}. Pipeline "
                             f"deeper (--pipeline N, fewer LUT levels per stage) or pass --allow-timing-fail. "
                             f"Log: {log_path}") from None


def pack(b: Build) -> None:
    fam = b.board.family
    b.say(f"[pack] {b.exe['pack']} -> {fam.bitstream}")
    _, b.stages["pack_s"] = tools.run([b.exe["pack"], *fam.pack_args(b.board, b.platform)], b.out,
                                      b.out / fam.pack_log, "pack", b.say)


def simulate_equivalence(b: Build, ref: np.ndarray) -> None:
    """RTL and post-synthesis core and serial encoder (folded: program, engine and loader), every vector,
    against the IR emulator."""
    if b.arch == "folded":
        from .folded import simulate_folded

        t = time.perf_counter()
        simulate_folded(b, ref)
        _timed(b, "equiv_sim_s", t)
        return
    t = time.perf_counter()
    b.eq = {"enabled": True, "data": b.data_name, "vectors": int(len(b.x))}
    b.say("[equivalence] exporting the RTL and post-synthesis core and encoder")
    mods = {label: b.blocks[label] for label in SIM_MODULES}
    fam = b.board.family
    b.eq["export_s"] = round(equiv.export_modules(b.exe["yosys"], b.out, mods, synth_json=fam.synth_json,
                                                  family=fam), 2)
    lat = b.shell.core.latency
    sims = {}
    for level in ("rtl", "gate"):
        kind = "RTL" if level == "rtl" else "post-synthesis"
        what = f"{kind} core"
        b.say(f"[equivalence] simulating the {what} on {len(b.x)} vectors")
        sims[f"core_{level}"] = equiv.check_core(b.out / f"eq_core_{level}.json", b.net, b.x, ref, lat, what,
                                                 progress=b.say, interval=b.shell.core.interval)
        what = f"{kind} serial encoder"
        b.say(f"[equivalence] simulating the {what} on {len(b.x)} vectors")
        sims[f"encoder_{level}"] = equiv.check_encoder(b.out / f"eq_encoder_{level}.json", b.net, b.x, what,
                                                       progress=b.say)
    b.eq["simulation"] = sims
    b.eq["simulation_passed"] = True
    b.say(f"[equivalence] simulation passed: {len(b.x)} vectors x (RTL, netlist) x (core, encoder) "
          f"in {_timed(b, 'equiv_sim_s', t):.1f} s")


def prove_formal(b: Build) -> None:
    t = time.perf_counter()
    b.say("[formal] yosys equiv_* RTL vs synthesised netlist, per block")
    fmods, skipped = _formal_blocks(b)
    fo = equiv.formal_check(b.exe["yosys"], b.out, fmods, timeout=b.opts.formal_timeout, progress=b.say,
                            synth_json=b.board.family.synth_json, family=b.board.family,
                            cut_memories=("engine",) if b.arch == "folded" else ())
    fo["modules"].update(skipped)
    fo["complete"] = fo["complete"] and not skipped
    b.eq["formal"] = fo
    _timed(b, "formal_s", t)
    b.say("[formal] " + ", ".join(f"{k} {v['status']} ({v['seconds']} s)" for k, v in fo["modules"].items()))


def make_report(b: Build, ref: np.ndarray) -> dict:
    o = b.opts
    eq = b.eq or {"enabled": False, "data": b.data_name, "vectors": int(len(b.x))}
    if o.equivalence:
        eq["passed"] = eq["simulation_passed"] and (not o.formal or eq["formal"]["passed"])
        eq["formally_complete"] = bool(o.formal and eq["formal"]["complete"])
    pred = argmax_lowest(ref)
    acc = None if b.y is None else {
        "accuracy": float((pred == b.y).mean()), "samples": int(len(b.y)), "data": b.data_name,
        "how": "predictions of the simulated design (== IR, checked)" if o.equivalence
        else "IR emulator (equivalence disabled)"}
    report = summarize_build(b.out, b.board, b.net, b.shell, b.options, b.stamp, b.stages, eq, acc, b.src_info,
                             b.blocks)
    report["board_source"] = b.board_arg  # what `warpc flash` reloads the board's programmers from
    report["arch"] = b.arch
    if b.arch == "folded":
        from .folded import folded_report

        report["folded"] = folded_report(b, report)
    if b.estimate:  # what `warpc estimate` predicted, beside the synthesised numbers (scripts/estimate_error.py)
        report["estimate"] = {"LC": b.estimate["LC"], "Fmax_class": b.estimate["Fmax"]["class"],
                              "blocks": {k: v["LC"] for k, v in b.estimate["blocks"].items()}}
    write_report(b.out, report)
    return report


def _fmax_lines(log: str) -> str:
    lines = [ln.split("Info:")[-1].strip() for ln in log.splitlines() if "Max frequency for clock" in ln]
    return "; ".join(lines[-2:]) or "see log"
