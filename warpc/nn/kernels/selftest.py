"""First-use self-test of the Triton kernels on a device: small twins of the layer being dispatched, built from
the layer's own class (so this package never imports warpc.nn.warplut), run on the Triton kernels and on the
plain path, forward and gradients compared. A failure disables Triton for that k with one warning."""
from __future__ import annotations

import torch

results: dict = {}  # (k, device) -> passed


def _twins(cls, device, k, sampling, **kw):
    def make(backend):
        return cls(16, 8, k=k, sampling=sampling, init="random", seed=0, backend=backend, **kw).to(device)

    layer, plain = make("triton"), make("torch")
    if layer.wiring == "learnable":
        with torch.no_grad():
            logits = torch.randn(layer.wiring_logits.shape, generator=torch.Generator().manual_seed(1))
            layer.wiring_logits.copy_(logits)
            plain.wiring_logits.copy_(logits)
    return layer, plain


def _case(cls, device, k, sampling, **kw) -> str:
    """One case against the plain twin (same seed). Returns "" when forward and gradients agree, else what
    differed."""
    from . import layer_forward

    layer, plain = _twins(cls, device, k, sampling, **kw)
    x = torch.rand(8, 16, device=device, requires_grad=True)
    x2 = x.detach().clone().requires_grad_(True)
    y = layer_forward(layer, x, "triton")
    yr = plain(x2)
    if sampling.endswith("_st"):  # hard outputs: equal except where z is within rounding of 0
        ok_fwd = bool((y.float() == yr).float().mean() > 0.99)
    else:
        ok_fwd = torch.allclose(y.float(), yr, rtol=1e-4, atol=1e-5)
    (y.float() * torch.arange(8, device=device)).sum().backward()
    (yr * torch.arange(8, device=device)).sum().backward()
    grads = [(x, x2)] + [(p, q) for p, q in zip(layer.parameters(), plain.parameters())]
    ok_bwd = all(torch.allclose(a.grad, b.grad, rtol=1e-3, atol=1e-4) for a, b in grads)
    return "" if ok_fwd and ok_bwd else f"results differ from the plain path ({sampling}, {kw or 'warp'})"


def _noise_case(cls, device, k) -> str:
    """In-kernel noise: a seeded call equals the call fed that seed's noise (kernel_noise)."""
    from . import kernel_noise, layer_forward

    layer, _ = _twins(cls, device, k, "gumbel")
    x = torch.rand(8, 16, device=device)
    y = layer_forward(layer, x, "triton", seed=11)
    yn = layer_forward(layer, x, "triton", noise=kernel_noise("triton", 11, 8, 8, device))
    return "" if torch.allclose(y.float(), yn.float(), rtol=1e-4, atol=1e-5) else "in-kernel noise differs"


def triton_selftest(layer, device: torch.device) -> bool:
    """Compile and check the Triton kernels for `layer.k` on `device` once (soft and straight-through against the
    plain path, in-kernel noise, learnable wiring, and DLGN for k = 2), using twins of `type(layer)`."""
    from . import _warn_once

    k, cls = int(layer.k), type(layer)
    key = (k, str(device))
    if key in results:
        return results[key]
    cases = [("soft", {}), ("soft_st", {}), ("soft", {"wiring": "learnable", "candidates": 3})]
    if k == 2:
        cases.append(("soft", {"parametrization": "dlgn"}))
    why = ""
    try:
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            for sampling, kw in cases:
                why = _case(cls, device, k, sampling, **kw)
                if why:
                    break
            why = why or _noise_case(cls, device, k)
    except Exception as e:  # compile / launch errors
        why = f"{type(e).__name__}: {str(e).strip().splitlines()[-1] if str(e).strip() else ''}"[:300]
    if why:
        _warn_once(f"triton-selftest-{key}", f"warpc: Triton kernels disabled for k={k} on {device} ({why}); "
                   "using the plain PyTorch path")
    results[key] = not why
    return results[key]
