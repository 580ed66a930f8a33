"""Boards are data: boards/<name>.json holds warpc's choices per board (device and package for the tools, UART
baud, capacity, programmers) and names the amaranth-boards platform class, which owns the pins and the clock.

`load_board` reads a name from the catalogue (boards/*.json) or an explicit path to a .json file, and validates
every field before anything uses it: a board file can only name an `amaranth_boards` platform, known
programmers and plain tool flags.
"""
from __future__ import annotations

import importlib
import json
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import BoardError, WarpcError
from ..families import CELL_STYLES, FAMILIES, PORTABLE, Family

PROGRAMMERS = ("iceprog", "ecpprog", "openFPGALoader")  # the only executables `warpc flash` runs
LUT_CELLS = CELL_STYLES
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
_PLATFORM = re.compile(r"^amaranth_boards\.[a-z0-9_]+:[A-Za-z_][A-Za-z0-9_]*$")
_FLAG = re.compile(r"^[A-Za-z0-9_.{}=:-]+$")  # programmer arguments: no shell syntax, no spaces
_FIELDS = {"name", "description", "family", "platform", "core_clock_hz", "device", "package", "synth_device",
           "nextpnr_device", "nextpnr_package", "clock_hz", "uart", "capacity", "lut_cells", "programmers"}
_ICE40_ONLY = ("synth_device", "nextpnr_device", "nextpnr_package")  # other families: from the platform


@dataclass(frozen=True)
class Programmer:
    tool: str                     # one of PROGRAMMERS
    flash: tuple[str, ...]        # arguments writing the SPI flash; "{bin}" stands for the bitstream
    sram: tuple[str, ...] | None  # arguments loading SRAM only (lost at power-off), when the tool can
    # arguments writing a file at a flash offset ("{bin}" the file, "{offset}" the byte offset): a folded build's
    # program image
    flash_at: tuple[str, ...] | None = None

    def command(self, bitstream: str, sram: bool = False) -> list[str]:
        args = self.sram if sram else self.flash
        if args is None:
            raise BoardError(f"{self.tool} cannot load SRAM only on this board; flash without --sram")
        return [self.tool] + [bitstream if a == "{bin}" else a for a in args]

    def command_at(self, path: str, offset: int) -> list[str]:
        if self.flash_at is None:
            raise BoardError(f"the board file lists no 'flash_at' arguments for {self.tool}: it cannot write a "
                             "folded build's program image into the flash")
        return [self.tool] + [path if a == "{bin}" else str(offset) if a == "{offset}" else a
                              for a in self.flash_at]


@dataclass(frozen=True)
class Board:
    name: str
    description: str
    platform: str                 # "amaranth_boards.<module>:<PlatformClass>"
    device: str                   # for reports, e.g. iCE40UP5K
    package: str
    synth_device: str             # iCE40 only: synth_ice40 -device
    nextpnr_device: str           # iCE40 only: nextpnr-ice40 device flag, e.g. --up5k
    nextpnr_package: str          # iCE40 only
    clock_hz: int                 # the platform's default clock, which clocks the design
    baud: int
    usb_port_hint: str | None
    capacity: dict[str, int] = field(default_factory=dict)
    lut_cells: str = "sb_lut4"
    programmers: tuple[Programmer, ...] = ()
    source: str = ""              # the file it was read from
    family_name: str = "ice40"    # warpc.families key
    pll_clock_hz: int | None = None  # the core's clock, made from clock_hz by the family's PLL (None: clock_hz)

    # True: only the core runs on pll_clock_hz, the shell (UART, framing, encoder) on clock_hz (--core-clock)
    pll_split: bool = False

    @property
    def core_clock_hz(self) -> int:
        """The clock the core runs at: the board's, or the PLL's when the board file (or --core-clock) asks for
        one."""
        return self.pll_clock_hz or self.clock_hz

    @property
    def shell_clock_hz(self) -> int:
        """The clock of the UART shell: the core's, except with --core-clock (then the board's)."""
        return self.clock_hz if self.pll_split else self.core_clock_hz

    @property
    def uart_divisor(self) -> int:
        return round(self.core_clock_hz / self.baud)

    @property
    def family(self) -> Family:
        return FAMILIES[self.family_name]

    @property
    def logic_capacity(self) -> int:
        """Logic cells (iCE40: LCs) or LUT4s (ECP5, Gowin): what estimates are compared against."""
        return int(self.capacity.get(self.family.logic_unit, 0))


def boards_dir() -> Path:
    """$WARPC_BOARDS, else the source tree's boards/ (editable install), else the copy a wheel installs under
    <prefix>/share/warpc/boards (pyproject's data-files)."""
    env = os.environ.get("WARPC_BOARDS")
    if env:
        return Path(env)
    source = Path(__file__).resolve().parents[2] / "boards"
    if source.is_dir():
        return source
    return Path(sys.prefix) / "share" / "warpc" / "boards"


def supported_boards() -> list[str]:
    d = boards_dir()
    return sorted(p.stem for p in d.glob("*.json") if _NAME.match(p.stem)) if d.is_dir() else []


def load_board(name_or_path: str | Path) -> Board:
    """A board from the catalogue by name (e.g. "icebreaker"), or from an explicit path to a .json file."""
    arg = str(name_or_path)
    if arg.lower().endswith(".json"):
        path = Path(arg)
        if not path.is_file():
            raise BoardError(f"board file {arg} not found")
        return parse_board(_read(path), path, default_name=path.stem)
    key = arg.lower()
    have = supported_boards()
    if not _NAME.match(key) or key not in have:  # never turn a name into a path outside the catalogue
        raise BoardError(f"unknown board {arg!r}; supported boards: "
                         f"{', '.join(have) or '(none found in ' + str(boards_dir()) + ')'} "
                         "(or pass the path of a board .json file)")
    path = boards_dir() / f"{key}.json"
    return parse_board(_read(path), path, default_name=key)


def _read(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError) as e:
        raise BoardError(f"cannot read board file {path}: {e}") from None
    except json.JSONDecodeError as e:
        raise BoardError(f"board file {path} is not valid JSON: {e}") from None


def parse_board(d, path: Path | str = "<board>", default_name: str = "board") -> Board:
    """Validate a board description (the parsed JSON) completely; BoardError names the bad field."""
    where = f"board file {path}"
    if not isinstance(d, dict):
        raise BoardError(f"{where}: expected a JSON object with fields {', '.join(sorted(_FIELDS))}, "
                         f"got a {type(d).__name__}")
    unknown = sorted(set(d) - _FIELDS)
    if unknown:
        raise BoardError(f"{where}: unknown field(s) {', '.join(unknown)}; known: {', '.join(sorted(_FIELDS))}")

    def need(key: str, typ, what: str, parent: dict = d, prefix: str = ""):
        if key not in parent:
            raise BoardError(f"{where}: missing field {prefix}{key} ({what})")
        v = parent[key]
        if not isinstance(v, typ) or isinstance(v, bool):
            raise BoardError(f"{where}: field {prefix}{key} must be {what}, got {v!r}")
        return v

    def text(key: str, pattern: re.Pattern | None = None, what: str = "a string"):
        v = need(key, str, what)
        if not v.strip() or (pattern is not None and not pattern.match(v)):
            raise BoardError(f"{where}: field {key} must be {what}, got {v!r}")
        return v

    name = d.get("name", default_name)
    if not isinstance(name, str) or not _NAME.match(name.lower()):
        raise BoardError(f"{where}: field name must be lower-case letters, digits, '-' or '_', got {name!r}")
    desc = d.get("description", "")
    if not isinstance(desc, str):
        raise BoardError(f"{where}: field description must be a string, got {desc!r}")
    fam = d.get("family", "ice40")
    if fam not in FAMILIES:
        raise BoardError(f"{where}: field family must be one of {', '.join(FAMILIES)}, got {fam!r}")
    family = FAMILIES[fam]
    platform = text("platform", _PLATFORM, 'an amaranth-boards platform "amaranth_boards.<module>:<Class>"')
    clock = need("clock_hz", int, "the clock frequency in Hz, a positive integer")
    if clock <= 0:
        raise BoardError(f"{where}: field clock_hz must be a positive number of Hz, got {clock}")
    board_clock = clock
    core = d.get("core_clock_hz", clock)
    if not isinstance(core, int) or isinstance(core, bool) or core <= 0:
        raise BoardError(f"{where}: field core_clock_hz must be a positive number of Hz, got {core!r}")
    if core != clock:
        if family.pll is None:
            raise BoardError(f"{where}: field core_clock_hz needs the family's PLL, which warpc "
                             f"does not drive on {family.title}")
        try:
            family.pll_check(clock, core)
        except WarpcError as e:
            raise BoardError(f"{where}: field core_clock_hz: {e}") from None
        clock = core  # the UART and everything else run at the core clock
    uart = need("uart", dict, 'an object {"baud": ...}')
    baud = need("baud", int, "a positive integer (bits per second)", uart, "uart.")
    if baud <= 0:
        raise BoardError(f"{where}: field uart.baud must be a positive number of bits per second, got {baud}")
    if clock / baud < 4:  # the UART samples each bit over >= 4 clocks
        raise BoardError(f"{where}: field uart.baud {baud} is too fast for a {clock} Hz clock "
                         f"(at most {clock // 4})")
    if abs(clock / round(clock / baud) / baud - 1) > 0.02:
        raise BoardError(f"{where}: field uart.baud {baud} cannot be made from {clock} Hz within 2 % "
                         f"(clock / baud = {clock / baud:.2f}); choose a baud rate that divides the clock")
    bad_uart = sorted(set(uart) - {"baud", "usb_port_hint"})
    if bad_uart:
        raise BoardError(f"{where}: unknown field(s) uart.{', uart.'.join(bad_uart)}; known: uart.baud, "
                         "uart.usb_port_hint (the pins are in the amaranth-boards platform)")
    hint = uart.get("usb_port_hint")
    if hint is not None and not isinstance(hint, str):
        raise BoardError(f"{where}: field uart.usb_port_hint must be a string, got {hint!r}")
    cap = need("capacity", dict, 'an object of resource counts, e.g. {"LC": 5280}')
    for k, v in cap.items():
        if not isinstance(v, int) or isinstance(v, bool) or v < 0:
            raise BoardError(f"{where}: field capacity.{k} must be a non-negative integer, got {v!r}")
    unit = family.logic_unit
    if unit not in cap:
        raise BoardError(f"{where}: missing field capacity.{unit} "
                         f"({'logic cells' if unit == 'LC' else 'LUT4s'} of the {family.title} device)")
    lut_cells = d.get("lut_cells", family.cell_style)
    styles = (family.cell_style, PORTABLE)
    if lut_cells not in styles:
        raise BoardError(f"{where}: field lut_cells must be one of {', '.join(styles)} on {family.title}, "
                         f"got {lut_cells!r}")
    if fam == "ice40":
        ice = dict(
            synth_device=text("synth_device", re.compile(r"^[a-z0-9]+$"), "a synth_ice40 -device value, e.g. u"),
            nextpnr_device=text("nextpnr_device", re.compile(r"^--[a-z0-9]+$"), "a nextpnr device flag, e.g. --up5k"),
            nextpnr_package=text("nextpnr_package", re.compile(r"^[a-z0-9]+$"), "a nextpnr package, e.g. sg48"))
    else:
        extra = [k for k in _ICE40_ONLY if k in d]
        if extra:
            raise BoardError(f"{where}: field(s) {', '.join(extra)} apply to iCE40 boards only (on {family.title} "
                             "the amaranth-boards platform gives the device flags)")
        ice = dict(synth_device="", nextpnr_device="", nextpnr_package="")
    progs = need("programmers", list, "a list of programmers")
    return Board(
        name=name.lower(), description=desc, platform=platform,
        device=text("device"), package=text("package"), **ice,
        clock_hz=board_clock, baud=baud, usb_port_hint=hint, capacity=dict(cap), lut_cells=lut_cells,
        programmers=tuple(_programmer(p, i, where) for i, p in enumerate(progs)), source=str(path),
        family_name=fam, pll_clock_hz=None if core == board_clock else core,
    )


def _programmer(p, i: int, where: str) -> Programmer:
    field_ = f"programmers[{i}]"
    if not isinstance(p, dict) or p.get("tool") not in PROGRAMMERS:
        raise BoardError(f'{where}: field {field_} must be {{"tool": one of {", ".join(PROGRAMMERS)}, '
                         f'"flash": [args], "sram": [args]}}, got {p!r}')
    unknown = sorted(set(p) - {"tool", "flash", "sram", "flash_at"})
    if unknown:
        raise BoardError(f"{where}: unknown field(s) {field_}.{', '.join(unknown)}")
    args = {}
    for mode in ("flash", "sram", "flash_at"):
        a = p.get(mode)
        if a is None and mode != "flash":
            args[mode] = None
            continue
        need = ["{bin}", "{offset}"] if mode == "flash_at" else ["{bin}"]
        if (not isinstance(a, list) or not all(n in a for n in need)
                or not all(isinstance(s, str) and _FLAG.match(s) for s in a)):
            what = '"{bin}" (the file) and "{offset}"' if mode == "flash_at" else '"{bin}" (the bitstream)'
            raise BoardError(f'{where}: field {field_}.{mode} must be a list of plain arguments containing '
                             f'{what}, got {a!r}')
        args[mode] = tuple(a)
    return Programmer(p["tool"], args["flash"], args["sram"], args["flash_at"])


def platform_for(board: Board):
    """The board's amaranth-boards platform, checked against the board file (UART resource, clock)."""
    mod, _, cls = board.platform.partition(":")
    try:
        klass = getattr(importlib.import_module(mod), cls)
    except (ImportError, AttributeError) as e:
        raise BoardError(f"board {board.name}: cannot load platform {board.platform} ({e})") from None
    from amaranth import vendor
    from amaranth.build import Platform

    if not (isinstance(klass, type) and issubclass(klass, Platform)):
        raise BoardError(f"board {board.name}: {board.platform} is not an Amaranth platform class")
    fam = board.family
    if not issubclass(klass, getattr(vendor, fam.platform_class)):
        raise BoardError(f"board {board.name}: {board.platform} is not a {fam.title} platform, but the board file "
                         f"says family {fam.name!r}")
    plat = klass()
    if ("uart", 0) not in plat.resources:
        raise BoardError(f"board {board.name}: platform {board.platform} has no uart resource")
    if plat.default_clk_frequency != board.clock_hz:
        raise BoardError(f"board {board.name}: clock_hz {board.clock_hz} differs from the platform's default "
                         f"clock ({plat.default_clk_frequency:.0f} Hz)")
    return plat


def catalogue() -> list[dict]:
    """Every board of the catalogue as a dict (what `warpc boards` lists); a board file that does not load is
    listed with its error instead of hiding the others."""
    rows = []
    for name in supported_boards():
        try:
            b = load_board(name)
        except BoardError as e:
            rows.append({"name": name, "error": str(e)})
            continue
        rows.append({
            "name": b.name, "family": b.family.name, "device": b.device, "package": b.package,
            "logic": {"unit": b.family.logic_unit, "available": b.logic_capacity},
            "BRAM": b.capacity.get("BRAM"), "SPRAM": b.capacity.get("SPRAM"), "DSP": b.capacity.get("DSP"),
            "clock_MHz": b.clock_hz / 1e6, "core_clock_MHz": b.core_clock_hz / 1e6, "uart_baud": b.baud, "uart_port_hint": b.usb_port_hint,
            "lut_cells": b.lut_cells, "programmers": [p.tool for p in b.programmers],
            "bitstream": b.family.bitstream, "platform": b.platform, "description": b.description,
            "archs": ["spatial", "folded"] if b.family.name == "ice40" and b.capacity.get("SPRAM") else ["spatial"],
        })
    return rows


def format_catalogue(rows: list[dict]) -> str:
    head = f"{'board':<12}{'family':<7}{'device':<14}{'logic':>13}{'BRAM':>6}{'clock':>9}{'UART':>9}  programmers"
    lines = [head]
    for r in rows:
        if "error" in r:
            lines.append(f"{r['name']:<12}(does not load: {r['error']})")
            continue
        logic = f"{r['logic']['available']:,} {r['logic']['unit']}"
        lines.append(f"{r['name']:<12}{r['family']:<7}{r['device']:<14}{logic:>13}{r['BRAM'] or 0:>6}"
                     f"{r['clock_MHz']:>6g} MHz{r['uart_baud']:>9}  {', '.join(r['programmers'])}")
    lines.append(f"(board files in {boards_dir()}; BRAM in blocks: iCE40 4 Kbit, ECP5 18 Kbit, Gowin 18 Kbit; "
                 "`warpc synth --board FILE.json` takes your own)")
    return "\n".join(lines)
