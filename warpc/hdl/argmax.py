"""A pipelined argmax tournament at one sample per clock, from explicit iCE40 cells (or the same logic portable).

Level l compares pairs of the previous level's winners and registers the winner (score and index); ties go to
the left operand, which always holds the lower class indices, so ties go to the lowest index (as in software).
One comparator = a carry chain over the score bits: [b > a] is the carry-out of b + ~a, so the chain's two
inputs per bit are b_i and ~a_i. The left operand of every comparison is therefore *stored inverted*: the
winner multiplexer (one LUT per score bit, placed in the chain's own LCs: its pins I1/I2 are the carry's inputs
b_i / ~a_i, I0 is the comparison result) writes each winner in the polarity its next comparison wants, for
free. Only level 0 (the counter's true scores) inverts its left operands with one LUT per bit.

Per level: register -> (level 0: inverter LUT) -> carry chain of score_bits LCs -> LUT (carry-out) -> mux LUT
-> register. The last level only needs the index. latency = number of levels = ceil(log2(classes)) (1 for a
single class).
"""
from __future__ import annotations

from amaranth.hdl import Const, Elaboratable, Module, Signal

from ..errors import ConfigError
from ..families import CELL_STYLES, primitives
from .popcount import C0, _init, _is_const, _Plan


def _bits_for(value: int) -> int:
    return max(1, int(value).bit_length())


def _plan_argmax(classes: int, score_bits: int, pack_ci: bool = True):
    """pack_ci: the winner mux LUT also takes the chain element's carry-in on its I3 (ignored by its table) so
    that the iCE40 packer puts it in the carry's own LC; False where the carries ride a hard chain (ECP5 CCU2C,
    Gowin ALU), whose inner carries the fabric cannot read."""
    plan = _Plan()
    sb, cb = score_bits, _bits_for(classes - 1)
    # entry: (score refs (list of sb), inverted?, index refs (list of cb))
    entries = [([("v", c * sb + i) for i in range(sb)], False,
                [("c", (c >> k) & 1) for k in range(cb)]) for c in range(classes)]
    valid = ("x", "valid_in")
    levels = 0
    last_ffs: list[int] = []
    prev_valid = valid
    while len(entries) > 1 or levels == 0:
        levels += 1
        final = len(entries) <= 2
        n_next = (len(entries) + 1) // 2

        def want_inv(p: int) -> bool | None:  # polarity the next level wants at position p (None: keep)
            if final:
                return None
            if p % 2 == 0:
                return True if p + 1 < n_next else None
            return False

        nxt = []
        last_ffs = []

        def reg(r):
            if _is_const(r):
                return r
            last_ffs.append(len(plan.ffs))
            return plan.ff(r)

        for p in range(n_next):
            if 2 * p + 1 >= len(entries):  # odd one out: registered (and re-polarised if needed)
                sc, inv, idx = entries[2 * p]
                w = want_inv(p)
                if final:
                    sc2, inv2 = [], inv
                elif w is None or w == inv:
                    sc2, inv2 = [reg(r) for r in sc], inv
                else:
                    sc2, inv2 = [reg(plan.lut_fn(lambda x: 1 - x, [r])) for r in sc], w
                nxt.append((sc2, inv2, [reg(r) for r in idx]))
                continue
            (sa, ia_inv, ia), (sbv, ib_inv, ib) = entries[2 * p], entries[2 * p + 1]
            if not ia_inv:
                sa = [plan.lut_fn(lambda x: 1 - x, [r]) for r in sa]
            if ib_inv:
                sbv = [plan.lut_fn(lambda x: 1 - x, [r]) for r in sbv]
            # chain: carry_i = maj(b_i, ~a_i, c_i), c_0 = 0; carry-out = [b > a]
            ci = C0
            chain_in = []
            for i in range(sb):
                chain_in.append((sbv[i], sa[i], ci))
                ci = plan.carry(sbv[i], sa[i], ci)
            take = plan.lut(0xFF00, [C0, C0, C0, ci])
            w = want_inv(p)
            sc2 = []
            if not final:
                inv_out = bool(w)
                for b_i, na_i, c_i in chain_in:
                    # pins: I0 = take, I1 = b_i, I2 = ~a_i, I3 = CI (the carry's: packs into the chain's LC)
                    f = (lambda t, b, na, _ci, iv=inv_out: (b if t else 1 - na) ^ iv)
                    sc2.append(reg(plan.lut(_init(f, 4), [take, b_i, na_i, c_i if pack_ci else C0])))
            else:
                inv_out = False
            idx2 = []
            for k in range(cb):
                a_k, b_k = ia[k], ib[k]
                if a_k == b_k and _is_const(a_k):
                    idx2.append(a_k)
                elif a_k == ("c", 0) and b_k == ("c", 1):
                    idx2.append(reg(take))
                else:
                    idx2.append(reg(plan.lut_fn(lambda t, x, y: y if t else x, [take, a_k, b_k])))
            nxt.append((sc2, inv_out, idx2))
        entries = nxt
        prev_valid = valid
        valid = plan.ff(valid, reset=True)
    for k in last_ffs:
        plan.ffs[k][1] = prev_valid
    return plan, entries[0][2], levels, valid


class TreeArgmax(Elaboratable):
    """Pipelined tournament: `scores` (in, classes * score_bits, stable from valid_in until the next valid_in),
    `valid_in`; `cls` (out, registered, held until the next valid_out), `valid_out` (latency cycles later)."""

    interval = 1

    def __init__(self, classes: int, score_bits: int, *, lut_cells: str = "portable", hard_carry: bool = True) -> None:
        if lut_cells not in CELL_STYLES:
            self._MustUse__silence = True  # not built: no "unused elaboratable" warning
            raise ConfigError(f"unknown LUT cell style {lut_cells!r}; choose one of {', '.join(CELL_STYLES)}")
        self.classes, self.score_bits, self.lut_cells = int(classes), int(score_bits), lut_cells
        self.hard_carry = bool(hard_carry)
        prim = primitives(lut_cells)
        on_chain = prim is not None and prim.chain_cell is not None and self.hard_carry
        self._plan, self._idx, self.latency, self._valid = _plan_argmax(self.classes, self.score_bits,
                                                                       pack_ci=not on_chain)
        self.scores = Signal(self.classes * self.score_bits)
        self.valid_in = Signal()
        self.cls = Signal(_bits_for(self.classes - 1))
        self.valid_out = Signal()

    @staticmethod
    def cells(classes: int, score_bits: int, lut_cells: str = "sb_lut4") -> dict:
        return _plan_argmax(int(classes), int(score_bits))[0].counts()

    @staticmethod
    def lc_estimate(classes: int, score_bits: int) -> int:
        """iCE40 logic cells after packing (see `popcount._Plan.lc_estimate`)."""
        return _plan_argmax(int(classes), int(score_bits))[0].lc_estimate()

    def elaborate(self, platform) -> Module:
        m = Module()
        outs = [r for r in self._idx if r is not None] + [self._valid]
        val = self._plan.build(m, self.lut_cells, {"values": self.scores, "valid_in": self.valid_in}, "am",
                               extra_uses=outs, hard_carry=self.hard_carry)
        for k, r in enumerate(self._idx):
            m.d.comb += self.cls[k].eq(val(r) if r is not None else Const(0, 1))
        m.d.comb += self.valid_out.eq(val(self._valid))
        return m
