"""A cycle-accurate, bit-parallel simulator of Yosys JSON netlists (``write_json``).

It is fast enough to check every test vector on every build: each net is one Python integer whose bit j is the
value in simulation lane j, and the netlist is compiled once into straight-line Python code. Supported cells:
Yosys' fine-grained gates (``$_AND_``... after ``techmap``) with ``$_DFF_P_`` (after ``dffunmap``), and the iCE40
cells ``synth_ice40`` emits (``SB_LUT4``, ``SB_CARRY``, ``SB_DFF*`` with enable / set / reset). The models follow
Yosys' ``ice40/cells_sim.v``; asynchronous set/reset are applied at the clock edge (the designs checked here
drive them only from synchronous logic or constants). One `step` = evaluate the logic, read the outputs, clock.

Memories: ``SB_RAM40_4K`` (EBR, every READ_MODE / WRITE_MODE) and ``SB_SPRAM256KA``, also after cells_sim.v (the
negative-edge SB_RAM40_4KN* variants are refused). Contents are kept per bit as lane integers (`MemoryModel`), so a
port costs O(data bits) big-int operations per cycle, but only because every address is the same in all lanes: an
address that differs between lanes while its port is enabled raises `ToolchainError` (data-dependent addressing
would need one memory per lane), and so do SPRAM CHIPSELECT / WREN / STANDBY / SLEEP. Data, MASK / MASKWREN and the
EBR's RE / WE / clock enables may differ per lane. Like the flip-flops, every memory is clocked on every step (its
clock pins must be the flip-flops' clock). Semantics from cells_sim.v worth knowing: reads are registered (the word
addressed at edge t is the output in step t + 1, held until the next enabled read); an EBR read and write of the
same word at one edge reads the OLD word; SPRAM DATAOUT holds while CHIPSELECT is low, is x after a write cycle and
in STANDBY, and SLEEP forces it to 0 at once (asynchronously, in the same step); POWEROFF must be tied to 1; SPRAM
contents start x. An x reads as 0, or as fixed junk with ``x_fill="random"`` (to catch designs that use one).
Contents start each `run` from the cell's INIT parameters plus what `MemoryModel.load` put there, like the
flip-flops start from their init values; after a run they hold that run's final contents.

RTL-level memories: Yosys ``$mem_v2`` cells (what ``memory -nomap`` leaves of an amaranth.lib.memory.Memory; the
export ``proc; flatten; opt_clean; memory -nomap; opt_clean; techmap; async2sync; dffunmap; opt_clean``), after
simlib.v: any number of write ports (per-bit WR_EN, per lane; applied in port order, a later port wins) and read
ports, registered (RD_EN per lane; RD_TRANSPARENCY_MASK: a read of the word written at the same edge returns the
new bits where they are enabled, else the old word; RD_COLLISION_X_MASK: x) or asynchronous (RD_CLK_ENABLE 0: the
contents before the edge, combinationally). INIT and RD_INIT_VALUE may hold x (x_fill); OFFSET is honoured, and an
address outside OFFSET .. OFFSET + SIZE - 1 reads x and writes nothing. Addresses must be lane-uniform while the
port is enabled (an asynchronous port always is). Refused: read port resets (RD_ARST / RD_SRST not constant 0),
wide ports, negative-edge or unclocked write ports, and clocks other than the flip-flops'.

Streaming: `NetSim.session(lanes)` gives a `Session` whose `step(inputs)` takes each input as a broadcast int, a
list of lane ints (one per port bit) or a numpy array of per-lane values, and returns the outputs as lists of lane
ints; `lanes_of` / `values_of` convert between per-lane values and lane ints. `run` steps a session.
"""
from __future__ import annotations

from typing import Callable, Iterable

import numpy as np

from ..errors import ToolchainError

_GATES = {
    "$_BUF_": ("Y", "{A}"),
    "$_NOT_": ("Y", "({A} ^ M)"),
    "$_AND_": ("Y", "({A} & {B})"),
    "$_OR_": ("Y", "({A} | {B})"),
    "$_XOR_": ("Y", "({A} ^ {B})"),
    "$_XNOR_": ("Y", "({A} ^ {B} ^ M)"),
    "$_NAND_": ("Y", "(({A} & {B}) ^ M)"),
    "$_NOR_": ("Y", "(({A} | {B}) ^ M)"),
    "$_ANDNOT_": ("Y", "({A} & ({B} ^ M))"),
    "$_ORNOT_": ("Y", "({A} | ({B} ^ M))"),
    "$_MUX_": ("Y", "(({A} & ({S} ^ M)) | ({B} & {S}))"),
    "$_NMUX_": ("Y", "((({A} & ({S} ^ M)) | ({B} & {S})) ^ M)"),
    "SB_CARRY": ("CO", "(({I0} & {I1}) | (({I0} | {I1}) & {CI}))"),
}
# flip-flops: type -> (enable pin or None, reset pin or None, reset value, reset gated by enable)
_FFS = {
    "$_DFF_P_": (None, None, 0, False),
    "SB_DFF": (None, None, 0, False),
    "SB_DFFE": ("E", None, 0, False),
    "SB_DFFSR": (None, "R", 0, False),
    "SB_DFFR": (None, "R", 0, False),
    "SB_DFFSS": (None, "S", 1, False),
    "SB_DFFS": (None, "S", 1, False),
    "SB_DFFESR": ("E", "R", 0, True),
    "SB_DFFER": ("E", "R", 0, False),
    "SB_DFFESS": ("E", "S", 1, True),
    "SB_DFFES": ("E", "S", 1, False),
}
_IGNORED_PREFIX = ("$scopeinfo",)
# EBR data pins per READ_MODE / WRITE_MODE (cells_sim.v: 256x16, 512x8, 1024x4, 2048x2); data bit k of a mode-m
# access is physical bit k * 2**m + (address >> 8) of word address & 255, on the same pin for reads and writes
_EBR_PINS = {0: list(range(16)), 1: list(range(0, 16, 2)), 2: [1, 5, 9, 13], 3: [3, 11]}
_EBR_CLOCKS = {"SB_RAM40_4K": ("RCLK", "WCLK"), "SB_SPRAM256KA": ("CLOCK",)}
_X_FILLS = ("zero", "random")


class MemoryModel:
    """The contents of one memory cell: `bits[word * width + bit]` is that bit as a lane integer (bit j = lane j).

    Words are the cell's physical words: 256 x 16 for SB_RAM40_4K (the INIT_0..INIT_F layout, whatever the
    READ_MODE / WRITE_MODE), 16384 x 16 for SB_SPRAM256KA. A run starts from the image (INIT parameters, then
    `load`) and leaves its final contents here."""

    def __init__(self, name: str, kind: str, depth: int, width: int = 16, init: int | None = 0) -> None:
        self.name, self.kind, self.depth, self.width = name, kind, depth, width
        n = depth * width
        # 0/1 per bit (2: x, the SPRAM's power-up contents), broadcast to all lanes when a run starts
        if init is None:
            self._image = bytearray([2]) * n
        else:
            self._image = bytearray(np.unpackbits(np.frombuffer(init.to_bytes(n // 8, "little"), dtype=np.uint8),
                                                  bitorder="little").tobytes())
        self._mask = 1  # the all-lanes mask of the last run (one lane before the first)
        self.bits: list[int] = [int(v == 1) for v in self._image]

    def load(self, words: Iterable[int], first: int = 0) -> None:
        """Set words first, first + 1, ... to `words` (plain ints, the same in every lane) in the image that
        every run starts from, and in the current contents. E.g. the SPRAM image a loader writes at boot."""
        w = np.asarray([int(v) for v in words], dtype=np.int64)
        if first < 0 or first + len(w) > self.depth:
            raise ToolchainError(f"memory cell {self.name}: load of {len(w)} words at {first} does not fit its "
                                 f"{self.depth} words")
        if len(w) and (w.min() < 0 or w.max() >= 1 << self.width):
            raise ToolchainError(f"memory cell {self.name}: a loaded word is not a {self.width}-bit unsigned int")
        b = ((w[:, None] >> np.arange(self.width)) & 1).astype(np.uint8).ravel()
        lo, hi = first * self.width, (first + len(w)) * self.width
        self._image[lo:hi] = b.tobytes()
        m = self._mask
        self.bits[lo:hi] = [m if v else 0 for v in b.tolist()]

    def read_word(self, addr: int) -> list[int]:
        """Word `addr` as one lane integer per data bit (LSB first)."""
        if not 0 <= addr < self.depth:
            raise ToolchainError(f"memory cell {self.name}: address {addr} out of 0..{self.depth - 1}")
        return self.bits[addr * self.width : (addr + 1) * self.width]

    def word(self, addr: int, lane: int = 0) -> int:
        """Word `addr` as seen in one lane, as a plain int."""
        return sum(((v >> lane) & 1) << b for b, v in enumerate(self.read_word(addr)))

    def _start(self, mask: int, x: list[int]) -> None:
        """Contents from the image, x bits as x[bit] (0 or NetSim's junk); in place: the compiled step holds
        this list."""
        self._mask = mask
        w = self.width
        if any(x):
            self.bits[:] = [mask if v == 1 else (x[i % w % len(x)] if v else 0) for i, v in enumerate(self._image)]
        else:
            self.bits[:] = [mask if v == 1 else 0 for v in self._image]


def _addr_code(refs: list[str], var: str, cell: int, port: str, ind: str) -> list[str]:
    """Lines that set `var` to the address on `refs` (each bit 0 or M) and reject one that differs by lane."""
    const, terms, checks = 0, [], []
    for i, r in enumerate(refs):
        if r == "M":
            const |= 1 << i
        elif r != "0":
            terms.append(f"({r} and {1 << i})")  # x and k: 0 when the bit is 0 in every lane
            checks.append(f"({r} and {r} != M)")
    if const or not terms:
        terms.append(str(const))
    lines = [f"{ind}{var} = {' | '.join(terms)}"]
    if checks:
        lines.append(f"{ind}if {' or '.join(checks)}: _nonuniform({cell}, {port!r})")
    return lines


def _param_int(v) -> int:
    if isinstance(v, int):
        return v
    s = str(v).strip().lower().replace("x", "0").replace("z", "0")
    return int(s, 2) if s and set(s) <= {"0", "1"} else int(s or "0")


def _param_bits(v, n: int, pad_x: bool = False) -> list[str]:
    """A parameter as n characters "0" / "1" / "x", LSB first (a Yosys JSON bit string is MSB first)."""
    if isinstance(v, int):
        return ["1" if (v >> i) & 1 else "0" for i in range(n)]
    s = str(v).strip().lower()
    if not s or not set(s) <= set("01xz"):
        iv = int(s or "0")
        return ["1" if (iv >> i) & 1 else "0" for i in range(n)]
    b = ["x" if c in "xz" else c for c in reversed(s)]
    pad = "x" if pad_x and b[-1] == "x" else "0"
    return (b + [pad] * n)[:n]


def _param_signed(v) -> int:
    if isinstance(v, int):
        return v
    s = str(v).strip()
    if s and set(s) <= {"0", "1"} and len(s) == 32:
        iv = int(s, 2)
        return iv - (1 << 32) if iv >> 31 else iv
    return _param_int(v)


def lut_expr(table: int, names: list[str]) -> str:
    """Python expression over lane integers for a LUT (input i = bit i of the table index), with constants
    folded; `M` is the all-lanes mask."""
    n = len(names)
    full = (1 << (1 << n)) - 1
    table &= full
    if table == 0:
        return "0"
    if table == full:
        return "M"
    half = 1 << (n - 1)
    lo, hi, s = table & ((1 << half) - 1), table >> half, names[-1]
    if lo == hi:
        return lut_expr(lo, names[:-1])
    a, b = lut_expr(lo, names[:-1]), lut_expr(hi, names[:-1])
    if a == "0" and b == "M":
        return s
    if a == "M" and b == "0":
        return f"({s} ^ M)"
    if a == "0":
        return f"({s} & {b})"
    if b == "0":
        return f"(({s} ^ M) & {a})"
    if a == "M":
        return f"(({s} ^ M) | {b})"
    if b == "M":
        return f"({s} | {a})"
    return f"((({s} ^ M) & {a}) | ({s} & {b}))"


class NetSim:
    """Compile one module of a Yosys JSON netlist. `inputs` / `outputs`: port name -> width."""

    def __init__(self, design: dict, top: str | None = None, x_fill: str = "zero") -> None:
        """`x_fill`: what the memories' undefined outputs (cells_sim.v's x: EBR RDATA before the first read, SPRAM
        DATAOUT after a write or in standby) read as: "zero", or "random" (fixed junk per lane, so that a design
        that uses them disagrees with its reference instead of passing by luck)."""
        if x_fill not in _X_FILLS:
            raise ToolchainError(f"x_fill must be one of {', '.join(_X_FILLS)}, not {x_fill!r}")
        self.x_fill = x_fill
        self._mems: dict[str, MemoryModel] = {}
        self._x: list[int] = [0] * 16  # the x lane ints of the current run, one per data bit
        mods = design.get("modules", {})
        if top is None:
            tops = [n for n, m in mods.items() if str(m.get("attributes", {}).get("top", "0")).strip("0")]
            top = tops[0] if tops else next(iter(mods))
        if top not in mods:
            raise ToolchainError(f"module {top!r} not in the netlist (has {', '.join(mods)})")
        mod = mods[top]
        self.top = top
        self.inputs = {n: len(p["bits"]) for n, p in mod["ports"].items() if p["direction"] == "input"}
        self.outputs = {n: len(p["bits"]) for n, p in mod["ports"].items() if p["direction"] == "output"}
        self._ports = mod["ports"]
        self.cell_counts: dict[str, int] = {}
        self._compile(mod)

    def memories(self) -> dict[str, MemoryModel]:
        """The memory cells by their name in the netlist: the dotted path of Amaranth submodule names below the
        simulated module (flattened by synth_ice40, or by `flatten` after a kept hierarchy). An ``Instance``
        added as ``m.submodules.spram0`` inside submodule ``engine`` of the top is ``"engine.spram0"`` (just
        ``"spram0"`` when ``engine`` itself is the simulated module); an inferred amaranth.lib.memory ``Memory``
        named ``mem`` becomes one EBR per tile and copy, ``"mem.0.0"``, ``"mem.1.0"``... (two read ports: two
        EBRs, each with the write port). A ``$mem_v2`` (RTL-level export) keeps the Memory's own name:
        ``m.submodules.mem = Memory(...)`` inside ``engine`` is ``"engine.mem"`` (SIZE words of WIDTH bits)."""
        return dict(self._mems)

    @staticmethod
    def _ref(bit) -> str:
        if isinstance(bit, int):
            return f"n{bit}"
        return "M" if bit == "1" else "0"

    def _compile(self, mod: dict) -> None:
        ref = self._ref
        comb: list[tuple[list[int], list[int], str]] = []  # (input nets, output nets, code)
        ffs: list[tuple[int, str, int | None]] = []  # (Q net, next-state expression, init; None: x)
        mem_code: list[str] = []  # run at the clock edge, after the logic, before the flip-flops take their D
        mem_ins: list[int] = []
        ff_clocks: set = set()
        mem_clocks: list[tuple[str, str, object]] = []
        init_of: dict[int, int] = {}
        for name, nn in mod.get("netnames", {}).items():
            iv = nn.get("attributes", {}).get("init")
            if iv is not None:
                s = str(iv)
                for i, b in enumerate(nn["bits"]):
                    if isinstance(b, int) and i < len(s):
                        init_of[b] = 1 if s[len(s) - 1 - i] == "1" else 0
        for cname, cell in mod.get("cells", {}).items():
            t, conn = cell["type"], cell["connections"]
            if t.startswith(_IGNORED_PREFIX):
                continue
            self.cell_counts[t] = self.cell_counts.get(t, 0) + 1
            pin = {p: ref(bits[0]) for p, bits in conn.items() if len(bits) == 1}
            ins = [b for p, bits in conn.items() for b in bits
                   if cell.get("port_directions", {}).get(p) == "input" and isinstance(b, int)]
            if t in _GATES:
                out, fmt = _GATES[t]
                q = conn[out][0]
                if isinstance(q, int):
                    comb.append((ins, [q], f"n{q} = " + fmt.format(**pin)))
            elif t == "SB_LUT4":
                q = conn["O"][0]
                init = _param_int(cell["parameters"].get("LUT_INIT", 0))
                names = [pin.get(f"I{i}", "0") for i in range(4)]
                # fold constant inputs into the table
                table, live = init, []
                for i, nm in enumerate(names):
                    if nm in ("0", "M"):
                        pass
                    else:
                        live.append(i)
                idx_tab = 0
                for c in range(1 << len(live)):
                    full = 0
                    for j, i in enumerate(live):
                        full |= ((c >> j) & 1) << i
                    for i, nm in enumerate(names):
                        if nm == "M":
                            full |= 1 << i
                    idx_tab |= ((table >> full) & 1) << c
                if isinstance(q, int):
                    comb.append((ins, [q], f"n{q} = " + lut_expr(idx_tab, [names[i] for i in live])))
            elif t in ("SB_RAM40_4K", "SB_SPRAM256KA"):
                # every pin but the data output is an input, whether or not the JSON says so
                mem_ins += [b for p, bits in conn.items() if p not in ("RDATA", "DATAOUT") for b in bits
                            if isinstance(b, int)]
                for c in _EBR_CLOCKS[t]:
                    mem_clocks.append((cname, c, (conn.get(c) or ["x"])[0]))
                code, outs = self._compile_memory(cname, cell, ffs)
                mem_code += code
                comb += outs
            elif t == "$mem_v2":
                mem_ins += [b for p, bits in conn.items() if p != "RD_DATA" for b in bits if isinstance(b, int)]
                code, outs, clocks = self._compile_mem_v2(cname, cell, ffs)
                mem_clocks += clocks
                mem_code += code
                comb += outs
            elif t.startswith("SB_RAM40_4K") or t.startswith("SB_SPRAM"):
                raise ToolchainError(f"the netlist simulator does not support {t} ({cname}): only posedge-clocked "
                                     "SB_RAM40_4K and SB_SPRAM256KA (one clock for all flip-flops and memories)")
            elif t in _FFS:
                en, rs, rv, gated = _FFS[t]
                if isinstance(conn.get("C", ["x"])[0], int):
                    ff_clocks.add(conn["C"][0])
                q = conn["Q"][0]
                d = pin["D"]
                nxt = d
                if rs is not None:
                    r = pin.get(rs, "0")
                    val = "M" if rv else "0"
                    nxt = f"(({r} & {val}) | (({r} ^ M) & {d}))"
                if en is not None:
                    e = pin.get(en, "M")
                    if gated or rs is None:
                        nxt = f"(({e} & {nxt}) | (({e} ^ M) & n{q}))"
                    else:  # asynchronous set/reset wins over the enable
                        r = pin.get(rs, "0")
                        val = "M" if rv else "0"
                        nxt = f"(({r} & {val}) | (({r} ^ M) & (({e} & {d}) | (({e} ^ M) & n{q}))))"
                if isinstance(q, int):
                    ffs.append((q, nxt, init_of.get(q, 0)))
            else:
                raise ToolchainError(f"the netlist simulator does not know cell type {t} ({cname})")
        # topological order of the combinational cells
        driver = {}
        for i, (_, outs, _) in enumerate(comb):
            for o in outs:
                driver[o] = i
        indeg = [0] * len(comb)
        users: list[list[int]] = [[] for _ in comb]
        for i, (ins, _, _) in enumerate(comb):
            for b in set(ins):
                if b in driver:
                    indeg[i] += 1
                    users[driver[b]].append(i)
        order = [i for i in range(len(comb)) if indeg[i] == 0]
        for i in order:
            for u in users[i]:
                indeg[u] -= 1
                if indeg[u] == 0:
                    order.append(u)
        if len(order) != len(comb):
            raise ToolchainError("the netlist has a combinational loop; cannot simulate it")
        for cname, pin_name, net in mem_clocks:  # a memory on another clock would need a multi-clock simulation
            if not isinstance(net, int) or (ff_clocks and net not in ff_clocks):
                raise ToolchainError(f"memory cell {cname}: {pin_name} is not the flip-flops' clock; the netlist "
                                     "simulator clocks every memory with the one system clock")
        in_nets = [(n, b) for n in self.inputs for b in self._ports[n]["bits"]]
        self._in_order = [n for n in self.inputs]
        self.state_nets = [q for q, _, _ in ffs]
        self.state_init = [iv for _, _, iv in ffs]
        defined = {b for _, b in in_nets if isinstance(b, int)} | set(self.state_nets) | set(driver)
        used = set()
        for ins, _, _ in comb:
            used.update(ins)
        used.update(mem_ins)
        for n in self.outputs:
            used.update(b for b in self._ports[n]["bits"] if isinstance(b, int))
        lines = ["def _step(I, S, M):"]
        for k, (_, b) in enumerate(in_nets):
            if isinstance(b, int):
                lines.append(f" n{b} = I[{k}]")
        for k, q in enumerate(self.state_nets):
            lines.append(f" n{q} = S[{k}]")
        for b in sorted(used - defined):
            lines.append(f" n{b} = 0")  # undriven: x -> 0
        lines += [" " + comb[i][2].replace("\n", "\n ") for i in order]
        lines += mem_code
        outs = [ref(b) for n in self.outputs for b in self._ports[n]["bits"]]
        lines.append(" return [" + ", ".join(outs) + "], [" + ", ".join(e for _, e, _ in ffs) + "]")
        env: dict = {"_X": self._x, "_nonuniform": self._nonuniform}
        for k, m in enumerate(self._mems.values()):
            env[f"_mem{k}"] = m.bits
        self._source = "\n".join(lines)  # the generated step, for debugging
        exec(compile(self._source, f"<netsim {self.top}>", "exec"), env)
        self._step = env["_step"]
        self._n_in = len(in_nets)

    def _nonuniform(self, cell: int, port: str) -> None:
        name = list(self._mems)[cell]
        if port in ("RADDR", "WADDR", "ADDRESS", "RD_ADDR", "WR_ADDR"):
            raise ToolchainError(f"memory cell {name}: address ({port}) depends on the data (lanes differ); netsim "
                                 "needs data-independent addresses")
        raise ToolchainError(f"memory cell {name}: {port} depends on the data (lanes differ); netsim needs "
                             "data-independent memory controls")

    def _compile_memory(self, cname: str, cell: dict, ffs: list) -> tuple[list[str], list]:
        """Register the cell's MemoryModel and its output registers as state (appended to `ffs`); return the
        code of its clock edge (read first, then write: cells_sim.v's writes are non-blocking, so a read of the
        word being written gets the old word) and any combinational cells on its outputs."""
        t, conn, params = cell["type"], cell["connections"], cell.get("parameters", {})
        ref = self._ref
        k = len(self._mems)
        mem = f"_mem{k}"

        def pins(name: str, n: int, default: str) -> list[str]:
            bits = conn.get(name) or []
            return [ref(bits[i]) if i < len(bits) else default for i in range(n)]

        def outputs(name: str, n: int) -> list[int | None]:
            bits = conn.get(name) or []
            return [bits[i] if i < len(bits) and isinstance(bits[i], int) else None for i in range(n)]

        code: list[str] = []
        if t == "SB_RAM40_4K":
            init = 0
            for j in range(16):
                init |= (_param_int(params.get(f"INIT_{j:X}", 0)) & ((1 << 256) - 1)) << (256 * j)
            if str(params.get("INIT_FILE", "")).strip():
                raise ToolchainError(f"memory cell {cname}: INIT_FILE is not supported (use INIT_0..INIT_F)")
            self._mems[cname] = MemoryModel(cname, t, 256, 16, init)
            rmode, wmode = _param_int(params.get("READ_MODE", 0)), _param_int(params.get("WRITE_MODE", 0))
            if rmode not in _EBR_PINS or wmode not in _EBR_PINS:
                raise ToolchainError(f"memory cell {cname}: READ_MODE {rmode} / WRITE_MODE {wmode} not in 0..3")
            rdata, raddr = outputs("RDATA", 16), pins("RADDR", 11, "0")
            # read port: RDATA holds unless RE & RCLKE; an output pin outside the mode's data pins is constant 0
            regs = {}
            for pin, q in enumerate(rdata):
                if q is not None:
                    regs[pin] = f"_r{k}_{pin}"
                    ffs.append((q, regs[pin] if pin in _EBR_PINS[rmode] else "0", None if pin in _EBR_PINS[rmode]
                                else 0))
            reads = [(pin, kk << rmode) for kk, pin in enumerate(_EBR_PINS[rmode]) if pin in regs]
            code += [f" {regs[pin]} = n{rdata[pin]}" for pin, _ in reads]
            re = (pins("RE", 1, "0")[0], pins("RCLKE", 1, "M")[0])
            if reads and "0" not in re:
                code += [f" _e = {re[0]} & {re[1]}", " if _e:"]
                code += _addr_code(raddr[: 8 + rmode], "_a", k, "RADDR", "  ")
                code += ["  _b = ((_a & 255) << 4) | (_a >> 8)", "  if _e == M:"]
                code += [f"   {regs[pin]} = {mem}[_b + {off}]" for pin, off in reads]
                code += ["  else:", "   _ne = _e ^ M"]
                code += [f"   {regs[pin]} = ({regs[pin]} & _ne) | ({mem}[_b + {off}] & _e)" for pin, off in reads]
            # write port: MASK (active high: keep the bit) only in mode 0
            wdata, waddr, mask = pins("WDATA", 16, "0"), pins("WADDR", 11, "0"), pins("MASK", 16, "0")
            we = (pins("WE", 1, "0")[0], pins("WCLKE", 1, "M")[0])
            if "0" not in we:
                writes = [(wdata[pin], kk << wmode, mask[pin] if wmode == 0 else "0")
                          for kk, pin in enumerate(_EBR_PINS[wmode])]
                code += [f" _e = {we[0]} & {we[1]}", " if _e:"]
                code += _addr_code(waddr[: 8 + wmode], "_a", k, "WADDR", "  ")
                code += ["  _b = ((_a & 255) << 4) | (_a >> 8)", "  if _e == M:"]
                for d, off, mk in writes:
                    if mk == "0":
                        code.append(f"   {mem}[_b + {off}] = {d}")
                    elif mk != "M":  # a MASK net: usually the same in all lanes, then no blend is needed
                        code += [f"   if not {mk}: {mem}[_b + {off}] = {d}", f"   elif {mk} != M:",
                                 f"    _o = {mem}[_b + {off}]",
                                 f"    {mem}[_b + {off}] = _o ^ ((_o ^ {d}) & ({mk} ^ M))"]
                code += ["   pass", "  else:"]
                for d, off, mk in writes:
                    if mk != "M":
                        e = "_e" if mk == "0" else f"(_e & ({mk} ^ M))"
                        code += [f"   _o = {mem}[_b + {off}]", f"   {mem}[_b + {off}] = _o ^ ((_o ^ {d}) & {e})"]
                code.append("   pass")
            return code, []
        # SB_SPRAM256KA
        self._mems[cname] = MemoryModel(cname, t, 16384, 16, None)
        if pins("POWEROFF", 1, "0")[0] != "M":
            # POWEROFF is active low; powering off loses the contents (x), which lane ints cannot hold
            raise ToolchainError(f"memory cell {cname}: POWEROFF must be tied to 1 (0 powers the SPRAM off); the "
                                 "netlist simulator does not model power-off")
        dout, addr = outputs("DATAOUT", 16), pins("ADDRESS", 14, "0")
        din, mw = pins("DATAIN", 16, "0"), pins("MASKWREN", 4, "0")
        cs, wren, stby, sleep = (pins(n, 1, "0")[0] for n in ("CHIPSELECT", "WREN", "STANDBY", "SLEEP"))
        # SLEEP clears DATAOUT asynchronously (always @(posedge CLOCK, posedge off)): a SLEEP that is not a
        # constant gates the register's output combinationally, through a state net of its own
        regs, outs, held = {}, [], {}
        for pin, q in enumerate(dout):
            if q is not None:
                regs[pin] = f"_r{k}_{pin}"
                if sleep in ("0", "M"):
                    held[pin] = f"n{q}"
                    ffs.append((q, regs[pin], 0 if sleep == "M" else None))
                else:
                    held[pin] = f"nh{k}_{pin}"
                    ffs.append((f"h{k}_{pin}", regs[pin], None))
                    outs.append(([conn["SLEEP"][0]], [q], f"n{q} = (nh{k}_{pin} & ({sleep} ^ M))"))
        code += [f" {r} = {held[pin]}" for pin, r in regs.items()]
        for name, r in (("CHIPSELECT", cs), ("WREN", wren), ("STANDBY", stby), ("SLEEP", sleep)):
            if r not in ("0", "M"):
                code.append(f" if {r} and {r} != M: _nonuniform({k}, {name!r})")
        code += [f" if {sleep}:"] + [f"  {r} = 0" for r in regs.values()] + ["  pass"]
        code += [f" elif {stby}:"] + [f"  {r} = _X[{pin}]" for pin, r in regs.items()] + ["  pass"]
        code += [f" elif {cs}:"]
        code += _addr_code(addr, "_a", k, "ADDRESS", "  ")
        code += ["  _b = _a << 4", f"  if not {wren}:"]
        code += [f"   {r} = {mem}[_b + {pin}]" for pin, r in regs.items()] + ["   pass", "  else:"]
        for nib in range(4):
            m = mw[nib]
            if m == "0":
                continue
            code += [f"   _e = {m}", "   if _e == M:"]
            code += [f"    {mem}[_b + {i}] = {din[i]}" for i in range(4 * nib, 4 * nib + 4)]
            code += ["   elif _e:"]
            for i in range(4 * nib, 4 * nib + 4):
                code += [f"    _o = {mem}[_b + {i}]", f"    {mem}[_b + {i}] = _o ^ ((_o ^ {din[i]}) & _e)"]
        code += [f"   {r} = _X[{pin}]" for pin, r in regs.items()] + ["   pass"]
        return code, outs

    def _compile_mem_v2(self, cname: str, cell: dict, ffs: list) -> tuple[list[str], list, list]:
        """A Yosys ``$mem_v2`` (``memory -nomap``), after simlib.v: synchronous read ports (RD_EN per lane,
        RD_TRANSPARENCY_MASK / RD_COLLISION_X_MASK), asynchronous read ports (combinational, from the contents
        before the edge), write ports with per-bit enables (per lane), applied in port order (a later port wins).
        Returns the edge code, the combinational cells of the asynchronous ports and the clock pins to check."""
        conn, params = cell["connections"], cell.get("parameters", {})
        ref = self._ref
        k = len(self._mems)
        mem = f"_mem{k}"
        size, width, abits = (_param_int(params.get(n, 0)) for n in ("SIZE", "WIDTH", "ABITS"))
        offset = _param_signed(params.get("OFFSET", 0))
        nrd, nwr = _param_int(params.get("RD_PORTS", 0)), _param_int(params.get("WR_PORTS", 0))

        def flags(name: str, n: int) -> list[str]:
            return _param_bits(params.get(name, "0"), n)

        def refuse(why: str):
            raise ToolchainError(f"memory cell {cname} ($mem_v2): {why}; the netlist simulator does not support it")

        if size <= 0 or width <= 0:
            refuse(f"SIZE {size} / WIDTH {width}")
        if "1" in flags("RD_WIDE_CONTINUATION", nrd) or "1" in flags("WR_WIDE_CONTINUATION", nwr):
            refuse("a wide port (RD/WR_WIDE_CONTINUATION)")
        rd_clk_en, rd_pol = flags("RD_CLK_ENABLE", nrd), flags("RD_CLK_POLARITY", nrd)
        wr_clk_en, wr_pol = flags("WR_CLK_ENABLE", nwr), flags("WR_CLK_POLARITY", nwr)
        trans, coll = flags("RD_TRANSPARENCY_MASK", nrd * nwr), flags("RD_COLLISION_X_MASK", nrd * nwr)
        rinit = flags("RD_INIT_VALUE", nrd * width)

        def pins(name: str, n: int) -> list[str]:
            bits = conn.get(name) or []
            return [ref(bits[i]) if i < len(bits) else "0" for i in range(n)]

        for name in ("RD_ARST", "RD_SRST"):
            if any(r != "0" for r in pins(name, nrd)):
                refuse(f"{name} is used (a read port reset)")
        clocks = []
        for j in range(nwr):
            if wr_clk_en[j] != "1" or wr_pol[j] != "1":
                refuse(f"write port {j} is not clocked on the rising edge (WR_CLK_ENABLE / WR_CLK_POLARITY)")
            clocks.append((cname, f"WR_CLK[{j}]", (conn.get("WR_CLK") or ["x"] * nwr)[j]))
        for i in range(nrd):
            if rd_clk_en[i] == "1":
                if rd_pol[i] != "1":
                    refuse(f"read port {i} is clocked on the falling edge (RD_CLK_POLARITY)")
                clocks.append((cname, f"RD_CLK[{i}]", (conn.get("RD_CLK") or ["x"] * nrd)[i]))
        # contents: INIT (LSB first, word i at bits i*WIDTH...), x bits stay x
        ib = _param_bits(params.get("INIT", "x"), size * width, pad_x=True)
        m = MemoryModel(cname, "$mem_v2", size, width, 0)
        m._image[:] = bytes(1 if c == "1" else (0 if c == "0" else 2) for c in ib)
        m.bits[:] = [int(v == 1) for v in m._image]
        self._mems[cname] = m
        rd_addr, rd_en, rd_data = pins("RD_ADDR", nrd * abits), pins("RD_EN", nrd), conn.get("RD_DATA") or []
        wr_addr, wr_en, wr_data = pins("WR_ADDR", nwr * abits), pins("WR_EN", nwr * width), pins("WR_DATA", nwr * width)
        x = [f"_X[{b % 16}]" for b in range(width)]

        def word(a: str, ind: str, dest: list[str]) -> list[str]:
            """dest[b] = bit b of word `a` (an address, before OFFSET): x when out of range"""
            return ([f"{ind}_b = {a} - {offset}", f"{ind}if 0 <= _b < {size}:", f"{ind} _b *= {width}"]
                    + [f"{ind} {dest[b]} = {mem}[_b + {b}]" for b in range(width)] + [f"{ind}else:"]
                    + [f"{ind} {dest[b]} = {x[b]}" for b in range(width)])

        code: list[str] = []
        outs: list = []
        # write ports: any-lane enable and (uniform) address, computed before any port acts
        wgroups = []
        for j in range(nwr):
            en = wr_en[j * width : (j + 1) * width]
            live = sorted({e for e in en if e != "0"})
            wgroups.append(en)
            if not live:
                code.append(f" _we{k}_{j} = 0")
                continue
            code.append(f" _we{k}_{j} = {' | '.join(live)}")
            code.append(f" if _we{k}_{j}:")
            code += _addr_code(wr_addr[j * abits : (j + 1) * abits], f"_wa{k}_{j}", k, "WR_ADDR", "  ")
            code.append(f" else: _wa{k}_{j} = -1")
        for i in range(nrd):
            qs = [rd_data[i * width + b] if i * width + b < len(rd_data) else None for b in range(width)]
            addr = rd_addr[i * abits : (i + 1) * abits]
            if rd_clk_en[i] != "1":  # asynchronous: a combinational cell
                dest = [f"n{q}" if isinstance(q, int) else "_" for q in qs]
                if all(d == "_" for d in dest):
                    continue
                body = _addr_code(addr, "_a", k, "RD_ADDR", "") + word("_a", "", dest)
                a_ins = [b for b in (conn.get("RD_ADDR") or [])[i * abits : (i + 1) * abits] if isinstance(b, int)]
                outs.append((a_ins, [q for q in qs if isinstance(q, int)], "\n".join(body)))
                continue
            regs = {}
            for b, q in enumerate(qs):
                if isinstance(q, int):
                    regs[b] = f"_r{k}_{i}_{b}"
                    v = rinit[i * width + b]
                    ffs.append((q, regs[b], 1 if v == "1" else (0 if v == "0" else None)))
            if not regs:
                continue
            code += [f" {r} = n{qs[b]}" for b, r in regs.items()]
            e = rd_en[i]
            if e == "0":
                continue
            new = [f"_d{b}" for b in range(width)]
            code += [f" _e = {e}", " if _e:"]
            code += _addr_code(addr, "_a", k, "RD_ADDR", "  ")
            code += word("_a", "  ", new)
            for j in range(nwr):
                for mask_, what in ((trans, "wd"), (coll, "x")):
                    if mask_[i * nwr + j] != "1":
                        continue
                    code.append(f"  if _we{k}_{j} and _wa{k}_{j} == _a:")
                    for b in regs:
                        we, src = wgroups[j][b], (wr_data[j * width + b] if what == "wd" else x[b])
                        if we == "M":
                            code.append(f"   _d{b} = {src}")
                        elif we != "0":
                            code.append(f"   _d{b} ^= (_d{b} ^ {src}) & {we}")
                    code.append("   pass")
            code.append("  if _e == M:")
            code += [f"   {r} = _d{b}" for b, r in regs.items()]
            code += ["  else:", "   _ne = _e ^ M"]
            code += [f"   {r} = ({r} & _ne) | (_d{b} & _e)" for b, r in regs.items()]
        for j in range(nwr):
            en = wgroups[j]
            if all(e == "0" for e in en):
                continue
            code += [f" if _we{k}_{j}:", f"  _b = _wa{k}_{j} - {offset}", f"  if 0 <= _b < {size}:",
                     f"   _b *= {width}"]
            groups: dict[str, list[int]] = {}
            for b, e in enumerate(en):
                if e != "0":
                    groups.setdefault(e, []).append(b)
            for e, bs in groups.items():
                d = [wr_data[j * width + b] for b in bs]
                if e == "M":
                    code += [f"   {mem}[_b + {b}] = {dd}" for b, dd in zip(bs, d)]
                    continue
                code += [f"   _e = {e}", "   if _e == M:"]
                code += [f"    {mem}[_b + {b}] = {dd}" for b, dd in zip(bs, d)]
                code += ["   elif _e:"]
                for b, dd in zip(bs, d):
                    code += [f"    _o = {mem}[_b + {b}]", f"    {mem}[_b + {b}] = _o ^ ((_o ^ {dd}) & _e)"]
            code.append("   pass")
        return code, outs, clocks

    def session(self, lanes: int) -> "Session":
        """A streaming simulation of `lanes` lanes, stepped one clock at a time (`Session.step`): memories start
        from their images and flip-flops from their init values, as in `run`. The memories' contents are shared by
        all sessions (and runs) of this NetSim: starting one restarts them, so step one session at a time."""
        return Session(self, lanes)

    def run(self, stimuli: dict[str, np.ndarray], cycles: int | None = None,
            progress: Callable[[int, int], None] | None = None) -> dict[str, np.ndarray]:
        """stimuli: port -> bool array (cycles, lanes, width) (missing inputs, e.g. clk/rst, are 0).
        Returns output port -> bool array (cycles, lanes, width), sampled before each clock edge.
        `progress(cycle, cycles)` is called after every cycle (long simulations report from there)."""
        first = next(iter(stimuli.values()))
        T = first.shape[0] if cycles is None else cycles
        lanes = first.shape[1]
        for n, a in stimuli.items():
            if n not in self.inputs:
                raise ToolchainError(f"{self.top} has no input port {n!r}")
            if a.shape[1:] != (lanes, self.inputs[n]):
                raise ToolchainError(f"stimulus for {n}: shape {a.shape[1:]} != ({lanes}, {self.inputs[n]})")
        sess = self.session(lanes)
        res = {n: np.zeros((T, lanes, w), dtype=bool) for n, w in self.outputs.items()}
        nbytes = (lanes + 7) // 8

        def pack(bits2d: np.ndarray) -> list[int]:  # (lanes, width) -> width lane-ints
            raw = np.packbits(bits2d.T.astype(np.uint8), axis=1, bitorder="little").tobytes()
            return [int.from_bytes(raw[b : b + nbytes], "little") for b in range(0, len(raw), nbytes)]

        for t in range(T):
            outs = sess.step({n: pack(a[t]) for n, a in stimuli.items() if t < a.shape[0]})
            for n, w in self.outputs.items():
                raw = b"".join(v.to_bytes(nbytes, "little") for v in outs[n])
                bits = np.unpackbits(np.frombuffer(raw, dtype=np.uint8).reshape(w, nbytes), axis=1,
                                     bitorder="little")[:, :lanes]
                res[n][t] = bits.T.astype(bool)
            if progress is not None:
                progress(t + 1, T)
        return res


class Session:
    """One streaming simulation (`NetSim.session`). `step(inputs)` evaluates the logic with `inputs` (port ->
    value; missing ports are 0), returns the outputs sampled before the clock edge as port -> list of lane ints
    (one per port bit, LSB first; bit j = lane j), then clocks. An input value is a non-negative int (the same in
    every lane: bit i of it is port bit i), a list of `width` lane ints (one per port bit, each < 2**lanes: they
    are not masked), or a numpy array (lanes,) of per-lane values (converted with `lanes_of`). `M` is the
    all-lanes mask, `cycle` the number of steps done."""

    def __init__(self, sim: NetSim, lanes: int) -> None:
        if lanes < 1:
            raise ToolchainError(f"a session needs at least one lane, not {lanes}")
        self.sim, self.lanes = sim, lanes
        self.M = M = (1 << lanes) - 1
        self.cycle = 0
        nbytes = (lanes + 7) // 8
        if sim.x_fill == "random":  # fixed junk, so that runs repeat
            rng = np.random.default_rng(0x5EED)
            sim._x[:] = [int.from_bytes(rng.bytes(nbytes), "little") & M for _ in range(16)]
        else:
            sim._x[:] = [0] * 16
        for mem in sim._mems.values():
            mem._start(M, sim._x)
        x = sim._x
        self._state = [M if v == 1 else (x[k % 16] if v is None else 0) for k, v in enumerate(sim.state_init)]
        self._slots: dict[str, tuple[int, int]] = {}  # input port -> (first index in the step's input list, width)
        k = 0
        for n in sim._in_order:
            self._slots[n] = (k, sim.inputs[n])
            k += sim.inputs[n]
        self._n_in = k
        self._outs: list[tuple[str, int, int]] = []
        k = 0
        for n, w in sim.outputs.items():
            self._outs.append((n, k, k + w))
            k += w
        self._step = sim._step

    def step(self, inputs: dict[str, "int | list[int] | np.ndarray"] | None = None) -> dict[str, list[int]]:
        outs, self._state = self._step(self._inputs(inputs), self._state, self.M)
        self.cycle += 1
        return {n: outs[a:b] for n, a, b in self._outs}

    def peek(self, inputs: dict[str, "int | list[int] | np.ndarray"] | None = None) -> dict[str, list[int]]:
        """The outputs `step(inputs)` would return, without clocking: e.g. to read a cycle's pins before
        answering on an input that depends on them (a flash model on an SPI bus). Designs without memories only
        (a memory port would act twice)."""
        if self.sim._mems:
            raise ToolchainError("Session.peek needs a design without memories")
        outs, _ = self._step(self._inputs(inputs), list(self._state), self.M)
        return {n: outs[a:b] for n, a, b in self._outs}

    def _inputs(self, inputs) -> list[int]:
        M = self.M
        ins = [0] * self._n_in
        if inputs:
            slots = self._slots
            for n, v in inputs.items():
                try:
                    k, w = slots[n]
                except KeyError:
                    raise ToolchainError(f"{self.sim.top} has no input port {n!r}") from None
                if type(v) is list:
                    if len(v) != w:
                        raise ToolchainError(f"input {n}: {len(v)} lane ints for a {w}-bit port")
                    ins[k : k + w] = v
                elif isinstance(v, (int, np.integer)):
                    v = int(v)
                    if v < 0:
                        raise ToolchainError(f"input {n}: {v} is negative")
                    if v:
                        for i in range(w):
                            if (v >> i) & 1:
                                ins[k + i] = M
                elif isinstance(v, np.ndarray):
                    if v.shape != (self.lanes,):
                        raise ToolchainError(f"input {n}: array of shape {v.shape}, not ({self.lanes},)")
                    ins[k : k + w] = lanes_of(v, w)
                else:
                    v = list(v)
                    if len(v) != w:
                        raise ToolchainError(f"input {n}: {len(v)} lane ints for a {w}-bit port")
                    ins[k : k + w] = v
        return ins


_T8 = [(np.uint64(7), np.uint64(0x00AA00AA00AA00AA)), (np.uint64(14), np.uint64(0x0000CCCC0000CCCC)),
       (np.uint64(28), np.uint64(0x00000000F0F0F0F0))]


def _transpose8(x: np.ndarray) -> np.ndarray:
    """8x8 bit-matrix transpose of each uint64 (bit 8r + c <-> bit 8c + r; Hacker's Delight transpose8)."""
    for sh, mk in _T8:
        t = (x ^ (x >> sh)) & mk
        x = x ^ t ^ (t << sh)
    return x


def lanes_of(values: np.ndarray, width: int) -> list[int]:
    """Per-lane values (lanes,) -> `width` lane ints (bit j of the i-th = bit i of values[j]); negative values
    give their two's complement bits."""
    v = np.asarray(values, dtype=np.int64).ravel()
    lanes = v.shape[0]
    if width <= 0:
        return []
    nbytes = (lanes + 7) // 8
    if width <= 3:  # a few bits: one packbits each
        return [int.from_bytes(np.packbits(((v >> i) & 1).astype(np.uint8), bitorder="little").tobytes(), "little")
                for i in range(width)]
    if lanes % 8:
        by = np.zeros((nbytes * 8, 8), dtype=np.uint8)  # lane -> its 8 value bytes (little-endian)
        by[:lanes] = v.astype("<i8").view(np.uint8).reshape(lanes, 8)
    else:
        by = v.astype("<i8", copy=False).view(np.uint8).reshape(lanes, 8)
    groups = (min(width, 64) + 7) // 8
    cols = np.ascontiguousarray(by[:, :groups].T).view(np.uint64)  # (groups, nbytes): byte k = lane 8c + k
    rows = _transpose8(cols).view(np.uint8).reshape(groups, nbytes, 8).transpose(0, 2, 1).tobytes()
    res = [int.from_bytes(rows[r * nbytes : (r + 1) * nbytes], "little") for r in range(8 * groups)]
    res = res[: min(width, 64)]
    if width > 64:  # sign bits
        res += [res[63]] * (width - 64)
    return res


def values_of(lane_ints: list[int], lanes: int) -> np.ndarray:
    """`width` lane ints (LSB first, each < 2**lanes) -> per-lane values (lanes,) int64 (width <= 63; bit 63
    wraps to negative, higher bits are dropped)."""
    w = min(len(lane_ints), 64)
    nbytes = (lanes + 7) // 8
    if w <= 3:  # a few bits: one unpackbits each
        acc = np.zeros(lanes, dtype=np.int64)
        for i, li in enumerate(lane_ints[:w]):
            b = np.unpackbits(np.frombuffer(li.to_bytes(nbytes, "little"), dtype=np.uint8), count=lanes,
                              bitorder="little")
            acc |= b.astype(np.int64) << i
        return acc
    groups = (w + 7) // 8
    raw = np.zeros((groups * 8, nbytes), dtype=np.uint8)
    if w:
        raw[:w] = np.frombuffer(b"".join(v.to_bytes(nbytes, "little") for v in lane_ints[:w]),
                                dtype=np.uint8).reshape(w, nbytes)
    # (groups, nbytes) uint64, byte r of column c = bit-row 8g + r -> byte k = value byte g of lane 8c + k
    cols = np.ascontiguousarray(raw.reshape(groups, 8, nbytes).transpose(0, 2, 1)).view(np.uint64)
    b = _transpose8(cols).reshape(groups, nbytes).view(np.uint8).reshape(groups, nbytes * 8)[:, :lanes]
    acc = b[0].astype(np.int64)
    for g in range(1, groups):
        acc |= b[g].astype(np.int64) << (8 * g)
    return acc


def bits_of(values: np.ndarray, width: int) -> np.ndarray:
    """Integers (..., ) -> bool (..., width), LSB first."""
    v = np.asarray(values, dtype=np.int64)
    return ((v[..., None] >> np.arange(width)) & 1).astype(bool)


def value_of(bits: np.ndarray) -> np.ndarray:
    """bool (..., width) -> int64 (...), LSB first (width <= 63)."""
    w = bits.shape[-1]
    return (bits.astype(np.int64) << np.arange(w)).sum(-1)
