"""Emulator throughput (samples/s) on a Fashion-MNIST-sized net: discretized, optimised and K=4-packed netlists,
plus the PyTorch eval-mode forward for comparison; checks the emulator equals model.counts on all test samples.

    python scripts/bench_emulator.py [CKPT]     # default: runs/middle/fashion_k2.safetensors
Writes scripts/results/emulator.json and .md.
"""
from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "scripts"))


def best_of(fn, repeats: int = 3) -> float:
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def layered(k: int, widths, n_features: int = 784, thresholds: int = 3, classes: int = 10, seed: int = 0):
    """A random-wired, random-table layered net (no training): worst case for the passes (little to remove)."""
    from warpc.ir import InputBit, Netlist, Node

    rng = np.random.default_rng(seed)
    inputs = [InputBit(f, 40 + 60 * j) for f in range(n_features) for j in range(thresholds)]
    nodes, prev = [], list(range(2, 2 + len(inputs)))
    for li, w in enumerate(widths):
        first = 2 + len(inputs) + len(nodes)
        fan = np.array([rng.choice(len(prev), size=k, replace=False) for _ in range(w)])
        tables = rng.integers(0, 1 << 62, size=w) & ((1 << (1 << k)) - 1)
        nodes += [Node(tuple(prev[i] for i in f), int(t), li) for f, t in zip(fan, tables)]
        prev = list(range(first, first + w))
    g = len(prev) // classes
    return Netlist(n_features, inputs, nodes, [prev[c * g:(c + 1) * g] for c in range(classes)]).validate()


def main() -> None:
    import torch

    import warpc
    from bench_pack_vs_yosys import test_split
    from ir_models import model_counts
    from warpc.ir.compiler import compile as wcompile
    from warpc.ir.emulate import emulate_counts

    ck = sys.argv[1] if len(sys.argv) > 1 else str(ROOT / "runs" / "middle" / "fashion_k2.safetensors")
    model = warpc.load(ck)
    name, x, y = test_split(model)
    cn = wcompile(model, K=4)
    expect = model_counts(model, x)
    xt = torch.tensor(x, dtype=torch.float32)
    rows = []
    for stage, net in cn.stages.items():
        got = emulate_counts(net, x)
        dt = best_of(lambda: emulate_counts(net, x))
        rows.append({"stage": stage, "nodes": len(net.nodes), "samples": len(x), "seconds": round(dt, 4),
                     "samples_per_s": int(len(x) / dt), "bit_exact": bool((got == expect).all())})
    dt = best_of(lambda: model.counts(xt))
    rows.append({"stage": "pytorch eval (model.counts)", "nodes": sum(model.config.widths), "samples": len(x),
                 "seconds": round(dt, 4), "samples_per_s": int(len(x) / dt), "bit_exact": True})
    # compile time and throughput on synthetic random-wired nets of the size the brief names (~20k nodes)
    synth = []
    for k, widths in ((2, (8000, 8000, 4000)), (4, (8000, 8000, 4000))):
        net = layered(k, widths, n_features=x.shape[1])
        t = time.perf_counter()
        cs = wcompile(net, K=4)
        dt_c = time.perf_counter() - t
        xs = np.random.default_rng(0).integers(0, 256, size=(10000, x.shape[1]))
        dt = best_of(lambda: cs.counts(xs), 2)
        synth.append({"net": f"random {'-'.join(map(str, widths))} x k{k}", "nodes": len(net.nodes),
                      "optimized": len(cs.stages["optimized"].nodes), "luts": len(cs.netlist.nodes),
                      "compile_s": round(dt_c, 2), "optimize_s": cs.report["timings"]["optimize_s"],
                      "pack_s": cs.report["timings"]["pack_s"], "emulate_packed_samples_per_s": int(10000 / dt)})
    info = {"checkpoint": str(Path(ck).relative_to(ROOT)) if Path(ck).is_relative_to(ROOT) else ck, "dataset": name,
            "cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
            "torch_threads": torch.get_num_threads(), "rows": rows, "synthetic": synth}
    out = ROOT / "scripts" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "emulator.json").write_text(json.dumps(info, indent=1))
    lines = [f"Emulator throughput, {info['checkpoint']} ({name}, {len(x)} test samples, {info['cores']} cores)", "",
             "| netlist | nodes | seconds | samples/s | equals model.counts |", "|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['stage']} | {r['nodes']} | {r['seconds']} | {r['samples_per_s']:,} | {r['bit_exact']} |")
    lines += ["", "Compile time (optimise + pack K=4) and packed-net emulation on synthetic random-wired nets "
              "(784 features x 3 thresholds):", "",
              "| net | nodes | optimised | LUT4 | compile s | optimise s | pack s | samples/s |", "|---|---|---|---|---|---|---|---|"]
    for r in synth:
        lines.append(f"| {r['net']} | {r['nodes']} | {r['optimized']} | {r['luts']} | {r['compile_s']} | "
                     f"{r['optimize_s']} | {r['pack_s']} | {r['emulate_packed_samples_per_s']:,} |")
    (out / "emulator.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
