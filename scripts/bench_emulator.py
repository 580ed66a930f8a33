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


def main() -> None:
    import torch

    import warpc
    from bench_pack_vs_yosys import test_split
    from ir_models import model_counts
    from warpc.compile import compile as wcompile
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
    info = {"checkpoint": str(Path(ck).relative_to(ROOT)) if Path(ck).is_relative_to(ROOT) else ck, "dataset": name,
            "cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
            "torch_threads": torch.get_num_threads(), "rows": rows}
    out = ROOT / "scripts" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "emulator.json").write_text(json.dumps(info, indent=1))
    lines = [f"Emulator throughput, {info['checkpoint']} ({name}, {len(x)} test samples, {info['cores']} cores)", "",
             "| netlist | nodes | seconds | samples/s | equals model.counts |", "|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['stage']} | {r['nodes']} | {r['seconds']} | {r['samples_per_s']:,} | {r['bit_exact']} |")
    (out / "emulator.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
