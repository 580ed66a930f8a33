"""A cycle-accurate, bit-parallel simulator of Yosys JSON netlists (``write_json``).

It is fast enough to check every test vector on every build: each net is one Python integer whose bit j is the
value in simulation lane j, and the netlist is compiled once into straight-line Python code. Supported cells:
Yosys' fine-grained gates (``$_AND_``... after ``techmap``) with ``$_DFF_P_`` (after ``dffunmap``), and the iCE40
cells ``synth_ice40`` emits (``SB_LUT4``, ``SB_CARRY``, ``SB_DFF*`` with enable / set / reset). The models follow
Yosys' ``ice40/cells_sim.v``; asynchronous set/reset are applied at the clock edge (the designs checked here
drive them only from synchronous logic or constants). One `step` = evaluate the logic, read the outputs, clock.
"""
from __future__ import annotations

from typing import Callable

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


def _param_int(v) -> int:
    if isinstance(v, int):
        return v
    s = str(v).strip().lower().replace("x", "0").replace("z", "0")
    return int(s, 2) if s and set(s) <= {"0", "1"} else int(s or "0")


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

    def __init__(self, design: dict, top: str | None = None) -> None:
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

    @staticmethod
    def _ref(bit) -> str:
        if isinstance(bit, int):
            return f"n{bit}"
        return "M" if bit == "1" else "0"

    def _compile(self, mod: dict) -> None:
        ref = self._ref
        comb: list[tuple[list[int], list[int], str]] = []  # (input nets, output nets, code)
        ffs: list[tuple[int, str, int]] = []  # (Q net, next-state expression, init)
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
            elif t in _FFS:
                en, rs, rv, gated = _FFS[t]
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
        in_nets = [(n, b) for n in self.inputs for b in self._ports[n]["bits"]]
        self._in_order = [n for n in self.inputs]
        self.state_nets = [q for q, _, _ in ffs]
        self.state_init = [iv for _, _, iv in ffs]
        defined = {b for _, b in in_nets if isinstance(b, int)} | set(self.state_nets) | set(driver)
        used = set()
        for ins, _, _ in comb:
            used.update(ins)
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
        lines += [" " + comb[i][2] for i in order]
        outs = [ref(b) for n in self.outputs for b in self._ports[n]["bits"]]
        lines.append(" return [" + ", ".join(outs) + "], [" + ", ".join(e for _, e, _ in ffs) + "]")
        env: dict = {}
        exec(compile("\n".join(lines), f"<netsim {self.top}>", "exec"), env)
        self._step = env["_step"]
        self._n_in = len(in_nets)

    def run(self, stimuli: dict[str, np.ndarray], cycles: int | None = None,
            progress: Callable[[int, int], None] | None = None) -> dict[str, np.ndarray]:
        """stimuli: port -> bool array (cycles, lanes, width) (missing inputs, e.g. clk/rst, are 0).
        Returns output port -> bool array (cycles, lanes, width), sampled before each clock edge.
        `progress(cycle, cycles)` is called after every cycle (long simulations report from there)."""
        first = next(iter(stimuli.values()))
        T = first.shape[0] if cycles is None else cycles
        lanes = first.shape[1]
        M = (1 << lanes) - 1
        nbytes = (lanes + 7) // 8
        for n, a in stimuli.items():
            if n not in self.inputs:
                raise ToolchainError(f"{self.top} has no input port {n!r}")
            if a.shape[1:] != (lanes, self.inputs[n]):
                raise ToolchainError(f"stimulus for {n}: shape {a.shape[1:]} != ({lanes}, {self.inputs[n]})")
        state = [M if v else 0 for v in self.state_init]
        res = {n: np.zeros((T, lanes, w), dtype=bool) for n, w in self.outputs.items()}

        def pack(bits2d: np.ndarray) -> list[int]:  # (lanes, width) -> width lane-ints
            pk = np.packbits(bits2d.T.astype(np.uint8), axis=1, bitorder="little")
            return [int.from_bytes(row.tobytes(), "little") for row in pk]

        for t in range(T):
            ins: list[int] = []
            for n in self._in_order:
                w = self.inputs[n]
                if n in stimuli and t < stimuli[n].shape[0]:
                    ins += pack(stimuli[n][t])
                else:
                    ins += [0] * w
            outs, state = self._step(ins, state, M)
            k = 0
            for n, w in self.outputs.items():
                raw = b"".join(v.to_bytes(nbytes, "little") for v in outs[k : k + w])
                bits = np.unpackbits(np.frombuffer(raw, dtype=np.uint8).reshape(w, nbytes), axis=1,
                                     bitorder="little")[:, :lanes]
                res[n][t] = bits.T.astype(bool)
                k += w
            if progress is not None:
                progress(t + 1, T)
        return res


def bits_of(values: np.ndarray, width: int) -> np.ndarray:
    """Integers (..., ) -> bool (..., width), LSB first."""
    v = np.asarray(values, dtype=np.int64)
    return ((v[..., None] >> np.arange(width)) & 1).astype(bool)


def value_of(bits: np.ndarray) -> np.ndarray:
    """bool (..., width) -> int64 (...), LSB first (width <= 63)."""
    w = bits.shape[-1]
    return (bits.astype(np.int64) << np.arange(w)).sum(-1)
