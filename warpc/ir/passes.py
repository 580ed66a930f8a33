"""Optimisation passes over the netlist IR. Each pass is `Netlist -> (Netlist, PassReport)`, keeps every class
score exactly, and says what it removed. `optimize` runs them to a fixed point.

Semantics kept by every pass: the multiset of output literals per class evaluates to the same values on every
input vector within the hardware's range (features in [0, 2^input_bits)). Outputs may repeat a signal (each copy
counts), may be constants or input bits.

The node-local rewrites (constant propagation, support reduction, structural hashing) share one engine,
`_rebuild`, that walks nodes in topological order mapping every old signal to a *literal* (new signal, negated);
negated literals fold into their consumers' truth tables, so an inverter never costs a LUT except where an
output needs the complemented value.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from ..errors import NetlistError
from . import tt
from .netlist import InputBit, Netlist, Node


@dataclass
class PassReport:
    name: str
    nodes_before: int
    nodes_after: int
    inputs_before: int
    inputs_after: int
    removed: dict = field(default_factory=dict)   # what the pass removed / rewrote, by kind
    layers_before: dict = field(default_factory=dict)  # node count per originating layer
    layers_after: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "name": self.name, "nodes_before": self.nodes_before, "nodes_after": self.nodes_after,
            "inputs_before": self.inputs_before, "inputs_after": self.inputs_after, "removed": dict(self.removed),
            "layers_before": dict(self.layers_before), "layers_after": dict(self.layers_after),
        }

    def __str__(self) -> str:
        what = ", ".join(f"{k}={v}" for k, v in self.removed.items() if v) or "nothing"
        return f"{self.name}: nodes {self.nodes_before} -> {self.nodes_after}; {what}"


def layer_counts(net: Netlist) -> dict[int, int]:
    return dict(sorted(Counter(n.layer for n in net.nodes).items()))


def _report(name: str, before: Netlist, after: Netlist, removed: dict) -> PassReport:
    return PassReport(name, len(before.nodes), len(after.nodes), len(before.inputs), len(after.inputs),
                      removed, layer_counts(before), layer_counts(after))


def _like(net: Netlist, inputs: list[InputBit], nodes: list[Node], outputs: list[list[int]]) -> Netlist:
    return Netlist(n_features=net.n_features, inputs=inputs, nodes=nodes, outputs=outputs, input_bits=net.input_bits,
                   class_names=None if net.class_names is None else list(net.class_names), tau_head=net.tau_head,
                   dataset=net.dataset, packed_k=net.packed_k)


# --- the literal-rewriting engine ---------------------------------------------------------------------------
def _rebuild(net: Netlist, *, consts: bool, support: bool, strash: bool,
             input_sub: dict[int, int] | None = None,
             node_sub: dict[int, tuple[int, bool]] | None = None,
             node_rewrite: dict[int, Node] | None = None) -> tuple[Netlist, Counter]:
    """Rewrite every node given the enabled simplifications; returns the new netlist and counters.

    consts:  fold constant fan-ins (signals 0/1, or inputs substituted by constants) into tables; a node whose
             table is constant becomes a constant.
    support: merge repeated fan-ins, drop fan-ins the table does not depend on; 1-input identity -> wire,
             1-input inverter -> negated literal folded into consumers.
    strash:  canonical fan-in order (sorted, table permuted) and output polarity (table bit 0 = 0), identical
             (fanin, table) merged; f and not f share one node.
    input_sub: old input signal -> old signal (0/1 for constants, another input for duplicates).
    node_sub: old node signal -> (earlier old signal, negated): the node is replaced by that literal.
    node_rewrite: old node signal -> a replacement Node over earlier old signals.
    """
    cnt: Counter = Counter()
    first = net.first_node
    lit: list[tuple[int, bool]] = [(0, False), (0, True)] + [(s, False) for s in range(2, first)]
    for s, t in (input_sub or {}).items():
        lit[s] = lit[t] if t >= 2 else (0, bool(t))
    nodes: list[list] = []  # [fanin list (new ids), table, layer]
    seen: dict[tuple, int] = {}

    node_sub = node_sub or {}
    for j, node in enumerate(net.nodes):
        if node_sub:
            tgt = node_sub.get(first + j)
            if tgt is not None:
                g, neg = lit[tgt[0]]
                lit.append((g, neg ^ tgt[1]))
                cnt["nodes_substituted"] += 1
                continue
        if node_rewrite:
            node = node_rewrite.get(first + j, node)
        k, t = node.k, node.table
        fan: list[int] = []
        for i, f in enumerate(node.fanin):
            g, neg = lit[f]
            if neg and g != 0:
                t = tt.negate_input(t, k, i)
            if g == 0:  # constant literal: value = neg
                fan.append(-1 - int(neg))  # marker, resolved below
            else:
                fan.append(g)
        # constants: fold (consts) or keep as signals 0/1
        if any(f < 0 for f in fan):
            if consts:
                i = len(fan) - 1
                while i >= 0:
                    if fan[i] < 0:
                        t = tt.cofactor(t, len(fan), i, -1 - fan[i])
                        del fan[i]
                        cnt["const_fanins_folded"] += 1
                    i -= 1
            else:
                fan = [(-1 - f) if f < 0 else f for f in fan]
        k = len(fan)
        if support:
            i = 0
            while i < k:  # repeated fan-ins
                j = next((j for j in range(i + 1, k) if fan[j] == fan[i]), None)
                if j is None:
                    i += 1
                    continue
                t = tt.merge_inputs(t, k, i, j)
                del fan[j]
                k -= 1
                cnt["repeated_fanins_merged"] += 1
            for i in range(k - 1, -1, -1):
                if not tt.depends(t, k, i):
                    t = tt.cofactor(t, k, i, 0)
                    del fan[i]
                    k -= 1
                    cnt["fanins_dropped"] += 1
        cval = tt.is_const(t, k)
        if cval is not None and (consts or (support and k == 0)):
            lit.append((0, bool(cval)))
            cnt["nodes_to_constants"] += 1
            continue
        if support and k == 1:
            if t == 0b10:
                lit.append((fan[0], False))
                cnt["wires_removed"] += 1
                continue
            if t == 0b01:
                lit.append((fan[0], True))
                cnt["inverters_folded"] += 1
                continue
        neg_out = False
        if strash:
            order = tuple(sorted(range(k), key=lambda i: fan[i]))
            if order != tuple(range(k)):
                t = tt.permute(t, k, order)
                fan = [fan[i] for i in order]
            if t & 1:
                t = ~t & tt.full(k)
                neg_out = True
            key = (tuple(fan), t)
            hit = seen.get(key)
            if hit is not None:
                lit.append((hit, neg_out))
                cnt["nodes_merged"] += 1
                continue
            seen[key] = first + len(nodes)
        nodes.append([fan, t, node.layer])
        lit.append((first + len(nodes) - 1, neg_out))

    # Outputs: positive literals directly; constants as signals 0/1. A node that outputs only need negated is
    # stored complemented (its consumers' tables absorb the flip); otherwise an inverter node is added.
    olits = [[lit[s] for s in g] for g in net.outputs]
    if strash or support:
        # s and not s in one class always add exactly 1 to its score: a constant-1 output instead of two bits
        for c, g in enumerate(olits):
            pos_i: dict[int, list[int]] = {}
            neg_i: dict[int, list[int]] = {}
            for i, (sg, neg) in enumerate(g):
                if sg != 0:
                    (neg_i if neg else pos_i).setdefault(sg, []).append(i)
            drop: set[int] = set()
            for sg, ps in pos_i.items():
                for a, b in zip(ps, neg_i.get(sg, [])):
                    drop |= {a, b}
                    cnt["complementary_output_pairs"] += 1
            if drop:
                ones = len(drop) // 2
                olits[c] = [l for i, l in enumerate(g) if i not in drop] + [(0, True)] * ones
    pos: Counter = Counter()
    negc: Counter = Counter()
    for g in olits:
        for s, neg in g:
            if s != 0:
                (negc if neg else pos)[s] += 1
    flip = {s for s in negc if s >= first and pos[s] == 0}
    if flip:
        for s in flip:
            nd = nodes[s - first]
            nd[1] = ~nd[1] & tt.full(len(nd[0]))
        for nd in nodes:
            for i, f in enumerate(nd[0]):
                if f in flip:
                    nd[1] = tt.negate_input(nd[1], len(nd[0]), i)
        cnt["outputs_complemented_in_place"] += len(flip)
    inv: dict[int, int] = {}
    outputs: list[list[int]] = []
    for g in olits:
        og = []
        for s, neg in g:
            if s == 0:
                og.append(1 if neg else 0)
            elif not neg or s in flip:
                og.append(s)
            else:
                if s not in inv:
                    if s >= first:  # a complemented copy of the node: one LUT, like an inverter, but no extra level
                        f, t, layer = nodes[s - first]
                        nodes.append([list(f), ~t & tt.full(len(f)), layer])
                        cnt["output_complement_copies"] += 1
                    else:
                        nodes.append([[s], 0b01, -1])
                        cnt["output_inverters_added"] += 1
                    inv[s] = first + len(nodes) - 1
                og.append(inv[s])
        outputs.append(og)
    out = _like(net, list(net.inputs), [Node(tuple(f), t, layer) for f, t, layer in nodes], outputs)
    return out, cnt


# --- passes -----------------------------------------------------------------------------------------------
def constant_propagation(net: Netlist) -> tuple[Netlist, PassReport]:
    """Fold constant fan-ins and constant input bits (threshold <= 0 is always 1; threshold above the input
    range is always 0) into truth tables; constant tables become constants."""
    top = (1 << net.input_bits) - 1
    sub = {}
    for i, b in enumerate(net.inputs):
        if b.threshold <= 0:
            sub[net.input_id(i)] = 1
        elif b.threshold > top:
            sub[net.input_id(i)] = 0
    read = {f for n in net.nodes for f in n.fanin} | {s for g in net.outputs for s in g}
    sub = {s: v for s, v in sub.items() if s in read}
    out, cnt = _rebuild(net, consts=True, support=False, strash=False, input_sub=sub)
    cnt["constant_input_bits"] = len(sub)
    return out, _report("constant_propagation", net, out, dict(cnt))


def support_reduction(net: Netlist) -> tuple[Netlist, PassReport]:
    """Drop fan-ins a table does not depend on, merge repeated fan-ins, turn 1-input identities into wires and
    fold inverters into their consumers."""
    out, cnt = _rebuild(net, consts=False, support=True, strash=False)
    return out, _report("support_reduction", net, out, dict(cnt))


def thermometer_dont_cares(net: Netlist) -> tuple[Netlist, PassReport]:
    """Use the encoder's structure: bits of one feature are a thermometer code, [x >= t2] implies [x >= t1] for
    t1 <= t2, so a node reading several bits of one feature never sees some corners. Fan-ins that matter only on
    those impossible corners are dropped (exact for every input value, not just the test set)."""
    cnt: Counter = Counter()
    nodes = []
    for n in net.nodes:
        pos = [i for i, f in enumerate(n.fanin) if net.is_input(f)]
        feats: dict[int, list[int]] = {}
        for i in pos:
            feats.setdefault(net.inputs[n.fanin[i] - 2].feature, []).append(i)
        pairs = [(i, j) for g in feats.values() for i in g for j in g
                 if i != j and net.inputs[n.fanin[i] - 2].threshold <= net.inputs[n.fanin[j] - 2].threshold]
        if not pairs:
            nodes.append(n)
            continue
        k, t = n.k, n.table
        # care[c] = 1 unless corner c has x_j = 1 and x_i = 0 with t_i <= t_j
        care = 0
        for c in range(1 << k):
            if all(not ((c >> j) & 1 and not (c >> i) & 1) for i, j in pairs):
                care |= 1 << c
        fan = list(n.fanin)
        for v in range(k - 1, -1, -1):
            ok = True
            for c in range(1 << k):
                if not (c >> v) & 1:
                    d = c | (1 << v)
                    if (care >> c) & 1 and (care >> d) & 1 and ((t >> c) & 1) != ((t >> d) & 1):
                        ok = False
                        break
            if not ok:
                continue
            # g(rest) = f on whichever expansion is a care corner (don't-cares become 0)
            t0, t1 = tt.cofactor(t, k, v, 0), tt.cofactor(t, k, v, 1)
            c0, c1 = tt.cofactor(care, k, v, 0), tt.cofactor(care, k, v, 1)
            t = (t0 & c0) | (t1 & c1 & ~c0)
            care = c0 | c1
            del fan[v]
            k -= 1
            cnt["fanins_dropped"] += 1
        t &= care  # impossible corners to 0, so equal functions get equal tables for structural hashing
        if k != n.k or t != n.table:
            cnt["nodes_simplified"] += 1
        nodes.append(Node(tuple(fan), t, n.layer))
    out = _like(net, list(net.inputs), nodes, [list(g) for g in net.outputs])
    return out, _report("thermometer_dont_cares", net, out, dict(cnt))


GLOBAL_SUPPORT = 10  # functional_merge looks at nodes whose input-bit support is at most this wide


def _care(net: Netlist, support: tuple[int, ...], ar: np.ndarray) -> np.ndarray:
    """Valid thermometer codes over the support's corners (bool, 2^|support|)."""
    care = np.ones(len(ar), dtype=bool)
    for a, sa in enumerate(support):
        for b, sb in enumerate(support):
            A, B = net.inputs[sa - 2], net.inputs[sb - 2]
            if a != b and A.feature == B.feature and A.threshold <= B.threshold:
                care &= ~((((ar >> b) & 1) == 1) & (((ar >> a) & 1) == 0))
    return care


def _on(g: tuple[tuple[int, ...], np.ndarray], U: tuple[int, ...], ar: np.ndarray) -> np.ndarray:
    """A global function (support, values) evaluated on the corners `ar` of the wider support U."""
    sup, vals = g
    c = np.zeros(len(ar), dtype=np.int64)
    for q, x in enumerate(sup):
        c |= ((ar >> U.index(x)) & 1) << q
    return vals[c]


def popcount_rewrite(net: Netlist, max_support: int = 4) -> tuple[Netlist, PassReport]:
    """Class-score-preserving rewrite of output pairs (the head only needs each class's *sum*): two output bits
    y1, y2 of one class over a shared input support of at most `max_support` bits are replaced by u + w with u a
    constant or an input bit (free: no LUT) and w = y1 + y2 - u a single function (one LUT, or free too), whenever
    that holds on every valid thermometer code. Only outputs read nowhere else are rewritten, so every rewrite
    saves at least one LUT. ABC cannot do this: it must keep every output bit."""
    first = net.first_node
    refs = Counter(f for n in net.nodes for f in n.fanin)
    for g in net.outputs:
        refs.update(g)
    # global functions of the output nodes with small input support
    glob: dict[int, tuple | None] = {s: ((s,), np.array([0, 1], np.uint8)) for s in range(2, first)}
    for j, n in enumerate(net.nodes):
        fg = [glob.get(f) if f >= 2 else None for f in n.fanin]
        if any(g is None for g in fg):
            continue
        U = tuple(sorted(set().union(*[g[0] for g in fg])))
        if len(U) > max_support:
            continue
        ar = np.arange(1 << len(U), dtype=np.int64)
        corner = np.zeros(len(ar), dtype=np.int64)
        for i, g in enumerate(fg):
            corner |= _on(g, U, ar).astype(np.int64) << i
        glob[first + j] = (U, np.array([(n.table >> c) & 1 for c in range(1 << n.k)], dtype=np.uint8)[corner])
    nodes = list(net.nodes)
    outputs = [list(g) for g in net.outputs]
    cnt: Counter = Counter()
    for c, group in enumerate(outputs):
        cand = [i for i, s in enumerate(group) if s >= first and refs[s] == 1 and s in glob]
        by_input: dict[int, list[int]] = {}
        for i in cand:
            for x in glob[group[i]][0]:
                by_input.setdefault(x, []).append(i)
        done: set[int] = set()
        repl: dict[int, int] = {}  # position -> new signal
        for a in cand:
            if a in done:
                continue
            partners = sorted({b for x in glob[group[a]][0] for b in by_input[x] if b > a and b not in done})
            for b in partners:
                ga, gb = glob[group[a]], glob[group[b]]
                U = tuple(sorted(set(ga[0]) | set(gb[0])))
                if len(U) > max_support:
                    continue
                ar = np.arange(1 << len(U), dtype=np.int64)
                care = _care(net, U, ar)
                tot = _on(ga, U, ar).astype(np.int64) + _on(gb, U, ar).astype(np.int64)
                best = None
                for u in [0, 1, *U]:
                    uv = np.full(len(ar), u, np.int64) if u < 2 else ((ar >> U.index(u)) & 1)
                    w = np.where(care, tot - uv, 0)
                    if w.min() < 0 or w.max() > 1:
                        continue
                    wc = w[care]
                    free = None
                    if wc.min() == wc.max():
                        free = int(wc[0]) if len(wc) else 0
                    else:
                        for q, x in enumerate(U):
                            if (wc == ((ar[care] >> q) & 1)).all():
                                free = x
                                break
                    score = 2 if free is not None else 1
                    if best is None or score > best[0]:
                        best = (score, u, w, free)
                if best is None:
                    continue
                score, u, w, free = best
                if free is None:
                    nodes.append(Node(U, int(sum(int(v) << i for i, v in enumerate(w))), -1))
                    free = first + len(nodes) - 1
                repl[a], repl[b] = u, free
                done |= {a, b}
                cnt["output_pairs_rewritten"] += 1
                cnt["luts_saved"] += score
                break
        if repl:
            outputs[c] = [repl.get(i, s) for i, s in enumerate(group)]
    if not cnt:
        return net, _report("popcount_rewrite", net, net, {})
    out = _like(net, list(net.inputs), nodes, outputs)
    return out, _report("popcount_rewrite", net, out, dict(cnt))


def functional_merge(net: Netlist, max_support: int = GLOBAL_SUPPORT) -> tuple[Netlist, PassReport]:
    """Global functions: every node whose support in input bits is small gets its exact truth table over those
    bits (numpy, exhaustive), reduced to the bits it depends on for valid thermometer codes. Nodes with equal
    functions (or complementary ones) are merged even when structurally different; a node that is a constant or a
    single (negated) input bit on valid codes becomes that literal. Exact on every valid input, like the
    thermometer pass; ABC, which sees independent inputs, cannot find the don't-care cases."""
    first = net.first_node
    glob: dict[int, tuple[tuple[int, ...], np.ndarray] | None] = {
        0: ((), np.zeros(1, np.uint8)), 1: ((), np.ones(1, np.uint8))}
    for s in range(2, first):
        glob[s] = ((s,), np.array([0, 1], np.uint8))
    seen: dict[tuple, int] = {}
    sub: dict[int, tuple[int, bool]] = {}
    rewrite: dict[int, Node] = {}
    cnt: Counter = Counter()
    for j, n in enumerate(net.nodes):
        sid = first + j
        fg = [glob[f] for f in n.fanin]
        if any(g is None for g in fg):
            glob[sid] = None
            continue
        U = tuple(sorted(set().union(*[g[0] for g in fg])))
        if len(U) > max_support:
            glob[sid] = None
            continue
        ar = np.arange(1 << len(U), dtype=np.int64)
        corner = np.zeros(len(ar), dtype=np.int64)
        for i, g in enumerate(fg):
            corner |= _on(g, U, ar).astype(np.int64) << i
        tbits = np.array([(n.table >> c) & 1 for c in range(1 << n.k)], dtype=np.uint8)
        val = tbits[corner]
        glob[sid] = (U, val)
        # canonical form on valid codes: drop bits it does not depend on there, zero the impossible corners
        care = _care(net, U, ar)
        sup, v, cr = list(U), val.copy(), care.copy()
        for q in range(len(sup) - 1, -1, -1):
            r = v.reshape(-1, 2, 1 << q)
            c2 = cr.reshape(-1, 2, 1 << q)
            both = c2[:, 0] & c2[:, 1]
            if (r[:, 0][both] != r[:, 1][both]).any():
                continue
            v = np.where(c2[:, 0], r[:, 0], r[:, 1]).reshape(-1)
            cr = (c2[:, 0] | c2[:, 1]).reshape(-1)
            del sup[q]
        v = v & cr
        key = (tuple(sup), np.packbits(v).tobytes())
        if not sup:
            sub[sid] = (0, bool(v[0]))
            cnt["nodes_to_constants"] += 1
            continue
        if len(sup) == 1 and not (len(n.fanin) == 1 and n.fanin[0] == sup[0]):
            sub[sid] = (sup[0], bool(v[0]))  # [0, 1] = the bit, [1, 0] = its complement
            cnt["nodes_to_input_literals"] += 1
            continue
        hit = seen.get(key)
        if hit is not None:
            sub[sid] = (hit, False)
            cnt["nodes_merged"] += 1
            continue
        if len(sup) <= n.k and set(sup) != set(n.fanin):
            # on valid codes the node is a function of fewer / other input bits than it reads: read them directly
            rewrite[sid] = Node(tuple(sup), int(sum(int(b) << c for c, b in enumerate(v))), n.layer)
            cnt["nodes_rewritten_over_inputs"] += 1
        ckey = (tuple(sup), np.packbits((1 - v) & cr).tobytes())
        hit = seen.get(ckey)
        if hit is not None:
            sub[sid] = (hit, True)
            cnt["complements_merged"] += 1
            continue
        seen[key] = sid
    if not sub and not rewrite:
        return net, _report("functional_merge", net, net, dict(cnt))
    out, c2 = _rebuild(net, consts=False, support=False, strash=False, node_sub=sub, node_rewrite=rewrite)
    cnt.update({k: v for k, v in c2.items() if k != "nodes_substituted"})
    return out, _report("functional_merge", net, out, dict(cnt))


def structural_hashing(net: Netlist) -> tuple[Netlist, PassReport]:
    """Merge nodes with identical (sorted fan-in, table) up to output polarity."""
    out, cnt = _rebuild(net, consts=False, support=False, strash=True)
    return out, _report("structural_hashing", net, out, dict(cnt))


def dedupe_inputs(net: Netlist) -> tuple[Netlist, PassReport]:
    """Identical input bits (same feature and threshold) are read through the first of them."""
    first_of: dict[InputBit, int] = {}
    sub = {}
    for i, b in enumerate(net.inputs):
        s = net.input_id(i)
        if b in first_of:
            sub[s] = first_of[b]
        else:
            first_of[b] = s
    if not sub:
        return net, _report("dedupe_inputs", net, net, {"duplicate_input_bits": 0})
    out = _substitute(net, sub)
    out = renumber(out, [i for i in range(len(net.inputs)) if net.input_id(i) not in sub], list(range(len(net.nodes))))
    return out, _report("dedupe_inputs", net, out, {"duplicate_input_bits": len(sub)})


def _substitute(net: Netlist, sub: dict[int, int]) -> Netlist:
    nodes = [Node(tuple(sub.get(f, f) for f in n.fanin), n.table, n.layer) for n in net.nodes]
    outputs = [[sub.get(s, s) for s in g] for g in net.outputs]
    return _like(net, list(net.inputs), nodes, outputs)


def dead_node_elimination(net: Netlist) -> tuple[Netlist, PassReport]:
    """Remove nodes no output reaches."""
    live = bytearray(net.n_signals)
    for g in net.outputs:
        for s in g:
            live[s] = 1
    first = net.first_node
    for j in range(len(net.nodes) - 1, -1, -1):
        if live[first + j]:
            for f in net.nodes[j].fanin:
                live[f] = 1
    keep_nodes = [j for j in range(len(net.nodes)) if live[first + j]]
    out = renumber(net, list(range(len(net.inputs))), keep_nodes)
    by_layer = Counter(net.nodes[j].layer for j in range(len(net.nodes)) if not live[first + j])
    return out, _report("dead_node_elimination", net, out,
                        {"dead_nodes": len(net.nodes) - len(keep_nodes),
                         **{f"dead_nodes_layer{l}": v for l, v in sorted(by_layer.items())}})


def remove_unused_inputs(net: Netlist) -> tuple[Netlist, PassReport]:
    """Drop encoder bits that no node and no output reads."""
    used = net.used_inputs()
    out = renumber(net, used, list(range(len(net.nodes))))
    return out, _report("remove_unused_inputs", net, out, {"unused_input_bits": len(net.inputs) - len(used)})


def renumber(net: Netlist, keep_inputs: list[int], keep_nodes: list[int]) -> Netlist:
    """Keep the given inputs / nodes (indices, ascending), renumbering signals; kept items must not read
    dropped ones."""
    remap = {0: 0, 1: 1}
    for new, i in enumerate(keep_inputs):
        remap[net.input_id(i)] = 2 + new
    first = 2 + len(keep_inputs)
    for new, j in enumerate(keep_nodes):
        remap[net.node_id(j)] = first + new
    try:
        nodes = [Node(tuple(remap[f] for f in net.nodes[j].fanin), net.nodes[j].table, net.nodes[j].layer)
                 for j in keep_nodes]
        outputs = [[remap[s] for s in g] for g in net.outputs]
    except KeyError as e:
        raise NetlistError(f"renumber: signal {e} is read but was dropped") from None
    return _like(net, [net.inputs[i] for i in keep_inputs], nodes, outputs)


def expand_inputs(net: Netlist, inputs: list[InputBit]) -> Netlist:
    """The same logic over a superset input list (e.g. the unpacked net's), for comparing stages pin by pin."""
    pos = {}
    for i, b in enumerate(inputs):
        pos.setdefault(b, i)
    try:
        sub = {net.input_id(i): 2 + pos[b] for i, b in enumerate(net.inputs)}
    except KeyError as e:
        raise NetlistError(f"expand_inputs: input bit {e} is not in the given list") from None
    shift = len(inputs) - len(net.inputs)
    for j in range(len(net.nodes)):
        sub[net.node_id(j)] = net.node_id(j) + shift
    nodes = [Node(tuple(sub.get(f, f) for f in n.fanin), n.table, n.layer) for n in net.nodes]
    return _like(net, list(inputs), nodes, [[sub.get(s, s) for s in g] for g in net.outputs])


PASSES = (dedupe_inputs, constant_propagation, thermometer_dont_cares, support_reduction, structural_hashing,
          dead_node_elimination, remove_unused_inputs)
ALL_PASSES = (*PASSES, functional_merge, popcount_rewrite)  # functional_merge runs after the local passes converge (see optimize)


def signature(net: Netlist) -> tuple:
    return (tuple(net.inputs), tuple(net.nodes), tuple(tuple(g) for g in net.outputs))


def optimize(net: Netlist, max_rounds: int = 20, functional: bool = True,
             head: bool = True) -> tuple[Netlist, list[PassReport]]:
    """Run all passes until nothing changes; returns the optimised netlist and every pass's report in order.
    `functional_merge` (the costliest) runs once the local passes have converged, and again only if it changed
    something; `popcount_rewrite` (head=True) likewise (it changes which bits feed a class, never its score)."""
    reports: list[PassReport] = []
    for _ in range(max_rounds):
        before = signature(net)
        for p in PASSES:
            net, rep = p(net)
            reports.append(rep)
        if signature(net) != before:
            continue
        if not functional:
            break
        net, rep = functional_merge(net)
        reports.append(rep)
        if head:
            net, rep = popcount_rewrite(net)
            reports.append(rep)
        if signature(net) == before:
            break
    return net.validate(), reports


def summarize(reports: list[PassReport]) -> dict[str, dict]:
    """Totals per pass name over all rounds."""
    tot: dict[str, Counter] = {}
    for r in reports:
        c = tot.setdefault(r.name, Counter())
        c.update({k: v for k, v in r.removed.items() if v})
        c["nodes_removed"] += r.nodes_before - r.nodes_after
    return {k: dict(v) for k, v in tot.items()}
