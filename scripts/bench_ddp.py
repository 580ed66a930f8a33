"""Data-parallel training against one process: the same run (dataset, model, global batch, seed) with
`warpc train --nproc N` for each N, and what differs: optimisation time per step, wall time, accuracy, and how far
the loss curves drift apart (float reduction order only; see warpc/training/distributed.py).

    python scripts/bench_ddp.py [--nproc 1 2] [--dataset fashion-mnist] [--data-dir DIR] [-- TRAIN OPTIONS ...]

Default run: the README's Fashion-MNIST 2 x 2,500 WARP recipe (4,000 steps). Writes scripts/results/ddp.json and
ddp.md with the machine's cores and load average at the start of each run. The runs go one after another: on a
machine with C cores each process gets C / N threads, so N processes use the same cores as one.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
RECIPE = ["--widths", "2500,2500", "--wiring", "learnable", "--tau-head", "6", "--steps", "4000"]


def run(nproc: int, dataset: str, extra: list[str], folder: Path) -> dict:
    out = folder / f"n{nproc}" / "m.safetensors"
    cmd = [sys.executable, "-m", "warpc", "train", "--dataset", dataset, "--out", str(out), "--quiet", "--json",
           "--nproc", str(nproc), *extra]
    load = os.getloadavg()[0]
    t0 = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if r.returncode:
        raise SystemExit(f"warpc train --nproc {nproc} failed:\n{r.stderr[-3000:]}")
    metrics = json.loads([ln for ln in r.stdout.splitlines() if ln.startswith("{")][-1])
    from warpc.checkpoint import read_checkpoint

    history = read_checkpoint(out.with_name("m.last.safetensors"))[0]["train_state"]["history"]
    return {"nproc": nproc, "load_avg_1m_at_start": round(load, 2), "wall_s": round(wall, 1),
            "train_s": metrics["seconds"], "seconds_per_step": metrics["seconds_per_step"],
            "eval_s": metrics["eval_seconds"], "steps": metrics["steps"], "test_accuracy": metrics["test_accuracy"],
            "val_accuracy": metrics["val_accuracy"], "best_step": metrics["best_step"],
            "kernels": metrics.get("kernels"), "history": history}


def drift(a: list[dict], b: list[dict]) -> dict:
    """How far two loss / validation curves are apart."""
    pairs = [(x, y) for x, y in zip(a, b) if x["step"] == y["step"]]
    return {"max_rel_loss_diff": max(abs(x["loss"] - y["loss"]) / max(abs(x["loss"]), 1e-12) for x, y in pairs),
            "max_val_accuracy_diff": max(abs(x["val_accuracy"] - y["val_accuracy"]) for x, y in pairs),
            "evaluations": len(pairs)}


def render(result: dict) -> str:
    lines = [f"# Data-parallel training vs one process ({result['dataset']}, {' '.join(result['train_options'])})", "",
             f"{result['cores']} cores, {result['date']}; `python scripts/bench_ddp.py`. ms / step: optimisation "
             "only; training s: steps + validation on rank 0; wall s: the whole command (start-up, data, test).", "",
             "| processes | ms / step | training s | validation s | wall s | test accuracy | max loss drift vs "
             "first | max val-accuracy diff | load at start |", "|---|---|---|---|---|---|---|---|---|"]
    for r in result["runs"]:
        vs = r.get("vs_first")
        loss = f"{vs['max_rel_loss_diff']:.1e}" if vs else "—"
        val = f"{vs['max_val_accuracy_diff'] * 100:.2f} pt" if vs else "—"
        lines.append(f"| {r['nproc']} | {r['seconds_per_step'] * 1e3:.2f} | {r['train_s']:.1f} | {r['eval_s']:.1f} | "
                     f"{r['wall_s']:.1f} | {r['test_accuracy'] * 100:.2f} % | {loss} | {val} | "
                     f"{r['load_avg_1m_at_start']} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nproc", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--dataset", default="fashion-mnist")
    ap.add_argument("--data-dir", default=None, help="the dataset's folder (warpc train --data-dir)")
    ap.add_argument("train_options", nargs="*", help="warpc train options (after --); default the README recipe")
    args = ap.parse_args()
    extra = list(args.train_options or RECIPE) + (["--data-dir", args.data_dir] if args.data_dir else [])
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_ddp_") as tmp:
        for n in args.nproc:
            row = run(n, args.dataset, extra, Path(tmp))
            print(f"nproc {n}: {row['seconds_per_step'] * 1e3:.2f} ms/step, {row['train_s']:.1f} s training, "
                  f"test {row['test_accuracy']:.4f} (load {row['load_avg_1m_at_start']})", flush=True)
            rows.append(row)
    base = rows[0]
    for r in rows[1:]:
        r["vs_first"] = {**drift(base["history"], r["history"]),
                         "step_time_ratio": round(r["seconds_per_step"] / base["seconds_per_step"], 3)}
    result = {"dataset": args.dataset, "train_options": extra, "cores": os.cpu_count(),
              "date": time.strftime("%Y-%m-%d"), "runs": rows}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "ddp.json").write_text(json.dumps(result, indent=1))
    (RESULTS / "ddp.md").write_text(render(result))
    print(f"wrote {RESULTS / 'ddp.json'} and ddp.md")


if __name__ == "__main__":
    main()
