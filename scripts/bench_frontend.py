#!/usr/bin/env python
"""Frontend benchmark: k = 2 / 4 / 6 at an equal number of connections (nodes x k) and WARP vs DLGN on the same
architecture and steps, on digits (optionally Fashion-MNIST). Writes scripts/results/bench_frontend.{json,md}.

    OMP_WAIT_POLICY=PASSIVE python scripts/bench_frontend.py [--seeds 0,1] [--steps 1500] [--fashion]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads libgomp; see docs/frontend.md

import torch  # noqa: E402

from warpc.config import ModelConfig  # noqa: E402
from warpc.data import load_dataset  # noqa: E402
from warpc.nn.kernels import set_backend  # noqa: E402
from warpc.training import train  # noqa: E402

RESULTS = Path(__file__).parent / "results"


def experiments(dataset: str) -> list[dict]:
    """(name, config overrides, kernel backend). Connections per layer equal: 2400 x 2 = 1200 x 4 = 800 x 6."""
    if dataset == "digits":
        base = dict(thresholds=7, encoder="uniform")
        return [
            {"group": "k", "name": "k=2, 2 x 2400", "cfg": dict(base, widths=[2400, 2400], k=2), "backend": "auto"},
            {"group": "k", "name": "k=4, 2 x 1200", "cfg": dict(base, widths=[1200, 1200], k=4), "backend": "auto"},
            {"group": "k", "name": "k=6, 2 x 800", "cfg": dict(base, widths=[800, 800], k=6), "backend": "auto"},
            {"group": "param", "name": "WARP k=2, 2 x 2400 (fused cpp)", "cfg": dict(base, widths=[2400, 2400]),
             "backend": "auto"},
            {"group": "param", "name": "WARP k=2, 2 x 2400 (plain torch)", "cfg": dict(base, widths=[2400, 2400]),
             "backend": "torch"},
            {"group": "param", "name": "DLGN, 2 x 2400 (plain torch)",
             "cfg": dict(base, widths=[2400, 2400], parametrization="dlgn"), "backend": "torch"},
        ]
    base = dict(thresholds=7, encoder="uniform", widths=[4000, 4000])
    return [
        {"group": "param", "name": "WARP k=2, 2 x 4000 (fused cpp)", "cfg": dict(base), "backend": "auto"},
        {"group": "param", "name": "DLGN, 2 x 4000 (plain torch)", "cfg": dict(base, parametrization="dlgn"),
         "backend": "torch"},
        {"group": "k", "name": "k=4, 2 x 2000", "cfg": dict(base, widths=[2000, 2000], k=4), "backend": "auto"},
    ]


def run(dataset: str, seeds: list[int], steps: int, lr: float) -> list[dict]:
    ds = load_dataset(dataset)
    rows = []
    for exp in experiments(dataset):
        set_backend(exp["backend"])
        accs, relaxed, sps = [], [], []
        for seed in seeds:
            cfg = ModelConfig(n_features=ds.n_features, classes=ds.classes, seed=seed, **exp["cfg"])
            res = train(cfg, ds, steps=steps, lr=lr, seed=seed, device="cpu", progress=False,
                        eval_every=max(1, steps // 10))
            accs.append(res.metrics["test_accuracy"])
            relaxed.append(res.metrics["test_accuracy_relaxed"])
            sps.append(res.metrics["seconds_per_step"])
            print(f"{dataset:14s} {exp['name']:34s} seed {seed}: test {accs[-1]:.4f} (relaxed {relaxed[-1]:.4f}), "
                  f"{sps[-1] * 1000:.1f} ms/step", flush=True)
        cfg = exp["cfg"]
        k = cfg.get("k", 2)
        rows.append({
            "dataset": dataset, "group": exp["group"], "name": exp["name"], "backend": exp["backend"],
            "parametrization": cfg.get("parametrization", "warp"), "k": k, "widths": cfg["widths"],
            "nodes": sum(cfg["widths"]), "connections": sum(cfg["widths"]) * k, "steps": steps, "lr": lr,
            "seeds": seeds, "test_accuracy": accs, "test_accuracy_mean": statistics.mean(accs),
            "test_accuracy_relaxed_mean": statistics.mean(relaxed),
            "ms_per_step_mean": 1000 * statistics.mean(sps),
        })
    set_backend(None)
    return rows


def to_markdown(rows: list[dict], header: dict) -> str:
    out = [f"# Frontend benchmark ({header['date']}, {header['machine']}, torch {header['torch']}, "
           f"{header['threads']} threads)", "",
           "Discrete (hardware-semantics) test accuracy, mean over seeds; ms/step = optimisation time per "
           "step (forward, backward, Adam; periodic validation excluded), batch 128.", ""]
    for group, title in (("k", "k = 2 / 4 / 6 at equal connections (nodes x k)"),
                         ("param", "WARP vs DLGN, same architecture and steps")):
        out += [f"## {title}", "", "| dataset | model | nodes | connections | steps | test acc (discrete) | "
                "per seed | relaxed | ms/step |", "|---|---|---|---|---|---|---|---|---|"]
        for r in rows:
            if r["group"] != group:
                continue
            seeds = ", ".join(f"{a:.4f}" for a in r["test_accuracy"])
            out.append(f"| {r['dataset']} | {r['name']} | {r['nodes']} | {r['connections']} | {r['steps']} | "
                       f"{r['test_accuracy_mean']:.4f} | {seeds} | {r['test_accuracy_relaxed_mean']:.4f} | "
                       f"{r['ms_per_step_mean']:.1f} |")
        out.append("")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="0,1")
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--fashion", action="store_true", help="also Fashion-MNIST (slow: minutes per run)")
    ap.add_argument("--fashion-steps", type=int, default=2000)
    ap.add_argument("--out", default=str(RESULTS / "bench_frontend"))
    a = ap.parse_args()
    seeds = [int(s) for s in a.seeds.split(",")]
    t0 = time.time()
    rows = run("digits", seeds, a.steps, a.lr)
    if a.fashion:
        rows += run("fashion-mnist", seeds[:1], a.fashion_steps, a.lr)
    header = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "machine": platform.machine() + ", "
              + f"{os.cpu_count()} CPUs", "torch": torch.__version__, "threads": torch.get_num_threads(),
              "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"), "total_seconds": round(time.time() - t0, 1)}
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps({"header": header, "rows": rows}, indent=1))
    out.with_suffix(".md").write_text(to_markdown(rows, header))
    print(to_markdown(rows, header))
    print(f"wrote {out.with_suffix('.json')} and {out.with_suffix('.md')} in {header['total_seconds']} s")


if __name__ == "__main__":
    main()
