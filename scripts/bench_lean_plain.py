#!/usr/bin/env python
"""The CPU training-step ratio a user sees: warpc's fused `warpc.nn.WarpLUT` against a LEAN plain PyTorch WARP
stack written as a competent user would write it (not warpc's own plain reference path, which is about twice as
slow). Both run the same network and step, at the machine's DEFAULT thread count, interleaved in rounds; the
table gives medians over rounds. Writes scripts/results/lean_plain.{json,md}.

Network (the issue's comparison): 256 binary inputs, 3 x 2,000 nodes, k = 2, batch 128, Gumbel (logistic) noise,
GroupSum (10 classes, tau 10), cross-entropy, torch.optim.Adam (lr 0.01) for both sides.
Lean plain layer: gather the k inputs (x[:, idx]), s_i = 1 - 2 x_i, Walsh basis products by doubling
([1, s0, s1, s0 s1]), z = einsum(basis, theta) per node, logistic noise from one rand and one log, sigmoid.

  python scripts/bench_lean_plain.py                 # default threads
  python scripts/bench_lean_plain.py --threads 1 --tag 1t
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

# the OpenMP waiting settings torch's libgomp reads when it loads (before warpc may set its default)
OMP_ENV = {k: os.environ.get(k) for k in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "OMP_NUM_THREADS")}
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
if "--warpc-first" in sys.argv:  # warpc's OMP_WAIT_POLICY default reaches torch's OpenMP only when warpc loads first
    import warpc  # noqa: F401

import torch  # noqa: E402  (by default torch first, as users import it)
from torch import nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import warpc  # noqa: E402,F401
from warpc.nn import GroupSum, WarpLUT  # noqa: E402
from warpc.nn import kernels  # noqa: E402

CLASSES, TAU_HEAD = 10, 10.0


class LeanWarp(nn.Module):
    """A WARP-LUT layer in plain PyTorch: fixed random wiring, 2^k Walsh coefficients per node, Gumbel sigmoid."""

    def __init__(self, n_in: int, n_out: int, k: int = 2, tau: float = 1.0, seed: int = 0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.register_buffer("idx", torch.randint(n_in, (n_out, k), generator=g))
        theta = torch.zeros(n_out, 2 ** k)
        theta[:, 1] = 1.0  # residual init: the node starts as (the negation of) its first input
        self.theta = nn.Parameter(theta + 0.1 * torch.randn(n_out, 2 ** k, generator=g))
        self.k, self.tau = k, tau

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = 1.0 - 2.0 * x[:, self.idx]                          # (B, out, k)
        basis = torch.ones_like(s[..., :1])
        for i in range(self.k):                                 # Walsh products by doubling: 1, s0, s1, s0 s1, ...
            basis = torch.cat([basis, basis * s[..., i:i + 1]], -1)
        z = torch.einsum("bom,om->bo", basis, self.theta)
        u = torch.rand_like(z).clamp_(1e-6, 1 - 1e-6)
        z = z + torch.log(u / (1 - u))                          # logistic noise
        return torch.sigmoid(-z / self.tau)


class LeanGroupSum(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0], CLASSES, -1).sum(-1) / TAU_HEAD


def lean_net(n_in, widths, k):
    layers, n = [], n_in
    for i, w in enumerate(widths):
        layers.append(LeanWarp(n, w, k, seed=i))
        n = w
    return nn.Sequential(*layers, LeanGroupSum())


def warpc_net(n_in, widths, k):
    layers, n = [], n_in
    for i, w in enumerate(widths):
        layers.append(WarpLUT(n, w, k=k, sampling="gumbel", init="residual", seed=i, backend="cpp"))
        n = w
    return nn.Sequential(*layers, GroupSum(CLASSES, TAU_HEAD))


def make_step(model, x, y, optimizer: str):
    if optimizer == "warpc":
        from warpc.training import Adam
        opt = Adam(model.parameters(), lr=0.01)
    else:
        opt = torch.optim.Adam(model.parameters(), lr=0.01)

    def step():
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


OMP_VARIANTS = {  # name -> (environment, import warpc before torch)
    "torch first, no OpenMP settings (what `import torch; import warpc` gets)": ({}, False),
    "warpc first (warpc's default, OMP_WAIT_POLICY=PASSIVE)": ({}, True),
    "GOMP_SPINCOUNT=1000": ({"GOMP_SPINCOUNT": "1000"}, False),
    "GOMP_SPINCOUNT=10000": ({"GOMP_SPINCOUNT": "10000"}, False),
    "GOMP_SPINCOUNT=30000": ({"GOMP_SPINCOUNT": "30000"}, False),
}


def omp_sweep(args) -> None:
    """Re-run this benchmark in subprocesses under each OpenMP waiting setting / import order, `--passes` times
    interleaved (optionally next to `--hogs` busy-loop processes), and tabulate the median over passes of each
    run's median step time. Writes scripts/results/omp_wait[_TAG].json."""
    import subprocess
    import tempfile

    runs: dict = {name: [] for name in OMP_VARIANTS}
    loads = []
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.hogs)]
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for _ in range(args.passes):
                for name, (env_add, warpc_first) in OMP_VARIANTS.items():
                    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
                    env.update(env_add)
                    cmd = [sys.executable, __file__, "--rounds", str(args.rounds), "--steps", str(args.steps),
                           "--no-warpc-adam", "--out", tmp] + (["--warpc-first"] if warpc_first else []) + (
                               ["--threads", str(args.threads)] if args.threads else [])
                    loads.append(os.getloadavg()[0])
                    subprocess.run(cmd, env=env, check=True, capture_output=True)
                    res = json.loads((Path(tmp) / "lean_plain.json").read_text())
                    runs[name].append({r["trainer"].split(" (")[0]: r["ms_per_step"] for r in res["rows"]})
    finally:
        for h in hogs:
            h.kill()
            h.wait()
    rows = []
    for name, rs in runs.items():
        plain = statistics.median(r["lean plain PyTorch"] for r in rs)
        fused = statistics.median(r["warpc.nn.WarpLUT fused"] for r in rs)
        rows.append(dict(setting=name, lean_plain_ms=round(plain, 3), fused_ms=round(fused, 3),
                         ratio=round(plain / fused, 2), passes=rs))
        print(f"{name:72s} plain {plain:8.2f} ms  fused {fused:7.3f} ms  x{plain / fused:.1f}", flush=True)
    meta = dict(passes=args.passes, rounds=args.rounds, steps=args.steps, threads=args.threads or "default",
                hogs=args.hogs, loadavg_1min_at_each_run=[round(v, 2) for v in loads])
    print(f"{args.hogs} hogs; load average (1 min) at the runs: min {min(loads):.2f}, max {max(loads):.2f}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / ("omp_wait" + (f"_{args.tag}" if args.tag else "") + ".json")).write_text(
        json.dumps(dict(meta=meta, rows=rows), indent=1) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n-in", type=int, default=256)
    ap.add_argument("--widths", default="2000,2000,2000")
    ap.add_argument("--k", type=int, default=2)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--steps", type=int, default=10, help="steps per round")
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--no-warpc-adam", action="store_true", help="skip the row with warpc's own Adam")
    ap.add_argument("--one-thread-rows", action="store_true",
                    help="add both torch.optim.Adam trainers at 1 thread, interleaved (the second core's gain)")
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's default)")
    ap.add_argument("--warpc-first", action="store_true", help="import warpc before torch (default: torch first)")
    ap.add_argument("--omp-sweep", action="store_true",
                    help="compare OpenMP waiting settings / import orders in subprocesses (scripts/results/omp_wait.json)")
    ap.add_argument("--passes", type=int, default=3, help="--omp-sweep: interleaved passes")
    ap.add_argument("--hogs", type=int, default=0,
                    help="--omp-sweep: run this many busy-loop processes meanwhile (a busy machine)")
    ap.add_argument("--tag", default="")
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "results"))
    args = ap.parse_args()
    if args.omp_sweep:
        return omp_sweep(args)
    if args.threads:
        torch.set_num_threads(args.threads)
    if not kernels.cpp_available():
        sys.exit("the fused CPU kernel is not available here")
    widths = [int(w) for w in args.widths.split(",")]
    torch.manual_seed(0)
    x = (torch.rand(args.batch, args.n_in) > 0.5).float()
    y = torch.randint(0, CLASSES, (args.batch,))
    trainers = {
        "lean plain PyTorch (torch.optim.Adam)": make_step(lean_net(args.n_in, widths, args.k), x, y, "torch"),
        "warpc.nn.WarpLUT fused (torch.optim.Adam)": make_step(warpc_net(args.n_in, widths, args.k), x, y, "torch"),
    }
    if not args.no_warpc_adam:
        trainers["warpc.nn.WarpLUT fused (warpc.training.Adam)"] = make_step(warpc_net(args.n_in, widths, args.k),
                                                                             x, y, "warpc")
    threads = {name: torch.get_num_threads() for name in trainers}
    if args.one_thread_rows:
        for name in list(trainers)[:2]:
            trainers[name.replace("(", "(1 thread, ")] = trainers[name]
            threads[name.replace("(", "(1 thread, ")] = 1
    for name, step in trainers.items():
        torch.set_num_threads(threads[name])
        for _ in range(args.warmup):
            step()
    load_before = os.getloadavg()
    times = {name: [] for name in trainers}
    cpu = {name: [] for name in trainers}
    for _ in range(args.rounds):
        for name, step in trainers.items():
            torch.set_num_threads(threads[name])
            t0, c0 = time.perf_counter(), time.process_time()
            for _ in range(args.steps):
                step()
            times[name].append((time.perf_counter() - t0) / args.steps * 1e3)
            cpu[name].append((time.process_time() - c0) / args.steps * 1e3)
    torch.set_num_threads(max(threads.values()))
    load_after = os.getloadavg()
    base = statistics.median(times["lean plain PyTorch (torch.optim.Adam)"])
    rows = []
    for name in trainers:
        med = statistics.median(times[name])
        rows.append(dict(trainer=name, threads=threads[name], ms_per_step=round(med, 3),
                         ms_min=round(min(times[name]), 3),
                         cpu_ms_per_step=round(statistics.median(cpu[name]), 3),
                         speedup_vs_lean_plain=round(base / med, 2), rounds=[round(t, 3) for t in times[name]]))
        print(f"{name:46s} {med:8.3f} ms/step (min {min(times[name]):.3f})  x{base / med:.2f} vs lean plain",
              flush=True)
    meta = dict(date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), n_in=args.n_in, widths=widths, k=args.k,
                batch=args.batch, threads=torch.get_num_threads(),
                steps_per_round=args.steps, rounds=args.rounds, torch=torch.__version__, cpus=os.cpu_count(),
                machine=platform.processor() or platform.machine(),
                omp_env_at_start=OMP_ENV, import_order=(
                    "warpc first" if args.warpc_first else "torch first"),
                loadavg_before=[round(v, 2) for v in load_before], loadavg_after=[round(v, 2) for v in load_after])
    print(f"threads {meta['threads']}, load average {meta['loadavg_before']} -> {meta['loadavg_after']}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = "lean_plain" + (f"_{args.tag}" if args.tag else "")
    (out / f"{stem}.json").write_text(json.dumps(dict(meta=meta, rows=rows), indent=1) + "\n")
    md = [f"# CPU training step: warpc fused vs a lean plain PyTorch WARP stack ({stem})", "",
          f"{args.n_in} inputs, {' + '.join(map(str, widths))} nodes, k = {args.k}, batch {args.batch}, Gumbel, "
          f"GroupSum + cross-entropy + Adam; {meta['import_order']}; medians of {args.rounds} interleaved "
          f"rounds of {args.steps} steps; load average {meta['loadavg_before']} -> {meta['loadavg_after']}.", "",
          "| trainer | threads | ms/step (median) | min | CPU ms/step | speed-up vs lean plain |",
          "|---|---|---|---|---|---|"]
    md += [f"| {r['trainer']} | {r['threads']} | {r['ms_per_step']:.2f} | {r['ms_min']:.2f} | {r['cpu_ms_per_step']:.2f} | "
           f"{r['speedup_vs_lean_plain']:.2f}x |" for r in rows]
    md += ["", "Command: `python " + " ".join(["scripts/bench_lean_plain.py"] + sys.argv[1:]) + "`"]
    (out / f"{stem}.md").write_text("\n".join(md) + "\n")


if __name__ == "__main__":
    main()
