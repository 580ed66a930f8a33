#!/usr/bin/env python
"""Time one full training step (forward, GroupSum, cross-entropy, backward, Adam) of a random-wired WARP net
for each available trainer, in one run, and write a table to scripts/results/.

Trainers: warpc's plain PyTorch reference (backend="torch"), warpc's fused backends ("cpp" on CPU, "triton" and
"triton-bf16" on CUDA), warpc's DLGN parametrisation on the plain and fused paths, and, when importable, torchlogix (LogicDense, parametrization="warp") and difflogic's CUDA
LogicLayer (DLGN; on the CPU its own "python" implementation, see scripts/_peers.py). Trainers run interleaved in rounds (the machine may be shared): each round times `--steps`
steps of every trainer; the table gives the median over rounds of the mean step time.

Each step runs what warpc's trainer runs: the thermometer encoder (3 uniform thresholds per integer feature,
0..255) on a batch of features (the plain reference runs entirely in PyTorch, as under WARPC_BACKEND=torch), the WARP layers, GroupSum (tau 10), cross-entropy, backward, and the optimizer
`warpc.train.Adam` (the trainer's own; `--adam torch` / `--adam fused` use torch.optim.Adam instead), the same
for every trainer.

Configurations (k = 2, Gumbel noise, residual init):
  cpu-digits   192 inputs (64 features x 3 thresholds), 3 x 2,000 nodes, batch 128
  cpu-fashion  2,352 inputs (784 x 3), 3 x 2,000 nodes, batch 128
  cpu-digits-default   warpc's default recipe: 448 inputs (64 x 7), 2,000 + 1,000 nodes, learnable first-layer
                       wiring (16 candidates), batch 128
  cpu-fashion-up5k     the UP5K Fashion recipe: 1,568 inputs (784 x 2), 2,400 + 1,000 nodes, learnable first
                       layer, batch 128 (learnable configs time warpc's trainers only: the peers have no such wiring)
  gpu-12k      9,216 inputs (3,072 x 3), 4 x 12,000 nodes, batch 128   (the fast-training issue's configurations)
  gpu-256k     15,360 inputs (5,120 x 3), 5 x 256,000 nodes, batch 64

  python scripts/bench_train_step.py                       # CPU: cpu-* configs; CUDA: all four

The plain reference here is warpc's own plain path (backend="torch"), about 2x slower than a lean plain PyTorch
WARP stack; the ratio a user sees against such a stack is scripts/bench_lean_plain.py's.
  python scripts/bench_train_step.py --threads 1 --tag 1t  # single-threaded CPU run
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import warpc  # noqa: E402,F401  (before torch: warpc's OpenMP waiting default, docs/kernels.md)

import torch  # noqa: E402
from torch import nn  # noqa: E402

from warpc.nn import GroupSum, WarpLUT  # noqa: E402
from warpc.nn import kernels  # noqa: E402
from warpc.nn.encoders import Thermometer  # noqa: E402
from warpc.training import Adam as WarpcAdam  # noqa: E402
from warpc.training import resolve_device  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _peers import import_difflogic  # noqa: E402

CONFIGS = {
    "cpu-digits": dict(n_in=192, widths=[2000] * 3, batch=128),
    "cpu-fashion": dict(n_in=2352, widths=[2000] * 3, batch=128),
    "cpu-digits-default": dict(n_in=448, widths=[2000, 1000], batch=128, thresholds=7, learnable=True),
    "cpu-fashion-up5k": dict(n_in=1568, widths=[2400, 1000], batch=128, thresholds=2, learnable=True),
    "gpu-12k": dict(n_in=9216, widths=[12000] * 4, batch=128),
    "gpu-256k": dict(n_in=15360, widths=[256000] * 5, batch=64),
}
CLASSES = 10
THRESHOLDS = 3


def make_encoder(n_in, thresholds=THRESHOLDS):
    """Thermometer over n_in / T integer features (0..255) with T uniform thresholds, as warpc's trainer uses."""
    import numpy as np

    enc = Thermometer(n_in // thresholds, thresholds)
    return enc.fit(np.tile(np.array([[0], [255]]), (1, n_in // thresholds)), "uniform")


class _Net(nn.Module):
    def __init__(self, layers, n_in, tau_head=10.0, contiguous_bits=False, thresholds=THRESHOLDS):
        super().__init__()
        self.encoder = make_encoder(n_in, thresholds)
        self.layers = nn.Sequential(*layers)
        self.head = GroupSum(CLASSES, tau_head)
        self.contiguous_bits = contiguous_bits  # peers that expect a plain (batch, inputs) tensor

    def forward(self, x):
        h = self.encoder(x)
        return self.head(self.layers(h.contiguous() if self.contiguous_bits else h))


def warpc_net(cfg, backend, device, parametrization="warp"):
    layers, n = [], cfg["n_in"]
    for i, w in enumerate(cfg["widths"]):
        wiring = "learnable" if cfg.get("learnable") and i == 0 else "unique"
        layers.append(WarpLUT(n, w, k=2, sampling="gumbel", init="residual", wiring=wiring, seed=i,
                              backend=backend, parametrization=parametrization))
        n = w
    net = _Net(layers, cfg["n_in"], thresholds=cfg.get("thresholds", THRESHOLDS)).to(device)
    # the plain reference runs all-PyTorch, as under WARPC_BACKEND=torch (its encoder too, not the C++ one)
    net.global_backend = "torch" if backend == "torch" else None
    return net


def torchlogix_net(cfg, device):
    from torchlogix.layers import LogicDense  # Python >= 3.12

    layers, n = [], cfg["n_in"]
    for w in cfg["widths"]:
        layers.append(LogicDense(n, w, device=device.type, lut_rank=2, parametrization="warp",
                                 parametrization_kwargs=dict(forward_sampling="gumbel_soft")))
        n = w
    return _Net(layers, cfg["n_in"], contiguous_bits=True).to(device)


def difflogic_net(cfg, device):
    """difflogic's LogicLayer: its CUDA kernel on a GPU, its own CPU ("python") implementation on the CPU."""
    difflogic, impl = import_difflogic(cpu_ok=device.type == "cpu")

    layers, n = [], cfg["n_in"]
    for w in cfg["widths"]:
        layers.append(difflogic.LogicLayer(n, w, device=device.type, implementation="cuda" if device.type == "cuda"
                                           else "python", connections="random"))
        n = w
    return _Net(layers, cfg["n_in"], contiguous_bits=True).to(device)


def trainers(device, cfg):
    """(name, builder, note) for everything that can run `cfg` on `device`."""
    out = [("warpc-torch (plain reference)", lambda c: warpc_net(c, "torch", device), None)]
    fused = "cpp" if device.type == "cpu" and kernels.cpp_available() else (
        "triton" if device.type == "cuda" and kernels.triton_available() else None)
    if fused:
        out.append((f"warpc-{fused}", lambda c: warpc_net(c, fused, device), None))
        if fused == "triton":
            out.append(("warpc-triton-bf16", lambda c: warpc_net(c, "triton", device), "bf16"))
    if cfg.get("learnable"):
        return out  # the peers have no learnable wiring
    # warpc's DLGN (difflogic's 16-gate parametrisation) on the plain path and on the fused kernels
    out.append(("warpc-torch DLGN", lambda c: warpc_net(c, "torch", device, "dlgn"), None))
    if fused:
        out.append((f"warpc-{fused} DLGN", lambda c: warpc_net(c, fused, device, "dlgn"), None))
    try:
        import torchlogix  # noqa: F401

        out.append(("torchlogix WARP", lambda c: torchlogix_net(c, device), None))
    except Exception:
        pass
    try:
        import_difflogic(cpu_ok=device.type == "cpu")
        name = "difflogic CUDA (DLGN)" if device.type == "cuda" else "difflogic python impl. (DLGN, CPU)"
        out.append((name, lambda c: difflogic_net(c, device), None))
    except Exception:
        pass
    return out


def make_step(model, x, y, opt_kind):
    if opt_kind == "fused":
        opt = torch.optim.Adam(model.parameters(), lr=0.01, fused=True)
    elif opt_kind == "torch":
        opt = torch.optim.Adam(model.parameters(), lr=0.01)
    else:
        opt = WarpcAdam(model.parameters(), lr=0.01)  # what warpc.train uses
    loss_fn = nn.CrossEntropyLoss()
    backend = getattr(model, "global_backend", None)

    def step():
        loss = loss_fn(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    if backend is None:
        return step

    def step_under_backend():
        kernels.set_backend(backend)
        try:
            step()
        finally:
            kernels.set_backend(None)

    return step_under_backend


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def run_config(name, cfg, device, args):
    torch.manual_seed(0)
    n_features = cfg["n_in"] // cfg.get("thresholds", THRESHOLDS)
    x = torch.randint(0, 256, (cfg["batch"], n_features), device=device).float()  # features
    y = torch.randint(0, CLASSES, (cfg["batch"],), device=device)
    entries = []
    for tname, build, note in trainers(device, cfg):
        try:
            base = 0
            if device.type == "cuda":
                sync(device)
                base = torch.cuda.memory_allocated()  # other trainers' models stay alive for interleaving
                torch.cuda.reset_peak_memory_stats()
            model = build(cfg)
            if note == "bf16":
                model.encoder.register_forward_hook(lambda m, i, o: o.to(torch.bfloat16))
            xin = x
            step = make_step(model, xin, y, args.adam)
            for _ in range(args.warmup):
                step()
            sync(device)
            # peak memory of this trainer: model, optimizer state, activations and gradients of a step
            peak = (torch.cuda.max_memory_allocated() - base) / 2**20 if device.type == "cuda" else None
            entries.append(dict(name=tname, step=step, times=[], cpu=[], peak_mib=peak, model=model))
        except Exception as e:  # a peer that does not build here is reported, not fatal
            entries.append(dict(name=tname, error=f"{type(e).__name__}: {e}"[:200]))
    live = [e for e in entries if "step" in e]
    for _ in range(args.rounds):
        for e in live:
            sync(device)
            t0, c0 = time.perf_counter(), time.process_time()
            for _ in range(args.steps):
                e["step"]()
            sync(device)
            e["times"].append((time.perf_counter() - t0) / args.steps * 1e3)
            e["cpu"].append((time.process_time() - c0) / args.steps * 1e3)
    ref = next((e for e in live if e["name"].startswith("warpc-torch")), None)
    dl = next((e for e in live if e["name"].startswith("difflogic")), None)
    rows = []
    for e in entries:
        if "error" in e:
            rows.append(dict(config=name, trainer=e["name"], error=e["error"]))
            continue
        med = statistics.median(e["times"])
        cpu = statistics.median(e["cpu"])
        row = dict(config=name, trainer=e["name"], ms_per_step=med, ms_min=min(e["times"]), cpu_ms_per_step=cpu,
                   rounds=[round(t, 4) for t in e["times"]], peak_mib=e["peak_mib"])
        if ref is not None:
            row["speedup_vs_plain"] = statistics.median(ref["times"]) / med
            row["cpu_speedup_vs_plain"] = statistics.median(ref["cpu"]) / cpu
        if dl is not None:
            row["ratio_to_difflogic"] = med / statistics.median(dl["times"])
        rows.append(row)
        print(f"{name:12s} {e['name']:30s} {med:9.3f} ms/step (CPU {cpu:.3f})"
              + (f"  x{row['speedup_vs_plain']:.1f} vs plain (CPU x{row['cpu_speedup_vs_plain']:.1f})"
                 if "speedup_vs_plain" in row else ""), flush=True)
    for e in entries:
        e.pop("model", None)
        e.pop("step", None)
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="auto", help="cpu | cuda | auto")
    ap.add_argument("--configs", nargs="*", default=None, help=f"subset of {list(CONFIGS)}")
    ap.add_argument("--steps", type=int, default=10, help="steps per round")
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (CPU)")
    ap.add_argument("--adam", choices=["warpc", "torch", "fused"], default="warpc",
                    help="warpc.train.Adam (what training uses), torch.optim.Adam, or torch.optim.Adam(fused=True)")
    ap.add_argument("--tag", default="", help="suffix for the result file names")
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "results"))
    args = ap.parse_args()
    device = resolve_device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    names = args.configs or ([c for c in CONFIGS if c.startswith("cpu")] if device.type == "cpu" else list(CONFIGS))
    hw = torch.cuda.get_device_name() if device.type == "cuda" else (platform.processor() or platform.machine())
    if device.type == "cpu":
        try:
            hw = next(l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name"))
        except Exception:
            pass
    meta = dict(device=device.type, hardware=hw, torch=torch.__version__, python=platform.python_version(),
                threads=torch.get_num_threads(), steps_per_round=args.steps, rounds=args.rounds, adam=args.adam,
                date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), command=" ".join(sys.argv))
    print(json.dumps(meta))
    rows = []
    for n in names:
        rows += run_config(n, CONFIGS[n], device, args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"train_step_{device.type}" + (f"_{args.tag}" if args.tag else "")
    (out / f"{stem}.json").write_text(json.dumps(dict(meta=meta, rows=rows), indent=1))
    lines = [f"# Training-step benchmark ({device.type}: {hw}, {meta['threads']} threads, torch {meta['torch']})",
             "", f"`{meta['command']}` — {meta['date']}; median over {args.rounds} rounds of {args.steps} steps.",
             "Wall ms/step is what a user waits; CPU ms/step (process CPU time, all threads) is less sensitive to other",
             "jobs on a shared machine. × vs plain: the plain PyTorch reference's time over this trainer's.", "",
             "| config | trainer | wall ms/step | min ms | × vs plain (wall) | CPU ms/step | × vs plain (CPU) "
             "| ÷ difflogic | peak MiB |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['config']} | {r['trainer']} | failed: {r['error']} | | | | | | |")
            continue
        f = lambda k, fmt: (fmt.format(r[k]) if r.get(k) is not None else "—")  # noqa: E731
        lines.append(f"| {r['config']} | {r['trainer']} | {r['ms_per_step']:.3f} | {r['ms_min']:.3f} | "
                     f"{f('speedup_vs_plain', '{:.1f}')} | {r['cpu_ms_per_step']:.3f} | "
                     f"{f('cpu_speedup_vs_plain', '{:.1f}')} | {f('ratio_to_difflogic', '{:.2f}')} | "
                     f"{f('peak_mib', '{:.0f}')} |")
    (out / f"{stem}.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {out / stem}.json / .md")


if __name__ == "__main__":
    main()
