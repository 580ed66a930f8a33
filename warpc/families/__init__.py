"""FPGA families: everything that differs between iCE40, ECP5 and Gowin lives in one module per family.

A `Family` says how the core instantiates the family's primitives (LUT4, and where the family has them as separate
cells, the carry and the flip-flops), which tools build it (Yosys' ``synth_*``, nextpnr, the bitstream packer) and
with which flags, how nextpnr's report names the resources, and which of Yosys' simulation models the netlist
simulation and the formal check load. The core, the shell, the equivalence checks and the report stay
family-independent: they ask the board's family.

Cell styles (``lut_cells``): each family's explicit-cell style ("sb_lut4", "ecp5_lut4", "gowin_lut4") or
"portable" (plain logic that any synthesis maps).
"""
from __future__ import annotations

from .base import Family, Primitives
from .ecp5 import ECP5
from .gowin import GOWIN
from .ice40 import ICE40

FAMILIES: dict[str, Family] = {f.name: f for f in (ICE40, ECP5, GOWIN)}
PORTABLE = "portable"
CELL_STYLES: tuple[str, ...] = tuple(f.cell_style for f in FAMILIES.values()) + (PORTABLE,)


def primitives(cell_style: str) -> Primitives | None:
    """The explicit primitives of a cell style, None for portable logic; ConfigError for an unknown style."""
    from ..errors import ConfigError

    if cell_style == PORTABLE:
        return None
    for f in FAMILIES.values():
        if f.cell_style == cell_style:
            return f.primitives
    raise ConfigError(f"unknown LUT cell style {cell_style!r}; choose one of {', '.join(CELL_STYLES)}")


__all__ = ["CELL_STYLES", "FAMILIES", "PORTABLE", "Family", "Primitives", "primitives"]
