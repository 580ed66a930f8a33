#!/usr/bin/env python
"""Discrete test accuracy vs training seconds on Fashion-MNIST: warpc WARP (fused backend) vs DLGN.

Trainers: `warp` (warpc WARP-LUT, fused backend, fixed unique wiring), `warp-learnable` (the same with learnable
first-layer wiring, widths from --learnable-widths), `warp-plain` (WARP on the plain PyTorch path), `dlgn`
(warpc's DLGN on the fused kernels), `dlgn-learnable` (the same with learnable first-layer wiring and
--learnable-widths), `dlgn-plain` (warpc's DLGN on the plain PyTorch path), and `difflogic` (difflogic's LogicLayer, random connections, when importable: its CUDA
kernel on a GPU, its own "python" implementation on the CPU; DIFFLOGIC_SRC may point at its unpacked source).

Both nets: thermometer bits (3 uniform thresholds per pixel, computed once and kept on the device), the same
widths, k = 2, GroupSum head, Adam, batch 128, the same seeds. Each trainer gets the same wall-clock training
budget; at fixed intervals training pauses and the *discrete* (eval-mode, hard LUT) network is scored on the
10,000 test images in large batches. Evaluation time is not counted as training time.

  python scripts/bench_convergence.py --widths 4000 4000 4000 4000 --seconds 150 --threads 1   # CPU, short
  python scripts/bench_convergence.py --widths 8000 8000 8000 8000 8000 8000 --seconds 60 --device cuda \\
      --target 0.856                                                                          # the issue's setup

Writes scripts/results/convergence_<device>[_tag].{json,md}.
"""
from __future__ import annotations

import argparse
import gzip
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from warpc.nn import GroupSum, WarpLUT  # noqa: E402
from warpc.nn import kernels  # noqa: E402
from warpc.training import resolve_device  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _peers import import_difflogic  # noqa: E402

DATA = Path("/usr/share/datasets/fashion-mnist")


def _read_idx(path: Path) -> np.ndarray:
    """Tiny IDX reader (used only if warpc.data is unavailable)."""
    raw = gzip.open(path).read() if path.suffix == ".gz" else path.read_bytes()
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load_fashion(data_dir: Path):
    try:
        from warpc.data.readers import read_idx_dataset

        return read_idx_dataset(data_dir)
    except ImportError:
        names = ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                 "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]
        return tuple(_read_idx(data_dir / n) for n in names)


def thermometer(x: np.ndarray, t: int) -> torch.Tensor:
    x = x.reshape(len(x), -1).astype(np.float32)
    thr = (np.arange(1, t + 1) * 256.0 / (t + 1)).astype(np.float32)
    return torch.from_numpy((x[:, :, None] >= thr).reshape(len(x), -1).astype(np.float32))


class Net(nn.Module):
    def __init__(self, n_in, widths, parametrization, tau_head, init, seed, backend, first_wiring="unique",
                 device_type="cpu"):
        super().__init__()
        layers, n = [], n_in
        for i, w in enumerate(widths):
            if parametrization == "difflogic":
                cuda = device_type == "cuda"
                difflogic, _ = import_difflogic(cpu_ok=not cuda)  # CPU: difflogic's own python implementation
                layers.append(difflogic.LogicLayer(n, w, device="cuda" if cuda else "cpu",
                                                   implementation="cuda" if cuda else "python", connections="random"))
            else:
                layers.append(WarpLUT(n, w, k=2, sampling="gumbel", init=init,
                                      wiring=first_wiring if i == 0 else "unique",
                                      parametrization=parametrization, seed=seed * 1000 + i, backend=backend))
            n = w
        self.layers = nn.Sequential(*layers)
        self.head = GroupSum(10, tau_head)

    def forward(self, x):
        return self.head(self.layers(x))


@torch.no_grad()
def discrete_accuracy(model, x, y, batch=1000):
    model.eval()
    correct = 0
    for i in range(0, len(x), batch):
        correct += (model(x[i:i + batch]).argmax(-1) == y[i:i + batch]).sum()
    model.train()
    return correct.item() / len(x)


def make_optimizer(model, lr, device):
    """The same optimizer for every trainer: fused torch Adam on CUDA, warpc's (fused) Adam on the CPU."""
    if device.type == "cuda":
        return torch.optim.Adam(model.parameters(), lr=lr, fused=True)
    from warpc.training import Adam

    return Adam(model.parameters(), lr=lr)


def run(name, model, lr, xtr, ytr, xte, yte, args, device):
    opt = make_optimizer(model, lr, device)
    loss_fn = nn.CrossEntropyLoss()
    g = torch.Generator(device="cpu").manual_seed(args.seed)
    n = len(xtr)
    curve, trained, steps, next_eval = [], 0.0, 0, args.eval_every
    perm = torch.randperm(n, generator=g).to(device)
    pos = 0
    reached = None
    while trained < args.seconds:
        t0 = time.perf_counter()
        for _ in range(args.chunk):  # a chunk of steps between clock reads: no per-step host sync
            if pos + args.batch > n:
                perm, pos = torch.randperm(n, generator=g).to(device), 0
            sel = perm[pos:pos + args.batch]
            pos += args.batch
            loss = loss_fn(model(xtr[sel]), ytr[sel])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        trained += time.perf_counter() - t0
        steps += args.chunk
        if trained >= next_eval or trained >= args.seconds:
            acc = discrete_accuracy(model, xte, yte)
            curve.append(dict(seconds=round(trained, 2), steps=steps, test_acc=acc, loss=loss.item()))
            print(f"{name:28s} {trained:7.1f} s {steps:6d} steps  loss {loss.item():.3f}  discrete test {acc:.4f}",
                  flush=True)
            if reached is None and args.target and acc >= args.target:
                reached = dict(seconds=round(trained, 2), steps=steps)
            next_eval = trained + args.eval_every
    return dict(trainer=name, lr=lr, curve=curve, reached_target=reached,
                best=max(c["test_acc"] for c in curve), steps=steps)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--widths", type=int, nargs="+", default=[4000] * 4)
    ap.add_argument("--thresholds", type=int, default=3)
    ap.add_argument("--tau-head", type=float, default=10.0)
    ap.add_argument("--init", default="random", choices=["random", "residual"])
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--lr-warp", type=float, default=0.01)
    ap.add_argument("--lr-dlgn", type=float, default=0.01)
    ap.add_argument("--seconds", type=float, default=150.0, help="training budget per trainer")
    ap.add_argument("--eval-every", type=float, default=15.0, help="seconds of training between evaluations")
    ap.add_argument("--chunk", type=int, default=20, help="steps between clock reads")
    ap.add_argument("--target", type=float, default=None, help="report the first time this accuracy is reached")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--trainers", nargs="+", default=["warp", "dlgn"],
                    choices=["warp", "warp-learnable", "warp-plain", "dlgn", "dlgn-learnable", "dlgn-plain",
                             "difflogic"])
    ap.add_argument("--learnable-widths", type=int, nargs="+", default=None,
                    help="widths of the warp-learnable trainer (default: --widths)")
    ap.add_argument("--lr-difflogic", type=float, default=0.01)
    ap.add_argument("--warmup", type=int, default=3,
                    help="steps on a throwaway model before the clock starts (kernel compiles), 0 = none")
    ap.add_argument("--data-dir", default=str(DATA))
    ap.add_argument("--tag", default="")
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "results"))
    args = ap.parse_args()
    device = resolve_device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    xtr, ytr, xte, yte = load_fashion(Path(args.data_dir))
    # data on the device once, as bits
    xtr_b, xte_b = thermometer(xtr, args.thresholds).to(device), thermometer(xte, args.thresholds).to(device)
    ytr_t, yte_t = torch.from_numpy(ytr.astype(np.int64)).to(device), torch.from_numpy(yte.astype(np.int64)).to(device)
    n_in = xtr_b.shape[1]
    def build(t):
        """(name, lr, model) for trainer t, seeded alike."""
        torch.manual_seed(args.seed)
        if t in ("dlgn", "dlgn-plain"):
            model = Net(n_in, args.widths, "dlgn", args.tau_head, args.init, args.seed,
                        "torch" if t == "dlgn-plain" else "auto").to(device)
            return f"DLGN ({kernels.resolve_backend(model.layers[0], xtr_b[:2])} backend)", args.lr_dlgn, model
        if t == "difflogic":
            name = "difflogic CUDA (DLGN)" if device.type == "cuda" else "difflogic python impl. (DLGN, CPU)"
            return name, args.lr_difflogic, Net(n_in, args.widths, "difflogic", args.tau_head, args.init, args.seed,
                                                None, device_type=device.type).to(device)
        if t in ("warp-learnable", "dlgn-learnable"):
            widths = args.learnable_widths or args.widths
            par = t.split("-")[0]
            model = Net(n_in, widths, par, args.tau_head, args.init, args.seed, "auto",
                        first_wiring="learnable").to(device)
            used = kernels.resolve_backend(model.layers[0], xtr_b[:2])
            return (f"{par.upper()} learnable wiring {widths} ({used})",
                    args.lr_warp if par == "warp" else args.lr_dlgn, model)
        backend = "torch" if t == "warp-plain" else "auto"
        model = Net(n_in, args.widths, "warp", args.tau_head, args.init, args.seed, backend).to(device)
        return f"WARP ({kernels.resolve_backend(model.layers[0], xtr_b[:2])} backend)", args.lr_warp, model

    results, warmups = [], {}
    for t in args.trainers:
        try:
            name, lr, model = build(t)
        except Exception as e:  # a peer that is not installed here (difflogic without CUDA): reported, not fatal
            print(f"{t} skipped: {type(e).__name__}: {e}", flush=True)
            continue
        if args.warmup:
            # Kernel builds, JIT compiles and allocator warm-up happen once per process, not per training run:
            # a few steps on this model, then a fresh one with the same seed. The time is reported, not counted.
            t0 = time.perf_counter()
            opt = make_optimizer(model, lr, device)
            for _ in range(args.warmup):
                loss = nn.functional.cross_entropy(model(xtr_b[:args.batch]), ytr_t[:args.batch])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            if device.type == "cuda":
                torch.cuda.synchronize()
            warmups[name] = round(time.perf_counter() - t0, 2)
            del model, opt
            name, lr, model = build(t)
        results.append(run(name, model, lr, xtr_b, ytr_t, xte_b, yte_t, args, device))
        results[-1]["warmup_seconds"] = warmups.get(name)
        del model
    hw = torch.cuda.get_device_name() if device.type == "cuda" else platform.processor() or platform.machine()
    meta = dict(device=device.type, hardware=hw, threads=torch.get_num_threads(), torch=torch.__version__,
                command=" ".join(sys.argv), date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                widths=args.widths, thresholds=args.thresholds, tau_head=args.tau_head, init=args.init,
                batch=args.batch, seconds=args.seconds, warmup_steps=args.warmup)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"convergence_{device.type}" + (f"_{args.tag}" if args.tag else "")
    (out / f"{stem}.json").write_text(json.dumps(dict(meta=meta, results=results), indent=1))
    lines = [f"# Fashion-MNIST convergence ({device.type}: {hw}, {meta['threads']} threads)", "",
             f"`{meta['command']}` — {meta['date']}", "",
             f"widths {args.widths}, k = 2, {args.thresholds} thresholds, GroupSum τ {args.tau_head}, "
             f"init {args.init}, batch {args.batch}, Adam; discrete test accuracy on 10,000 images.", "",
             "| trainer | lr | steps | training s | best discrete test acc | curve (s: acc) |", "|---|---|---|---|---|---|"]
    for r in results:
        curve = ", ".join(f"{c['seconds']:.0f}: {c['test_acc']:.3f}" for c in r["curve"])
        lines.append(f"| {r['trainer']} | {r['lr']} | {r['steps']} | {r['curve'][-1]['seconds']:.0f} | "
                     f"{r['best']:.4f} | {curve} |")
    if args.target:
        lines += ["", f"Time to {args.target:.1%}: " + "; ".join(
            f"{r['trainer']}: {r['reached_target']['seconds']} s" if r["reached_target"] else f"{r['trainer']}: not reached"
            for r in results)]
    (out / f"{stem}.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {out / stem}.json / .md")


if __name__ == "__main__":
    main()
