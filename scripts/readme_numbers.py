"""Re-measure the README's numbers by running the README's own commands, one after the other, and record what each
gave (accuracy, seconds, LCs, Fmax) with the load average before and after: scripts/results/readme_numbers.json.

    python scripts/readme_numbers.py [--only digits,fashion_up5k,...] [--work DIR]

Every run starts from an empty work folder (a new user's situation, except for the kernel/toolchain caches, which
`--cold` empties first: ~/.cache/warpc). Fashion-MNIST runs need the Debian dataset files.
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULT = ROOT / "scripts" / "results" / "readme_numbers.json"

# name -> (train args, synth?) : the README's commands, verbatim apart from the --out folder
RUNS = {
    "digits": ("--dataset digits", True),
    "digits_big": ("--dataset digits --widths 4000,4000 --wiring unique --tau-head 10", True),
    "fashion_big": ("--dataset fashion-mnist --widths 8000,8000 --thresholds 3 --wiring learnable --tau-head 10 "
                    "--steps 6000", False),
    "fashion_dlgn": ("--dataset fashion-mnist --parametrization dlgn --widths 8000,8000 --thresholds 3 "
                     "--wiring learnable --tau-head 10 --steps 6000", False),
    "fashion": ("--dataset fashion-mnist --widths 2500,2500 --wiring learnable --tau-head 6 --steps 4000", False),
    "fashion_up5k": ("--dataset fashion-mnist --parametrization dlgn --widths 2400,1000 --thresholds 2 "
                     "--wiring learnable --tau-head 4 --steps 12000", True),
    "fashion_up5k_warp": ("--dataset fashion-mnist --widths 2400,1000 --thresholds 2 --wiring learnable "
                          "--tau-head 5 --steps 3000", True),
}


def _load() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


def _run(cmd: list[str]) -> tuple[int, str, str, float]:
    t = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True)
    return p.returncode, p.stdout, p.stderr, time.perf_counter() - t


def measure(name: str, work: Path) -> dict:
    args, synth = RUNS[name]
    ckpt = work / f"{name}.safetensors"
    rec: dict = {"train_command": f"warpc train {args} --out {ckpt.name}", "load_before": _load()}
    rc, out, err, wall = _run(["warpc", "train", *shlex.split(args), "--out", str(ckpt), "--quiet", "--json"])
    if rc:
        rec["error"] = err.strip().splitlines()[-1:] if err else out[-300:]
        return rec
    m = json.loads(out.strip().splitlines()[-1])
    rec.update(test_accuracy=m["test_accuracy"], train_seconds=m["seconds"], wall_seconds=round(wall, 1),
               kernels=m.get("kernels"), load_after_train=_load())
    rc, out, err, wall = _run(["warpc", "compile", str(ckpt), "-o", str(work / f"{name}_net")])
    rec["compile_seconds"] = round(wall, 1)
    rep = json.loads((work / f"{name}_net" / "compile_report.json").read_text()) if rc == 0 else {}
    if rep:
        s = rep["summary"]
        rec.update(nodes=s["nodes_discretized"], nodes_optimized=s["nodes_optimized"], lut4=s["luts"],
                   input_bits_used=s["input_bits_used"])
    if synth:
        bdir = work / f"build_{name}"
        rc, out, err, wall = _run(["warpc", "synth", str(ckpt), "--board", "icebreaker", "-o", str(bdir), "--json"])
        rec["synth_wall_seconds"] = round(wall, 1)
        rec["load_after_synth"] = _load()
        if rc == 0:
            r = json.loads(out)
            eq = r.get("equivalence", {})
            rec.update(LC=r.get("LC"), Fmax_MHz=r.get("Fmax_MHz"), accuracy_on_chip=(r.get("accuracy") or {}).get(
                "accuracy"), equivalence_passed=eq.get("passed"), vectors=eq.get("vectors"),
                formal_complete=eq.get("formally_complete"), LUT4=r.get("LUT"), stages_s=r.get("stages_s"))
        else:
            rec["synth_error"] = (err.strip().splitlines() or ["?"])[-1]
    return rec


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default=",".join(RUNS), help="comma-separated run names: " + ", ".join(RUNS))
    ap.add_argument("--work", default=None, help="work folder (default: a fresh temporary one)")
    ap.add_argument("--cold", action="store_true", help="empty ~/.cache/warpc first (first-run kernel build)")
    a = ap.parse_args()
    names = [n for n in a.only.split(",") if n]
    unknown = [n for n in names if n not in RUNS]
    if unknown:
        print(f"error: unknown runs {unknown}; choose from {list(RUNS)}", file=sys.stderr)
        return 1
    if a.cold:
        import shutil

        shutil.rmtree(Path.home() / ".cache" / "warpc", ignore_errors=True)
    work = Path(a.work) if a.work else Path(tempfile.mkdtemp(prefix="warpc_readme_"))
    work.mkdir(parents=True, exist_ok=True)
    results = json.loads(RESULT.read_text()) if RESULT.is_file() else {}
    for n in names:
        print(f"[{n}] ...", file=sys.stderr, flush=True)
        rec = measure(n, work)
        rec["commit"] = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                                       text=True).stdout.strip()
        rec["date"] = time.strftime("%Y-%m-%d %H:%M")
        results[n] = rec
        print(json.dumps({n: rec}, indent=1), file=sys.stderr, flush=True)
        RESULT.write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
