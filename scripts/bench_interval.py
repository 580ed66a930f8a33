"""LCs and samples/s against the interval N (II) for one model: for each N, the board design is elaborated and
synthesised exactly as `warpc synth` does (Yosys synth_ice40), then packed by nextpnr (`--pack-only`: the LC
count placement starts from; no routing, so no Fmax), next to `warpc estimate`'s number.

    python scripts/bench_interval.py CKPT [--intervals 1,2,4,...] [--out scripts/results/interval_table]

Writes OUT.json (every row) and OUT.md (the table). The core's samples/s is the board clock / N; over the UART the
line rate bounds it (request + reply bytes, 10 bits each).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from warpc.fpga import flow  # noqa: E402
from warpc.fpga.estimate import estimate_net  # noqa: E402
from warpc.fpga.outdir import BuildDir  # noqa: E402


def one(ckpt: str, n: int, work: Path) -> dict:
    opts = flow.BuildOptions(interval=n, estimate_check=False, equivalence=False)
    b = flow.prepare(ckpt, "icebreaker", work, opts, say=lambda s: None)
    flow.elaborate(b)
    bd = BuildDir(b.out, flow.planned_files(b))
    bd.check()
    bd.open(b.stamp["id"])
    flow.write_sources(b)
    t = time.perf_counter()
    flow.synthesize(b)
    synth_s = time.perf_counter() - t
    r = subprocess.run([b.exe["nextpnr-ice40"], "--pack-only", "--log", "pack.log", b.board.nextpnr_device,
                        "--package", b.board.nextpnr_package, "--json", "top.json", "--pcf", "top.pcf"],
                       cwd=b.out, capture_output=True, text=True)
    bd.close("done")
    log = (b.out / "pack.log").read_text(errors="replace")
    m = re.search(r"ICESTORM_LC:\s+(\d+)/\s*(\d+)", log)
    est = estimate_net(b.net, b.board, interval=n, pipeline=1, lut_cells=b.lut_cells)
    sh = b.shell
    clock = b.board.clock_hz
    return {"interval": n, "LC_packed": int(m.group(1)) if m else None, "LC_estimate": est["LC"],
            "blocks_estimate": {k: v.get("LC", v.get("lc")) for k, v in est["blocks"].items()},
            "latency_cycles": sh.core.latency, "core_samples_per_s": round(clock / n),
            "uart_samples_per_s_3Mbaud": round(3_000_000 / 10 / (sh.request_bytes + sh.reply_bytes), 1),
            "uart_samples_per_s_115200": round(115_200 / 10 / (sh.request_bytes + sh.reply_bytes), 1),
            "synth_s": round(synth_s, 1), "pack_rc": r.returncode}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("ckpt")
    ap.add_argument("--intervals", default="1,2,4,8,16,32,64")
    ap.add_argument("--out", default=str(ROOT / "scripts" / "results" / "interval_table"))
    a = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as d:
        for n in [int(v) for v in a.intervals.split(",")]:
            row = one(a.ckpt, n, Path(d) / f"n{n}")
            print(json.dumps(row), flush=True)
            rows.append(row)
    load = os.getloadavg()
    res = {"checkpoint": a.ckpt, "load_average": [round(v, 2) for v in load], "rows": rows}
    Path(a.out + ".json").write_text(json.dumps(res, indent=1))
    lines = [f"# LCs and samples/s against the interval, `{Path(a.ckpt).name}`", "",
             f"`python scripts/bench_interval.py {a.ckpt} --intervals {a.intervals}`; LC = nextpnr --pack-only after "
             f"Yosys synth_ice40 (the build's script); load average at the end {res['load_average']}.", "",
             "| N (II) | LC (packed) | LC (estimate) | latency (cycles) | core samples/s at 12 MHz | "
             "UART samples/s at 3 Mbaud | at 115,200 |", "|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['interval']} | {r['LC_packed']:,} | {r['LC_estimate']:,} | {r['latency_cycles']} | "
                     f"{r['core_samples_per_s']:,} | {r['uart_samples_per_s_3Mbaud']} | "
                     f"{r['uart_samples_per_s_115200']} |")
    Path(a.out + ".md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
