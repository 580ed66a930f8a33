"""The same models on every board: LUTs, logic cells, flip-flops, Fmax, latency and build time per stage.

    python scripts/bench_families.py --model CKPT ... --board NAME ... [--pipeline N] [--out-root build/families]
    python scripts/bench_families.py --from-builds DIR ...      # re-tabulate finished builds

Each (model, board) pair runs `warpc synth CKPT --board NAME -o OUT_ROOT/<model>_<board>` (equivalence on the whole
test set, every block proven) and appends a row; the rows are merged by (model, board, interval) into
scripts/results/families.json and .md, with the machine's load average at the start of each build. A build that
fails is recorded with its error line (e.g. timing not met), never dropped.
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def row(rep: dict, wall: float | None = None) -> dict:
    acc = rep.get("accuracy") or {}
    eq = rep.get("equivalence") or {}
    st = rep.get("stages_s") or {}
    src = ((rep.get("model") or {}).get("source") or {}).get("source")
    return {
        "model": Path(str(src)).name, "board": rep.get("board"), "family": rep.get("family", "ice40"),
        "device": rep.get("device"), "build": (rep.get("stamp") or {}).get("id"),
        "accuracy": acc.get("accuracy"), "vectors": eq.get("vectors"), "equivalence_passed": eq.get("passed"),
        "formally_complete": eq.get("formally_complete"), "nodes": (rep.get("model") or {}).get("nodes"),
        "LUT": rep.get("LUT"), "LC": rep.get("LC"), "LC_unit": rep.get("LC_unit", "ICESTORM_LC"),
        "LC_available": (rep.get("capacity") or {}).get("LC"), "FF": rep.get("FF"), "CARRY": rep.get("CARRY"),
        "Fmax_MHz": rep.get("Fmax_MHz"), "clock_MHz": rep.get("clock_MHz"),
        "Latency_cycles": rep.get("Latency_cycles"), "Interval_cycles": rep.get("Interval_cycles"),
        "Latency_ns_at_clock": rep.get("Latency_ns"),
        "router": (rep.get("options") or {}).get("router_used"),
        "stages_s": {k: st.get(k) for k in ("synth_s", "pnr_s", "pack_s", "equiv_sim_s", "formal_s", "total_s")},
        "wall_s": wall,
    }


def markdown(rows: list[dict]) -> str:
    out = ["| model | board | accuracy on chip | LUT4 + carry cells | logic cells used | FF | Fmax (board clock) | latency | "
           "synth / place+route / pack / checks / total |", "|" + "---|" * 9]
    ii = (lambda r: f" (II {r['Interval_cycles']})" if r.get("Interval_cycles", 1) != 1 else "")
    for r in rows:
        if r.get("error"):
            out.append(f"| {r['model']} | {r['board']}{ii(r)} | failed: {r['error'][:160]} |" + " |" * 6)
            continue
        acc = f"{100 * r['accuracy']:.2f} %" if r["accuracy"] is not None else "?"
        s = r["stages_s"]
        checks = round((s.get("equiv_sim_s") or 0) + (s.get("formal_s") or 0), 1)
        out.append(
            f"| {r['model']} | {r['board']}{ii(r)} | {acc} ({r['vectors']} equal{', proven' if r['formally_complete'] else ''}) | "
            f"{r['LUT']:,} + {r['CARRY']:,} | {r['LC']:,} of {r['LC_available']:,} {r['LC_unit']} | {r['FF']:,} | "
            f"{r['Fmax_MHz']} MHz ({r['clock_MHz']:g}) | {r['Latency_cycles']} cycles | "
            f"{s.get('synth_s')} / {s.get('pnr_s')} / {s.get('pack_s')} / {checks} / {s.get('total_s')} s |")
    return "\n".join(out) + "\n"


def save(rows: list[dict]) -> None:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / "families.json"
    old = json.loads(path.read_text())["rows"] if path.exists() else []
    def key(r):
        return r["model"], r["board"], r.get("Interval_cycles", 1)

    keep = {key(r): r for r in old}
    for r in rows:
        keep[key(r)] = r
    merged = sorted(keep.values(), key=key)
    path.write_text(json.dumps({"rows": merged}, indent=1) + "\n")
    (RESULTS / "families.md").write_text(markdown(merged))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", action="append", default=[], help="checkpoint (repeatable)")
    ap.add_argument("--board", action="append", default=[], help="board name (repeatable)")
    ap.add_argument("--pipeline", type=int, default=1)
    ap.add_argument("--interval", type=int, default=1, help="cycles per sample (II) of every build")
    ap.add_argument("--out-root", default="build/families")
    ap.add_argument("--from-builds", nargs="*", default=[])
    a = ap.parse_args()
    from warpc.errors import WarpcError
    from warpc.fpga.flow import build

    rows = [row(json.loads((Path(d) / "report.json").read_text())) for d in a.from_builds]
    for ckpt in a.model:
        for board in a.board:
            out = Path(a.out_root) / f"{Path(ckpt).stem}_{board}" if a.interval == 1 else \
                Path(a.out_root) / f"{Path(ckpt).stem}_{board}_ii{a.interval}"
            load = os.getloadavg()[0]
            t0 = time.perf_counter()
            try:
                rep = build(ckpt, board=board, out=out, pipeline=a.pipeline, interval=a.interval)
                r = row(rep, round(time.perf_counter() - t0, 1))
            except WarpcError as e:
                r = {"model": Path(ckpt).name, "board": board, "Interval_cycles": a.interval,
                     "error": str(e).splitlines()[0]}
            r["load_avg_at_start"] = round(load, 2)
            rows.append(r)
            save(rows)
            print(json.dumps(r))
    save(rows)


if __name__ == "__main__":
    main()
