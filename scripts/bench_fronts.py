"""The seed's open question with hardware cost: accuracy-vs-LC fronts for k = 2, 3, 4, 6 (WARP) and DLGN (k = 2).

    python scripts/bench_fronts.py [--dataset digits] [--trials 20] [--trial-steps 1000] [--seeds 3] [--board B]

For each family one `warpc sweep` (same space otherwise, same budget per trial), then every point of its front is
trained again with other seeds (same shape, same steps) so that each front point is the mean of `--seeds` runs.
Writes scripts/results/fronts_<dataset>.json / .md and docs/img/fronts_<dataset>.png (mean test accuracy vs
estimated LCs, one front per family, error bars = min..max over the seeds).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FAMILIES = [("warp", 2), ("warp", 3), ("warp", 4), ("warp", 6), ("dlgn", 2)]


def sweep(dataset: str, par: str, k: int, args, out: Path) -> dict:
    cmd = [sys.executable, "-m", "warpc", "sweep", "--dataset", dataset, "--out", str(out), "--k", str(k),
           "--parametrization", par, "--trials", str(args.trials), "--trial-steps", str(args.trial_steps),
           "--board", args.board, "--seed", "0", "--width", args.width, "--json"]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode:
        raise SystemExit(f"sweep {par} k={k} failed: {r.stderr[-2000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def reseed(dataset: str, point: dict, seed: int, args, out: Path) -> dict:
    import warpc
    from warpc.data import load_dataset
    from warpc.training import plan_training

    model = {"widths": [int(w) for w in point["widths"].split(",")], "k": point["k"],
             "parametrization": point["parametrization"], "thresholds": point["thresholds"],
             "wiring": point["wiring"], "tau_head": point["tau_head"]}
    ckpt = out / f"t{point['trial']}_s{seed}.safetensors"
    plan = plan_training(load_dataset(dataset), out=ckpt, overrides=model, steps=args.trial_steps,
                         eval_every=max(1, args.trial_steps // 10), seed=seed, force=True)
    res = plan.run(device="cpu", progress=False, curve=False)
    est = warpc.estimate(ckpt, args.board, interval=point["interval"] or 1)
    return {"seed": seed, "test_accuracy": res.metrics["test_accuracy"], "val_accuracy": res.metrics["val_accuracy"],
            "LC": est["LC"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="digits")
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument("--trial-steps", type=int, default=1000)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--board", default="icebreaker")
    ap.add_argument("--width", default="100-4000")
    ap.add_argument("--work", default="/tmp/warpc_fronts")
    args = ap.parse_args()
    work = Path(args.work) / args.dataset
    rows = []
    t0 = time.perf_counter()
    for par, k in FAMILIES:
        out = work / f"{par}_k{k}"
        ts = time.perf_counter()
        summary = sweep(args.dataset, par, k, args, out)
        fam = {"parametrization": par, "k": k, "sweep_seconds": round(time.perf_counter() - ts, 1),
               "complete": summary["complete"], "pruned": summary["pruned"], "front": []}
        for p in summary["front"]:
            runs = [{"seed": 0, "test_accuracy": p["test_accuracy"], "val_accuracy": p["val_accuracy"], "LC": p["LC"]}]
            runs += [reseed(args.dataset, p, s, args, out / "seeds") for s in range(1, args.seeds)]
            accs = [r["test_accuracy"] for r in runs]
            fam["front"].append({"trial": p["trial"], "widths": p["widths"], "thresholds": p["thresholds"],
                                 "wiring": p["wiring"], "tau_head": p["tau_head"], "runs": runs,
                                 "LC_mean": round(statistics.mean(r["LC"] for r in runs)),
                                 "test_mean": statistics.mean(accs), "test_min": min(accs), "test_max": max(accs)})
        print(f"{par} k={k}: {len(fam['front'])} front points, sweep {fam['sweep_seconds']} s", flush=True)
        rows.append(fam)
    result = {"dataset": args.dataset, "board": args.board, "trials": args.trials, "trial_steps": args.trial_steps,
              "seeds": args.seeds, "width": args.width, "date": time.strftime("%Y-%m-%d"),
              "load_avg_1m_at_end": round(os.getloadavg()[0], 2), "seconds": round(time.perf_counter() - t0, 1),
              "families": rows}
    res_dir = ROOT / "scripts" / "results"
    (res_dir / f"fronts_{args.dataset}.json").write_text(json.dumps(result, indent=1))
    lines = [f"# Accuracy vs LCs per node family ({args.dataset}, {args.trials} trials x {args.trial_steps} steps, "
             f"front points x {args.seeds} seeds, cost on {args.board})", "",
             "| family | LCs (mean) | test accuracy mean (min-max) | shape |", "|---|---|---|---|"]
    for fam in rows:
        for p in fam["front"]:
            lines.append(f"| {fam['parametrization'].upper()} k={fam['k']} | {p['LC_mean']:,} | "
                         f"{100 * p['test_mean']:.2f} % ({100 * p['test_min']:.2f}-{100 * p['test_max']:.2f}) | "
                         f"{p['widths']}, {p['thresholds']} thr, {p['wiring']} |")
    (res_dir / f"fronts_{args.dataset}.md").write_text("\n".join(lines) + "\n")
    plot(result, ROOT / "docs" / "img" / f"fronts_{args.dataset}.png")
    print(f"wrote scripts/results/fronts_{args.dataset}.json/.md and docs/img/fronts_{args.dataset}.png "
          f"({result['seconds']} s)")


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    fig, ax = plt.subplots(figsize=(7.5, 4.8), dpi=120)
    for fam in result["families"]:
        pts = sorted(fam["front"], key=lambda p: p["LC_mean"])
        if not pts:
            continue
        x = [p["LC_mean"] for p in pts]
        y = [100 * p["test_mean"] for p in pts]
        err = [[100 * (p["test_mean"] - p["test_min"]) for p in pts], [100 * (p["test_max"] - p["test_mean"])
                                                                        for p in pts]]
        ax.errorbar(x, y, yerr=err, marker="o" if fam["parametrization"] == "warp" else "s", capsize=2, lw=1.2,
                    label=f"{fam['parametrization'].upper()} k={fam['k']}")
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
    ax.set_xlabel(f"estimated LCs on {result['board']} (log)")
    ax.set_ylabel(f"test accuracy (%), mean of {result['seeds']} seeds")
    ax.set_title(f"{result['dataset']}: Pareto fronts per node family ({result['trials']} trials x "
                 f"{result['trial_steps']} steps each)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


if __name__ == "__main__":
    main()
