"""Bit-parallel emulation of a Netlist: 64 samples per uint64 word, all nodes of one (level, k) group at once.

Every node is evaluated as a multiplexer tree over its truth table: the 2^k table bits become all-0/all-1 words,
then input k-1 .. 0 select between halves (r = lo ^ ((lo ^ hi) & x), 3 word operations per mux). Nodes of the same
logic level and fan-in count share one numpy expression, so the Python overhead is per level, not per node.
"""
from __future__ import annotations

import numpy as np

from ..errors import ShapeError
from .netlist import Netlist

_ONES = np.uint64(0xFFFFFFFFFFFFFFFF)
_CHUNK = 1 << 16  # samples per evaluation chunk (bounds memory: n_signals * CHUNK / 8 bytes)


def pack_bits(bits: np.ndarray) -> np.ndarray:
    """(N, I) {0,1} -> (I, ceil(N/64)) uint64, sample n at bit n % 64 of word n // 64."""
    bits = np.asarray(bits, dtype=np.uint8)
    n = bits.shape[0]
    words = (n + 63) // 64
    packed = np.packbits(bits.T, axis=1, bitorder="little")  # (I, ceil(N/8))
    out = np.zeros((bits.shape[1], words * 8), dtype=np.uint8)
    out[:, : packed.shape[1]] = packed
    return out.view("<u8").astype(np.uint64, copy=False)


def unpack_bits(words: np.ndarray, n: int) -> np.ndarray:
    """(S, W) uint64 -> (n, S) uint8."""
    b = np.unpackbits(np.ascontiguousarray(words).astype("<u8").view(np.uint8), axis=1, bitorder="little")
    return b[:, :n].T


class _Plan:
    """Per-netlist evaluation schedule: groups of (fanin matrix, table matrix, output ids), in level order."""

    def __init__(self, net: Netlist) -> None:
        self.n_signals = net.n_signals
        self.first = net.first_node
        levels = net.levels()
        groups: dict[tuple[int, int], list[int]] = {}
        for j, node in enumerate(net.nodes):
            sid = net.node_id(j)
            groups.setdefault((int(levels[sid]), node.k), []).append(j)
        self.groups = []
        for (_, k), js in sorted(groups.items()):
            ids = np.array([net.node_id(j) for j in js], dtype=np.int64)
            fanin = np.array([net.nodes[j].fanin for j in js], dtype=np.int64).reshape(len(js), k)
            # table bit c of each node as an all-zero / all-one word mask, shape (m, 2^k)
            tb = np.array([[(net.nodes[j].table >> c) & 1 for c in range(1 << k)] for j in js], dtype=np.uint64)
            self.groups.append((k, ids, fanin, tb * _ONES))
        flat = [(c, s) for c, g in enumerate(net.outputs) for s in g]
        self.out_class = np.array([c for c, _ in flat], dtype=np.int64)
        self.out_sig = np.array([s for _, s in flat], dtype=np.int64)
        self.classes = net.classes


def _plan(net: Netlist) -> _Plan:
    # Cache on the object, keyed by content (nodes are frozen; the lists around them may be edited in place).
    key = hash((tuple(net.nodes), tuple(tuple(g) for g in net.outputs), len(net.inputs)))
    cached = getattr(net, "_emu_plan", None)
    if cached is not None and cached[0] == key:
        return cached[1]
    plan = _Plan(net)
    try:
        object.__setattr__(net, "_emu_plan", (key, plan))
    except AttributeError:
        pass
    return plan


def _eval_words(plan: _Plan, in_words: np.ndarray) -> np.ndarray:
    """Signal values (n_signals, W) uint64 from packed input words (I, W)."""
    w = in_words.shape[1]
    vals = np.empty((plan.n_signals, w), dtype=np.uint64)
    vals[0] = 0
    vals[1] = _ONES
    vals[2 : plan.first] = in_words
    for k, ids, fanin, tb in plan.groups:
        if k == 0:
            vals[ids] = tb[:, :1]
            continue
        # blocks of nodes so the widest temporary (m, 2^(k-1), W) stays around 4M words
        step = max(1, (1 << 22) // ((1 << (k - 1)) * max(w, 1)))
        for b in range(0, len(ids), step):
            fb = fanin[b : b + step]
            cur = tb[b : b + step, :, None]  # table words, broadcast over samples: (m, 2^k, 1)
            for i in range(k - 1, -1, -1):
                x = vals[fb[:, i]][:, None, :]  # (m, 1, W)
                half = cur.shape[1] // 2
                lo, hi = cur[:, :half], cur[:, half:]
                # corners c and c + 2^i differ only in input i, the top remaining index bit
                cur = lo ^ ((lo ^ hi) & x)
            vals[ids[b : b + step]] = cur[:, 0]
    return vals


def _checked_bits(net: Netlist, bits: np.ndarray) -> np.ndarray:
    bits = np.asarray(bits)
    if bits.ndim != 2 or bits.shape[1] != len(net.inputs):
        raise ShapeError(f"expected input bits of shape (N, {len(net.inputs)}), got {bits.shape}")
    return bits


def emulate_bits(net: Netlist, bits: np.ndarray) -> np.ndarray:
    """Values of every signal (N, n_signals) uint8 for encoded input bits (N, I)."""
    bits = _checked_bits(net, bits)
    plan = _plan(net)
    out = np.empty((bits.shape[0], net.n_signals), dtype=np.uint8)
    for s in range(0, bits.shape[0], _CHUNK):
        chunk = bits[s : s + _CHUNK]
        out[s : s + len(chunk)] = unpack_bits(_eval_words(plan, pack_bits(chunk)), len(chunk))
    return out


def counts_from_bits(net: Netlist, bits: np.ndarray) -> np.ndarray:
    """Class scores (N, classes) int64 for encoded input bits (N, I)."""
    bits = _checked_bits(net, bits)
    plan = _plan(net)
    n = bits.shape[0]
    counts = np.zeros((n, plan.classes), dtype=np.int64)
    for s in range(0, n, _CHUNK):
        chunk = bits[s : s + _CHUNK]
        counts[s : s + len(chunk)] = _counts(plan, pack_bits(chunk), len(chunk))
    return counts


def _counts(plan: _Plan, in_words: np.ndarray, n: int) -> np.ndarray:
    counts = np.zeros((n, plan.classes), dtype=np.int64)
    if not plan.out_sig.size:
        return counts
    vals = _eval_words(plan, in_words)
    ob = unpack_bits(vals[plan.out_sig], n)  # (n, n_out) uint8
    for c in range(plan.classes):
        sel = plan.out_class == c
        if sel.any():
            counts[:, c] = ob[:, sel].sum(1, dtype=np.int64)
    return counts


def encode_words(net: Netlist, x: np.ndarray) -> np.ndarray:
    """Thermometer-encode integer features already checked to lie in [0, 2^input_bits) straight into packed
    words (I, ceil(N/64)): compares on the transposed features in a narrow integer type (thresholds clipped to
    [0, 2^input_bits], which keeps every compare's result in that range)."""
    top = 1 << net.input_bits
    dt = np.int16 if top <= 1 << 14 else np.int64
    n = len(x)
    words = (n + 63) // 64
    if not net.inputs:
        return np.zeros((0, words), dtype=np.uint64)
    feat = np.array([b.feature for b in net.inputs])
    thr = np.clip(np.array([b.threshold for b in net.inputs], dtype=np.int64), 0, top).astype(dt)
    xt = np.ascontiguousarray(np.asarray(x).T, dtype=dt)  # (F, N): row gathers are cheap
    packed = np.packbits(xt[feat] >= thr[:, None], axis=1, bitorder="little")
    out = np.zeros((len(feat), words * 8), dtype=np.uint8)
    out[:, : packed.shape[1]] = packed
    return out.view("<u8").astype(np.uint64, copy=False)


def check_features(net: Netlist, x: np.ndarray) -> np.ndarray:
    """Raw integer features, validated against the hardware's input width (passes may fold thresholds <= 0 and
    thresholds above 2^input_bits - 1 into constants, which is exact only inside that range)."""
    x = np.asarray(x)
    if x.ndim != 2 or x.shape[1] != net.n_features:
        raise ShapeError(f"expected features of shape (N, {net.n_features}), got {x.shape}")
    if x.size and (x.min() < 0 or x.max() > (1 << net.input_bits) - 1):
        raise ShapeError(
            f"features must lie in [0, {(1 << net.input_bits) - 1}] (input_bits={net.input_bits}); "
            f"got [{x.min()}, {x.max()}]"
        )
    return x


def emulate_counts(net: Netlist, x: np.ndarray) -> np.ndarray:
    """Class scores (N, classes) int64 (popcount per class) from raw integer features (N, n_features)."""
    x = check_features(net, x)
    if not np.issubdtype(x.dtype, np.integer):
        return counts_from_bits(net, net.encode(x))  # float features: compare exactly as given
    plan = _plan(net)
    counts = np.zeros((len(x), plan.classes), dtype=np.int64)
    for s in range(0, len(x), _CHUNK):
        chunk = x[s : s + _CHUNK]
        counts[s : s + len(chunk)] = _counts(plan, encode_words(net, chunk), len(chunk))
    return counts


def argmax_lowest(counts: np.ndarray) -> np.ndarray:
    """Argmax per row; ties go to the lowest class index (np.argmax returns the first maximum)."""
    return np.asarray(counts).argmax(axis=1).astype(np.int64)


def emulate_predict(net: Netlist, x: np.ndarray) -> np.ndarray:
    """Predicted class (N,) int64, ties to the lowest index."""
    return argmax_lowest(emulate_counts(net, x))
