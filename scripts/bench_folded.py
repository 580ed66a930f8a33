"""Accuracy against LCs, spatial and folded builds side by side, on one dataset.

    python scripts/bench_folded.py --build CKPT:ARCH[:OUT[:INTERVAL]] ... [--baud 3000000] [--from-builds DIR ...]

Each --build runs `warpc synth CKPT --board icebreaker --arch ARCH [--interval N]` (equivalence on the whole test
set) into OUT (default build/bench_<ckpt stem>_<arch>); --from-builds reads finished builds' report.json instead. Writes
scripts/results/folded_builds.json and .md: per build the on-chip accuracy (== the IR, checked), LCs, EBR, SPRAM,
Fmax, cycles per sample, samples/s of the core and over the UART, boot time, the machine's load average.
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def row(rep: dict, wall: float | None = None) -> dict:
    f = rep.get("folded") or {}
    mem = f.get("memory") or {}
    util = rep.get("utilization_raw") or {}
    acc = rep.get("accuracy") or {}
    return {
        "build": rep.get("stamp", {}).get("id"), "source": (rep.get("model") or {}).get("source", {}).get("source"),
        "arch": rep.get("arch", "spatial"), "interval_option": (rep.get("options") or {}).get("interval"),
        "accuracy": acc.get("accuracy"), "samples": acc.get("samples"), "data": acc.get("data"),
        "equivalence_passed": (rep.get("equivalence") or {}).get("passed"),
        "vectors": (rep.get("equivalence") or {}).get("vectors"),
        "nodes": (rep.get("model") or {}).get("nodes"),
        "LC": rep.get("LC"), "EBR": rep.get("BRAM"), "SPRAM": (util.get("ICESTORM_SPRAM") or {}).get("used", 0),
        "Fmax_MHz": rep.get("Fmax_MHz"), "cycles_per_sample": rep.get("Interval_cycles"),
        "core_samples_per_s": (rep.get("throughput") or {}).get("core_samples_per_s"),
        "uart_baud": (rep.get("uart") or {}).get("baud"),
        "uart_samples_per_s": (rep.get("uart") or {}).get("max_samples_per_s"),
        "program_words": (f.get("program") or {}).get("words"), "boot_ms": f.get("boot_ms"),
        "program_bits_used": (mem.get("program") or {}).get("bits_used"),
        "build_s": (rep.get("stages_s") or {}).get("total_s"), "wall_s": wall,
    }


def markdown(rows: list[dict]) -> str:
    head = ("| model | arch | accuracy on chip | LCs | EBR | SPRAM | Fmax | cycles/sample | core samples/s "
            "(12 MHz) | UART samples/s | build |")
    out = [head, "|" + "---|" * 11]
    for r in rows:
        acc = f"{100 * r['accuracy']:.2f} %" if r["accuracy"] is not None else "?"
        arch = r["arch"] + (f" (II {r['interval_option']})" if r["arch"] == "spatial" else "")
        out.append(f"| {Path(str(r['source'])).name} | {arch} | {acc} ({r['vectors']} vectors equal) | "
                   f"{r['LC']:,} | {r['EBR']} | {r['SPRAM']} | {r['Fmax_MHz']} MHz | {r['cycles_per_sample']:,} | "
                   f"{r['core_samples_per_s']:,} | {r['uart_samples_per_s']} at {r['uart_baud']:,} baud | "
                   f"{r['build_s']} s |")
    return "\n".join(out) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", action="append", default=[], help="CKPT:ARCH[:OUT]")
    ap.add_argument("--from-builds", nargs="*", default=[], help="finished build folders to read")
    ap.add_argument("--baud", type=int, default=3_000_000)
    ap.add_argument("--out", default=str(RESULTS / "folded_builds"))
    args = ap.parse_args()
    import warpc

    rows = []
    for spec in args.build:
        parts = spec.split(":")
        ckpt, arch = parts[0], parts[1]
        out = parts[2] if len(parts) > 2 and parts[2] else f"build/bench_{Path(ckpt).stem}_{arch}"
        interval = int(parts[3]) if len(parts) > 3 else 1
        t0 = time.perf_counter()
        rep = warpc.build(ckpt, board="icebreaker", out=out, arch=arch, baud=args.baud, interval=interval,
                          progress=print)
        rows.append({**row(rep, round(time.perf_counter() - t0, 1)), "load_avg": os.getloadavg()})
    for d in args.from_builds:
        rep = json.loads((Path(d) / "report.json").read_text())
        rows.append({**row(rep), "from": str(d)})
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out + ".json").write_text(json.dumps({"rows": rows, "load_avg_end": os.getloadavg()}, indent=1))
    Path(args.out + ".md").write_text(markdown(rows))
    print(markdown(rows))


if __name__ == "__main__":
    main()
