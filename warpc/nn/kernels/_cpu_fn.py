"""autograd.Function around the C++ kernels (node-major activations; see warpc/nn/kernels/__init__.py)."""
from __future__ import annotations

import torch

from . import _cpu

_EMPTY = torch.empty(0)


class WarpCpuFn(torch.autograd.Function):
    """apply(x, theta, cfg), cfg = (idx32, rev_ptr, rev_slot, tau, mode, seed, noise, st): the non-differentiable
    arguments travel in one tuple, which keeps autograd's per-call argument handling short."""

    @staticmethod
    def forward(ctx, x, theta, cfg):
        idx32, rev_ptr, rev_slot, tau, mode, seed, noise, st = cfg
        mod = _cpu.load()
        xT = x.t()
        if not xT.is_contiguous():
            # batch-major input (e.g. a plain tensor handed to the first layer): one tiled transpose. Later layers,
            # and a first layer fed by the thermometer encoder in training, receive node-major views.
            xT = mod.node_major(x if x.dtype == torch.float32 else x.float())
        th = theta.detach()
        if not th.is_contiguous():
            th = th.contiguous()
        nT = _EMPTY
        if noise is not None:
            nT = noise.t().to(torch.float32).contiguous()
        yT, ysT = mod.forward(xT, idx32, th, float(tau), int(mode), int(seed), nT, bool(st))
        ctx.save_for_backward(xT, th, ysT)
        ctx.cfg = (idx32, rev_ptr, rev_slot, float(tau))
        return yT.t()

    @staticmethod
    def backward(ctx, g):
        xT, th, ysT = ctx.saved_tensors
        idx32, rev_ptr, rev_slot, tau = ctx.cfg
        mod = _cpu.load()
        gT = g.t()
        if not gT.is_contiguous() or gT.dtype != torch.float32:
            gT = mod.node_major(g.to(torch.float32))  # e.g. a batch-major gradient from a plain head
        need_gx = ctx.needs_input_grad[0]
        gtheta, gxT = mod.backward(gT, xT, idx32, th, ysT, tau, rev_ptr, rev_slot, need_gx)
        return (gxT.t() if need_gx else None), gtheta, None
