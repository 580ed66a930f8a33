"""BLIF export / import of the netlist IR.

write_blif: `.inputs` = the encoded input bits that something reads (a comment line per bit records
its feature and threshold), `.outputs` = the bits that feed the popcounts (`c{class}_{j}`, j counts within the
class), one `.names` per LUT node (on-set cubes, input 0 first), constants as `.names` with no inputs.
A node's net takes the name of its first output bit; further output bits that repeat a signal, or are inputs /
constants, get a buffer / constant `.names`.

Input bits are named `x{feature}_ge{threshold}` (stable across compile stages); `thermometer=True` writes a
variant for equivalence checking whose primary inputs only produce valid thermometer codes.

read_blif: what write_blif writes, plus generic single-output `.names` with don't-care cubes and off-set
(`0`) covers. Outputs named `c{class}_{j}` are grouped per class; otherwise each output is its own class.
"""
from __future__ import annotations

import io
import re
from pathlib import Path
from typing import IO

from ..errors import NetlistError
from . import tt
from .netlist import MAX_K, InputBit, Netlist, Node


def _cover(table: int, k: int) -> list[str]:
    if k == 0:
        return ["1"] if table & 1 else []
    ones = [c for c in range(1 << k) if (table >> c) & 1]
    return ["".join(str((c >> i) & 1) for i in range(k)) + " 1" for c in ones]


def input_names(net: Netlist) -> list[str]:
    """Stable names of the input bits, `x{feature}_ge{threshold}` (the same bit has the same name in every stage
    of a compile, so BLIFs of different stages can be compared by name)."""
    names, seen = [], {}
    for b in net.inputs:
        nm = f"x{b.feature}_ge{b.threshold}".replace("-", "m")
        seen[nm] = seen.get(nm, 0) + 1
        names.append(nm if seen[nm] == 1 else f"{nm}_{seen[nm] - 1}")
    return names


def write_blif(net: Netlist, path_or_file: str | Path | IO[str], model: str = "warpc",
               thermometer: bool = False) -> None:
    """thermometer=True: for equivalence checking, the primary inputs become per-feature free bits
    `x{f}_z{t}` and each input bit is their running AND in threshold order, so every input pattern of the BLIF
    is a valid thermometer code (the passes may use the encoder's impossible patterns as don't-cares)."""
    used = list(range(len(net.inputs))) if thermometer else net.used_inputs()
    iname = input_names(net)
    name: dict[int, str] = {net.input_id(i): iname[i] for i in used}
    out_names: list[tuple[str, int]] = []
    for c, g in enumerate(net.outputs):
        for j, s in enumerate(g):
            out_names.append((f"c{c}_{j}", s))
    # a node's net is named after its first output bit, so no buffer is needed for it
    for o, s in out_names:
        if net.is_node(s) and s not in name:
            name[s] = o
    for j in range(len(net.nodes)):
        name.setdefault(net.node_id(j), f"n{net.node_id(j)}")
    lines = [f"# warpc netlist: {len(net.nodes)} LUT nodes, {len(used)} input bits, {net.classes} classes",
             f"# warpc-meta n_features {net.n_features} input_bits {net.input_bits} classes {net.classes}",
             f".model {model}"]
    enc: list[str] = []
    if thermometer:
        by_f: dict[int, list[int]] = {}
        for i in used:
            by_f.setdefault(net.inputs[i].feature, []).append(i)
        pis = []
        for f, idx in sorted(by_f.items()):
            idx.sort(key=lambda i: net.inputs[i].threshold)
            prev = None
            for i in idx:
                z = f"x{f}_z{net.inputs[i].threshold}".replace("-", "m") + f"_{i}"
                pis.append(z)
                if prev is None:
                    enc += [f".names {z} {iname[i]}", "1 1"]
                else:
                    enc += [f".names {prev} {z} {iname[i]}", "11 1"]
                prev = iname[i]
    else:
        pis = [iname[i] for i in used]
        for i in used:
            b = net.inputs[i]
            lines.append(f"# warpc-input {iname[i]} feature {b.feature} threshold {b.threshold}")
    lines.append(".inputs " + " ".join(pis) if pis else ".inputs")
    lines.append(".outputs " + " ".join(o for o, _ in out_names))
    lines += enc
    for j, n in enumerate(net.nodes):
        sid = net.node_id(j)
        lines.append(".names " + " ".join([name[f] if f >= 2 else ("$false", "$true")[f] for f in n.fanin] + [name[sid]]))
        lines.extend(_cover(n.table, n.k))
    need_const = {f for n in net.nodes for f in n.fanin if f < 2}
    for o, s in out_names:
        if name.get(s) == o:
            continue
        if s < 2:
            lines.append(f".names {o}")
            if s == 1:
                lines.append("1")
        else:
            lines += [f".names {name[s]} {o}", "1 1"]
    for f in sorted(need_const):
        lines.append(f".names {('$false', '$true')[f]}")
        if f == 1:
            lines.append("1")
    lines.append(".end")
    text = "\n".join(lines) + "\n"
    if hasattr(path_or_file, "write"):
        path_or_file.write(text)
    else:
        Path(path_or_file).write_text(text)


def _logical_lines(text: str):
    buf = ""
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].rstrip() if not raw.lstrip().startswith("# warpc-") else raw.strip()
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        line = (buf + line).strip()
        buf = ""
        if line:
            yield line


def read_blif(path_or_file: str | Path | IO[str]) -> Netlist:
    text = path_or_file.read() if hasattr(path_or_file, "read") else Path(path_or_file).read_text()
    inputs: list[str] = []
    outputs: list[str] = []
    gates: list[tuple[list[str], str, list[str]]] = []  # (fanin names, output name, cubes)
    in_meta: dict[str, InputBit] = {}
    n_features, input_bits, n_classes = None, 8, 0
    cur = None
    for line in _logical_lines(text):
        if line.startswith("# warpc-input"):
            p = line.split()  # "# warpc-input i3 feature 5 threshold 7"
            in_meta[p[2]] = InputBit(int(p[4]), int(p[6]))
            continue
        if line.startswith("# warpc-meta"):
            p = line.split()
            n_features, input_bits = int(p[3]), int(p[5])
            n_classes = int(p[7]) if len(p) > 7 else 0
            continue
        tok = line.split()
        if tok[0].startswith("."):
            cur = None
            if tok[0] == ".inputs":
                inputs += tok[1:]
            elif tok[0] == ".outputs":
                outputs += tok[1:]
            elif tok[0] == ".names":
                cur = (tok[1:-1], tok[-1], [])
                gates.append(cur)
            elif tok[0] in (".model", ".end", ".default_input_arrival", ".default_output_required"):
                pass
            else:
                raise NetlistError(f"BLIF: unsupported construct {tok[0]}")
        elif cur is not None:
            cur[2].append(line)
        else:
            raise NetlistError(f"BLIF: unexpected line {line!r}")

    sig: dict[str, int] = {"$false": 0, "$true": 1}
    for i, nm in enumerate(inputs):
        sig[nm] = 2 + i
    by_out = {}
    for g in gates:
        if g[1] in by_out or g[1] in sig and g[1] not in ("$false", "$true"):
            raise NetlistError(f"BLIF: signal {g[1]} is driven twice")
        by_out[g[1]] = g
    # topological order by depth-first search from the outputs (and all gates)
    order: list[str] = []
    state: dict[str, int] = {}
    for root in list(by_out):
        stack = [(root, 0)]
        while stack:
            nm, it = stack.pop()
            if nm in sig or state.get(nm) == 2:
                continue
            if nm not in by_out:
                raise NetlistError(f"BLIF: signal {nm} is read but never driven")
            fan = by_out[nm][0]
            if it == 0:
                if state.get(nm) == 1:
                    raise NetlistError(f"BLIF: combinational loop through {nm}")
                state[nm] = 1
            if it < len(fan):
                stack.append((nm, it + 1))
                stack.append((fan[it], 0))
            else:
                state[nm] = 2
                order.append(nm)
    first = 2 + len(inputs)
    nodes: list[Node] = []
    for nm in order:
        fan, _, cubes = by_out[nm]
        if nm in ("$false", "$true") and nm in sig:
            continue
        k = len(fan)
        if k > MAX_K:
            raise NetlistError(f"BLIF: .names {nm} has {k} inputs (at most {MAX_K})")
        nodes.append(Node(tuple(sig[f] for f in fan), _table(cubes, k, nm)))
        sig[nm] = first + len(nodes) - 1
    groups: dict[int, list[tuple[int, int]]] = {}
    plain = []
    for nm in outputs:
        if nm not in sig:
            raise NetlistError(f"BLIF: output {nm} is never driven")
        m = re.fullmatch(r"c(\d+)_(\d+)", nm)
        if m:
            groups.setdefault(int(m.group(1)), []).append((int(m.group(2)), sig[nm]))
        else:
            plain.append(sig[nm])
    if groups and not plain:
        outs = [[s for _, s in sorted(groups.get(c, []))] for c in range(max(groups) + 1)]
    else:
        outs = [[s] for s in plain] + [[s for _, s in sorted(v)] for _, v in sorted(groups.items())]
    while len(outs) < max(2, n_classes):
        outs.append([])
    ins = [in_meta.get(nm, InputBit(i, 1)) for i, nm in enumerate(inputs)]
    nf = n_features if n_features is not None else max([b.feature + 1 for b in ins], default=1)
    return Netlist(n_features=nf, inputs=ins, nodes=nodes, outputs=outs, input_bits=input_bits,
                   class_names=[str(c) for c in range(len(outs))]).validate()


def _table(cubes: list[str], k: int, nm: str) -> int:
    on, value = 0, None
    for cube in cubes:
        parts = cube.split()
        if k == 0:
            if len(parts) != 1 or parts[0] not in "01":
                raise NetlistError(f"BLIF: bad constant cube {cube!r} for {nm}")
            pat, v = "", parts[0]
        else:
            if len(parts) != 2 or len(parts[0]) != k or parts[1] not in ("0", "1"):
                raise NetlistError(f"BLIF: bad cube {cube!r} for {nm}")
            pat, v = parts
        if value is not None and v != value:
            raise NetlistError(f"BLIF: .names {nm} mixes on-set and off-set cubes")
        value = v
        for c in range(1 << k):
            if all(ch == "-" or int(ch) == (c >> i) & 1 for i, ch in enumerate(pat)):
                on |= 1 << c
    return (~on & tt.full(k)) if value == "0" else on


def blif_string(net: Netlist) -> str:
    buf = io.StringIO()
    write_blif(net, buf)
    return buf.getvalue()
