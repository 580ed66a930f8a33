"""Packing the optimised DAG into K-input LUT cells (K = 4 for iCE40, up to 6).

1. `decompose`: nodes with more than K inputs are split by Shannon expansion (f = x ? f1 : f0, cofactors
   recursively, a 3-input multiplexer LUT per split); the passes then merge equal / constant cofactors.
2. Cut enumeration: priority cuts (at most `cuts` per node, always including the node's own fan-in cut), each
   K-feasible cut of a node a candidate LUT whose inputs are the cut's leaves.
3. Selection: depth-oriented (if a depth bound is asked for: FlowMap-style optimal arrival times) or area-flow
   first; then area-flow recovery and exact local area recovery (reference counting: a cut's cost is the number
   of LUTs it would add given everything else that is mapped, so shared logic is not duplicated needlessly),
   respecting the required times when a depth bound is set.
4. Truth tables of the chosen cuts are computed exactly by evaluating the cone on projection tables; the result
   is again a Netlist, cleaned by the passes (a cut function may not depend on all its leaves).

If every node already has k <= K, the result never has more LUTs than the input has nodes (the node-per-LUT
mapping is a fallback).
"""
from __future__ import annotations

import math
import time
from functools import lru_cache
from itertools import combinations
from dataclasses import dataclass, field

import numpy as np

from ..errors import NetlistError
from . import tt
from .netlist import Netlist, Node
from .passes import PassReport, _like, _report, dead_node_elimination, optimize

MUX3 = 0xCA  # fanin (a, b, s): s ? b : a


@dataclass
class PackReport:
    K: int
    luts: int
    luts_by_k: dict
    depth: int
    depth_bound: int | None
    min_depth: int
    nodes_in: int
    decomposed_nodes: int
    area_rounds: list = field(default_factory=list)  # LUT count after each selection round
    fallback_node_per_lut: bool = False
    restructured: bool = False  # the mapping of the decomposed graph was smaller
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return dict(self.__dict__)


# --- decomposition ------------------------------------------------------------------------------------------
def _tab(fn, k: int) -> int:
    return sum(1 << c for c in range(1 << k) if fn(*[(c >> i) & 1 for i in range(k)]))


# 6-input-into-LUT4 trick: m passes x_i through when x_j = 1, so the root can reuse it as the select.
_M4 = _tab(lambda xi, xj, a, b: xi if xj else (b if xi else a), 4)     # fanin (x_i, x_j, f|i0j0, f|i1j0)
_R4 = _tab(lambda m, xj, c, d: (d if m else c) if xj else m, 4)        # fanin (m, x_j, f|i0j1, f|i1j1)


def _cof2(table: int, k: int, i: int, j: int) -> list[int]:
    """Cofactors f|x_i=a,x_j=b for (a, b) in 00, 10, 01, 11, over the other k-2 inputs (i < j)."""
    return [tt.cofactor(tt.cofactor(table, k, j, b), k - 1, i, a) for b in (0, 1) for a in (0, 1)]


def _best_split(table: int, k: int, size: int) -> tuple[int, ...]:
    """The `size` inputs (1 or 2) whose 2^size cofactors need the fewest LUTs (constants and single literals are
    free; f and not f share one); vectorised over all candidate input sets."""
    sets = list(combinations(range(k), size))
    bits = np.array([(table >> c) & 1 for c in range(1 << k)], dtype=np.uint8)
    rows = bits[np.stack([_chart(k, B) for B in sets])]  # (sets, 2^size, 2^m): the cofactors' truth tables
    m = k - size
    support = np.zeros(rows.shape[:2], dtype=np.int64)
    for q in range(m):
        r = rows.reshape(len(sets), 1 << size, 1 << (m - q - 1), 2, 1 << q)
        support += (r[:, :, :, 0, :] != r[:, :, :, 1, :]).any(axis=(2, 3))
    canon = np.where(rows[:, :, :1] == 1, 1 - rows, rows)  # complement so corner 0 is 0
    keys = canon.astype(np.int64) @ (1 << np.arange(1 << m, dtype=np.int64)) if m < 63 else None
    costs = [len({int(keys[s_, r]) for r in range(1 << size) if support[s_, r] >= 2}) for s_ in range(len(sets))]
    return sets[int(np.argmin(costs))]


def decompose(net: Netlist, K: int) -> tuple[Netlist, PassReport]:
    """Split every node with k > K into K-input nodes. Shannon expansion on the input(s) whose cofactors need the
    fewest LUTs; with K >= 4 two inputs at a time (four cofactors + 2 LUTs: a 6-input function takes 6 LUT4s,
    not the 7 of a plain multiplexer tree)."""
    if not 3 <= K <= 6:
        raise NetlistError(f"LUT size K must be between 3 and 6, got {K}")
    if all(n.k <= K for n in net.nodes):
        return net, _report("decompose", net, net, {"nodes_split": 0})
    first = net.first_node
    remap = list(range(first))
    nodes: list[Node] = []
    split = 0

    def add(fan, table, layer) -> int:
        nodes.append(Node(tuple(fan), table, layer))
        return first + len(nodes) - 1

    def build(table: int, fan: list[int], layer: int) -> int:
        k = len(fan)
        if k <= K:
            return add(fan, table, layer)
        if k - K >= 2 and K >= 4:
            i, j = _best_split(table, k, 2)
            rest = [f for t, f in enumerate(fan) if t not in (i, j)]
            s00, s10, s01, s11 = (build(c, rest, layer) for c in _cof2(table, k, i, j))
            m = add((fan[i], fan[j], s00, s10), _M4, layer)
            return add((m, fan[j], s01, s11), _R4, layer)
        (v,) = _best_split(table, k, 1)
        rest = [f for t, f in enumerate(fan) if t != v]
        s0 = build(tt.cofactor(table, k, v, 0), rest, layer)
        s1 = build(tt.cofactor(table, k, v, 1), rest, layer)
        return add((s0, s1, fan[v]), MUX3, layer)

    for n in net.nodes:
        fan = [remap[f] for f in n.fanin]
        if n.k > K:
            split += 1
        remap.append(build(n.table, fan, n.layer))
    out = _like(net, list(net.inputs), nodes, [[remap[s] for s in g] for g in net.outputs])
    return out, _report("decompose", net, out, {"nodes_split": split, "nodes_added": len(nodes) - len(net.nodes)})


@lru_cache(maxsize=None)
def _chart(k: int, B: tuple[int, ...]) -> np.ndarray:
    """Corner index of (bound assignment b, free assignment r): shape (2^|B|, 2^(k-|B|))."""
    F = [i for i in range(k) if i not in B]
    idx = np.zeros((1 << len(B), 1 << len(F)), dtype=np.int64)
    for b in range(1 << len(B)):
        for r in range(1 << len(F)):
            c = 0
            for q, i in enumerate(B):
                c |= ((b >> q) & 1) << i
            for q, i in enumerate(F):
                c |= ((r >> q) & 1) << i
            idx[b, r] = c
    return idx


@lru_cache(maxsize=1 << 16)
def _simple_split(table: int, k: int) -> tuple | None:
    """A disjoint-support decomposition f = g(h(x_B), x_F) with |B| >= 2, |F| >= 1 (column multiplicity 2),
    smallest bound set first (at most 3 inputs). Returns (B, h_table over B, F, g_table over (h, F...)) or None."""
    bits = np.array([(table >> c) & 1 for c in range(1 << k)], dtype=np.uint8)
    for size in range(2, min(k, 4)):
        for B in combinations(range(k), size):
            cols = bits[_chart(k, B)]  # (2^|B|, 2^|F|)
            first = cols[0]
            other = np.flatnonzero((cols != first).any(1))
            if not len(other) or not (cols[other] == cols[other[0]]).all():
                continue
            F = tuple(i for i in range(k) if i not in B)
            h = sum(1 << int(b) for b in other)
            c0 = sum(int(v) << r for r, v in enumerate(first))
            c1 = sum(int(v) << r for r, v in enumerate(cols[other[0]]))
            g = 0
            for c in range(1 << (len(F) + 1)):
                g |= (((c1 if c & 1 else c0) >> (c >> 1)) & 1) << c
            return B, h, F, g
    return None


def restructure(net: Netlist) -> tuple[Netlist, PassReport]:
    """Split nodes along disjoint-support decompositions (f = g(h(a, b), c, ...)), recursively, so the cut-based
    mapper can place the pieces independently (a finer graph only adds mapping options: the whole node is still a
    cut of the root). Equal pieces of different nodes are merged by the structural hashing that follows."""
    first = net.first_node
    remap = list(range(first))
    nodes: list[Node] = []
    cnt = 0

    def build(table: int, fan: list[int], layer: int) -> int:
        nonlocal cnt
        sp = _simple_split(table, len(fan)) if len(fan) >= 3 else None
        if sp is None:
            nodes.append(Node(tuple(fan), table, layer))
            return first + len(nodes) - 1
        B, h, F, g = sp
        cnt += 1
        hs = build(h, [fan[i] for i in B], layer)
        return build(g, [hs] + [fan[i] for i in F], layer)

    for n in net.nodes:
        remap.append(build(n.table, [remap[f] for f in n.fanin], n.layer))
    out = _like(net, list(net.inputs), nodes, [[remap[s] for s in g] for g in net.outputs])
    return out, _report("restructure", net, out, {"splits": cnt})


# --- mapping ------------------------------------------------------------------------------------------------
class _Mapper:
    def __init__(self, net: Netlist, K: int, C: int) -> None:
        self.net, self.K, self.C = net, K, C
        self.first = net.first_node
        self.N = net.n_signals
        self.fanin = [()] * self.first + [n.fanin for n in net.nodes]
        self.roots = sorted({s for g in net.outputs for s in g if s >= self.first})
        fo = [0] * self.N
        for fan in self.fanin:
            for f in fan:
                fo[f] += 1
        for s in self.roots:
            fo[s] += 1
        self.fo_est = [max(1, v) for v in fo]
        self.cuts: list[list[frozenset]] = [[] for _ in range(self.N)]
        self.best: list[frozenset | None] = [None] * self.N
        self.arr = [0] * self.N
        self.af = [0.0] * self.N
        self.refs = [0] * self.N

    # cut enumeration (once), ranked by the first selection mode
    def enumerate(self, depth_first: bool) -> None:
        K, C, first = self.K, self.C, self.first
        limit = 4 * C * C
        for s in range(first, self.N):
            cand = {frozenset()}
            for f in self.fanin[s]:
                if f < 2:
                    continue  # constants are not LUT inputs
                fc = [frozenset((f,))] + (self.cuts[f] if f >= first else [])
                nxt = set()
                for a in cand:
                    for b in fc:
                        u = a | b
                        if len(u) <= K:
                            nxt.add(u)
                if len(nxt) > limit:
                    nxt = set(sorted(nxt, key=len)[:limit])
                cand = nxt
            own = frozenset(f for f in self.fanin[s] if f >= 2)
            scored = sorted(cand, key=lambda c: self._key(c, depth_first))
            kept: list[frozenset] = [own]
            for c in scored:
                if len(kept) > C:
                    break
                if c is own or c == own or any(k <= c for k in kept):
                    continue
                kept.append(c)
            kept.sort(key=lambda c: self._key(c, depth_first))
            self.cuts[s] = kept
            self._choose(s, kept[0])

    def _arrival(self, c: frozenset) -> int:
        return 1 + max((self.arr[l] for l in c), default=0)

    def _flow(self, c: frozenset) -> float:
        first, af, fo = self.first, self.af, self.fo_est
        return 1.0 + sum(af[l] / fo[l] for l in c if l >= first)

    def _key(self, c: frozenset, depth_first: bool) -> tuple:
        d, a = self._arrival(c), self._flow(c)
        return (d, a, len(c)) if depth_first else (a, d, len(c))

    def _choose(self, s: int, c: frozenset) -> None:
        self.best[s] = c
        self.arr[s] = self._arrival(c)
        self.af[s] = self._flow(c)

    # exact area by reference counting
    def _ref(self, s: int) -> int:
        area = 1
        for l in self.best[s]:
            if l >= self.first:
                self.refs[l] += 1
                if self.refs[l] == 1:
                    area += self._ref(l)
        return area

    def _deref(self, s: int) -> int:
        area = 1
        for l in self.best[s]:
            if l >= self.first:
                self.refs[l] -= 1
                if self.refs[l] == 0:
                    area += self._deref(l)
        return area

    def _cut_area(self, c: frozenset) -> int:
        """LUTs that mapping the current node with cut c adds (node itself included)."""
        area, touched = 1, []
        stack = [l for l in c if l >= self.first]
        # ref: count newly needed nodes
        for l in stack:
            self.refs[l] += 1
            touched.append(l)
            if self.refs[l] == 1:
                area += self._ref(l)
        for l in touched:
            self.refs[l] -= 1
            if self.refs[l] == 0:
                self._deref(l)
        return area

    def map_all(self) -> int:
        """Reference the whole mapping from the outputs; returns the LUT count."""
        self.refs = [0] * self.N
        area = 0
        for s in self.roots:
            self.refs[s] += 1
            if self.refs[s] == 1:
                area += self._ref(s)
        return area

    def required(self, bound: int | None) -> list[float]:
        req = [math.inf] * self.N
        if bound is None:
            return req
        for s in self.roots:
            req[s] = bound
        for s in range(self.N - 1, self.first - 1, -1):
            if self.refs[s] > 0:
                for l in self.best[s]:
                    req[l] = min(req[l], req[s] - 1)
        return req

    def area_flow_round(self, bound: int | None) -> None:
        req = self.required(bound)
        self.fo_est = [max(1, r) for r in self.refs]
        for s in range(self.first, self.N):
            ok = [c for c in self.cuts[s] if self._arrival(c) <= req[s]] or [min(self.cuts[s], key=self._arrival)]
            self._choose(s, min(ok, key=lambda c: (self._flow(c), self._arrival(c), len(c))))
        self.map_all()

    def exact_area_round(self, bound: int | None) -> None:
        req = self.required(bound)
        for s in range(self.first, self.N):
            ok = [c for c in self.cuts[s] if self._arrival(c) <= req[s]] or [min(self.cuts[s], key=self._arrival)]
            if self.refs[s] > 0:
                self._deref(s)
                scored = [(self._cut_area(c), self._arrival(c), len(c), i) for i, c in enumerate(ok)]
                self._choose(s, ok[min(scored)[3]])
                self._ref(s)
            else:
                self._choose(s, min(ok, key=lambda c: (self._flow(c), self._arrival(c), len(c))))

    def depth(self) -> int:
        return max((self.arr[s] for s in self.roots), default=0)

    def build(self) -> Netlist:
        """The mapped netlist: one node per referenced root, with the cone's exact truth table."""
        net, first = self.net, self.first
        mapped = [s for s in range(first, self.N) if self.refs[s] > 0]
        new_id = {0: 0, 1: 1, **{s: s for s in range(2, first)}}
        for j, s in enumerate(mapped):
            new_id[s] = first + j
        nodes = []
        for s in mapped:
            leaves = sorted(self.best[s])
            m = len(leaves)
            val = {0: 0, 1: tt.full(m)}
            for i, l in enumerate(leaves):
                val[l] = tt.var(i, m)
            nodes.append(Node(tuple(new_id[l] for l in leaves), self._cone(s, val, m), net.nodes[s - first].layer))
        return _like(net, list(net.inputs), nodes, [[new_id[s] for s in g] for g in net.outputs])

    def _cone(self, s: int, val: dict, m: int) -> int:
        stack = [s]
        while stack:
            v = stack[-1]
            pending = [f for f in self.fanin[v] if f not in val]
            if pending:
                stack.extend(pending)
                continue
            stack.pop()
            if v not in val:
                val[v] = tt.compose(self.net.nodes[v - self.first].table, [val[f] for f in self.fanin[v]], m)
        return val[s]


def _map_once(work: Netlist, K: int, depth, cuts: int, area_rounds: int, head: bool = True) -> tuple[Netlist, dict]:
    mp = _Mapper(work, K, cuts)
    depth_first = depth is not None
    mp.enumerate(depth_first)
    min_depth = mp.depth() if depth_first else 0
    bound: int | None = None
    if depth is not None:
        if depth == "min" or depth == 0:
            bound = min_depth
        else:
            bound = int(depth)
            if bound < min_depth:
                raise NetlistError(f"depth bound {bound} is below the minimum achievable depth {min_depth} for K={K}")
    rounds = [mp.map_all()]
    keep = (list(mp.best), list(mp.arr))  # the depth-optimal choices, if recovery ever broke the bound
    for r in range(area_rounds):
        if r == 0:
            mp.area_flow_round(bound)
        mp.exact_area_round(bound)
        rounds.append(mp.map_all())
    if bound is not None and mp.depth() > bound:
        mp.best, mp.arr = keep
        rounds.append(mp.map_all())
    out, _ = optimize(mp.build(), head=head)
    return out, {"min_depth": min_depth, "bound": bound, "rounds": rounds}


def pack(net: Netlist, K: int = 4, depth: int | str | None = None, cuts: int = 8, area_rounds: int = 3,
         restructure_nodes: bool = True, head: bool = True) -> tuple[Netlist, PackReport]:
    """Map `net` onto K-input LUTs. depth: None = area only; an int = at most that many LUT levels
    (NetlistError if below the minimum); "min" = the minimum achievable depth. With restructure_nodes, the mapping
    is also run on the decomposed graph (see `restructure`) and the smaller result kept. head=False keeps the
    output bits themselves (no `popcount_rewrite` in the clean-up passes).
    Returns (packed net, report)."""
    t0 = time.perf_counter()
    if not 3 <= K <= 6:
        raise NetlistError(f"LUT size K must be between 3 and 6, got {K}")
    nodes_in = len(net.nodes)
    work, rep = decompose(net, K)
    split = rep.removed.get("nodes_split", 0)
    if split:
        work, _ = optimize(work, functional=False)
    work, _ = dead_node_elimination(work)
    best, info = _map_once(work, K, depth, cuts, area_rounds, head)
    info["restructured"] = False
    if restructure_nodes and any(n.k >= 3 for n in net.nodes):
        # decomposable wide nodes split along their decomposition before any Shannon expansion
        fine, rrep = restructure(net)
        fine, _ = decompose(fine, K)
        fine, rrep2 = restructure(fine)
        if rrep.removed["splits"] or rrep2.removed["splits"]:
            fine, _ = optimize(fine, functional=False)
            try:
                alt, ainfo = _map_once(fine, K, info["bound"], cuts, area_rounds, head)
            except NetlistError:  # the finer graph could not meet the bound: keep the first mapping
                alt, ainfo = best, info
            if (len(alt.nodes), alt.depth()) < (len(best.nodes), best.depth()) and (
                    info["bound"] is None or alt.depth() <= info["bound"]):
                best, info = alt, dict(ainfo, restructured=True)
    out = best
    bound = info["bound"]
    fallback = False
    if all(n.k <= K for n in net.nodes):
        base, _ = dead_node_elimination(net)
        if len(out.nodes) > len(base.nodes) and (bound is None or base.depth() <= bound):
            out, fallback = base, True
    if any(n.k > K for n in out.nodes):
        raise NetlistError("packing left a node wider than K (internal error)")
    out.packed_k = K
    report = PackReport(K=K, luts=len(out.nodes), luts_by_k=out.k_histogram(), depth=out.depth(), depth_bound=bound,
                        min_depth=info["min_depth"], nodes_in=nodes_in, decomposed_nodes=split,
                        area_rounds=info["rounds"], fallback_node_per_lut=fallback,
                        restructured=info["restructured"], seconds=round(time.perf_counter() - t0, 3))
    return out.validate(), report
