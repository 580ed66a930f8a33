"""Backend benchmark: checkpoint -> UP5K bitstream with equivalence, per model; writes the measured numbers to
scripts/results/backend_<name>.json and appends a row to scripts/results/backend.md.

    python scripts/bench_backend.py runs/backend/digits_1k.safetensors --name digits_1k [--pipeline 1]
        [--router auto] [--no-formal] [--out out/bench]
"""
from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def write_summary() -> Path:
    """scripts/results/backend.md: one row per scripts/results/backend_*.json."""
    rows = ["| name | fits | LC | Fmax MHz | latency (cycles) | accuracy | vectors checked | formal | router | "
            "stages (s) |", "|---|---|---|---|---|---|---|---|---|---|"]
    for p in sorted(RESULTS.glob("backend_*.json")):
        r = json.loads(p.read_text())
        if "fits" not in r:  # a build's report.json kept as it is
            r = _row_from_report(p.stem[len("backend_"):], r)
        if r.get("fits"):
            st = ", ".join(f"{k[:-2]} {v}" for k, v in r["stages_s"].items())
            fo = ", ".join(f"{k} {v}" for k, v in r["formal"].items())
            rows.append(f"| {r['name']} | yes | {r['LC']} ({r['LC_pct']}%) | {r['Fmax_MHz']} | {r['Latency_cycles']} | "
                        f"{r['accuracy']:.4f} | {r['vectors_checked']} | {fo} | {r['router_used']} | {st} |")
        else:
            rows.append(f"| {r['name']} | no | {r['error'][:200]} | | | | | | | |")
    md = RESULTS / "backend.md"
    md.write_text("\n".join(rows) + "\n")
    return md


def _row_from_report(name: str, rep: dict) -> dict:
    eq = rep.get("equivalence") or {}
    return {
        "name": name, "fits": True, "LC": rep["LC"], "LC_pct": (rep.get("utilization_pct") or {}).get("LC"),
        "LUT": rep["LUT"], "FF": rep["FF"], "CARRY": rep["CARRY"], "Fmax_MHz": rep["Fmax_MHz"],
        "clock_MHz": rep["clock_MHz"], "Latency_cycles": rep["Latency_cycles"],
        "Interval_cycles": rep["Interval_cycles"], "accuracy": (rep.get("accuracy") or {}).get("accuracy"),
        "vectors_checked": eq.get("vectors"), "equivalence_passed": eq.get("passed"),
        "formal": {k: v["status"] + f" {v['seconds']} s" for k, v in (eq.get("formal") or {}).get("modules", {}).items()},
        "nodes": rep["model"]["nodes"], "depth": rep["model"]["depth"], "router_used": rep["options"]["router_used"],
        "blocks": rep["blocks"], "stages_s": rep["stages_s"], "stamp": rep["stamp"]["id"],
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("checkpoint", nargs="?")
    ap.add_argument("--name")
    ap.add_argument("--summary", action="store_true", help="only rewrite scripts/results/backend.md")
    ap.add_argument("--board", default="icebreaker")
    ap.add_argument("--pipeline", type=int, default=1)
    ap.add_argument("--router", default="auto")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--no-formal", action="store_true")
    ap.add_argument("--formal-timeout", type=float, default=120)
    ap.add_argument("--out", default="out/bench")
    a = ap.parse_args()
    if a.summary:
        print(write_summary().read_text())
        return
    if not a.checkpoint or not a.name:
        ap.error("give a checkpoint and --name")

    from warpc.fpga.flow import build
    from warpc.errors import DoesNotFitError

    out = Path(a.out) / a.name
    t0 = time.perf_counter()
    row: dict = {"name": a.name, "checkpoint": a.checkpoint, "board": a.board, "pipeline": a.pipeline,
                 "router": a.router, "machine": f"{platform.machine()} {platform.node()}"}
    try:
        rep = build(a.checkpoint, board=a.board, out=out, pipeline=a.pipeline, router=a.router, seed=a.seed,
                    formal=not a.no_formal, formal_timeout=a.formal_timeout)
        row.update(_row_from_report(a.name, rep))
    except DoesNotFitError as e:
        row.update({"fits": False, "error": str(e)})
    row["wall_s"] = round(time.perf_counter() - t0, 1)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"backend_{a.name}.json").write_text(json.dumps(row, indent=1))
    write_summary()
    print(json.dumps(row, indent=1))


if __name__ == "__main__":
    main()
