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
# LCs of the folded design outside the memories, fitted to yosys + nextpnr builds (see scripts/results):
# the engine's pipeline registers and lanes, the loader, the UART shell
LC_MODEL = {"base": 420, "per_lane": 120, "per_score_bit": 6, "per_reply_bit": 1.0}


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


def estimate_folded(net: Netlist, prog: Program, board, *, scores: bool = False) -> dict:
    """The folded build's estimate, in warpc.fpga.estimate's format (LCs from LC_MODEL: approximate)."""
    mem = memory_plan(prog)
    L = prog.layout.lanes
    reply_bits = prog.classes * 8 * -(-prog.score_bits // 8) if scores else 0
    lc = int(round(LC_MODEL["base"] + LC_MODEL["per_lane"] * L + LC_MODEL["per_score_bit"] * prog.score_bits
                   + LC_MODEL["per_reply_bit"] * reply_bits))
    cap = dict(board.capacity)
    lc_cap = cap.get("LC")
    from ..hdl.folded import latency

    return {
        "format": "warpc-estimate", "arch": "folded",
        "board": board.name, "device": board.device,
        "options": {"arch": "folded", "lanes": L, "scores": scores},
        "model": net.stats(),
        "LC": lc, "LUT": None, "FF": None, "CARRY": None, "BRAM": mem["EBR"], "SPRAM": mem["SPRAM"], "IO": 8,
        "capacity": {"LC": lc_cap, "BRAM": cap.get("BRAM"), "IO": cap.get("IO"), "SPRAM": cap.get("SPRAM")},
        "utilization_pct": {"LC": round(100.0 * lc / lc_cap, 1) if lc_cap else None},
        "fits": True, "clearly_over": False,
        "blocks": {"folded": {"LC": lc, "LUT": 0, "FF": 0, "CARRY": 0, "exact_cells": False,
                              "model": "LC_MODEL (fitted)"}},
        "Fmax": {"class": "~35-45 MHz (measured)", "path_estimate_MHz": None, "limited_by": "shell"},
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
    clock = b.board.clock_hz
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
