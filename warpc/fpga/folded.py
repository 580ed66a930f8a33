"""The folded architecture's board-level pieces: memory plan and estimate, the program image file, and the
equivalence checks of a folded build (the program against the IR, the engine's RTL and post-synthesis netlist
with the program memory loaded as the boot loader loads it, the boot loader on the real image from a flash
model).

Memory plan (iCE40 UP5K): the program in ceil(word width / 16) SPRAM blocks (16K words), the activations in 2L
copies and the features in L copies of block RAM; each copy takes the fewest EBRs over the EBR's shapes
(256 x 16, 512 x 8, 1024 x 4, 2048 x 2), which is what Yosys' memory mapping chose in every build measured.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from ..errors import DoesNotFitError, EquivalenceError, NetlistError
from ..ir.fold import WORD_BITS, Program, fold, run_program
from ..ir.image import IMAGE_OFFSET, design_id_of, pack_image
from ..ir.netlist import Netlist

IMAGE_FILE = "program.bin"
EBR_SHAPES = ((256, 16), (512, 8), (1024, 4), (2048, 2))
# LCs of the folded design outside the memories (engine, loader, UART shell): a least-squares fit to the five
# 2-lane builds of 2026-12-03 with explicit EBR cells (digits 300+150: 616 LCs; Fashion-MNIST 2,400+1,000: 625,
# 2 x 8,000: 645, 2 x 16,000: 675, 2 x 20,000: 671; residuals within +-13 LCs, scripts/results/folded_builds.md).
# The score width sets the accumulator, comparator and score paths; the address width added no significant term.
# With --scores the engine keeps every class score (one FF each) and the shell's reply register grows (one LC per
# reply bit, as in spatial builds). Not fitted on 1-lane builds.
LC_MODEL = {"base": 577.1, "per_score_bit": 8.06, "per_score_register_bit": 1.0, "per_reply_bit": 1.0}

def ebrs(depth: int, width: int) -> int:
    """EBR blocks for one depth x width memory (the cheapest EBR shape)."""
    return min(-(-width // w) * -(-depth // d) for d, w in EBR_SHAPES)


def memory_plan(prog: Program) -> dict:
    """Memories of the folded design: blocks used and bits used per memory."""
    from ..hdl.folded import spram_count

    lay = prog.layout
    L = lay.lanes
    act_ebr = ebrs(prog.activation_words, L)
    feat_ebr = ebrs(prog.n_features, lay.input_bits)
    return {
        "program": {"memory": "SPRAM", "blocks": spram_count(prog), "words": prog.n_words, "word_bits": lay.width,
                    "bits_used": prog.n_words * lay.width, "bits_available": spram_count(prog) * 16384 * 16},
        "activations": {"memory": "EBR", "copies": 2 * L, "blocks": 2 * L * act_ebr, "bits": prog.stored,
                        "bits_each_copy": prog.activation_words * L},
        "features": {"memory": "EBR", "copies": L, "blocks": L * feat_ebr,
                     "bits_each_copy": prog.n_features * lay.input_bits},
        "EBR": 2 * L * act_ebr + L * feat_ebr,
        "SPRAM": spram_count(prog),
    }


def fold_for_board(net: Netlist, board) -> Program:
    """The folded program for `board`, or DoesNotFitError when its memories cannot hold it."""
    try:
        prog = fold(net)
    except NetlistError as e:
        raise DoesNotFitError(f"the folded program does not fit: {e}") from None
    mem = memory_plan(prog)
    cap = dict(board.capacity)
    for kind, have in (("SPRAM", cap.get("SPRAM", 0)), ("EBR", cap.get("BRAM", 0))):
        if mem[kind] > have:
            raise DoesNotFitError(f"the folded design needs {mem[kind]} {kind} blocks; the {board.device} has "
                                  f"{have} (program {prog.n_words} words of {prog.layout.width} bits, "
                                  f"{prog.stored} activation bits, {prog.layout.lanes} lane(s))")
    return prog


def plan_folded(source, board, *, scores: bool = False) -> tuple[Netlist, dict, Program, dict]:
    """(netlist, provenance, program, estimate) of a folded build of `source`: compiled without LUT packing (the
    engine evaluates two-input nodes), checked, folded for the board's memories (DoesNotFitError otherwise)."""
    from ..hdl.core import check_buildable
    from ..ir.source import compiled_netlist

    net, info = compiled_netlist(source, lut_size=None)
    check_buildable(net)
    prog = fold_for_board(net, board)
    return net, info, prog, estimate_folded(net, prog, board, scores=scores)


def estimate_folded(net: Netlist, prog: Program, board, *, scores: bool = False) -> dict:
    """The folded build's estimate, in warpc.fpga.estimate's format (LCs from LC_MODEL: approximate)."""
    mem = memory_plan(prog)
    L = prog.layout.lanes
    reply_bits = prog.classes * 8 * -(-prog.score_bits // 8) if scores else 0
    lc = int(round(LC_MODEL["base"] + LC_MODEL["per_score_bit"] * prog.score_bits
                   + (LC_MODEL["per_score_register_bit"] * prog.classes * prog.score_bits if scores else 0)
                   + LC_MODEL["per_reply_bit"] * reply_bits))
    cap = dict(board.capacity)
    lc_cap = cap.get("LC")
    from ..hdl.folded import latency

    return {
        "format": "warpc-estimate", "arch": "folded",
        "board": board.name, "device": board.device,
        "options": {"arch": "folded", "lanes": L, "scores": scores},
        "model": net.stats(),
        # IO: clock, UART rx / tx, two LEDs, the flash's cs / clk / copi / cipo / wp / hold
        "LC": lc, "LUT": None, "FF": None, "CARRY": None, "BRAM": mem["EBR"], "SPRAM": mem["SPRAM"], "IO": 11,
        "capacity": {"LC": lc_cap, "BRAM": cap.get("BRAM"), "IO": cap.get("IO"), "SPRAM": cap.get("SPRAM")},
        "utilization_pct": {"LC": round(100.0 * lc / lc_cap, 1) if lc_cap else None},
        "fits": True, "clearly_over": False,
        "blocks": {"folded": {"LC": lc, "LUT": 0, "FF": 0, "CARRY": 0, "exact_cells": False,
                              "model": "LC_MODEL (fitted)"}},
        "Fmax": {"class": "~40-48 MHz (measured on 6 builds)", "path_estimate_MHz": None,
                 "limited_by": "the engine's read-to-count path"},
        "Latency_cycles": latency(prog), "Interval_cycles": latency(prog) + 1,
        "folded": {**prog.to_dict(), "memory": mem},
    }


def write_image(prog: Program, out: Path) -> dict:
    """OUT/program.bin (what `warpc flash` writes at IMAGE_OFFSET); returns its description for the report."""
    data = pack_image(prog.words, WORD_BITS)
    (Path(out) / IMAGE_FILE).write_bytes(data)
    return {"file": IMAGE_FILE, "bytes": len(data), "flash_offset": IMAGE_OFFSET,
            "design_id": f"0x{design_id_of(prog.words, WORD_BITS):08X}"}


def check_program(prog: Program, x: np.ndarray, ref: np.ndarray) -> dict:
    """The compiled program, executed word by word, against the IR emulator's scores."""
    t0 = time.perf_counter()
    got = run_program(prog, x)
    bad = np.nonzero((got != ref).any(axis=1))[0]
    if len(bad):
        i = int(bad[0])
        raise EquivalenceError(f"the folded program disagrees with the IR on {len(bad)} of {len(x)} vectors "
                               f"(first: vector {i}, expected scores {ref[i].tolist()}, got {got[i].tolist()})")
    return {"vectors": len(x), "seconds": round(time.perf_counter() - t0, 2)}


def folded_report(b, report: dict) -> dict:
    """The report's `folded` section: program, memory map (blocks and bits per memory, SPRAM as placed),
    cycles per sample, samples/s of the core and through the UART, boot time, the image file."""
    prog = b.prog
    d = b.shell.describe()
    util = report.get("utilization_raw") or {}
    mem = memory_plan(prog)
    mem["EBR_placed"] = (util.get("ICESTORM_RAM") or {}).get("used")
    mem["SPRAM_placed"] = (util.get("ICESTORM_SPRAM") or {}).get("used")
    clock = b.board.core_clock_hz
    boot = d.get("boot_cycles")
    return {
        "program": prog.to_dict(),
        "memory": mem,
        "cycles_per_sample": d["Interval_cycles"],
        "core_samples_per_s": round(clock / d["Interval_cycles"], 1),
        "core_samples_per_s_at_fmax": (round(report["Fmax_MHz"] * 1e6 / d["Interval_cycles"], 1)
                                       if report.get("Fmax_MHz") else None),
        "uart_samples_per_s": (report.get("uart") or {}).get("max_samples_per_s"),
        "boot_cycles": boot, "boot_ms": round(1e3 * boot / clock, 2) if boot else None,
        "image": b.image,
    }


# --- equivalence of a folded build ----------------------------------------------------------------------------
def _spram_words(prog: Program, i: int) -> list[int]:
    """SPRAM block i's contents as the loader writes them: bits 16i .. 16i+15 of every program word."""
    return [(w >> (16 * i)) & 0xFFFF for w in prog.words]


def load_program(sim, prog: Program, what: str) -> None:
    """Put the program into the simulated engine's SPRAM blocks, as the boot loader leaves it."""
    from ..hdl.folded import spram_count

    mems = sim.memories()
    for i in range(spram_count(prog)):
        name = next((n for n in mems if n == f"spram{i}" or n.endswith(f".spram{i}")), None)
        if name is None:
            raise EquivalenceError(f"{what}: no SPRAM cell spram{i} in the netlist (memories: {sorted(mems)})")
        mems[name].load(_spram_words(prog, i))


def run_engine(sim, prog: Program, x: np.ndarray, what: str) -> tuple[np.ndarray, np.ndarray | None]:
    """All samples at once, one per lane: write the features (one per cycle), strobe start, and read cls (and
    the scores) in the cycle `done` rises, which must be exactly latency(prog) cycles after the start."""
    from ..hdl.folded import latency
    from .netsim import lanes_of, values_of

    n = len(x)
    lat = latency(prog)
    sess = sim.session(n)
    ib = prog.layout.input_bits
    for f in range(prog.n_features):
        sess.step({"feat_we": 1, "feat_addr": f, "feat_data": lanes_of(x[:, f], ib)})
    sess.step({"start": 1})
    n_scores = sum(1 for p in sim.outputs if p.startswith("score"))
    for t in range(1, lat + 1):
        out = sess.step({})
        done = out["done"][0]
        if t < lat and done:
            raise EquivalenceError(f"{what}: done rose {t} cycles after start, expected {lat}")
    if done != sess.M:
        raise EquivalenceError(f"{what}: done did not rise {lat} cycles after start")
    cls = values_of(out["cls"], n)
    scores = (np.stack([values_of(out[f"score{c}"], n) for c in range(n_scores)], axis=1) if n_scores else None)
    return cls, scores


def check_engine(json_path: Path, prog: Program, x: np.ndarray, ref: np.ndarray, what: str,
                 progress=None) -> dict:
    """The engine module (RTL or post-synthesis JSON) with its program memory loaded, on every vector (a program
    pass per chunk of lanes; each says how far it got)."""
    from ..ir.emulate import argmax_lowest
    from .equiv import _load_sim

    t0 = time.perf_counter()
    # x_fill random: any use of an undefined memory output (SPRAM after a write, EBR before its first read)
    # shows up as a mismatch instead of reading as a lucky 0
    sim = _load_sim(json_path, what, progress, x_fill="random")
    load_program(sim, prog, what)
    chunk = 4096
    for lo in range(0, len(x), chunk):
        xs, rs = x[lo:lo + chunk], ref[lo:lo + chunk]
        cls, scores = run_engine(sim, prog, xs, what)
        want = argmax_lowest(rs)
        bad = np.nonzero(cls != want)[0]
        if scores is not None and not len(bad):
            bad = np.nonzero((scores != rs).any(axis=1))[0]
        if len(bad):
            i = int(bad[0])
            raise EquivalenceError(
                f"{what} disagrees with the IR on vector {lo + i}: expected class {int(want[i])} scores "
                f"{rs[i].tolist()}, got class {int(cls[i])}"
                + (f" scores {scores[i].tolist()}" if scores is not None else ""))
        if progress:
            progress(f"[equivalence] {what}: {min(len(x), lo + chunk)}/{len(x)} vectors equal")
    return {"vectors": len(x), "seconds": round(time.perf_counter() - t0, 2),
            "cells": sum(sim.cell_counts.values()), "streamed": f"{min(chunk, len(x))} lanes per program pass"}


def check_loader(json_path: Path, prog: Program, what: str, clock_hz: int, progress=None,
                 corrupt: bool = True) -> dict:
    """The boot loader module on the build's own image in a (powered-down) SPI flash model: it must write every
    program word once, in order, and be ready exactly FlashLoader.boot_cycles after reset; with `corrupt`, the
    same loader on a flash holding the image with one payload bit flipped must fail without becoming ready."""
    from ..hdl.boot import FlashLoader
    from .equiv import _load_sim
    from .spiflash import SpiFlashModel

    t0 = time.perf_counter()
    sim = _load_sim(json_path, what, progress)
    image = pack_image(prog.words, WORD_BITS)
    boot = FlashLoader.boot_cycles(prog.n_words, WORD_BITS, clock_hz)
    res = _boot(sim, SpiFlashModel({IMAGE_OFFSET: image}, powered_down=True), boot + 64)
    if res["ready_at"] != boot or res["failed"]:
        raise EquivalenceError(f"{what}: ready after {res['ready_at']} cycles (expected {boot}), failed "
                               f"{res['failed']}")
    if res["writes"] != list(enumerate(prog.words)):
        first = next((i for i, (a, w) in enumerate(res["writes"]) if i >= len(prog.words)
                      or (a, w) != (i, prog.words[i])), len(res["writes"]))
        raise EquivalenceError(f"{what}: wrote {len(res['writes'])} words, the first wrong one is write {first}")
    if corrupt:
        bad = bytearray(image)
        bad[len(bad) // 2] ^= 0x01
        res_bad = _boot(sim, SpiFlashModel({IMAGE_OFFSET: bytes(bad)}, powered_down=True), boot + 64)
        if res_bad["ready_at"] is not None or not res_bad["failed"]:
            raise EquivalenceError(f"{what}: a corrupted image was not refused")
    if progress:
        progress(f"[equivalence] {what}: {prog.n_words} words loaded in {boot} cycles "
                 f"({1e3 * boot / clock_hz:.1f} ms)" + (", a corrupted image refused" if corrupt else ""))
    return {"words": prog.n_words, "boot_cycles": boot, "corrupt_image_refused": corrupt,
            "seconds": round(time.perf_counter() - t0, 2), "cells": sum(sim.cell_counts.values())}


def _boot(sim, flash, cycles: int) -> dict:
    """Step the loader with the flash model answering on cipo (one lane)."""
    sess = sim.session(1)
    writes, ready_at, cipo = [], None, 1
    for t in range(cycles):
        pins = sess.peek({"cipo": cipo})  # this cycle's pins (they do not depend on cipo combinationally)
        cipo = flash.step(pins["cs_n"][0], pins["sck"][0], pins["copi"][0])
        out = sess.step({"cipo": cipo})
        if out["wr_en"][0]:
            writes.append((_int(out["wr_addr"]), _int(out["wr_data"])))
        if ready_at is None and out["ready"][0]:
            ready_at = t
        if out["failed"][0]:
            return {"writes": writes, "ready_at": ready_at, "failed": True}
        if ready_at is not None and t > ready_at + 8:
            break
    return {"writes": writes, "ready_at": ready_at, "failed": False}


def _int(bits: list[int]) -> int:
    return sum((b & 1) << i for i, b in enumerate(bits))


def simulate_folded(b, ref: np.ndarray) -> None:
    """The folded build's equivalence: program vs IR, engine RTL and netlist (program memory loaded as the boot
    loader leaves it) on every vector, the loader's RTL and netlist on the build's image."""
    from . import equiv

    b.eq = {"enabled": True, "data": b.data_name, "vectors": int(len(b.x))}
    sims = {"program": check_program(b.prog, b.x, ref)}
    b.say(f"[equivalence] the program equals the IR on {len(b.x)} vectors ({sims['program']['seconds']} s)")
    b.say("[equivalence] exporting the RTL and post-synthesis engine and loader")
    mods = {label: b.blocks[label] for label in ("engine", "loader")}
    b.eq["export_s"] = round(equiv.export_modules(b.exe["yosys"], b.out, mods, memories=True), 2)
    # the formal check cuts the memory cells out of the engine: they must be the very same cells in both
    b.eq["memory_cells_identical"] = equiv.check_memory_cells(b.out / "eq_engine_rtl.json",
                                                              b.out / "eq_engine_gate.json", "engine")
    for level in ("rtl", "gate"):
        kind = "RTL" if level == "rtl" else "post-synthesis"
        b.say(f"[equivalence] simulating the {kind} engine on {len(b.x)} vectors")
        sims[f"engine_{level}"] = check_engine(b.out / f"eq_engine_{level}.json", b.prog, b.x, ref,
                                               f"{kind} engine", progress=b.say)
        if level == "rtl" and b.opts.formal:
            # the formal check proves the loader's RTL == its netlist (the build fails otherwise), and the netlist
            # is simulated on the image below: a cycle-by-cycle RTL run (the slowest check, 140 s for an
            # 11k-word image) would add nothing
            sims["loader_rtl"] = {"simulated": False, "covered_by": "the formal proof RTL == netlist (loader block)"}
            continue
        b.say(f"[equivalence] simulating the {kind} boot loader on the image")
        # the corrupted image only on the netlist that runs on the chip (the RTL loader simulates ~4x slower)
        sims[f"loader_{level}"] = check_loader(b.out / f"eq_loader_{level}.json", b.prog, f"{kind} loader",
                                               b.board.core_clock_hz, progress=b.say, corrupt=level == "gate")
    b.eq["simulation"] = sims
    b.eq["simulation_passed"] = True
    b.say(f"[equivalence] simulation passed: program, engine (RTL, netlist) on {len(b.x)} vectors, loader "
          f"({'netlist' if b.opts.formal else 'RTL, netlist'}) on the image")
