"""How far `warpc estimate` is from what synthesis and nextpnr made: runs the estimator on every recorded build
and compares it with the build's report.json.

    python scripts/estimate_error.py [REPORT_OR_BUILD_FOLDER ...]

Without arguments it takes every report.json under scripts/results/builds/ (the lead's builds: one folder per
build, or report files named *.json). For each build it estimates the netlist the build used (`netlist.json` in the
build folder, else the checkpoint recorded in report.json `model.source.source`, compiled again) with the build's
options (board, pipeline, interval, lut_cells, scores), and writes

    scripts/results/estimate_error.json   every row, with per-block numbers and nextpnr's packing counts
    scripts/results/estimate_error.md     the table: build, estimated LC, synthesised LC, error %

plus, for the calibration table in warpc/fpga/estimate.py (SHELL), the shell's LC as the build's LC minus the
estimated LCs of every other block. Target: |error| <= 5 % of the synthesised LC count.

    python scripts/estimate_error.py --timing

times the estimator (wall and CPU seconds, with the load average) on a Fashion-MNIST-size random netlist (784
features x 3 thresholds, 3,000 + 1,100 LUT4 nodes, 10 classes) at several intervals; the target is < 2 s.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from warpc.fpga.estimate import FMAX_CLASSES, SHELL, estimate_net  # noqa: E402

DEFAULT_DIR = ROOT / "scripts" / "results" / "builds"
OUT_JSON = ROOT / "scripts" / "results" / "estimate_error.json"
OUT_MD = ROOT / "scripts" / "results" / "estimate_error.md"
TARGET_PCT = 5.0


def find_reports(paths: list[str]) -> list[Path]:
    found: list[Path] = []
    for p in (paths or [str(DEFAULT_DIR)]):
        p = Path(p)
        if p.is_file():
            found.append(p)
        elif (p / "report.json").is_file():
            found.append(p / "report.json")
        elif p.is_dir():
            found += sorted(q for q in p.rglob("*.json") if _is_report(q))
    return found


def _is_report(p: Path) -> bool:
    try:
        d = json.loads(p.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(d, dict) and d.get("format") == "warpc-build-report" and "LC" in d


def netlist_for(rep: dict, path: Path, lut_cells: str):
    """The netlist the build synthesised: its folder's netlist.json, else its recorded checkpoint compiled again."""
    from warpc.ir.netlist import Netlist
    from warpc.ir.source import compiled_netlist

    local = path.parent / "netlist.json"
    if path.name == "report.json" and local.is_file():
        return Netlist.load(local), str(local)
    src = ((rep.get("model") or {}).get("source") or {}).get("source")
    for cand in (src, (ROOT / src) if src else None):
        if cand and Path(cand).is_file():
            net, _ = compiled_netlist(cand, lut_size=4 if lut_cells == "sb_lut4" else None)
            return net, str(cand)
    raise FileNotFoundError(f"no netlist.json beside {path} and the recorded source {src!r} is not here")


def packing_from_log(path: Path) -> dict | None:
    """nextpnr's own packing counts (nextpnr.log beside the report), when the build folder has them."""
    log = path.parent / "nextpnr.log"
    if path.name != "report.json" or not log.is_file():
        return None
    text = log.read_text(errors="replace")
    out = {}
    for key, pat in (("lut_only", r"(\d+) LCs used as LUT4 only"), ("dff_only", r"(\d+) LCs used as DFF only"),
                     ("carry_only", r"(\d+) LCs used as CARRY only"), ("merged", r"(\d+) LUTs merged into carry")):
        m = re.search(pat, text)
        if m:
            out[key] = int(m.group(1))
    return out or None


def fmax_in_class(fmax: float | None, label: str) -> bool | None:
    if fmax is None:
        return None
    bounds = [lo for lo, _ in FMAX_CLASSES]
    labels = [lbl for _, lbl in FMAX_CLASSES]
    i = labels.index(label)
    hi = bounds[i - 1] if i > 0 else float("inf")
    return bounds[i] <= fmax < hi


def row_for(path: Path) -> dict:
    from warpc.fpga.boards import load_board

    rep = json.loads(path.read_text())
    opts = rep.get("options") or {}
    board = load_board(rep.get("board_source") or rep.get("board") or "icebreaker")
    lut_cells = opts.get("lut_cells") or board.lut_cells
    net, src = netlist_for(rep, path, lut_cells)
    t = time.perf_counter()
    est = estimate_net(net, board, interval=int(opts.get("interval", 1)), pipeline=int(opts.get("pipeline", 1)),
                       lut_cells=lut_cells, scores=bool(opts.get("scores", False)))
    secs = time.perf_counter() - t
    lc = rep.get("LC")
    blocks = {}
    for name, e in est["blocks"].items():
        got = (rep.get("blocks") or {}).get(name) or {}
        blocks[name] = {"est": {k: e[k] for k in ("LC", "LUT", "FF", "CARRY")},
                        "synth": {k: got.get(k) for k in ("LUT", "FF", "CARRY")}}
    others = sum(e["LC"] for name, e in est["blocks"].items() if name != "shell")
    return {
        "build": str(path.parent.name if path.name == "report.json" else path.stem),
        "report": str(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path),
        "netlist": src,
        "options": {k: opts.get(k) for k in ("board", "pipeline", "interval", "lut_cells", "scores")},
        "nodes": net.stats().get("nodes"),
        "est_LC": est["LC"], "LC": lc,
        "error_pct": round(100.0 * (est["LC"] - lc) / lc, 2) if lc else None,
        "est_LUT": est["LUT"], "LUT": rep.get("LUT"), "est_FF": est["FF"], "FF": rep.get("FF"),
        "est_CARRY": est["CARRY"], "CARRY": rep.get("CARRY"),
        "shell_LC_implied": (lc - others) if lc else None,
        "Fmax_class": est["Fmax"]["class"], "Fmax_MHz": rep.get("Fmax_MHz"),
        "Fmax_in_class": fmax_in_class(rep.get("Fmax_MHz"), est["Fmax"]["class"]),
        "Fmax_limited_by": est["Fmax"]["limited_by"],
        "estimate_seconds": round(secs, 3),
        "blocks": blocks,
        "nextpnr_packing": packing_from_log(path),
    }


def markdown(rows: list[dict]) -> str:
    L = ["| build | options | nodes | estimated LC | synthesised LC | error % | Fmax class | Fmax MHz | est. s |",
         "|---|---|---:|---:|---:|---:|---|---:|---:|"]
    for r in rows:
        if "error" in r:
            L.append(f"| {r['build']} | | | | | | {r['error']} | | |")
            continue
        o = r["options"]
        opt = f"P{o.get('pipeline')} II{o.get('interval')}" + (" scores" if o.get("scores") else "")
        mark = "" if r["error_pct"] is None or abs(r["error_pct"]) <= TARGET_PCT else " ⚠"
        L.append(f"| {r['build']} | {opt} | {r['nodes']} | {r['est_LC']:,} | "
                 f"{r['LC'] if r['LC'] is None else format(r['LC'], ',')} | {r['error_pct']}{mark} | "
                 f"{r['Fmax_class']} | {r['Fmax_MHz']} | {r['estimate_seconds']} |")
    ok = [r for r in rows if r.get("error_pct") is not None]
    if ok:
        worst = max(abs(r["error_pct"]) for r in ok)
        mean = sum(r["error_pct"] for r in ok) / len(ok)
        L.append("")
        L.append(f"{len(ok)} builds: mean error {mean:+.2f} %, worst |error| {worst:.2f} % (target ±{TARGET_PCT:g} %)")
        shells = [r["shell_LC_implied"] for r in ok if r["shell_LC_implied"] is not None]
        if shells:
            L.append(f"shell LC implied by the builds (LC minus the other blocks' estimates): "
                     f"{', '.join(str(s) for s in shells)}; SHELL['lc'] is {SHELL['lc']} (+ per feature bit / "
                     f"reply bit terms)")
    return "\n".join(L) + "\n"


def fashion_size_net(seed: int = 0):
    """784 features x 3 thresholds, layers of 3,000 and 1,100 4-input LUTs, 10 classes of 110 counted bits."""
    import numpy as np

    from warpc.ir.netlist import InputBit, Netlist, Node

    rng = np.random.default_rng(seed)
    inputs = [InputBit(f, int(t)) for f in range(784) for t in sorted(rng.integers(1, 256, 3))]
    nodes, prev = [], [2 + i for i in range(len(inputs))]
    for layer, width in enumerate((3000, 1100)):
        first = 2 + len(inputs) + len(nodes)
        for _ in range(width):
            fanin = tuple(int(v) for v in rng.choice(prev, size=4, replace=False))
            nodes.append(Node(fanin, int(rng.integers(1, 1 << 16)), layer))
        prev = list(range(first, first + width))
    outputs = [prev[c * 110:(c + 1) * 110] for c in range(10)]
    return Netlist(784, inputs, nodes, outputs, input_bits=8).validate()


def timing(intervals=(1, 2, 4, 16)) -> dict:
    import os

    from warpc.fpga.boards import load_board

    net = fashion_size_net()
    board = load_board("icebreaker")
    rows = []
    for ii in intervals:
        w, c = time.perf_counter(), time.process_time()
        est = estimate_net(net, board, interval=ii)
        rows.append({"interval": ii, "LC": est["LC"], "wall_s": round(time.perf_counter() - w, 2),
                     "cpu_s": round(time.process_time() - c, 2), "Fmax_class": est["Fmax"]["class"]})
    return {"netlist": {"nodes": len(net.nodes), "inputs_used": len(net.used_inputs()), "classes": net.classes},
            "load_average": [round(x, 2) for x in os.getloadavg()], "cpus": os.cpu_count(), "rows": rows}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("paths", nargs="*", help="report.json files or build folders (default: scripts/results/builds)")
    ap.add_argument("--no-write", action="store_true", help="print only; do not write the results files")
    ap.add_argument("--timing", action="store_true", help="time the estimator on a Fashion-MNIST-size netlist")
    ap.add_argument("--note", default="", help="a line for the markdown file (which builds these are)")
    a = ap.parse_args()
    if a.timing:
        t = timing()
        for r in t["rows"]:
            print(f"II {r['interval']:>2}: {r['LC']:,} LCs in {r['wall_s']} s wall, {r['cpu_s']} s CPU ({r['Fmax_class']})")
        print(f"netlist {t['netlist']}; load average {t['load_average']} on {t['cpus']} CPUs")
        if not a.no_write:
            out = OUT_JSON.with_name("estimate_timing.json")
            out.write_text(json.dumps(t, indent=1))
            print(f"wrote {out.relative_to(ROOT)}")
        return 0
    reports = find_reports(a.paths)
    if not reports:
        print(f"no build reports found under {', '.join(a.paths) or DEFAULT_DIR}", file=sys.stderr)
        return 1
    rows = []
    for p in reports:
        try:
            rows.append(row_for(p))
        except Exception as e:  # one unreadable build does not hide the others
            rows.append({"build": p.parent.name if p.name == "report.json" else p.stem, "report": str(p),
                         "error": f"{type(e).__name__}: {e}"})
    md = markdown(rows)
    print(md)
    if not a.no_write:
        OUT_JSON.write_text(json.dumps({"target_pct": TARGET_PCT, "rows": rows}, indent=1, default=str))
        OUT_MD.write_text("# warpc estimate vs synthesised builds\n\nMade by `python scripts/estimate_error.py`"
                          + (f" ({a.note})" if a.note else "") + ".\n\n" + md)
        print(f"wrote {OUT_JSON.relative_to(ROOT)} and {OUT_MD.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
