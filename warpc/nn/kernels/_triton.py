"""GPU backend: Triton kernels for the WARP-LUT layer (forward, backward, reverse-index input gradient).

Same node-major layout as the CPU backend: activations are (nodes, batch) contiguous, the layer returns the
transposed view. One program handles a tile of BN nodes x BB batch elements; the Walsh terms of a tile live in a
(BN, BB, 2^k) register block, so every k in 2..6 is one kernel specialised by the constexpr K. Logistic noise is
generated in the kernel from Philox (`tl.rand`, seed drawn from torch's CPU generator per call: no host sync).
Activations may be fp32, bf16 or fp16 (the input's dtype is kept); arithmetic and gradients of theta are fp32.
LIN selects the linear output used for DLGN; the _mix_* kernels implement learnable wiring.

Verified against the plain reference under TRITON_INTERPRET=1 (tests/test_kernels.py); timing needs a GPU.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

_TILE = 4096  # BN * BB * 2^k elements of the chi block per program


@triton.jit
def _chi_block(xT, idx, offs_n, offs_b, mn, mb, B, K: tl.constexpr, M: tl.constexpr):
    """chi (BN, BB, M): chi[n, b, m] = prod_{i in m} (1 - 2 x[idx[n, i], b])."""
    m_r = tl.arange(0, M)
    mask = mn[:, None] & mb[None, :]
    chi = tl.full([offs_n.shape[0], offs_b.shape[0], M], 1.0, tl.float32)
    for i in tl.static_range(K):
        src = tl.load(idx + offs_n * K + i, mask=mn, other=0).to(tl.int64)
        xv = tl.load(xT + src[:, None] * B + offs_b[None, :], mask=mask, other=0.0).to(tl.float32)
        s = 1.0 - 2.0 * xv
        bit = ((m_r >> i) & 1) == 1
        chi = chi * tl.where(bit[None, None, :], s[:, :, None], 1.0)
    return chi


@triton.jit
def _fwd_kernel(xT, idx, theta, noise, yT, ysT, out, B, seed, inv_tau, row0, total,
                K: tl.constexpr, MODE: tl.constexpr, ST: tl.constexpr, BN: tl.constexpr, BB: tl.constexpr,
                LIN: tl.constexpr = False):
    M: tl.constexpr = 1 << K
    offs_n = tl.program_id(0) * BN + tl.arange(0, BN)
    offs_b = tl.program_id(1) * BB + tl.arange(0, BB)
    mn = offs_n < out
    mb = offs_b < B
    mask = mn[:, None] & mb[None, :]
    m_r = tl.arange(0, M)
    chi = _chi_block(xT, idx, offs_n, offs_b, mn, mb, B, K, M)
    th = tl.load(theta + offs_n[:, None] * M + m_r[None, :], mask=mn[:, None], other=0.0)
    z = tl.sum(chi * th[:, None, :], axis=2)
    flat = offs_n[:, None].to(tl.int64) * B + offs_b[None, :]
    if LIN:  # linear output y = z (DLGN through its Walsh coefficients)
        tl.store(yT + flat, z.to(yT.dtype.element_ty), mask=mask)
    else:
        if MODE == 1:
            # counter = the sample's place in the (data-parallel) global batch: row0 + b of `total` rows
            counter = offs_n[:, None].to(tl.int64) * total + (row0 + offs_b[None, :])
            u = tl.rand(seed, counter.to(tl.int32))
            u = tl.minimum(tl.maximum(u, 1e-6), 1.0 - 1e-6)
            z = z + (tl.log(u) - tl.log(1.0 - u))
        elif MODE == 2:
            z = z + tl.load(noise + flat, mask=mask, other=0.0).to(tl.float32)
        y = 1.0 / (1.0 + tl.exp(z * inv_tau))
        if ST:
            tl.store(ysT + flat, y, mask=mask)
            y = tl.where(z < 0.0, 1.0, 0.0)
        tl.store(yT + flat, y.to(yT.dtype.element_ty), mask=mask)


@triton.jit
def _bwd_node_kernel(gT, xT, idx, theta, ysT, gth_part, buf, out, B, inv_tau,
                     K: tl.constexpr, NEED_GX: tl.constexpr, BN: tl.constexpr, BB: tl.constexpr,
                     LIN: tl.constexpr = False):
    M: tl.constexpr = 1 << K
    pid_b = tl.program_id(1)
    offs_n = tl.program_id(0) * BN + tl.arange(0, BN)
    offs_b = pid_b * BB + tl.arange(0, BB)
    mn = offs_n < out
    mb = offs_b < B
    mask = mn[:, None] & mb[None, :]
    m_r = tl.arange(0, M)
    chi = _chi_block(xT, idx, offs_n, offs_b, mn, mb, B, K, M)
    flat = offs_n[:, None].to(tl.int64) * B + offs_b[None, :]
    g = tl.load(gT + flat, mask=mask, other=0.0).to(tl.float32)
    if LIN:
        gz = g  # y = z
    else:
        y = tl.load(ysT + flat, mask=mask, other=0.0).to(tl.float32)
        gz = -g * y * (1.0 - y) * inv_tau  # dy/dz = -y (1 - y) / tau; masked lanes are 0
    part = tl.sum(chi * gz[:, :, None], axis=1)  # (BN, M)
    tl.store(gth_part + (pid_b * out + offs_n[:, None]).to(tl.int64) * M + m_r[None, :], part, mask=mn[:, None])
    if NEED_GX:
        for i in tl.static_range(K):
            # dz/ds_i = sum_{m without bit i} theta_{m | 2^i} chi_m
            bit = ((m_r >> i) & 1) == 1
            tp = tl.load(theta + offs_n[:, None] * M + (m_r | (1 << i))[None, :],
                         mask=mn[:, None] & (~bit)[None, :], other=0.0)
            d = tl.sum(chi * tp[:, None, :], axis=2)
            row = (offs_n[:, None] * K + i).to(tl.int64) * B + offs_b[None, :]
            tl.store(buf + row, -2.0 * gz * d, mask=mask)


@triton.jit
def _bwd_input_kernel(buf, w, rev_ptr, rev_slot, gxT, n_in, B, C,
                      WEIGHTED: tl.constexpr, BP: tl.constexpr, BB: tl.constexpr):
    """gx[p, b] = sum over the entries q reading input p of buf[q, b] (reverse index, no atomics). WEIGHTED
    (learnable wiring): q = slot * C + candidate, and the term is w[q] * buf[slot, b]."""
    offs_p = tl.program_id(0) * BP + tl.arange(0, BP)
    offs_b = tl.program_id(1) * BB + tl.arange(0, BB)
    mp = offs_p < n_in
    mb = offs_b < B
    start = tl.load(rev_ptr + offs_p, mask=mp, other=0)
    deg = tl.load(rev_ptr + offs_p + 1, mask=mp, other=0) - start
    acc = tl.zeros([BP, BB], tl.float32)
    for t in range(0, tl.max(deg, axis=0)):
        ok = (t < deg) & mp
        q = tl.load(rev_slot + start + t, mask=ok, other=0).to(tl.int64)
        if WEIGHTED:
            wq = tl.load(w + q, mask=ok, other=0.0)
            row = tl.load(buf + (q // C)[:, None] * B + offs_b[None, :], mask=ok[:, None] & mb[None, :], other=0.0)
            acc += wq[:, None] * row.to(tl.float32)
        else:
            acc += tl.load(buf + q[:, None] * B + offs_b[None, :], mask=ok[:, None] & mb[None, :], other=0.0)
    tl.store(gxT + offs_p[:, None].to(tl.int64) * B + offs_b[None, :], acc.to(gxT.dtype.element_ty),
             mask=mp[:, None] & mb[None, :])


@triton.jit
def _mix_fwd_kernel(xT, cand, w, mT, S, B, C, BS: tl.constexpr, BB: tl.constexpr):
    """Learnable wiring: mT[s, b] = sum_c w[s, c] xT[cand[s, c], b]."""
    offs_s = tl.program_id(0) * BS + tl.arange(0, BS)
    offs_b = tl.program_id(1) * BB + tl.arange(0, BB)
    ms = offs_s < S
    mb = offs_b < B
    mask = ms[:, None] & mb[None, :]
    acc = tl.zeros([BS, BB], tl.float32)
    for c in range(0, C):
        src = tl.load(cand + offs_s * C + c, mask=ms, other=0).to(tl.int64)
        wc = tl.load(w + offs_s * C + c, mask=ms, other=0.0)
        acc += wc[:, None] * tl.load(xT + src[:, None] * B + offs_b[None, :], mask=mask, other=0.0).to(tl.float32)
    tl.store(mT + offs_s[:, None].to(tl.int64) * B + offs_b[None, :], acc.to(mT.dtype.element_ty), mask=mask)


@triton.jit
def _mix_grad_w_kernel(gT, xT, cand, part, S, B, C, BS: tl.constexpr, BB: tl.constexpr):
    """part[pid_b, s, c] = sum over this batch tile of gT[s, b] xT[cand[s, c], b] (summed over tiles outside)."""
    pid_b = tl.program_id(1)
    offs_s = tl.program_id(0) * BS + tl.arange(0, BS)
    offs_b = pid_b * BB + tl.arange(0, BB)
    ms = offs_s < S
    mask = ms[:, None] & (offs_b < B)[None, :]
    g = tl.load(gT + offs_s[:, None].to(tl.int64) * B + offs_b[None, :], mask=mask, other=0.0).to(tl.float32)
    for c in range(0, C):
        src = tl.load(cand + offs_s * C + c, mask=ms, other=0).to(tl.int64)
        xv = tl.load(xT + src[:, None] * B + offs_b[None, :], mask=mask, other=0.0).to(tl.float32)
        tl.store(part + (pid_b * S + offs_s).to(tl.int64) * C + c, tl.sum(g * xv, axis=1), mask=ms)


@triton.jit
def _noise_kernel(nT, total, seed, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    u = tl.rand(seed, offs)
    u = tl.minimum(tl.maximum(u, 1e-6), 1.0 - 1e-6)
    tl.store(nT + offs, tl.log(u) - tl.log(1.0 - u), mask=offs < total)


def _tiles(B: int, k: int) -> tuple[int, int]:
    bb = min(128, triton.next_power_of_2(max(int(B), 1)))
    bn = max(2, _TILE // (bb * (1 << k)))
    return bn, bb


def triton_noise(seed: int, out: int, batch: int, device: torch.device) -> torch.Tensor:
    """The noise (out, batch), node-major, that the forward kernel adds for `seed`."""
    nT = torch.empty(out, batch, device=device, dtype=torch.float32)
    total = out * batch
    _noise_kernel[(triton.cdiv(total, 1024),)](nT, total, seed, BLOCK=1024)
    return nT


class WarpTritonFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, theta, idx32, rev_ptr, rev_slot, tau, mode, seed, noise, st, lin=False, rows=None):
        xT = x.t().contiguous()  # node-major rows; a no-op for the node-major views fused layers return
        th = theta.detach().to(torch.float32).contiguous()
        out, k = idx32.shape
        B = xT.shape[1]
        row0, total = rows if rows is not None else (0, B)
        if out * total >= 2**31:
            from ...errors import ConfigError

            raise ConfigError("layer too large for the Triton kernel's 32-bit noise offsets (out * batch >= 2^31)")
        yT = torch.empty(out, B, device=x.device, dtype=x.dtype)
        ysT = torch.empty(out, B, device=x.device, dtype=torch.float32) if st else yT
        nT = noise.t().to(torch.float32).contiguous() if noise is not None else yT
        bn, bb = _tiles(B, k)
        grid = (triton.cdiv(out, bn), triton.cdiv(B, bb))
        _fwd_kernel[grid](xT, idx32, th, nT, yT, ysT, out, B, int(seed), 1.0 / float(tau), int(row0), int(total),
                          K=k, MODE=int(mode), ST=bool(st), BN=bn, BB=bb, LIN=bool(lin))
        ctx.save_for_backward(xT, th, ysT, idx32, rev_ptr, rev_slot)
        ctx.tau = float(tau)
        ctx.lin = bool(lin)
        ctx.theta_dtype = theta.dtype
        return yT.t()

    @staticmethod
    def backward(ctx, g):
        xT, th, ysT, idx32, rev_ptr, rev_slot = ctx.saved_tensors
        gT = g.t().contiguous()  # node-major rows; a no-op for the node-major views fused layers return
        out, k = idx32.shape
        n_in, B = xT.shape
        need_gx = bool(ctx.needs_input_grad[0])
        bn, bb = _tiles(B, k)
        nbb = triton.cdiv(B, bb)
        part = torch.empty(nbb, out, 1 << k, device=xT.device, dtype=torch.float32)
        buf = torch.empty(out * k, B, device=xT.device, dtype=torch.float32) if need_gx else part
        _bwd_node_kernel[(triton.cdiv(out, bn), nbb)](gT, xT, idx32, th, ysT, part, buf, out, B, 1.0 / ctx.tau,
                                                      K=k, NEED_GX=need_gx, BN=bn, BB=bb, LIN=ctx.lin)
        gtheta = (part[0] if nbb == 1 else part.sum(0)).to(ctx.theta_dtype)
        gx = None
        if need_gx:
            gxT = torch.empty(n_in, B, device=xT.device, dtype=xT.dtype)
            bp = 16
            _bwd_input_kernel[(triton.cdiv(n_in, bp), triton.cdiv(B, bb))](buf, buf, rev_ptr, rev_slot, gxT, n_in,
                                                                           B, 1, WEIGHTED=False, BP=bp, BB=bb)
            gx = gxT.t()
        return gx, gtheta, None, None, None, None, None, None, None, None, None, None


class MixTritonFn(torch.autograd.Function):
    """Learnable wiring: apply(x, w, cand32, rev_ptr, rev_pair) -> the (B, S) view of the node-major mixture."""

    @staticmethod
    def forward(ctx, x, w, cand32, rev_ptr, rev_pair):
        xT = x.t().contiguous()  # node-major rows; a no-op for the node-major views fused layers return
        wd = w.detach().to(torch.float32).contiguous()
        S, C = cand32.shape
        B = xT.shape[1]
        mT = torch.empty(S, B, device=x.device, dtype=x.dtype)
        bb = min(128, triton.next_power_of_2(max(int(B), 1)))
        bs = max(2, _TILE // bb)
        _mix_fwd_kernel[(triton.cdiv(S, bs), triton.cdiv(B, bb))](xT, cand32, wd, mT, S, B, C, BS=bs, BB=bb)
        ctx.save_for_backward(xT, wd, cand32, rev_ptr, rev_pair)
        ctx.w_dtype = w.dtype
        return mT.t()

    @staticmethod
    def backward(ctx, g):
        xT, wd, cand32, rev_ptr, rev_pair = ctx.saved_tensors
        gT = g.t().contiguous()  # node-major rows; a no-op for the node-major views fused layers return
        S, C = cand32.shape
        n_in, B = xT.shape
        bb = min(128, triton.next_power_of_2(max(int(B), 1)))
        bs = max(2, _TILE // bb)
        nbb = triton.cdiv(B, bb)
        part = torch.empty(nbb, S, C, device=xT.device, dtype=torch.float32)
        _mix_grad_w_kernel[(triton.cdiv(S, bs), nbb)](gT, xT, cand32, part, S, B, C, BS=bs, BB=bb)
        gw = (part[0] if nbb == 1 else part.sum(0)).to(ctx.w_dtype)
        gx = None
        if ctx.needs_input_grad[0]:
            gxT = torch.empty(n_in, B, device=xT.device, dtype=xT.dtype)
            bp = 16
            _bwd_input_kernel[(triton.cdiv(n_in, bp), nbb)](gT, wd, rev_ptr, rev_pair, gxT, n_in, B, C,
                                                            WEIGHTED=True, BP=bp, BB=bb)
            gx = gxT.t()
        return gx, gw, None, None, None
