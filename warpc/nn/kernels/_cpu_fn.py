"""autograd.Function around the C++ kernels (node-major activations; see warpc/nn/kernels/__init__.py)."""
from __future__ import annotations

import torch

from . import _cpu

_EMPTY = torch.empty(0)


class WarpCpuFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, theta, idx32, rev_ptr, rev_slot, tau, mode, seed, noise, st):
        mod = _cpu.load()
        xT = x.t()
        if not xT.is_contiguous():
            # first layer (batch-major input): one tiled transpose; later layers receive node-major views
            xT = mod.node_major(x if x.dtype == torch.float32 else x.float())
        th = theta.detach().contiguous()
        nT = _EMPTY
        if noise is not None:
            nT = noise.t().to(torch.float32).contiguous()
        yT, ysT = mod.forward(xT, idx32, th, float(tau), int(mode), int(seed), nT, bool(st))
        ctx.save_for_backward(xT, th, ysT, idx32, rev_ptr, rev_slot)
        ctx.tau = float(tau)
        return yT.t()

    @staticmethod
    def backward(ctx, g):
        xT, th, ysT, idx32, rev_ptr, rev_slot = ctx.saved_tensors
        gT = g.t()
        if not gT.is_contiguous() or gT.dtype != torch.float32:
            gT = _cpu.load().node_major(g.to(torch.float32))  # e.g. GroupSum's (expanded) gradient
        need_gx = bool(ctx.needs_input_grad[0])
        gtheta, gxT = _cpu.load().backward(gT, xT, idx32, th, ysT, ctx.tau, rev_ptr, rev_slot, need_gx)
        gx = gxT.t() if need_gx else None
        return gx, gtheta, None, None, None, None, None, None, None, None
