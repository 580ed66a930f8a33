"""Class counting at one sample per clock: a pipelined compressor tree built from explicit iCE40 cells.

`TreeCounter` sums, per class, the class's counted bits (a bit heap: column j holds bits of weight 2^j) with
registers after every compression stage. The same cell plan is instantiated either as iCE40 primitives
(``lut_cells="sb_lut4"``: SB_LUT4 / SB_CARRY instances, flip-flops as ``m.d.sync`` for Yosys to map to SB_DFF(E))
or as the equivalent plain Amaranth logic (``"portable"``, for Amaranth's simulator). The plan is pure Python
(`_Plan`), so `TreeCounter.cells` counts exactly what the block instantiates without elaborating it.

Structure (per class; every stage ends in registers, which an iCE40 LC packs for free behind the LUT that drives
only them):

- Stage 1 (one LUT level, on the counter's combinational inputs): LUT full adders, 3 bits of column 0 -> sum
  (column 0) + carry (column 1), 2 SB_LUT4 each; one or two leftover bits are registered as they are.
- Stages 2..S: ripple-carry *segments* on the iCE40 carry chain. A segment starts at the lowest column with >= 2
  bits, takes two bits (I1, I2 of the LC: the carry's inputs) in every column it passes and, when the start
  column has a third bit, that bit as its carry-in; one LC per column (LUT = I1^I2^CI, carry = maj) plus one LC
  that brings the carry-out back into the fabric (LUT = CI). Columns with one bit are passed through by the
  segment (I2 = 0) rather than registered on their own. Segments of one stage are concatenated into physical
  chains of at most `CHAIN_MAX` LCs: the LC that extracts one segment's carry-out also feeds the next segment's
  carry-in (its SB_CARRY computes maj(cin, cin, CI) = cin), so a carry-in costs nothing except at the start of
  a physical chain (one feed-in LC: SB_CARRY(cin, cin, 0)). Single-column compressions use LUT full/half
  adders instead (no chain). Bits of weight >= 2^score_bits are provably 0 (the count fits score_bits) and are
  not built. Leftover bits are registered; the last stage's registers are enabled by the valid strobe, so
  `scores` holds until the next `valid_out`.

Cost argument (why ~1.5 LCs per counted bit is the floor for compressors made of iCE40 LCs, and 1.2 is out of
reach at II = 1): an LC has ONE output to the fabric (the LUT's; the carry only reaches the next LC's CI, and
an LC's flip-flop only registers its own LUT). Every compressor built from LCs -- a LUT full adder (3 bits -> 2,
2 LUTs) or a ripple segment of L columns with carry-in (2L+1 bits -> L+1, L+1 LCs) -- has I = 2*C - 1 inputs
for C LCs and so reduces the bit count by C - 1. Summed over all compressors: N - log2 N = sum(C - 1) =
cost - #compressors, i.e. cost = N - log2 N + #compressors (+ flip-flop-only LCs for bits that wait a stage,
+ feed-in LCs). Column 0 starts with N bits and ends with one; a compressor takes at most 3 bits of column 0
and leaves 1 there, so at least (N-1)/2 compressors touch column 0: cost >= 1.5 N - log2 N. (A LUT 4:3
counter, 4 bits -> 3 with 3 LUTs, is worse: I = C + 1; using an LC's free I0 pin cannot add a bit either, as
the carry only sees I1, I2, CI.) The balanced adder tree with carry-ins meets the bound combinationally, but
pipelined it needs raw bits delayed to every level for the carry-ins (~0.5 N flip-flop-only LCs). The
stage-wise heap here spends ~1.62 LUTs per bit: the full-adder stage leaves columns 0 and 1 equally tall while a
carry-in segment consumes them 3:2, so ~0.12 N compressions do not touch column 0; plus ~0.02-0.05 N feed-ins and
~0.02-0.09 N waiting bits. Measured (scripts/bench_popcount.py, nextpnr-ice40 --pack-only, block alone):
10 x 100 bits 1.892 -> 1.726 LCs per counted bit, 10 x 250 1.970 -> 1.728, 10 x 800 2.003 -> 1.695 (old:
core.Popcount, combinational, no registers).
Going below 1.5 needs fewer LCs than compressor outputs, i.e. folding logic into the first compressors (a LUT
full adder has a free 4th input that could absorb a 2-input LUT-network node) -- not done here.

Timing: stage 1 is one LUT level after the counter's inputs (`register_inputs=True` puts a register first);
stages >= 2 are register -> carry chain of at most `CHAIN_MAX` LCs (the extract/feed LCs make it look longer to
a timing analyser than any real ripple) -> LUT -> register. The 10 x 100 counter behind a shift register places
and routes at 85 MHz on the UP5K (the combinational Popcount: 28 MHz).

Latency = the number of stages (+1 with register_inputs), computed by the plan: for the largest class of N bits,
N = 1, 3: 1; 2, 4..7: 2; 8..14: 3; 15..30: 4; 31..57: 5; 58..118: 6; 119..244: 7; 245..489: 8; 490..989: 9;
990..~2000: 10; 4095: 12 (each stage shrinks the tallest column ~2x; about score_bits).
"""
from __future__ import annotations

from amaranth.hdl import Elaboratable

from ..errors import ConfigError
from ..families import CELL_STYLES, primitives
from ..ir.netlist import Netlist

CHAIN_MAX = 16   # LCs per physical carry chain (ripple length of one pipeline stage)
# ... where carries are LUTs (ECP5 / Gowin without their hard chain: every ripple step is a LUT level and a
# route). Measured on the 2 x 8,000 Fashion-MNIST net's counter: 6 costs +1 % LUTs and +2 % flip-flops against 16
# (one more stage), 4 costs +7 % / +8 % (the plans, TreeCounter.cells).
LUT_CHAIN_MAX = 6
SEG_MAX = 10     # columns per segment

C0, C1 = ("c", 0), ("c", 1)


def _is_const(r) -> bool:
    return r[0] == "c"


def _init(func, n: int) -> int:
    """LUT_INIT of a function of the first n pins (the other pins are don't-care: the table is replicated)."""
    mask = (1 << n) - 1
    return sum(func(*[((c & mask) >> i) & 1 for i in range(n)]) << c for c in range(16))


def _par(*b):
    return sum(b) & 1


def _maj(*b):
    return int(sum(b) >= 2)


def _is_sum(init: int, pins: list) -> bool:
    """Whether LUT (init, pins) computes I1 ^ I2 ^ I3 on every input its pins can present (I0 ignored; a constant
    pin or two pins on one signal restrict the inputs)."""
    for c in range(16):
        bits = [(c >> i) & 1 for i in range(4)]
        if any(_is_const(p) and bits[i] != p[1] for i, p in enumerate(pins)):
            continue
        if any(pins[i] == pins[j] and bits[i] != bits[j] for i in range(4) for j in range(i)):
            continue
        if ((init >> c) & 1) != bits[1] ^ bits[2] ^ bits[3]:
            return False
    return True


class _Plan:
    """A netlist of SB_LUT4 / SB_CARRY / flip-flop cells over symbolic references:
    ("v", i) input bit i, ("c", 0|1) constants, ("l", k) LUT k's output, ("k", k) carry k's CO, ("f", k) the
    output of flip-flop k, ("x", name) a named external signal (valid strobes)."""

    def __init__(self) -> None:
        self.luts: list[tuple[int, list]] = []
        self.carries: list[tuple] = []
        self.ffs: list[list] = []   # [d, enable or None, resettable]

    def lut(self, init: int, pins: list) -> tuple:
        pins = list(pins) + [C0] * (4 - len(pins))
        self.luts.append((init & 0xFFFF, pins))
        return ("l", len(self.luts) - 1)

    def lut_fn(self, func, ins: list) -> tuple:
        """A LUT computing func(*ins), with constant inputs folded into the table (they use no pin)."""
        pins = [r for r in ins if not _is_const(r)]

        def f(*vals):
            it = iter(vals)
            return func(*[r[1] if _is_const(r) else next(it) for r in ins])

        return self.lut(_init(f, len(pins)), pins)

    def carry(self, i0, i1, ci) -> tuple:
        self.carries.append((i0, i1, ci))
        return ("k", len(self.carries) - 1)

    def ff(self, d, en=None, reset: bool = False) -> tuple:
        self.ffs.append([d, en, reset])
        return ("f", len(self.ffs) - 1)

    def counts(self) -> dict:
        return {"lut": len(self.luts), "carry": len(self.carries), "ff": len(self.ffs)}

    def lc_estimate(self) -> int:
        """Logic cells after nextpnr-ice40 packing: a LUT shares its LC with the SB_CARRY whose inputs are the
        LUT's I1/I2 and whose CI is its I3, and with a flip-flop it alone drives; every other carry or
        flip-flop takes an LC of its own."""
        fan: dict = {}
        for _, pins in self.luts:
            for r in pins:
                fan[r] = fan.get(r, 0) + 1
        for c in self.carries:
            for r in c:
                fan[r] = fan.get(r, 0) + 1
        for d, en, _ in self.ffs:
            for r in (d, en):
                if r is not None:
                    fan[r] = fan.get(r, 0) + 1
        free: dict = {}
        for c in self.carries:
            free[c] = free.get(c, 0) + 1
        paired = 0
        for _, pins in self.luts:
            key = (pins[1], pins[2], pins[3])
            if free.get(key):
                free[key] -= 1
                paired += 1
        ff_alone = sum(1 for d, _, _ in self.ffs if not (d[0] == "l" and fan[d] == 1))
        return len(self.luts) + len(self.carries) - paired + ff_alone

    def carry_chains(self, extra_uses=()) -> tuple[list[list[int]], dict[int, int], set[int]]:
        """The carries as physical chains for a family with a hard carry chain (ECP5 CCU2C, Gowin ALU), where a
        chain element computes S = a ^ b ^ CI and CO = maj(a, b, CI) and only the chain's last carry-out reaches
        the fabric. Returns (chains of carry indices, carry -> the LUT whose output is that element's S, the chains'
        last carries that the fabric reads). `extra_uses`: the refs the caller reads from the block's outputs.
        A chain qualifies when each inner carry-out feeds only the next carry's CI and the next element's sum LUT, and
        every LUT read beside a carry is its sum (I1 ^ I2 ^ I3 with the carry's a, b, CI on I1, I2, I3; the
        extract LCs' LUT = CI is one, as their a and b are one signal); the others stay LUT + carry-LUT pairs."""
        uses: dict = {}

        def use(r, who):
            uses.setdefault(r, []).append(who)

        for j, (_, pins) in enumerate(self.luts):
            for p in pins:
                use(p, ("lut", j))
        for k, (a, b, ci) in enumerate(self.carries):
            for r, role in ((a, "a"), (b, "b"), (ci, "ci")):
                use(r, ("carry", k, role))
        for f, (d, en, _) in enumerate(self.ffs):
            for r in (d, en):
                if r is not None:
                    use(r, ("ff", f))
        for r in extra_uses:
            use(r, ("out",))
        sum_lut: dict[int, int] = {}
        by_pins: dict = {}
        for j, (init, pins) in enumerate(self.luts):
            by_pins.setdefault((pins[1], pins[2], pins[3]), []).append(j)
        taken: set[int] = set()
        for k, (a, b, ci) in enumerate(self.carries):
            for j in by_pins.get((a, b, ci), []):
                if j not in taken and _is_sum(self.luts[j][0], self.luts[j][1]):
                    sum_lut[k] = j
                    taken.add(j)
                    break
        nxt: dict[int, list[int]] = {}
        for k, (_, _, ci) in enumerate(self.carries):
            if ci[0] == "k":
                nxt.setdefault(ci[1], []).append(k)
        chains = []
        for k, (_, _, ci) in enumerate(self.carries):
            if ci[0] == "k":
                continue
            chain = [k]
            while len(nxt.get(chain[-1], [])) == 1:
                chain.append(nxt[chain[-1]][0])
            ok = True
            for i, c in enumerate(chain[:-1]):  # an inner carry-out feeds the next CI and its sum LUT only
                succ = chain[i + 1]
                allowed = {("carry", succ, "ci")} | ({("lut", sum_lut[succ])} if succ in sum_lut else set())
                if not set(uses.get(("k", c), [])) <= allowed:
                    ok = False
            if ok:
                chains.append(chain)
        inside = {k for ch in chains for k in ch}
        read = {ch[-1] for ch in chains if uses.get(("k", ch[-1]))}
        return chains, {k: j for k, j in sum_lut.items() if k in inside}, read

    def build(self, m, lut_cells: str, sigs: dict, name: str = "p", extra_uses=(), hard_carry: bool = True):
        """Instantiate into Amaranth module m; sigs maps ("v", i) / ("x", name) to Amaranth values. Returns a
        resolver ref -> Amaranth value."""
        from amaranth.hdl import Cat, Const, Signal

        lut_o = [Signal(name=f"{name}_l{k}") for k in range(len(self.luts))]
        car_o = [Signal(name=f"{name}_k{k}") for k in range(len(self.carries))]
        ff_o = [Signal(name=f"{name}_f{k}", reset_less=not rs) for k, (_, _, rs) in enumerate(self.ffs)]

        def val(r):
            t = r[0]
            if t == "c":
                return Const(r[1], 1)
            if t == "l":
                return lut_o[r[1]]
            if t == "k":
                return car_o[r[1]]
            if t == "f":
                return ff_o[r[1]]
            if t == "v":
                return sigs["values"][r[1]]
            return sigs[r[1]]

        prim = primitives(lut_cells)
        chained: set[int] = set()
        absorbed: set[int] = set()
        if prim is not None and prim.chain_cell is not None and hard_carry:
            chains, sums, read = self.carry_chains(extra_uses)
            for c, chain in enumerate(chains):
                elems = [(val(self.carries[k][0]), val(self.carries[k][1]),
                          lut_o[sums[k]] if k in sums else None) for k in chain]
                last = chain[-1]
                for sub_name, cell in prim.chain_cell(val(self.carries[chain[0]][2]), elems, car_o[last],
                                                     f"{name}_chain{c}", last in read):
                    m.submodules[sub_name] = cell
                chained.update(chain)
                absorbed.update(sums[k] for k in chain if k in sums)
        for k, (init, pins) in enumerate(self.luts):
            if k in absorbed:
                continue
            p = [val(r) for r in pins]
            if prim is not None:
                m.submodules[f"{name}_lut{k}"] = prim.lut4(init, p, lut_o[k])
            else:
                m.d.comb += lut_o[k].eq(Const(init, 16).bit_select(Cat(*p), 1))
        for k, (i0, i1, ci) in enumerate(self.carries):
            if k in chained:
                continue
            a, b, c = val(i0), val(i1), val(ci)
            if prim is not None:
                m.submodules[f"{name}_carry{k}"] = prim.carry_cell(a, b, c, car_o[k])
            else:
                m.d.comb += car_o[k].eq((a & b) | ((a | b) & c))
        for k, (d, en, rs) in enumerate(self.ffs):
            if prim is not None:
                # explicit flip-flops too: the formal check then pairs RTL and netlist cell by cell (equiv_struct)
                # instead of proving a 1,000-bit adder tree by SAT; SB_DFF(E)(SR) = Amaranth's sync semantics
                # (SB_DFFESR resets only while enabled: the block's only reset flip-flops have no enable)
                m.submodules[f"{name}_ff{k}"] = prim.dff_cell(val(d), ff_o[k], None if en is None else val(en), rs)
            elif en is None:
                m.d.sync += ff_o[k].eq(val(d))
            else:
                with m.If(val(en)):
                    m.d.sync += ff_o[k].eq(val(d))
        return val


class _Segment:
    __slots__ = ("cin", "pos", "carry_col")

    def __init__(self, cin, pos, carry_col):
        self.cin, self.pos, self.carry_col = cin, pos, carry_col


def _compress_stage(plan: _Plan, heaps: list[list[list]], sb: int, first: bool,
                    chain_max: int = CHAIN_MAX) -> list[list[list]]:
    """One compression stage over all classes' heaps (lists of columns of refs, constants first); returns the
    new heaps (combinational refs, registered by the caller)."""
    outs = []
    seg_max = min(SEG_MAX, chain_max - 2)  # a segment and its feed-in and extract LCs fit one chain
    segs: list[tuple[_Segment, list]] = []
    left: list[tuple[list, int, tuple]] = []  # bits that wait a stage: (out heap, column, ref)
    for heap in heaps:
        avail = [list(col) for col in heap]
        out: list[list] = [[] for _ in range(sb)]

        def put(j, r):
            if j < sb:  # weight >= 2^sb is provably 0
                (out[j].insert(0, r) if _is_const(r) else out[j].append(r))

        def lut_add(j, bits):
            put(j, plan.lut_fn(_par, bits))
            if j + 1 < sb:
                put(j + 1, plan.lut_fn(_maj if len(bits) == 3 else (lambda a, b: a & b), bits))

        while True:
            cand = [j for j in range(sb) if len(avail[j]) >= 2]
            if not cand:
                break
            j0 = cand[0]
            if first:
                if len(avail[j0]) < 3:
                    break
                lut_add(j0, [avail[j0].pop() for _ in range(3)])
                continue
            if j0 + 1 < sb and avail[j0 + 1]:
                cin = avail[j0].pop() if len(avail[j0]) >= 3 else None
                pos = [(j0, avail[j0].pop(), avail[j0].pop())]
                j = j0 + 1
                while j < sb and len(pos) < seg_max and avail[j]:
                    a = avail[j].pop()
                    b = avail[j].pop() if avail[j] else C0
                    pos.append((j, a, b))
                    j += 1
                segs.append((_Segment(cin, pos, j if j < sb else None), out))
            else:
                lut_add(j0, [avail[j0].pop() for _ in range(min(3, len(avail[j0])))])
        for j in range(sb):
            for r in avail[j]:
                if _is_const(r):
                    put(j, r)
                else:
                    left.append((out, j, r))
        outs.append(out)
    _emit_chains(plan, segs, left, chain_max)
    for out, j, r in left:  # registered as they are (flip-flop only)
        out[j].append(r)
    return outs


def _emit_chains(plan: _Plan, segs: list, left: list, chain_max: int = CHAIN_MAX) -> None:
    """Pack segments into carry chains of <= CHAIN_MAX LCs (a segment's carry-out LC feeds the next one's cin).
    A chain that starts with a carry-in needs a feed-in LC (SB_CARRY(cin, cin, 0)). (Its LUT cannot usefully
    carry one of the stage's waiting bits to its flip-flop: Yosys removes a buffer LUT and the flip-flop moves.)"""
    starters = [s for s in segs if s[0].cin is None]
    pending = sorted((s for s in segs if s[0].cin is not None), key=lambda s: s[0].carry_col is None)
    while starters or pending:
        if starters:
            chain = [starters.pop(0)]
            length = len(chain[0][0].pos)
        else:
            chain = [pending.pop(0)]
            length = 1 + len(chain[0][0].pos)
        while chain[-1][0].carry_col is not None and pending:
            nxt = pending[0][0]
            need = 1 + len(nxt.pos) + (1 if nxt.carry_col is not None else 0)
            if length + need > chain_max:
                break
            chain.append(pending.pop(0))
            length += 1 + len(nxt.pos)
        ci = C0
        for idx, (seg, out) in enumerate(chain):
            if idx == 0 and seg.cin is not None:
                ci = plan.carry(seg.cin, seg.cin, C0)  # feed-in LC
            for p, (j, a, b) in enumerate(seg.pos):
                s = plan.lut(_init(lambda i0, i1, i2, i3: i1 ^ i2 ^ i3, 4), [C0, a, b, ci])
                out[j].append(s)
                if p + 1 < len(seg.pos) or seg.carry_col is not None:  # a carry of weight 2^sb is not built
                    ci = plan.carry(a, b, ci)
            if seg.carry_col is not None:
                j = seg.carry_col
                if idx + 1 < len(chain):
                    nc = chain[idx + 1][0].cin
                    out[j].append(plan.lut(0xFF00, [C0, nc, nc, ci]))
                    ci = plan.carry(nc, nc, ci)
                else:
                    out[j].append(plan.lut(0xFF00, [C0, C0, C0, ci]))


def _score_bits(net: Netlist) -> int:
    return max(1, max(len(g) for g in net.outputs).bit_length())


def _plan_counter(net: Netlist, out_signals: list[int], register_inputs: bool = False, chain_max: int = CHAIN_MAX):
    """The counter's cell plan: (plan, final heaps (<= 1 ref per column), latency, valid_out ref)."""
    sb = _score_bits(net)
    index: dict[int, int] = {}
    for i, s in enumerate(out_signals):
        index.setdefault(s, i)
    heaps = []
    for group in net.outputs:
        heap: list[list] = [[] for _ in range(sb)]
        ones = sum(1 for s in group if s == 1)
        for j in range(sb):
            if (ones >> j) & 1:
                heap[j].append(C1)
        for s in group:
            if not net.is_const(s):
                heap[0].append(("v", index[s]))
        heaps.append(heap)
    plan = _Plan()
    valid = ("x", "valid_in")
    if register_inputs:  # one flip-flop per distinct counted signal (free behind a LUT that drives only it)
        regs: dict[tuple, tuple] = {}
        for r in sorted({r for h in heaps for col in h for r in col if not _is_const(r)}):
            regs[r] = plan.ff(r)
        heaps = [[[r if _is_const(r) else regs[r] for r in col] for col in h] for h in heaps]
        valid = plan.ff(valid, reset=True)
    stage = 0
    stage_ffs: list[int] = []
    while stage == 0 or any(len(col) > 1 for h in heaps for col in h):
        stage += 1
        heaps = _compress_stage(plan, heaps, sb, first=stage == 1, chain_max=chain_max)
        stage_ffs = []
        regd = []
        for h in heaps:
            nh = []
            for col in h:
                nc = []
                for r in col:
                    if _is_const(r):
                        nc.insert(0, r)
                    else:
                        stage_ffs.append(len(plan.ffs))
                        nc.append(plan.ff(r))
                nh.append(nc)
            regd.append(nh)
        heaps = regd
        prev_valid = valid
        valid = plan.ff(valid, reset=True)
    for k in stage_ffs:  # the last stage holds its value until the next sample
        plan.ffs[k][1] = prev_valid
    return plan, heaps, stage + int(register_inputs), valid


def chain_max_for(lut_cells: str, hard_carry: bool = True) -> int:
    """The longest ripple of one counting stage: CHAIN_MAX on a carry cell or hard chain, LUT_CHAIN_MAX where
    the family's carries become LUTs (ECP5 / Gowin with hard_carry off)."""
    prim = primitives(lut_cells) if lut_cells in CELL_STYLES else None
    lut_carries = (prim is not None and prim.carry_cell_type is None
                   and (prim.chain_cell is None or not hard_carry))
    return LUT_CHAIN_MAX if lut_carries else CHAIN_MAX


class TreeCounter(Elaboratable):
    """Per class, the popcount of its counted bits, one sample per clock (see the module docstring).

    Ports: `values` (in, the distinct non-constant counted signals in `out_signals` order, valid in the cycle
    `valid_in` is high), `valid_in`, `scores` (out, class c at bits [c*score_bits, (c+1)*score_bits),
    registered, held until the next `valid_out`), `valid_out` (high `latency` cycles after `valid_in`).

    `register_inputs=True` registers `values` first (one flip-flop per distinct signal, which an LC packs for
    free behind a LUT that drives only it) so the counter's first LUT level does not lengthen the path of the
    logic that computes `values`; latency + 1."""

    interval = 1

    def __init__(self, net: Netlist, out_signals: list[int], *, lut_cells: str = "portable",
                 register_inputs: bool = False, hard_carry: bool = True, chain_max: int | None = None) -> None:
        from amaranth.hdl import Signal

        if lut_cells not in CELL_STYLES:
            self._MustUse__silence = True  # not built: no "unused elaboratable" warning
            raise ConfigError(f"unknown LUT cell style {lut_cells!r}; choose one of {', '.join(CELL_STYLES)}")
        self.net, self.out_signals, self.lut_cells = net, list(out_signals), lut_cells
        self.hard_carry = bool(hard_carry)
        self.score_bits = _score_bits(net)
        # chain_max: the longest ripple of one stage, by the cells' carries unless given
        self.chain_max = int(chain_max) if chain_max is not None else chain_max_for(lut_cells, self.hard_carry)
        # with LUT carries (a net too big for the hard chain to route) the counted values cross the chip into
        # their class's counter: a register behind each (free in the LC that computes it) takes that route out of
        # the network's last LUT level
        self.register_inputs = bool(register_inputs) or self.chain_max <= LUT_CHAIN_MAX
        self._plan, self._final, self.latency, self._valid = _plan_counter(net, self.out_signals,
                                                                           self.register_inputs, self.chain_max)
        self.values = Signal(max(1, len(self.out_signals)))
        self.valid_in = Signal()
        self.scores = Signal(net.classes * self.score_bits)
        self.valid_out = Signal()

    @staticmethod
    def cells(net: Netlist, out_signals: list[int], lut_cells: str = "sb_lut4", register_inputs: bool = False,
              hard_carry: bool = True) -> dict:
        """SB_LUT4 / SB_CARRY / flip-flop counts of the block (the same in both styles: portable logic maps to
        the same cells only approximately, so the numbers describe the sb_lut4 block)."""
        cm = chain_max_for(lut_cells, hard_carry)
        return _plan_counter(net, list(out_signals), register_inputs or cm <= LUT_CHAIN_MAX, cm)[0].counts()

    @staticmethod
    def lc_estimate(net: Netlist, out_signals: list[int], register_inputs: bool = False) -> int:
        """iCE40 logic cells of the block after packing (LUT+carry+FF share an LC; see `_Plan.lc_estimate`);
        within ~0.5 % of nextpnr --pack-only on the block alone."""
        return _plan_counter(net, list(out_signals), register_inputs)[0].lc_estimate()

    def elaborate(self, platform):
        from amaranth.hdl import Const, Module

        m = Module()
        outs = [r for heap in self._final for col in heap for r in col] + [self._valid]
        val = self._plan.build(m, self.lut_cells, {"values": self.values, "valid_in": self.valid_in}, "pc",
                               extra_uses=outs, hard_carry=self.hard_carry)
        sb = self.score_bits
        for c, heap in enumerate(self._final):
            for j, col in enumerate(heap):
                m.d.comb += self.scores[c * sb + j].eq(val(col[0]) if col else Const(0, 1))
        m.d.comb += self.valid_out.eq(val(self._valid))
        return m

