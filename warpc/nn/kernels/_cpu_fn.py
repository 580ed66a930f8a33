"""autograd.Function around the C++ kernels (node-major activations; see warpc/nn/kernels/__init__.py)."""
from __future__ import annotations

import torch

from . import _cpu

_EMPTY = torch.empty(0)


def _input_rows(mod, x: torch.Tensor) -> torch.Tensor:
    """x (B, n) -> its node-major rows (n, B): free for the node-major views fused layers and the encoder return;
    a batch-major input (e.g. a plain tensor handed to the first layer) costs one tiled transpose."""
    xT = x.t()
    if xT.is_contiguous() and xT.dtype == torch.float32:
        return xT
    return mod.node_major(x if x.dtype == torch.float32 else x.float())


def _grad_rows(mod, g: torch.Tensor) -> torch.Tensor:
    gT = g.t()
    if gT.is_contiguous() and gT.dtype == torch.float32:
        return gT
    return mod.node_major(g.to(torch.float32))  # e.g. a batch-major gradient from a plain head


class WarpCpuFn(torch.autograd.Function):
    """apply(x, theta, cfg), cfg = (idx32, rev_ptr, rev_slot, tau, mode, seed, noise, st, lin, rows): the
    non-differentiable arguments travel in one tuple, which keeps autograd's per-call argument handling short.
    lin: linear output y = z (DLGN), no noise or sigmoid; rows = (row0, total): x holds rows [row0, row0 + B) of
    a data-parallel batch of `total` rows (None: the whole batch)."""

    @staticmethod
    def forward(ctx, x, theta, cfg):
        idx32, rev_ptr, rev_slot, tau, mode, seed, noise, st, lin, *rest = cfg
        mod = _cpu.load()
        xT = _input_rows(mod, x)
        th = theta.detach()
        if not th.is_contiguous():
            th = th.contiguous()
        nT = _EMPTY
        if noise is not None:
            nT = noise.t().to(torch.float32).contiguous()
        yT, ysT = mod.forward(xT, idx32, th, float(tau), int(mode), int(seed), nT, bool(st), bool(lin),
                              rest[0] if rest else None)
        ctx.save_for_backward(xT, th, ysT)
        ctx.cfg = (idx32, rev_ptr, rev_slot, float(tau), bool(lin))
        return yT.t()

    @staticmethod
    def backward(ctx, g):
        xT, th, ysT = ctx.saved_tensors
        idx32, rev_ptr, rev_slot, tau, lin = ctx.cfg
        mod = _cpu.load()
        gT = _grad_rows(mod, g)
        need_gx = ctx.needs_input_grad[0]
        gtheta, gxT = mod.backward(gT, xT, idx32, th, ysT, tau, rev_ptr, rev_slot, need_gx, lin)
        return (gxT.t() if need_gx else None), gtheta, None


class MixCpuFn(torch.autograd.Function):
    """Learnable wiring: apply(x, w, cfg), cfg = (cand32 (S, C), rev_ptr, rev_pair); returns the (B, S) view of the
    node-major mixture m[:, s] = sum_c w[s, c] x[:, cand[s, c]] (S = nodes * k slots, w the softmax weights)."""

    @staticmethod
    def forward(ctx, x, w, cfg):
        cand32, rev_ptr, rev_pair = cfg
        mod = _cpu.load()
        xT = _input_rows(mod, x)
        wd = w.detach()
        if not wd.is_contiguous():
            wd = wd.contiguous()
        mT = mod.mix_forward(xT, cand32, wd)
        ctx.save_for_backward(xT, wd)
        ctx.cfg = cfg
        return mT.t()

    @staticmethod
    def backward(ctx, g):
        xT, wd = ctx.saved_tensors
        cand32, rev_ptr, rev_pair = ctx.cfg
        mod = _cpu.load()
        need_gx = ctx.needs_input_grad[0]
        gw, gxT = mod.mix_backward(_grad_rows(mod, g), xT, cand32, wd, rev_ptr, rev_pair, need_gx)
        return (gxT.t() if need_gx else None), gw, None
