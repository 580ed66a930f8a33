"""Fused training backends for WarpLUT: "cpp" (C++/OpenMP extension built on first use) and "triton" (GPU).

`fused_forward(layer, x)` is the hook WarpLUT.forward calls in training mode; it returns None when the plain
PyTorch path should run (backend "torch", no fused backend for this device / dtype / configuration).

Selection: a layer's own `backend` ("torch" | "cpp" | "triton" | "auto") wins unless it is "auto"; then the
global choice (`set_backend(...)`, else the environment variable WARPC_BACKEND, else "auto") applies.
"auto" = triton for CUDA tensors when triton imports, cpp for CPU tensors when the extension builds, else torch.

Layout: the fused layers compute node-major (nodes x batch) and return the transposed view, a (batch, nodes)
tensor whose `.t()` is contiguous; the next fused layer reads it without a copy. Values and shapes are those of
the plain path; only the strides differ (use `.reshape`, not `.view`, on layer outputs).

Covered: WARP for k = 2..6 with every sampling; learnable wiring (a mixture kernel feeds the WARP kernel wired
one-to-one); DLGN (its gate mixture as Walsh coefficients, the WARP kernel with a linear output).
"""
from __future__ import annotations

import os
import warnings
import weakref

import torch

from ...errors import ConfigError
from ..warplut import batch_rows

BACKENDS = ("auto", "torch", "cpp", "triton")
_global_backend: str | None = None
_warned: set[str] = set()
_rev_cache: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def set_backend(name: str | None) -> None:
    """Global backend for layers whose own backend is "auto" (None: back to WARPC_BACKEND / "auto")."""
    if name is not None and name not in BACKENDS:
        raise ConfigError(f"backend must be one of {BACKENDS}, got {name!r}")
    global _global_backend
    _global_backend = name


def get_backend() -> str:
    """The global backend choice: set_backend(...), else $WARPC_BACKEND, else "auto"."""
    if _global_backend is not None:
        return _global_backend
    env = os.environ.get("WARPC_BACKEND", "auto").strip().lower() or "auto"
    if env not in BACKENDS:
        raise ConfigError(f"WARPC_BACKEND must be one of {BACKENDS}, got {env!r}")
    return env


def _warn_once(key: str, msg: str) -> None:
    if key not in _warned:
        _warned.add(key)
        warnings.warn(msg, RuntimeWarning, stacklevel=4)


def cpp_available() -> bool:
    """True if the C++ extension is (or can be) built here. The first call may compile it (~30-60 s)."""
    from . import _cpu

    return _cpu.available()


def triton_selftest(layer, device: torch.device) -> bool:
    """Once per (k, device): the Triton kernels against the plain path on small twins of `layer`'s class
    (warpc.nn.kernels.selftest); False disables Triton for that k with a warning."""
    from .selftest import triton_selftest as run

    return run(layer, device)


def triton_available() -> bool:
    try:
        from . import _triton  # noqa: F401
    except Exception:
        return False
    return True


def _triton_interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def resolve_backend(layer, x: torch.Tensor) -> str:
    """The backend that will run `layer` on `x`: "torch", "cpp" or "triton"."""
    want = getattr(layer, "backend", "auto") or "auto"
    if want not in BACKENDS:
        raise ConfigError(f"backend must be one of {BACKENDS}, got {want!r}")
    if want == "auto":
        want = get_backend()
    if want == "torch":
        return "torch"
    if x.is_cuda:
        if (want in ("auto", "triton") and x.dtype in (torch.float32, torch.bfloat16, torch.float16)
                and triton_available() and triton_selftest(layer, x.device)):
            return "triton"
        if want != "auto":
            _warn_once(f"{want}-cuda", f"warpc: backend {want!r} is not available for CUDA tensors here; using torch")
        return "torch"
    if x.device.type != "cpu":
        return "torch"
    if want == "triton":
        if _triton_interpreting() and triton_available() and triton_selftest(layer, x.device):
            return "triton"  # Triton's CPU interpreter: for tests, slow
        _warn_once("triton-cpu", "warpc: backend 'triton' needs a CUDA tensor (or TRITON_INTERPRET=1); using cpp/torch")
        want = "auto"
    params = layer.theta if layer.parametrization == "warp" else layer.logits
    if x.dtype != torch.float32 or params.dtype != torch.float32:
        return "torch"
    if want in ("auto", "cpp") and cpp_available():
        return "cpp"
    return "torch"


def _csr(flat: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(ptr int64 (n+1), order int32): positions of `flat` grouped by value, ascending within each value."""
    order = torch.argsort(flat, stable=True)
    counts = torch.bincount(flat, minlength=n)
    ptr = torch.zeros(n + 1, dtype=torch.int64, device=flat.device)
    ptr[1:] = torch.cumsum(counts, 0)
    return ptr, order.to(torch.int32).contiguous()


def _cached(layer, tag: str, idx: torch.Tensor, n: int, build):
    """Per-layer cache of index-derived tensors, rebuilt when `idx` changes (new storage, in-place update or
    device)."""
    key = (idx.data_ptr(), idx._version, idx.device, tuple(idx.shape), n)
    per_layer = _rev_cache.setdefault(layer, {})
    hit = per_layer.get(tag)
    if hit is not None and hit[0] == key:
        return hit[1]
    val = build()
    per_layer[tag] = (key, val)
    return val


def reverse_index(layer, idx: torch.Tensor, n_in: int | None = None, tag: str = "idx"
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(idx int32, rev_ptr int64 (in+1), rev_slot int32 (out*k)): the CSR of the slots j*k+i reading each input.
    Cached per layer and tag; rebuilt when the wiring changes."""
    n = layer.in_features if n_in is None else n_in

    def build():
        ptr, order = _csr(idx.reshape(-1), n)
        return idx.to(torch.int32).contiguous(), ptr, order

    return _cached(layer, tag, idx, n, build)


def slot_wiring(layer, device: torch.device) -> torch.Tensor:
    """One-to-one wiring (out, k) of a learnable layer's WARP part onto its mixed slots (slot s = j*k + i)."""
    def build():
        return torch.arange(layer.out_features * layer.k, device=device).view(layer.out_features, layer.k)

    return _cached(layer, f"slots-{device}", layer.cand, layer.out_features * layer.k, build)


def mix_forward(layer, x: torch.Tensor, backend: str) -> torch.Tensor:
    """Learnable wiring on a fused backend: (B, out*k) mixture of each slot's candidate inputs under the softmax
    of `wiring_logits` (differentiable in x and the logits), node-major like a fused layer's output."""
    w = torch.softmax(layer.wiring_logits, -1).reshape(-1, layer.candidates)
    cand = layer.cand.reshape(-1, layer.candidates)

    def build():
        ptr, order = _csr(cand.reshape(-1), layer.in_features)
        return cand.to(torch.int32).contiguous(), ptr, order

    cfg = _cached(layer, "cand", layer.cand, layer.in_features, build)
    if backend == "cpp":
        from ._cpu_fn import MixCpuFn

        return MixCpuFn.apply(x, w, cfg)
    if backend == "triton":
        from ._triton import MixTritonFn

        return MixTritonFn.apply(x, w, *cfg)
    raise ConfigError(f"no fused backend {backend!r}")


def draw_seed() -> int:
    """A 63-bit noise seed from torch's default CPU generator (reproducible under torch.manual_seed, no GPU sync)."""
    return int(torch.empty((), dtype=torch.int64).random_())


def layer_forward(layer, x: torch.Tensor, backend: str, seed: int | None = None,
                  noise: torch.Tensor | None = None) -> torch.Tensor:
    """Training forward of a WARP layer on a fused backend. `noise` (B, out) replaces the kernel's own noise
    (gumbel samplings only); `seed` fixes the kernel's noise (see `kernel_noise`). A learnable-wiring layer first
    mixes its candidate inputs (`mix_forward`), then runs the WARP kernel wired one-to-one onto the mixture."""
    if layer.wiring == "learnable":
        x = mix_forward(layer, x, backend)
        slots = slot_wiring(layer, x.device)
        idx32, rev_ptr, rev_slot = reverse_index(layer, slots, slots.numel(), tag=f"slot-rev-{x.device}")
    else:
        idx32, rev_ptr, rev_slot = reverse_index(layer, layer.idx)
    gumbel = layer.sampling.startswith("gumbel")
    st = layer.sampling.endswith("_st")
    lin = layer.parametrization == "dlgn"
    if lin:
        # DLGN: y = c0 + c1 a + c2 b + c3 ab is multilinear, i.e. the WARP kernel's z with Walsh coefficients
        # softmax(logits) @ DLGN_WALSH, output linear (no noise, no sigmoid); straight-through is applied here.
        theta = layer.coefficients_walsh()
        mode, seed, noise, kernel_st = 0, 0, None, False
    else:
        theta, kernel_st = layer.theta, st
        if not gumbel:
            mode, seed, noise = 0, 0, None
        elif noise is not None:
            mode, seed = 2, 0
        else:
            mode, seed = 1, draw_seed() if seed is None else int(seed)
    rows = batch_rows(x.shape[0])  # a shard of a data-parallel batch draws its rows' noise (warplut.noise_rows)
    if backend == "cpp":
        from ._cpu_fn import WarpCpuFn

        y = WarpCpuFn.apply(x, theta, (idx32, rev_ptr, rev_slot, layer.tau, mode, seed, noise, kernel_st, lin,
                                       rows))
    elif backend == "triton":
        from ._triton import WarpTritonFn

        y = WarpTritonFn.apply(x, theta, idx32, rev_ptr, rev_slot, layer.tau, mode, seed, noise, kernel_st, lin,
                               rows)
    else:
        raise ConfigError(f"no fused backend {backend!r}")
    if lin and st:
        y = y + ((y > 0.5).to(y.dtype) - y).detach()
    return y


def kernel_noise(backend: str, seed: int, batch: int, out: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """The logistic noise (batch, out) that `backend`'s forward adds for `seed` (to feed the plain reference)."""
    if backend == "cpp":
        from . import _cpu

        return _cpu.load().noise(int(seed), out, batch).t()
    if backend == "triton":
        from ._triton import triton_noise

        return triton_noise(int(seed), out, batch, torch.device(device)).t()
    raise ConfigError(f"no fused backend {backend!r}")


def thermometer_bits(x: torch.Tensor, thresholds: torch.Tensor) -> torch.Tensor | None:
    """Training-mode thermometer bits (F*T, B) node-major from the C++ kernel, or None for the PyTorch path.
    Used only when the global backend allows cpp ("auto" / "cpp", so WARPC_BACKEND=torch stays all-PyTorch) and
    the extension is already loaded (a fused layer loaded it; the encoder never triggers a build)."""
    if x.device.type != "cpu" or x.dtype != torch.float32 or x.dim() != 2 or thresholds.dtype != torch.int64:
        return None
    from . import _cpu

    mod = _cpu._state["mod"]
    if mod is None or get_backend() not in ("auto", "cpp"):
        return None
    return mod.thermometer(x, thresholds)


def prepare(layers, device: torch.device | str = "cpu") -> list[str]:
    """Resolve (and so build or self-test) the training backend of each WarpLUT in `layers` before a training loop
    starts, so that the first run's kernel build happens before the first step (and its progress bar), not
    inside it. Returns the backends, one per WarpLUT."""
    warp = [m for m in layers if hasattr(m, "parametrization") and hasattr(m, "in_features")]
    backends = [resolve_backend(m, torch.empty(0, m.in_features, device=device)) for m in warp]
    if "cpp" in backends and omp_spins_long():
        _warn_once("omp-spin", "warpc: torch was imported before warpc, so its OpenMP threads spin-wait 300,000 "
                   "rounds after each parallel region (torch's default); on a busy machine that made CPU training "
                   "steps several times slower (docs/kernels.md). Import warpc before torch, or set "
                   "OMP_WAIT_POLICY=PASSIVE in the environment.")
    return backends


def omp_spins_long() -> bool:
    """True when torch's OpenMP runs with libgomp's long default spin: torch was loaded before warpc could set its
    default and the user set no OpenMP waiting variable (Linux; other runtimes are not measured)."""
    import sys

    from ... import TORCH_LOADED_FIRST

    user = any(os.environ.get(k) for k in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT"))
    return TORCH_LOADED_FIRST and not user and sys.platform.startswith("linux")


def fused_forward(layer, x: torch.Tensor) -> torch.Tensor | None:
    """WarpLUT.forward's hook (training mode): the fused output, or None for the plain path."""
    backend = resolve_backend(layer, x)
    if backend == "torch":
        return None
    return layer_forward(layer, x, backend)


__all__ = ["BACKENDS", "set_backend", "get_backend", "resolve_backend", "cpp_available", "triton_available",
           "triton_selftest",
           "layer_forward", "mix_forward", "kernel_noise", "fused_forward", "reverse_index", "slot_wiring",
           "draw_seed", "thermometer_bits", "prepare", "omp_spins_long"]
