#!/usr/bin/env python
"""A new user's first `warpc train --dataset digits` with an EMPTY kernel cache: seconds from the command to the
kernel-build messages, to the progress bar (created right before the first step) and to the end, plus the total
wall time. Uses a fresh $WARPC_CACHE_DIR (the user's ~/.cache/warpc is not touched); `--warm` runs again with the
cache the first run filled. Writes scripts/results/first_run.json.

  python scripts/bench_first_run.py            # cold, then warm
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def timed_run(cmd: list[str], env: dict) -> dict:
    """Run `cmd`, time-stamping its stderr: the first kernel message, the first progress bar, the end."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    marks: dict = {}
    buf = b""
    while True:
        chunk = proc.stderr.read1(4096)
        if not chunk:
            break
        buf += chunk
        now = time.perf_counter() - t0
        text = buf.decode(errors="replace")
        if "compiling the fused CPU kernel" in text:
            marks.setdefault("compile_start_s", now)
        if "compiled the fused CPU kernel" in text:
            marks.setdefault("compile_end_s", now)
        if "train:" in text:
            marks.setdefault("first_step_s", now)
    out = proc.stdout.read().decode(errors="replace")
    proc.wait()
    marks["total_s"] = time.perf_counter() - t0
    marks["returncode"] = proc.returncode
    marks["stdout_tail"] = out.strip().splitlines()[-3:]
    lines = [ln for ln in buf.decode(errors="replace").replace("\r", "\n").splitlines() if "warpc:" in ln]
    marks["kernel_messages"] = lines[:4]
    return marks


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "first_run.json"))
    ap.add_argument("--no-warm", action="store_true", help="skip the second (warm-cache) run")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, WARPC_CACHE_DIR=str(Path(tmp) / "cache"))
        warpc = shutil.which("warpc") or str(Path(sys.executable).with_name("warpc"))
        for label in ["cold"] + ([] if args.no_warm else ["warm"]):
            cmd = [warpc, "train", "--dataset", "digits", "--out", str(Path(tmp) / f"{label}.safetensors")]
            load_before = os.getloadavg()
            r = timed_run(cmd, env)
            r.update(run=label, loadavg_before=[round(v, 2) for v in load_before],
                     loadavg_after=[round(v, 2) for v in os.getloadavg()])
            rows.append(r)
            print(json.dumps({k: (round(v, 2) if isinstance(v, float) else v) for k, v in r.items()}), flush=True)
    result = {"command": "warpc train --dataset digits --out D (empty WARPC_CACHE_DIR, then warm)",
              "machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(), "runs": rows}
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
