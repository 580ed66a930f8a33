"""Proof that the hardware computes what the model computes.

1. Simulation, every vector of the test set: the core and the serial encoder, both as RTL (the RTLIL Amaranth
   handed to synthesis, gate-mapped by Yosys' techmap) and as the post-synthesis netlist (the modules of the very
   netlist nextpnr placed), run in the bit-parallel NetSim with samples streamed one per clock (II = 1), and every
   class index (and score, where the design outputs them) compared with the IR reference. A mismatch raises
   EquivalenceError naming the first differing sample.
2. Formal: Yosys equiv_make / equiv_simple / equiv_induct / equiv_status -assert between the RTL and the synthesised
   module, with the iCE40 cell models (from Yosys' own cells_sim.v) loaded so SB_LUT4 cells carry their LUT_INIT.
"""
from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path

from typing import Callable

import numpy as np

from ..errors import EquivalenceError, ToolchainError
from ..ir.emulate import argmax_lowest
from ..ir.netlist import Netlist
from ..families import ICE40, Family
from .netsim import NetSim, _param_int, value_of
from .tools import tail

Progress = Callable[[str], None]


def export_files(labels) -> set[str]:
    """Names of the files `export_modules` writes for these module labels (for the build's manifest)."""
    return {"eq_cell_stubs.v", "eq_cell_models.v", "eq_synth.json", "eq_export.ys", "eq_export.log"} | {
        f"eq_{label}_{level}.json" for label in labels for level in ("rtl", "gate")}


def formal_files(labels) -> set[str]:
    """Names of the files `formal_check` writes for these module labels."""
    return {"eqf_cell_models.v", "eqf_cell_models_struct.v", "eqf_synth.json", "eqf_status.txt", "eqf_gold.il",
            "eqf_gate.il"} | {f"eqf_{label}.{ext}" for label in labels for ext in ("ys", "log")}


def write_cell_models(path: Path, family: Family = ICE40, blackbox: tuple[str, ...] = ()) -> Path:
    """The family's logic cells' simulation models, cut out of Yosys' own (see Family.cell_models); `blackbox`
    cells as port-only declarations; iCE40 adds its memory cells as blackboxes (the folded engine's)."""
    stubs = _MEMORY_STUBS if family.name == "ice40" else []
    path.write_text(family.cell_models(blackbox) + "\n" + "\n".join(stubs) + "\n")
    return path


def write_cell_stubs(path: Path, family: Family = ICE40) -> Path:
    """Blackbox declarations of the family's logic cells, so the netlists read and write without their models."""
    return write_cell_models(path, family, blackbox=family.model_cells)


def write_structural_models(path: Path, family: Family = ICE40) -> Path:
    """Flip-flop models with the LUT (and carry) cells as blackboxes: blocks written as explicit cells are then
    proven cell by cell (equiv_struct pairs identical cells, parameters included) instead of expanding every LUT."""
    return write_cell_models(path, family, blackbox=family.struct_cells)


def _read_models(family: Family, models: str) -> str:
    return f"read_verilog {' '.join('-D ' + d for d in family.model_defines)} {models}".replace("  ", " ")


def _yosys(exe: str, script: str, cwd: Path, name: str, timeout: float | None = None) -> float:
    (cwd / f"{name}.ys").write_text(script)
    t0 = time.perf_counter()
    try:
        r = subprocess.run([exe, "-q", "-l", f"{name}.log", f"{name}.ys"], cwd=cwd, capture_output=True,
                           text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise TimeoutError(name) from None
    if r.returncode:
        raise ToolchainError(f"yosys ({name}) failed, exit {r.returncode}; last lines of {cwd / (name + '.log')}:\n"
                             f"{tail(cwd / (name + '.log'))}\n{r.stderr[-1500:]}")
    return time.perf_counter() - t0


def _without_blackboxes(src: Path, dst: Path) -> None:
    """The synthesised JSON carries blackbox declarations of every cell it uses: drop them so models apply."""
    design = json.loads(src.read_text())
    design["modules"] = {k: v for k, v in design["modules"].items()
                         if not str((v.get("attributes") or {}).get("blackbox", "0")).strip("0")}
    dst.write_text(json.dumps(design))


def export_modules(exe: str, cwd: Path, modules: dict[str, str], il: str = "top.il", synth_json: str = "top.json",
                   memories: bool = False, family: Family = ICE40) -> float:
    """Write eq_<label>_rtl.json (RTL, gate-mapped) and eq_<label>_gate.json (post-synthesis) for each
    label -> module name; returns seconds. memories=True keeps RTL memories as single $mem_v2 cells (netsim
    simulates them) instead of leaving their port cells to techmap. iCE40 cells stay cells (netsim models them);
    other families' cells are flattened into gates through Yosys' own simulation models of them."""
    native = family.native_sim
    if native:
        write_cell_stubs(cwd / "eq_cell_stubs.v", family)
        read = "read_verilog eq_cell_stubs.v"
        gate_src = synth_json
    else:
        write_cell_models(cwd / "eq_cell_models.v", family)
        read = _read_models(family, "eq_cell_models.v")
        _without_blackboxes(cwd / synth_json, cwd / "eq_synth.json")
        gate_src = "eq_synth.json"
    lines = [read, f"read_rtlil {il}", "design -save rtl"]
    mem = ["memory -nomap", "opt_clean"] if memories else []
    for label, mod in modules.items():
        lines += ["design -load rtl", f"hierarchy -top {mod}", "proc", "flatten", "opt_clean", *mem, "techmap",
                  "async2sync", "dffunmap", "opt_clean", f"write_json eq_{label}_rtl.json"]
    lines += ["design -reset"] + ([] if native else [read]) + [f"read_json {gate_src}", "design -save gate"]
    to_gates = [] if native else ["proc", "opt_clean", "techmap", "async2sync", "dffunmap", "opt_clean"]
    for label, mod in modules.items():
        lines += ["design -load gate", f"hierarchy -top {mod}", "setattr -mod -unset keep_hierarchy *", "flatten",
                  *to_gates, f"write_json eq_{label}_gate.json"]
    return _yosys(exe, "\n".join(lines) + "\n", cwd, "eq_export")


# Memories stay blackboxes in every formal check: the folded engine instantiates them explicitly (SB_RAM40_4K,
# SB_SPRAM256KA), so the RTL and the netlist hold the same cells, which equiv_struct pairs by type, parameters
# and inputs; their contents are not modelled (the simulations check the data they hold).
_MEMORY_STUBS = [
    "(* blackbox *) module SB_RAM40_4K(output [15:0] RDATA, input RCLK, RCLKE, RE, input [10:0] RADDR, input WCLK, "
    "WCLKE, WE, input [10:0] WADDR, input [15:0] MASK, WDATA); parameter WRITE_MODE = 0; parameter READ_MODE = 0; "
    + " ".join(f"parameter [255:0] INIT_{i:X} = 0;" for i in range(16)) + ' parameter INIT_FILE = ""; endmodule',
    "(* blackbox *) module SB_SPRAM256KA(input [13:0] ADDRESS, input [15:0] DATAIN, input [3:0] MASKWREN, "
    "input WREN, CHIPSELECT, CLOCK, STANDBY, SLEEP, POWEROFF, output [15:0] DATAOUT); endmodule",
]


MEMORY_CELLS = ("SB_RAM40_4K", "SB_SPRAM256KA")


def _formal_script(il: str, mod: str, models: str, structural: bool, cut: bool = False,
                   family: Family = ICE40) -> str:
    """Gold (RTL) vs gate (synthesised) for one module; `structural`: explicit cells stay blackboxes and are
    paired by equiv_struct (fails with "No SAT model" when a block holds logic Yosys re-mapped, or a cell
    differs: then the full-model proof decides)."""
    read = _read_models(family, models)
    # cut: every memory cell becomes a cut point in both designs (its inputs extra outputs that must be equal, its
    # outputs extra inputs shared by both), so the proof covers all logic around the memories but not their
    # contents; the cells must then be the same in both (check_memory_cells)
    evert = [f"expose -evert {' '.join('t:' + c for c in MEMORY_CELLS)}"] if cut else []
    # ECP5's TRELLIS_FF model (and Gowin's DFF*) hold their configuration as constant muxes: fold those, so a
    # flip-flop is the plain $dff that the RTL's synchronous assignment is and equiv_struct pairs the LUTs around it
    fold = [] if family.native_sim else ["opt_expr -mux_undef", "opt_clean"]
    return "\n".join([
        read, f"read_rtlil {il}", f"hierarchy -top {mod}", "proc", "flatten", "opt_clean", *fold, *evert,
        f"rename {mod} gold", "hierarchy -top gold", "write_rtlil eqf_gold.il", "design -reset",
        read, "read_json eqf_synth.json", f"hierarchy -top {mod}", "setattr -mod -unset keep_hierarchy *", "proc",
        "flatten", "opt_clean", *fold, *evert, f"rename {mod} gate", "hierarchy -top gate", "write_rtlil eqf_gate.il",
        "design -reset", read, "read_rtlil eqf_gold.il", "read_rtlil eqf_gate.il", "async2sync",
        "equiv_make gold gate equiv", "hierarchy -top equiv",
        *(["equiv_struct"] if structural else []),
        "equiv_simple -seq 2", "equiv_induct",
        "tee -o eqf_status.txt equiv_status", "equiv_status -assert",
    ]) + "\n"


def formal_check(exe: str, cwd: Path, modules: dict[str, str], il: str = "top.il", synth_json: str = "top.json",
                 timeout: float = 600.0, progress: Progress | None = None, cut_memories=(),
                 family: Family = ICE40) -> dict:
    """Yosys equiv_* between RTL and synthesised netlist per module. Returns {label: status, ..., seconds}.

    Each block is first proven structurally (explicit SB_LUT4/SB_CARRY cells as blackboxes, paired by
    equiv_struct: seconds even for a 784-feature encoder); when that does not close (logic Yosys re-mapped, or a
    differing cell), the full proof with every cell's model runs and decides."""
    write_cell_models(cwd / "eqf_cell_models.v", family)
    write_structural_models(cwd / "eqf_cell_models_struct.v", family)
    _without_blackboxes(cwd / synth_json, cwd / "eqf_synth.json")
    out: dict = {"method": "yosys equiv_make/equiv_struct/equiv_simple/equiv_induct/equiv_status -assert, "
                           "explicit cells paired structurally, else every cell's model",
                 "modules": {}}
    t_all = time.perf_counter()
    for label, mod in modules.items():
        t0 = time.perf_counter()
        if progress:
            progress(f"[formal] proving the {label} (limit {timeout:g} s)")
        status, how = "timeout", None
        for structural in (True, False):
            (cwd / "eqf_status.txt").unlink(missing_ok=True)
            models = "eqf_cell_models_struct.v" if structural else "eqf_cell_models.v"
            left = timeout - (time.perf_counter() - t0)
            if left <= 0:
                break
            try:
                _yosys(exe, _formal_script(il, mod, models, structural, cut=label in cut_memories,
                                                  family=family), cwd,
                       f"eqf_{label}", timeout=left)
                status, how = "proven", "cell by cell" if structural else "full cell models"
                break
            except TimeoutError:
                status = "timeout"
                break
            except ToolchainError as e:
                if structural:
                    continue  # not provable cell by cell: the full models decide
                msg = str(e)
                if "unproven" in msg.lower() or "equiv_status" in msg:
                    raise EquivalenceError(f"formal check of the {label} failed: synthesised netlist and RTL "
                                           f"differ (see {cwd / f'eqf_{label}.log'}):\n"
                                           f"{tail(cwd / f'eqf_{label}.log', 8)}")
                raise
        st = (cwd / "eqf_status.txt").read_text(errors="replace") if status == "proven" else ""
        m = re.search(r"Found (\d+) \$equiv cells", st)
        out["modules"][label] = {"status": status, "seconds": round(time.perf_counter() - t0, 2),
                                 "equiv_cells": int(m.group(1)) if m else None, "how": how}
    out["seconds"] = round(time.perf_counter() - t_all, 2)
    out["complete"] = all(v["status"] == "proven" for v in out["modules"].values())
    out["passed"] = True  # a counterexample raises; a timeout leaves that block to the simulation check
    out["limit"] = f"{timeout:g} s per block; a block that times out is covered by simulation only"
    return out


def _stream_plan(n: int, latency: int, per_lane: int = 32) -> tuple[int, int, np.ndarray]:
    T = max(1, min(n, per_lane))
    lanes = -(-n // T)
    idx = (np.arange(lanes)[:, None] * T + np.arange(T)[None, :]) % n  # (lanes, T) sample index
    return T, lanes, idx


def _ticker(what: str, vectors_done: Callable[[int], int], total: int, progress: Progress | None,
            every: float = 5.0):
    """A NetSim cycle callback that reports `what`: done/total vectors at most every `every` seconds."""
    if progress is None:
        return None
    t0 = time.perf_counter()
    last = [t0]

    def tick(cycle: int, cycles: int) -> None:
        now = time.perf_counter()
        if now - last[0] >= every:
            last[0] = now
            progress(f"[equivalence] {what}: {min(total, vectors_done(cycle))}/{total} vectors "
                     f"(cycle {cycle}/{cycles}), {now - t0:.0f} s")
    return tick


def _load_sim(json_path: Path, what: str, progress: Progress | None, x_fill: str = "zero") -> NetSim:
    t0 = time.perf_counter()
    sim = NetSim(json.loads(Path(json_path).read_text()), x_fill=x_fill)
    dt = time.perf_counter() - t0
    if progress and dt > 2.0:  # large designs take a while to compile into Python; say so before simulating
        progress(f"[equivalence] {what}: {sum(sim.cell_counts.values())} cells loaded into the simulator in "
                 f"{dt:.1f} s")
    return sim


def check_core(json_path: Path, net: Netlist, x: np.ndarray, ref_counts: np.ndarray, latency: int,
               what: str, progress: Progress | None = None, interval: int = 1) -> dict:
    """Stream net.encode(x) through the core module in `json_path` (all samples in lanes of up to 32, one every
    `interval` clocks, each held for its interval); compare cls (and scores if present) and the valid_out
    timing."""
    t0 = time.perf_counter()
    sim = _load_sim(json_path, what, progress)
    if sim.inputs.get("bits") is None:
        raise ToolchainError(f"{what}: core module has no 'bits' input (ports: {list(sim.inputs)})")
    T, lanes, _ = _stream_plan(len(x), latency)
    tick = _ticker(what, lambda c: lanes * max(0, (c - latency) // interval), len(x), progress)
    compared, lanes = _compare_core(sim, net, x, ref_counts, latency, what, 0, len(x), tick, interval)
    return {"vectors": len(x), "compared": compared, "seconds": round(time.perf_counter() - t0, 2),
            "cells": sum(sim.cell_counts.values()),
            "streamed": f"{lanes} lanes x {T} samples, 1 every {interval} clock{'s' if interval > 1 else ''}"}


def _compare_core(sim: NetSim, net: Netlist, x: np.ndarray, ref_counts: np.ndarray, latency: int, what: str,
                  offset: int, total: int, tick=None, interval: int = 1) -> tuple[list[str], int]:
    n = len(x)
    bits = net.encode(x).astype(bool)
    T, lanes, idx = _stream_plan(n, latency)
    width = sim.inputs["bits"]
    N = interval
    cycles = T * N + latency + 1
    stim_bits = np.zeros((cycles, lanes, width), dtype=bool)
    per_sample = bits[idx].transpose(1, 0, 2)  # (T, lanes, bits)
    stim_bits[: T * N, :, : bits.shape[1]] = np.repeat(per_sample, N, axis=0)
    stim_valid = np.zeros((cycles, lanes, 1), dtype=bool)
    stim_valid[0 : T * N : N] = True
    out = sim.run({"bits": stim_bits, "valid_in": stim_valid}, cycles, progress=tick)
    when = latency + np.arange(T) * N  # the cycle each sample's answer must show
    ref_cls = argmax_lowest(ref_counts)
    got_cls = value_of(out["cls"][when])  # (T, lanes)
    order = idx.T  # (T, lanes) sample index
    compared = ["cls"]
    bad = got_cls != ref_cls[order]
    got_sc = None
    if "scores" in sim.outputs:
        compared.append("scores")
        sb = sim.outputs["scores"] // net.classes
        sc = out["scores"][when].reshape(T, lanes, net.classes, sb)
        got_sc = value_of(sc)
        bad |= (got_sc != ref_counts[order]).any(-1)
    if "valid_out" in sim.outputs:
        compared.append("valid_out")
        v = out["valid_out"][:, :, 0]
        bad |= ~v[when]
        expected = np.zeros(cycles, dtype=bool)
        expected[when] = True
        stray = v[~expected].any(-1)
        if stray.any():
            c = int(np.flatnonzero(~expected)[np.argmax(stray)])
            raise EquivalenceError(f"{what}: valid_out high in cycle {c}, where no answer is due (latency "
                                   f"{latency}, one sample every {N} cycles)")
    if bad.any():
        t, lane = map(int, np.argwhere(bad)[np.argmin(order[bad])])
        i = int(order[t, lane])
        detail = f"expected class {int(ref_cls[i])} scores {ref_counts[i].tolist()}, got class {int(got_cls[t, lane])}"
        if got_sc is not None:
            detail += f" scores {got_sc[t, lane].tolist()}"
        n_bad = len(np.unique(order[bad]))
        raise EquivalenceError(f"{what} differs from the model on test sample {offset + i} ({n_bad} of the "
                               f"{n} samples {offset}..{offset + n - 1} of {total} differ): {detail}")
    return compared, lanes


def check_encoder(json_path: Path, net: Netlist, x: np.ndarray, what: str, progress: Progress | None = None) -> dict:
    """Feed each sample's features one per clock (all samples in parallel lanes); compare the stored bits."""
    t0 = time.perf_counter()
    sim = _load_sim(json_path, what, progress)
    used = net.used_inputs()
    F = x.shape[1]
    # every lane receives feature c in cycle c: a vector is done when all its features are in
    tick = _ticker(what, lambda c: len(x) * c // (F + 1), len(x), progress)
    _compare_encoder(sim, net, x, used, what, 0, len(x), tick)
    return {"vectors": len(x), "bits_checked": len(used), "seconds": round(time.perf_counter() - t0, 2),
            "cells": sum(sim.cell_counts.values())}


def _compare_encoder(sim: NetSim, net: Netlist, x: np.ndarray, used: list[int], what: str, offset: int,
                         total: int, tick=None) -> None:
    n, F = x.shape
    cycles = F + 2  # the encoder shows the last strobe's bits within 2 cycles; read them in the last one
    vw, iw = sim.inputs["value"], sim.inputs["index"]
    value = np.zeros((cycles, n, vw), dtype=bool)
    index = np.zeros((cycles, n, iw), dtype=bool)
    strobe = np.zeros((cycles, n, 1), dtype=bool)
    for f in range(F):
        value[f] = ((x[:, f : f + 1] >> np.arange(vw)) & 1).astype(bool)
        index[f] = ((f >> np.arange(iw)) & 1).astype(bool)[None, :]
        strobe[f] = True
    out = sim.run({"value": value, "index": index, "strobe": strobe}, cycles, progress=tick)
    got = out["bits"][F + 1][:, used]
    exp = net.encode(x)[:, used].astype(bool)
    bad = (got != exp).any(1)
    if bad.any():
        i = int(np.argmax(bad))
        j = int(np.argmax(got[i] != exp[i]))
        b = net.inputs[used[j]]
        raise EquivalenceError(f"{what} differs on test sample {offset + i}: bit [x[{b.feature}] >= {b.threshold}] "
                               f"is {int(got[i, j])}, expected {int(exp[i, j])} ({int(bad.sum())} of the {n} "
                               f"samples {offset}..{offset + n - 1} of {total} differ)")


def check_memory_cells(rtl_json: Path, gate_json: Path, what: str) -> int:
    """The memory cells of a block's RTL and netlist (as exported by export_modules) are the same cells: same
    names, types and parameters (the formal check cuts them out, see _formal_script). Returns how many."""
    def cells(p: Path) -> dict:
        d = json.loads(Path(p).read_text())
        mod = next(iter(m for m in d["modules"].values()
                        if not str((m.get("attributes") or {}).get("blackbox", "0")).strip("0")
                        and any(c["type"] in MEMORY_CELLS for c in m["cells"].values())), None)
        if mod is None:
            return {}
        return {n: (c["type"], {k: _param_int(v) for k, v in c.get("parameters", {}).items()})
                for n, c in mod["cells"].items() if c["type"] in MEMORY_CELLS}

    gold, gate = cells(rtl_json), cells(gate_json)
    if set(gold) != set(gate):
        raise EquivalenceError(f"{what}: the netlist's memory cells {sorted(gate)} are not the RTL's {sorted(gold)}")
    for n, (typ, params) in gold.items():
        gtyp, gparams = gate[n]
        defaults = {k: 0 for k in set(params) ^ set(gparams)}  # a parameter left out is its default, 0
        if typ != gtyp or {**defaults, **params} != {**defaults, **gparams}:
            raise EquivalenceError(f"{what}: memory cell {n} differs between RTL and netlist ({typ} {params} vs "
                                   f"{gtyp} {gparams})")
    return len(gold)

