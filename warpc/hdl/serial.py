"""Class counting over N cycles per sample (initiation interval N > 1), and a sequential argmax.

`SerialCounter` stores each class's counted bits when valid_in is high and, in each of the next N cycles
(steps), adds one bit of every storage lane (ceil(G / length) "heads" per class) into a small per-class
accumulator. Storage, one of two per class entry:

- shift chains: one LUT + flip-flop per bit, `load ? value : next_in_chain`; a counted node of k <= 2 inputs is
  computed by its own chain LUT (`load ? table(a, b) : next`), so the LUT network does not build it: the
  node costs nothing. Chains drain to 0 after the sample.
- banks (storage="banks": k <= 2 nodes still go to chains, every other value to a bank): the value is held in
  an SB_DFFE (enable = valid_in) right behind the LUT-network LUT that computes it; an iCE40 LC packs the two
  (the LUT drives only that flip-flop), so storing costs no LC; a mux on the step count picks one bit of each
  lane of `length` bits per step (2 LUTs per 4 bits). `estimate()["lc_net_credit"]` counts those packable
  flip-flops (counted nodes of k >= 1 that no other node reads; it assumes they come from the last LUT stage).

The heads of a class (plus `first` at the bits of its constant-1 count, at step 1) and the accumulator are
summed by a balanced tree of carry-chain adders, each with a carry-in bit (~1.4 LCs per head); the cell that
brings an adder's carry-out into the fabric also injects the next adder's carry-in. Two timing variants:

- "A": lanes of N bits, steps 1..N add; at step N the adder's result goes to the score register while the
  accumulator is cleared (the adder output feeds two registers: ~3 LCs per accumulator bit).
- "C": lanes of N - 1 bits; at step N the score register copies the accumulator and the adder's own LUTs
  clear it (~2 LCs per accumulator bit, but more heads per step).

Step control is a shift register of the valid strobe (N + 1 flip-flops) or a step counter. Every combination
is built and the one with the fewest logic cells (less the packing credit) is used: `SerialCounter.estimate`.
latency = N + 1 (valid_in -> valid_out); scores are registered and held until the next valid_out.

Everything is built from a small cell graph (`_Cells`: LUT4s, carries, flip-flops, hash-consed as Yosys'
opt_merge would), so `cells()` counts exactly what `elaborate` instantiates: with lut_cells="sb_lut4" the LUTs
and carries are explicit SB_LUT4 / SB_CARRY instances (Yosys keeps them as they are); with "portable" the same
functions are plain Amaranth logic (Yosys may then map them to fewer cells). The LC estimate (`lc`) matches
nextpnr's packer (`--pack-only`, less its 2 constant-driver LCs) on the tested blocks.

`SerialArgmax` steps one comparator (a carry chain against the inverted best score) through the classes, one
per cycle from the cycle valid_in is high, selecting the scores with a binary mux; latency = classes, and it
needs interval >= classes (`fits`).
"""
from __future__ import annotations

from amaranth.hdl import Cat, Const, Elaboratable, Module, Signal

from ..errors import ConfigError, NetlistError
from ..families import CELL_STYLES, primitives
from ..ir.netlist import Netlist

ZERO = ("k", 0)


def _bits_for(value: int) -> int:
    return max(1, int(value).bit_length())


_INIT_CACHE: dict = {}


def _fn_key(fn):
    """A hashable identity of a LUT function (its code and the values it closes over), or None."""
    vals = []
    for c in fn.__closure__ or ():
        v = c.cell_contents
        if isinstance(v, list):
            v = tuple(v)
        if callable(v) or not isinstance(v, (int, tuple, str, type(None))):
            return None
        vals.append(v)
    dflt = tuple(tuple(x) if isinstance(x, list) else x for x in (fn.__defaults__ or ()))
    kw = tuple(sorted((k, tuple(x) if isinstance(x, list) else x) for k, x in (fn.__kwdefaults__ or {}).items()))
    return fn.__code__, tuple(vals), dflt, kw


class _Cells:
    """A netlist of LUT4s, SB_CARRYs and D flip-flops (no enable / reset: those live in the LUTs, where they
    cost no logic cell because a LUT that drives only one flip-flop shares its cell)."""

    def __init__(self) -> None:
        self.luts: list[tuple[int, tuple]] = []   # (init, (i0, i1, i2, i3))
        self.carries: list[tuple] = []            # (i0, i1, ci)
        self.ffs: list = []                       # d (None until set)
        self.ens: dict = {}                       # flip-flop index -> enable ref (else always enabled)
        self.memo: dict = {}

    # --- construction -------------------------------------------------------------------------------------
    def lut(self, fn, ins) -> tuple:
        """A LUT4 computing fn(*bits of ins); ins are refs (constants allowed, padded to 4 with 0)."""
        n = len(ins)
        _check(n <= 4, f"a LUT4 with {n} inputs")
        ins = list(ins) + [ZERO] * (4 - n)
        consts = tuple(r[1] if r[0] == "k" else None for r in ins)
        fkey = _fn_key(fn)
        init = _INIT_CACHE.get((fkey, n, consts)) if fkey is not None else None
        if init is None:
            init = 0
            for idx in range(16):
                # constant inputs: only the index with the constant's value matters; replicate for the rest
                eff = [consts[i] if consts[i] is not None else (idx >> i) & 1 for i in range(n)]
                init |= (int(bool(fn(*eff))) & 1) << idx
            if fkey is not None:
                _INIT_CACHE[(fkey, n, consts)] = init
        key = ("L", init, tuple(ins))
        if key not in self.memo:
            self.luts.append((init, tuple(ins)))
            self.memo[key] = ("L", len(self.luts) - 1)
        return self.memo[key]

    def carry(self, i0, i1, ci) -> tuple:
        key = ("C", i0, i1, ci)
        if key not in self.memo:
            self.carries.append((i0, i1, ci))
            self.memo[key] = ("C", len(self.carries) - 1)
        return self.memo[key]

    def ff(self, d=None, en=None) -> tuple:
        """A flip-flop (with a clock enable: SB_DFFE); with d given it is shared with any other flip-flop of the
        same d and enable (as opt_merge does)."""
        if d is not None and ("F", d, en) in self.memo:
            return self.memo[("F", d, en)]
        self.ffs.append(d)
        ref = ("F", len(self.ffs) - 1)
        if en is not None:
            self.ens[ref[1]] = en
        if d is not None:
            self.memo[("F", d, en)] = ref
        return ref

    def set_d(self, q, d) -> None:
        _check(self.ffs[q[1]] is None, f"flip-flop {q} driven twice")
        self.ffs[q[1]] = d

    def logic(self, fn, ins) -> tuple:
        """Any function of len(ins) inputs: one LUT up to 4, else Shannon expansion on the extra inputs."""
        ins = list(ins)
        if len(ins) <= 4:
            return self.lut(fn, ins)
        x = ins[-1]
        f0 = self.logic(lambda *v: fn(*v, 0), ins[:-1])
        f1 = self.logic(lambda *v: fn(*v, 1), ins[:-1])
        return self.lut(lambda s, a, b: b if s else a, [x, f0, f1])

    def and_tree(self, lits) -> tuple:
        """AND of (ref, polarity) literals with LUT4s."""
        refs = list(lits)
        if len(refs) == 1 and refs[0][1]:
            return refs[0][0]
        while True:
            grp, refs = refs[:4], refs[4:]
            pol = [p for _, p in grp]
            out = self.lut(lambda *v, pol=pol: all(bool(v[i]) == bool(pol[i]) for i in range(len(pol))),
                           [r for r, _ in grp])
            if not refs:
                return out
            refs.append((out, True))

    # --- analysis ------------------------------------------------------------------------------------------
    def live(self, roots) -> tuple[set, set, set]:
        luts, carries, ffs = set(), set(), set()
        todo = list(roots)
        while todo:
            r = todo.pop()
            kind = r[0]
            if kind == "L" and r[1] not in luts:
                luts.add(r[1])
                todo += self.luts[r[1]][1]
            elif kind == "C" and r[1] not in carries:
                carries.add(r[1])
                todo += self.carries[r[1]]
            elif kind == "F" and r[1] not in ffs:
                ffs.add(r[1])
                todo.append(self.ffs[r[1]])
                if r[1] in self.ens:
                    todo.append(self.ens[r[1]])
        return luts, carries, ffs

    def count(self, roots) -> dict[str, int]:
        luts, carries, ffs = self.live(roots)
        # logic-cell estimate: a LUT packs with the flip-flop it alone drives, a carry with its adder LUT
        fanout: dict = {}
        for r in roots:
            fanout[r] = fanout.get(r, 0) + 1
        for i in luts:
            for s in self.luts[i][1]:
                fanout[s] = fanout.get(s, 0) + 1
        for i in carries:
            for s in self.carries[i]:
                fanout[s] = fanout.get(s, 0) + 1
        for i in ffs:
            fanout[self.ffs[i]] = fanout.get(self.ffs[i], 0) + 1
            if i in self.ens:
                fanout[self.ens[i]] = fanout.get(self.ens[i], 0) + 1
        packed = sum(1 for i in ffs if self.ffs[i][0] == "L" and fanout.get(self.ffs[i], 0) == 1)
        partners = {self.luts[i][1][1:] for i in luts}
        lone = sum(1 for i in carries if self.carries[i] not in partners)
        on_values = sorted(self.ffs[i][2] for i in ffs if self.ffs[i][:2] == ("i", "values"))
        return {"lut": len(luts), "carry": len(carries), "ff": len(ffs),
                "lc": len(luts) + len(ffs) - packed + lone, "ff_on_values": on_values}

    # --- Amaranth -------------------------------------------------------------------------------------------
    def emit(self, m: Module, roots, inputs: dict, lut_cells: str, prefix: str) -> dict:
        """Instantiate the live cells; returns ref -> Amaranth value (inputs: ("i", port, idx) -> value)."""
        luts, carries, ffs = self.live(roots)
        prim = primitives(lut_cells)
        val: dict = {("k", 0): Const(0, 1), ("k", 1): Const(1, 1)}
        for i in sorted(ffs):
            val[("F", i)] = Signal(name=f"{prefix}ff{i}", reset_less=True)
        for i in sorted(luts):
            val[("L", i)] = Signal(name=f"{prefix}lut{i}")
        for i in sorted(carries):
            val[("C", i)] = Signal(name=f"{prefix}co{i}")

        def v(r):
            return inputs[r] if r[0] == "i" else val[r]

        for i in sorted(luts):
            init, ins = self.luts[i]
            o, a = val[("L", i)], [v(s) for s in ins]
            if prim is not None:
                m.submodules[f"{prefix}lut{i}"] = prim.lut4(init, a, o)
            else:
                m.d.comb += o.eq(Const(init, 16).bit_select(Cat(*a), 1))
        for i in sorted(carries):
            i0, i1, ci = (v(s) for s in self.carries[i])
            o = val[("C", i)]
            if prim is not None:
                m.submodules[f"{prefix}carry{i}"] = prim.carry_cell(i0, i1, ci, o)
            else:
                m.d.comb += o.eq((i0 & i1) | ((i0 | i1) & ci))
        for i in sorted(ffs):
            if prim is not None:
                # explicit flip-flops: the build's formal check pairs RTL and netlist cell by cell (equiv_struct)
                m.submodules[f"{prefix}dff{i}"] = prim.dff_cell(v(self.ffs[i]), val[("F", i)],
                                                               v(self.ens[i]) if i in self.ens else None)
            elif i in self.ens:
                with m.If(v(self.ens[i])):
                    m.d.sync += val[("F", i)].eq(v(self.ffs[i]))
            else:
                m.d.sync += val[("F", i)].eq(v(self.ffs[i]))
        return val


def _xor3(a, b, c):
    return a ^ b ^ c


def _maj3(a, b, c):
    return (a & b) | (a & c) | (b & c)


def _control(b: _Cells, load, steps: int, style: str):
    """For a sample loaded when `load`: first (step 1), last (step `steps`), valid_out (one cycle after last),
    sel (the binary step - 1, or None) and idle (high outside steps 1..steps-1; a LUT, built on demand)."""
    if style == "sr":
        v = [load]
        for _ in range(steps + 1):
            v.append(b.ff(v[-1]))
        sel = [v[2]] if steps == 2 else None
        return v[1], v[steps], v[steps + 1], sel, (lambda: b.lut(lambda x: not x, [v[1]])) if steps == 2 else None
    # a counter c (= step - 1 while running), cleared by load, and a running flag
    w = _bits_for(steps - 1)
    c = [b.ff() for _ in range(w)]
    run = b.ff()
    ci = None
    for j in range(w):
        if j == 0:
            b.set_d(c[0], b.lut(lambda vi, c0: (not vi) and not c0, [load, c[0]]))
            continue
        cin = c[0] if j == 1 else ci
        d = b.lut(lambda vi, x, y, z: (not vi) and (x ^ y ^ z), [load, c[j], cin, ZERO] if j == 1
                  else [load, c[j], ZERO, cin])
        b.set_d(c[j], d)
        if j < w - 1:
            ci = b.carry(c[j], cin, ZERO) if j == 1 else b.carry(c[j], ZERO, cin)
    last = b.and_tree([(run, True)] + [(c[j], bool(((steps - 1) >> j) & 1)) for j in range(w)])
    b.set_d(run, b.lut(lambda vi, r, la: vi or (r and not la), [load, run, last]))
    return b.ff(load), last, b.ff(last), c, lambda: b.lut(lambda r, la: (not r) or la, [run, last])


def _check(ok: bool, what: str) -> None:
    """An internal invariant of the cell graph (kept under python -O, unlike assert)."""
    if not ok:
        raise NetlistError(f"serial counter construction: {what} (internal error)")


def _gate(b: _Cells, ref, g):
    """The LUT `ref` (with a constant-0 input slot) recomputed as ~g & ref."""
    _check(ref[0] == "L", f"gating {ref}, which is not a LUT")
    init, ins = b.luts[ref[1]]
    slot = next(i for i in range(4) if ins[i] == ZERO)
    new = list(ins)
    new[slot] = g
    return b.lut(lambda *v: (not v[slot]) and ((init >> sum(v[i] << i for i in range(4) if i != slot)) & 1), new)


class _Ripples:
    """Ripple-carry adders on the iCE40 carry chain, each with an optional carry-in bit. An adder whose top bit is
    a pure carry-out leaves it "open": the next adder's first logic cell brings it into the fabric (LUT = CI) and
    the same cell's carry injects that adder's carry-in (maj(x, x, CI) = x), so one chain runs through them --
    only when the open adder's result is an operand of the next one (that adder waits for it anyway; chaining
    unrelated adders would put a long false path through the carry chain in the timing analysis)."""

    def __init__(self, b: _Cells, cap: int) -> None:
        self.b, self.cap, self.open = b, cap, None

    def close(self, inject=None, operands=()):
        b = self.b
        if self.open is not None and inject is not None and not any(self.open[1] is o for o in operands):
            self.close()  # unrelated: brought out on its own
        if self.open is None:
            return b.carry(inject, inject, ZERO) if inject is not None else None
        co, res, k = self.open
        self.open = None
        x = inject if inject is not None else ZERO
        res[k] = b.lut(lambda g, p, q, c: c, [ZERO, x, x, co])
        return b.carry(x, x, co) if inject is not None else None

    def add(self, A, B, cin=None, gate=None):
        """(bits, max) numbers A + B + cin, at most `cap` bits; with `gate`, every result bit is ~gate & bit."""
        b = self.b
        maxv = A[1] + B[1] + (1 if cin is not None else 0)
        width = min(self.cap, _bits_for(maxv))
        a_free = not A[0] or A[0][0] == ZERO
        b_free = not B[0] or B[0][0] == ZERO
        ci = self.close(cin if cin is not None and not a_free and not b_free else None, (A[0], B[0]))  # fills
        # the open bit of A or B (if one is open) before they are read
        abits, bbits = list(A[0]), list(B[0])
        if cin is not None and a_free:
            abits, cin = [cin] + abits[1:], None
        elif cin is not None and b_free:
            bbits, cin = [cin] + bbits[1:], None

        def at(v, j):
            return v[j] if j < len(v) else ZERO

        res = []
        for j in range(width):
            x, y = at(abits, j), at(bbits, j)
            if ci is None and (x == ZERO or y == ZERO):  # one bit (or none): passed through
                v = y if x == ZERO else x
                res.append(v if gate is None or v == ZERO else b.lut(lambda g, p: (not g) and p, [gate, v]))
            elif x == ZERO and y == ZERO:  # only the carry: brought into the fabric
                if j == width - 1 and gate is None:
                    res.append(None)  # by the next adder's first cell
                    self.open = (ci, res, j)
                else:
                    res.append(b.lut(lambda g, p, q, c: (not g) and c, [gate or ZERO, ZERO, ZERO, ci]))
                ci = None
            else:
                c = ci if ci is not None else ZERO
                if gate is None:
                    res.append(b.lut(lambda g, p, q, r: p ^ q ^ r, [ZERO, x, y, c]))
                else:
                    res.append(b.lut(lambda g, p, q, r: (not g) and (p ^ q ^ r), [gate, x, y, c]))
                live = sum(1 for t in (x, y, c) if t != ZERO)
                ci = b.carry(x, y, c) if j < width - 1 and live >= 2 else None
        return res, min(maxv, (1 << width) - 1)

    def popcount(self, items):
        if len(items) == 1:
            return items[0]
        if len(items) <= 3 and all(mx == 1 and len(bits) == 1 for bits, mx in items):
            # leaves: a LUT full / half adder (2 LUTs, one level, no carry chain to inject into)
            x = [bits[0] for bits, _ in items]
            if len(x) == 3:
                return [self.b.lut(_xor3, x), self.b.lut(_maj3, x)], 3
            return [self.b.lut(lambda p, q: p ^ q, x), self.b.lut(lambda p, q: p & q, x)], 2
        items = list(items)
        cin = _take_single(items) if len(items) >= 3 else None
        if len(items) == 2:
            return self.add(items[0], items[1], cin)
        h = len(items) // 2  # odd halves of single bits: no half adders (a 2-input adder reduces nothing)
        if all(mx == 1 for _, mx in items) and len(items) % 2 == 0 and h % 2 == 0:
            h -= 1
        left = self.popcount(items[:h])
        right = self.popcount(items[h:])
        return self.add(left, right, cin)


def _take_single(items):
    """Pop a one-bit weight-1 item for a carry-in: one whose bit appears in no other item (Yosys simplifies a
    carry-in cell that repeats a bit of the adder before it, which would break the exact cell count)."""
    uses: dict = {}
    for bits, _ in items:
        for r in bits:
            uses[r] = uses.get(r, 0) + 1
    for i in range(len(items) - 1, -1, -1):
        bits, mx = items[i]
        if mx == 1 and len(bits) == 1 and uses[bits[0]] == 1:
            return items.pop(i)[0][0]
    return None


def _tree_sum(b: _Cells, acc, top: int, heads, ones: int, first, gate):
    """acc + heads (ref, multiplicity) + first * ones (mod 2^w) as a balanced tree of ripple-carry adders with carry-ins."""
    w = len(acc)
    r = _Ripples(b, w)
    items = [([ZERO] * j + [h], 1 << j) for h, m in heads for j in range(w) if (m >> j) & 1] + [([ZERO] * j + [first], 1 << j) for j in range(w) if (ones >> j) & 1]
    cin = _take_single(items)
    x = r.popcount(items) if items else ([cin], 1)
    if not items:
        cin = None
    res, _ = r.add((acc, top), x, cin, gate)
    _check(r.open is None and None not in res, "an adder chain left open")
    return res


def _fa_sum(b: _Cells, acc, heads, ones: int, first, gate):
    """acc + heads (ref, multiplicity) + first * ones (mod 2^w) with LUT full adders, then one ripple-carry adder."""
    w = len(acc)
    cols = [[acc[j]] for j in range(w)]
    for h, m in heads:
        for j in range(w):
            if (m >> j) & 1:
                cols[j].insert(0, h)
    for j in range(w):
        if (ones >> j) & 1:
            cols[j].insert(0, first)
    for j in range(w):  # full adders until every column holds at most two bits
        while len(cols[j]) >= 3:
            x, y, z = cols[j][:3]
            del cols[j][:3]
            cols[j].append(b.lut(_xor3, [x, y, z]))
            if j + 1 < w:
                cols[j + 1].append(b.lut(_maj3, [x, y, z]))
    res, ci = [], None
    for j in range(w):  # one ripple-carry adder from the first column with two bits
        col = cols[j]
        if ci is None and len(col) == 1:
            res.append(_gate(b, col[0], gate) if gate is not None else col[0])
            continue
        x = col[0]
        y = col[1] if len(col) > 1 else ZERO
        c_in = ci if ci is not None else ZERO
        if gate is not None:
            res.append(b.lut(lambda g, p, q, r: (not g) and (p ^ q ^ r), [gate, x, y, c_in]))
        else:
            res.append(b.lut(lambda g, p, q, r: p ^ q ^ r, [ZERO, x, y, c_in]))
        nonconst = sum(1 for t in (x, y, c_in) if t[0] != "k")
        ci = b.carry(x, y, c_in) if j < w - 1 and nonconst >= 2 else None
    return res


def _class_entries(net: Netlist, group, fused: set):
    ones, entries = 0, []
    for s in group:
        if s == 1:
            ones += 1
        elif s == 0:
            continue
        elif s in fused and net.nodes[s - net.first_node].k == 0:
            ones += net.nodes[s - net.first_node].table & 1
        else:
            entries.append(s)
    return ones, entries


def _build_counter(net: Netlist, out_signals, fused: list[int], interval: int, variant: str, ctrl: str,
                   compress: str = "tree", storage: str = "chain"):
    """The cell graph of a SerialCounter; returns (cells, roots, scores: list per class of bit refs, valid_out)."""
    N = interval
    b = _Cells()
    load = ("i", "valid_in", 0)
    index = {s: i for i, s in enumerate(out_signals)}
    fpos, pos = {}, 0
    for s in fused:
        fpos[s] = pos
        pos += net.nodes[s - net.first_node].k
    fset = set(fused)
    first, last, valid_out, sel, idle = _control(b, load, N, ctrl)
    if storage == "banks" and sel is None:
        return None
    length = N if variant == "A" else N - 1
    scores = []
    roots = [valid_out]

    def cell(s, prev):
        if s in fset:
            node = net.nodes[s - net.first_node]
            fi = [("i", "fanins", fpos[s] + t) for t in range(node.k)]
            tab, k = node.table, node.k

            def f(ld, p, *x):
                return ((tab >> sum(x[t] << t for t in range(k))) & 1) if ld else p
            return b.lut(f, [load, prev if prev is not None else ZERO] + fi)
        x = ("i", "values", index[s])
        return b.lut(lambda ld, xv, p: xv if ld else p, [load, x, prev if prev is not None else ZERO])

    for group in net.outputs:
        ones, entries = _class_entries(net, group, fset)
        if not entries:
            scores.append([("k", (ones >> j) & 1) for j in range(_bits_for(ones))])
            continue
        w = _bits_for(ones + len(entries))
        chained = [s for s in entries if storage == "chain" or s in fset]
        banked = [s for s in entries if not (storage == "chain" or s in fset)]
        H = -(-len(chained) // length)
        heads = []
        for h in range(H):
            prev = None
            for s in reversed(chained[h::H]):
                prev = b.ff(cell(s, prev))
            heads.append(prev)
        for h in range(0, len(banked), length):  # banks: held in SB_DFFEs, one selected per step
            lane = [b.ff(("i", "values", index[s]), en=load) for s in banked[h:h + length]]
            heads.append(_mux(b, lane + [ZERO] * (length - len(lane)), sel))
        # identical chains share their cells (as Yosys would merge them): a head seen m times weighs m
        mult: dict = {}
        for h in heads:
            mult[h] = mult.get(h, 0) + 1
        heads = list(mult.items())
        acc = [b.ff() for _ in range(w)]
        gate = idle() if banked else last  # banks do not drain: outside the steps the sum is discarded
        if compress == "tree":
            res = _tree_sum(b, acc, ones + len(entries), heads, ones, first, gate if variant == "C" else None)
        else:
            res = _fa_sum(b, acc, heads, ones, first, gate if variant == "C" else None)
        sc = []
        for j in range(w):
            s = b.ff()
            if variant == "A":
                b.set_d(acc[j], b.lut(lambda g, r: (not g) and r, [gate, res[j]]))
                b.set_d(s, b.lut(lambda g, r, q: r if g else q, [last, res[j], s]))
            else:
                b.set_d(acc[j], res[j])
                b.set_d(s, b.lut(lambda g, r, q: r if g else q, [last, acc[j], s]))
            sc.append(s)
        scores.append(sc)
        roots += sc
    return b, roots, scores, valid_out


def _fused_of(net: Netlist, out_signals, fuse: bool) -> list[int]:
    if not fuse:
        return []
    return [s for s in out_signals if net.is_node(s) and net.nodes[s - net.first_node].k <= 2]


def _check_interval(net: Netlist, interval) -> int:
    widest = max(len(g) for g in net.outputs)
    if isinstance(interval, bool) or not isinstance(interval, int) or not 2 <= interval <= max(2, widest):
        raise ConfigError(f"SerialCounter interval must be an integer 2..{max(2, widest)} (the largest class "
                          f"counts {widest} bits), got {interval!r}")
    return interval


def _net_credit(net: Netlist, out_signals, ff_on_values) -> int:
    """Flip-flops on `values` that an iCE40 LC packs behind the LUT-network LUT computing the value (a node of
    k >= 1 that no other node reads, so that its LUT drives only this flip-flop): no logic cell of their own."""
    read = {f for node in net.nodes for f in node.fanin}
    return sum(1 for i in ff_on_values if net.is_node(out_signals[i]) and out_signals[i] not in read
               and net.nodes[out_signals[i] - net.first_node].k >= 1)


def _choose(net, out_signals, fused, interval):
    """(variant, control, compress, storage) with the fewest estimated logic cells (then LUTs), counting the
    bank flip-flops that pack behind the LUT network's own LUTs as free."""
    best = None
    for variant in ("A", "C"):
        for storage in ("chain", "banks"):
            # control: a shift register (N + 1 flip-flops; its step select exists only for N = 2) or a counter
            # (~log2(N) + 4 LCs): the cheaper one, without building both
            ctrl = "sr" if interval <= 5 and (storage == "chain" or interval == 2) else "cnt"
            for compress in ("tree",):  # LUT full adders ("fa") never came out cheaper; kept for tests
                built = _build_counter(net, out_signals, fused, interval, variant, ctrl, compress, storage)
                if built is None:
                    continue
                b, roots, _, _ = built
                n = b.count(roots)
                n["lc_net_credit"] = _net_credit(net, out_signals, n.pop("ff_on_values"))
                key = (n["lc"] - n["lc_net_credit"], n["lut"], n["ff"])
                if best is None or key < best[0]:
                    best = (key, (variant, ctrl, compress, storage), n)
    return best[1], best[2]


class SerialCounter(Elaboratable):
    """Class counting at one sample per `interval` cycles (see the module docstring).

    Ports: `values` (in: the out_signals' values, valid only in the cycle valid_in is high; fused entries are
    ignored), `fanins` (in: each fused node's fanin values, fused order, fanin[0] first), `valid_in`, `scores`
    (out, registered, class c at [c*score_bits, (c+1)*score_bits), held until the next valid_out), `valid_out`
    (high `latency` = interval + 1 cycles after valid_in)."""

    def __init__(self, net: Netlist, out_signals: list[int], *, interval: int, lut_cells: str = "portable",
                 fuse: bool = True, structure: tuple | None = None) -> None:
        self._MustUse__silence = True  # until the arguments are checked: a refused block is no unused one
        if lut_cells not in CELL_STYLES:
            raise ConfigError(f"unknown LUT cell style {lut_cells!r}; choose one of {', '.join(CELL_STYLES)}")
        self.net, self.out_signals, self.lut_cells = net, [int(s) for s in out_signals], lut_cells
        self.interval = _check_interval(net, interval)
        self.latency = self.interval + 1
        self.score_bits = _bits_for(max(len(g) for g in net.outputs))
        self.fused = _fused_of(net, self.out_signals, fuse)
        if structure is None:  # (variant, control, compress, storage); forced only by tests and benchmarks
            structure, _ = _choose(net, self.out_signals, self.fused, self.interval)
        elif _build_counter(net, self.out_signals, self.fused, self.interval, *structure) is None:
            raise ConfigError(f"structure {structure} is not available at interval {self.interval}")
        self.structure = tuple(structure)
        self.variant, self.control, self.compress, self.storage = self.structure
        self._MustUse__silence = False
        self.values = Signal(max(1, len(self.out_signals)))
        self.fanins = Signal(max(1, sum(net.nodes[s - net.first_node].k for s in self.fused)))
        self.valid_in = Signal()
        self.scores = Signal(net.classes * self.score_bits)
        self.valid_out = Signal()

    @classmethod
    def cells(cls, net: Netlist, out_signals: list[int], *, interval: int, lut_cells: str = "portable",
              fuse: bool = True) -> dict[str, int]:
        """SB_LUT4 / SB_CARRY / flip-flops instantiated (exact for sb_lut4; the portable logic has the same
        structure, which Yosys may map to fewer cells)."""
        n = cls.estimate(net, out_signals, interval=interval, fuse=fuse)
        return {k: n[k] for k in ("lut", "carry", "ff")}

    @classmethod
    def estimate(cls, net: Netlist, out_signals: list[int], *, interval: int, fuse: bool = True) -> dict:
        """cells() plus `lc` (iCE40 logic cells after packing, estimated) and the chosen variant/control."""
        out_signals = [int(s) for s in out_signals]
        interval = _check_interval(net, interval)
        (variant, ctrl, compress, storage), n = _choose(net, out_signals, _fused_of(net, out_signals, fuse),
                                                        interval)
        return dict(n, variant=variant, control=ctrl, compress=compress, storage=storage)

    def elaborate(self, platform) -> Module:
        m = Module()
        b, roots, scores, valid_out = _build_counter(self.net, self.out_signals, self.fused, self.interval,
                                                     *self.structure)
        inputs = {("i", "valid_in", 0): self.valid_in}
        for i in range(len(self.values)):
            inputs[("i", "values", i)] = self.values[i]
        for i in range(len(self.fanins)):
            inputs[("i", "fanins", i)] = self.fanins[i]
        val = b.emit(m, roots, inputs, self.lut_cells, "sc_")
        sb = self.score_bits
        for c, bits in enumerate(scores):
            for j in range(sb):
                m.d.comb += self.scores[c * sb + j].eq(val[bits[j]] if j < len(bits) else 0)
        m.d.comb += self.valid_out.eq(val[valid_out])
        return m


def _mux(b: _Cells, items, sels):
    """items[sel] for a binary select (sel < len(items)): 4:1 muxes of two LUT4s, 3:1 and 2:1 of fewer."""
    while len(items) > 1:
        if len(sels) >= 2 and len(items) > 2:
            s0, s1 = sels[0], sels[1]
            nxt = []
            for g in range(0, len(items), 4):
                grp = items[g:g + 4]
                if all(x == ZERO for x in grp):
                    nxt.append(ZERO)
                elif len(grp) == 1:
                    nxt.append(grp[0])
                elif len(grp) == 2:
                    nxt.append(b.lut(lambda s, p, q: q if s else p, [s0, grp[0], grp[1]]))
                elif len(grp) == 3:
                    l1 = b.lut(lambda s, p, q: q if s else p, [s0, grp[0], grp[1]])
                    nxt.append(b.lut(lambda s, p, q: q if s else p, [s1, l1, grp[2]]))
                else:
                    l1 = b.lut(lambda a0, a1, p, q: a0 if a1 else (q if a0 else p), [s0, s1, grp[0], grp[1]])
                    nxt.append(b.lut(lambda l, a1, p, q: (q if l else p) if a1 else l, [l1, s1, grp[2], grp[3]]))
            items, sels = nxt, sels[2:]
        else:
            s0 = sels[0]
            nxt = []
            for g in range(0, len(items), 2):
                grp = items[g:g + 2]
                nxt.append(grp[0] if len(grp) == 1 or grp == [ZERO, ZERO] else b.lut(lambda s, p, q: q if s else p, [s0, grp[0], grp[1]]))
            items, sels = nxt, sels[1:]
    return items[0]


def _build_argmax(classes: int, score_bits: int):
    b = _Cells()
    vi = ("i", "valid_in", 0)
    w = _bits_for(classes - 1)
    c = [b.ff() for _ in range(w)]
    last = b.and_tree([(c[j], bool(((classes - 1) >> j) & 1)) for j in range(w)])
    # advance while a sample runs: from c = 0 only when valid_in, up to classes - 1, then back to 0 (idle)
    top = classes - 1
    en = b.logic(lambda v, *cb: (v or sum(x << i for i, x in enumerate(cb)) != 0)
                 and sum(x << i for i, x in enumerate(cb)) != top, [vi] + c)
    ci = None
    for j in range(w):
        if j == 0:
            b.set_d(c[0], b.lut(lambda e, c0: e and not c0, [en, c[0]]))
            continue
        cin = c[0] if j == 1 else ci
        ins = [en, c[j], cin, ZERO] if j == 1 else [en, c[j], ZERO, cin]
        b.set_d(c[j], b.lut(lambda e, x, y, z: e and (x ^ y ^ z), ins))
        if j < w - 1:
            ci = b.carry(c[j], cin, ZERO) if j == 1 else b.carry(c[j], ZERO, cin)
    sb = score_bits
    sel = [_mux(b, [("i", "scores", k * sb + j) for k in range(classes)], c) for j in range(sb)]
    nb = [b.ff() for _ in range(sb)]  # the best score so far, inverted: sel > best <=> carry out of sel + ~best
    co = ZERO
    for j in range(sb):
        co = b.carry(sel[j], nb[j], co)
    take = b.lut(lambda v, z1, z2, g: v or g, [vi, ZERO, ZERO, co])
    for j in range(sb):
        b.set_d(nb[j], b.lut(lambda t, s, q: (not s) if t else q, [take, sel[j], nb[j]]))
    cls = []
    for j in range(w):
        idx = b.ff()
        nxt = b.lut(lambda t, x, q: x if t else q, [take, c[j], idx])
        b.set_d(idx, nxt)
        o = b.ff()
        b.set_d(o, b.lut(lambda g, x, q: x if g else q, [last, nxt, o]))
        cls.append(o)
    valid_out = b.ff(last)
    return b, cls + [valid_out], cls, valid_out


class SerialArgmax(Elaboratable):
    """One comparator stepping through the classes, one per cycle, from the cycle valid_in is high (ties go to
    the lowest class index: a later class replaces the best only when strictly greater). `scores` must stay
    stable from valid_in for `classes` cycles (until the next valid_in); `cls` is registered and held until the
    next valid_out, which comes `latency` = classes cycles after valid_in. Needs interval >= classes (`fits`)."""

    def __init__(self, classes: int, score_bits: int, *, interval: int, lut_cells: str = "portable") -> None:
        self._MustUse__silence = True
        if classes < 2 or score_bits < 1:
            raise ConfigError(f"SerialArgmax needs >= 2 classes and >= 1 score bit, got {classes}, {score_bits}")
        if not self.fits(classes, interval):
            raise ConfigError(f"a sequential argmax over {classes} classes needs an interval >= {classes}, "
                              f"got {interval}")
        if lut_cells not in CELL_STYLES:
            raise ConfigError(f"unknown LUT cell style {lut_cells!r}; choose one of {', '.join(CELL_STYLES)}")
        self.classes, self.score_bits, self.interval, self.lut_cells = classes, score_bits, interval, lut_cells
        self._MustUse__silence = False
        self.latency = classes
        self.scores = Signal(classes * score_bits)
        self.valid_in = Signal()
        self.cls = Signal(_bits_for(classes - 1))
        self.valid_out = Signal()

    @classmethod
    def fits(cls, classes: int, interval: int) -> bool:
        return interval >= classes

    @classmethod
    def cells(cls, classes: int, score_bits: int, *, interval: int = 0, lut_cells: str = "portable"
              ) -> dict[str, int]:
        n = cls.estimate(classes, score_bits)
        return {k: n[k] for k in ("lut", "carry", "ff")}

    @classmethod
    def estimate(cls, classes: int, score_bits: int, **_) -> dict:
        b, roots, _, _ = _build_argmax(classes, score_bits)
        n = b.count(roots)
        n.pop("ff_on_values")
        return n

    def elaborate(self, platform) -> Module:
        m = Module()
        b, roots, cls, valid_out = _build_argmax(self.classes, self.score_bits)
        inputs = {("i", "valid_in", 0): self.valid_in}
        for i in range(len(self.scores)):
            inputs[("i", "scores", i)] = self.scores[i]
        val = b.emit(m, roots, inputs, self.lut_cells, "am_")
        for j, r in enumerate(cls):
            m.d.comb += self.cls[j].eq(val[r])
        m.d.comb += self.valid_out.eq(val[valid_out])
        return m
