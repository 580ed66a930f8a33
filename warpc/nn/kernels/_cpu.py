"""CPU backend: csrc/warplut_cpu.cpp as a plain shared library (no PyTorch headers), built on first use with the
system C++ compiler in a few seconds, cached, and called through ctypes.

Cache: $WARPC_CACHE_DIR (default ~/.cache/warpc)/kernels/warplut_cpu-<key>.so, where the key hashes the source,
the compiler (path and `--version`), the flags and the CPU (model and feature flags: the build uses
-march=native), so a changed source, another compiler or a copied cache on another CPU rebuilds instead of loading
a stale binary. A build goes to a temporary name and is renamed into place (atomic), so two processes building at
once never load a half-written file. Without a compiler, or when the build fails, `load()` warns once and returns
None; the layers then use the plain PyTorch path.

Threads: the library has its own small pool (std::thread; workers spin ~200 us after a kernel, then sleep), so
its kernels use both cores under warpc's passive OpenMP default; when torch's libgomp spins long (torch imported
before warpc, no user setting) the kernels run on torch's OpenMP team instead (see `_use_openmp`).
"""
from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path

import torch

from ...errors import ShapeError

SRC = Path(__file__).with_name("csrc") / "warplut_cpu.cpp"
# -march=native: the cache key includes the CPU, so a binary only runs where it was built, and one code path
# compiles ~2x faster than target_clones (the first run waits for it). -O3, not -O2: GCC 12 vectorises the
# polynomial exp/log loops only at -O3 (the -O2 build measured 3-4x slower per step). A compiler that rejects
# -march=native gets the portable flags.
CFLAGS = ["-O3", "-march=native", "-fopenmp", "-pthread", "-fno-math-errno", "-fno-trapping-math",
          "-Wno-psabi", "-shared", "-fPIC"]
PORTABLE_CFLAGS = [f for f in CFLAGS if f != "-march=native"]
# last resort, a compiler without OpenMP (e.g. Apple clang): the pragmas are ignored, the pool still runs threads
SERIAL_CFLAGS = [f for f in PORTABLE_CFLAGS if f != "-fopenmp"]
ABI_VERSION = 3

_lock = threading.Lock()
_state: dict = {"mod": None, "tried": False, "error": None, "build_seconds": None}


def cache_dir() -> Path:
    root = os.environ.get("WARPC_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "warpc")
    return Path(root) / "kernels"


def compiler() -> str | None:
    """$CXX, else the first of c++ / g++ / clang++ on PATH."""
    if os.environ.get("CXX"):
        return shutil.which(os.environ["CXX"]) or os.environ["CXX"]
    for name in ("c++", "g++", "clang++"):
        path = shutil.which(name)
        if path:
            return path
    return None


def _cpu_identity() -> str:
    """The CPU model and feature flags (what -march=native compiles for)."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return platform.processor() or platform.machine()
    keep = [ln for ln in lines if ln.split(":")[0].strip() in ("model name", "flags", "Features", "CPU part")]
    return "\n".join(dict.fromkeys(keep))  # one copy per distinct line (all cores alike)


def build_key(cxx: str, flags: list[str], version: str | None = None) -> str:
    """Hash of everything the binary depends on: source, compiler (path and version), flags, ABI, platform, CPU."""
    if version is None:
        version = subprocess.run([cxx, "--version"], capture_output=True, text=True, timeout=60).stdout
    h = hashlib.sha256(SRC.read_bytes())
    h.update(repr((cxx, version, flags, ABI_VERSION, sys.platform, platform.machine(), _cpu_identity())).encode())
    return h.hexdigest()[:16]


def _library(cxx: str) -> Path:
    """The cached library for this source / compiler / CPU, built first if missing (native flags, then portable,
    then without OpenMP). Any cached build is used before a build is tried, so a compiler that rejects the native
    flags does not retry them in every process."""
    version = subprocess.run([cxx, "--version"], capture_output=True, text=True, timeout=60).stdout
    targets = [(flags, cache_dir() / f"warplut_cpu-{build_key(cxx, flags, version)}.so")
               for flags in (CFLAGS, PORTABLE_CFLAGS, SERIAL_CFLAGS)]
    for _, target in targets:
        if target.exists():
            return target
    error = None
    for flags, target in targets:
        try:
            _state["build_seconds"] = _build(cxx, flags, target)
            return target
        except RuntimeError as e:
            error = error or e
    raise error


def _build(cxx: str, flags: list[str], target: Path) -> float:
    """Compile to a temporary file next to `target` and rename it into place; returns the seconds it took."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.stem}-", suffix=".so.tmp")
    os.close(fd)
    print("warpc: compiling the fused CPU kernel (first run only) ...", file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    try:
        res = subprocess.run([cxx, *flags, "-o", tmp, str(SRC)], capture_output=True, text=True)
        if res.returncode != 0:
            last = (res.stderr.strip().splitlines() or ["(no output)"])[-1]
            raise RuntimeError(f"{Path(cxx).name} exited with {res.returncode}: {last}")
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    seconds = time.perf_counter() - t0
    print(f"warpc: compiled the fused CPU kernel in {seconds:.1f} s (cached in {target.parent})",
          file=sys.stderr, flush=True)
    return seconds


def load():
    """The kernel library as a `Kernels` object, or None (with a one-time warning) if it cannot be built here."""
    if _state["tried"]:
        return _state["mod"]
    with _lock:
        if _state["tried"]:
            return _state["mod"]
        try:
            cxx = compiler()
            if cxx is None:
                raise RuntimeError("no C++ compiler found (install g++ or clang++, or set CXX)")
            _state["mod"] = Kernels(ctypes.CDLL(str(_library(cxx))))
        except Exception as e:  # compiler missing, build error, load error: all mean "use the plain path"
            _state["error"] = f"{type(e).__name__}: {str(e).strip().splitlines()[-1] if str(e).strip() else ''}"
            warnings.warn(
                f"warpc: the fused CPU kernel could not be built ({_state['error']}); "
                "training uses the plain PyTorch path (set WARPC_BACKEND=torch to silence this).",
                RuntimeWarning, stacklevel=3,
            )
            _state["mod"] = None
        _state["tried"] = True
    return _state["mod"]


def available() -> bool:
    return load() is not None


# ---- the library's entry points as tensor functions ----------------------------------------------------------

_P, _I64, _I32, _F32, _U64 = ctypes.c_void_p, ctypes.c_int64, ctypes.c_int, ctypes.c_float, ctypes.c_uint64
_SIGNATURES = {
    "warpc_abi_version": ([], _I32),
    "warpc_set_openmp": ([_I32], None),
    "warpc_forward": ([_P, _P, _P, _I64, _I64, _I32, _F32, _I32, _U64, _P, _I64, _I64, _I32, _I32, _P, _P, _I32],
                      _I32),
    "warpc_backward": ([_P, _P, _P, _P, _P, _I64, _I64, _I64, _I32, _F32, _P, _P, _I32, _P, _P, _P, _I32], _I32),
    "warpc_noise": ([_U64, _I64, _I64, _P, _I32], None),
    "warpc_thermometer": ([_P, _P, _I64, _I64, _I64, _P, _I32], None),
    "warpc_node_major": ([_P, _I64, _I64, _I64, _I64, _P, _I32], None),
    "warpc_mix_forward": ([_P, _P, _P, _I64, _I64, _I64, _P, _I32], None),
    "warpc_mix_backward": ([_P, _P, _P, _P, _I64, _I64, _I64, _I64, _P, _P, _P, _P, _I32], None),
}


def _use_openmp() -> bool:
    """Run the kernels on torch's OpenMP team rather than the library's pool: when torch's libgomp spins long
    after each op (torch imported before warpc, no OMP_WAIT_POLICY / GOMP_SPINCOUNT), a pool thread would compete
    with those spinning workers (fused step 3.75 ms vs 3.0 ms on torch's team, lightly loaded 2-core machine).
    WARPC_CPU_THREADS=pool|openmp overrides."""
    forced = os.environ.get("WARPC_CPU_THREADS", "").strip().lower()
    if forced in ("pool", "openmp"):
        return forced == "openmp"
    from . import omp_spins_long

    return omp_spins_long()


def _need(ok: bool, what: str) -> None:
    if not ok:
        raise ShapeError(f"fused CPU kernel: {what}")


def _f32(t: torch.Tensor, name: str) -> None:
    _need(t.device.type == "cpu" and t.dtype == torch.float32 and t.is_contiguous(),
          f"{name} must be a contiguous float32 CPU tensor")


def _int(t: torch.Tensor, dtype: torch.dtype, numel: int, name: str) -> None:
    _need(t.dtype == dtype and t.is_contiguous() and t.numel() == numel, f"{name} must be {dtype} with {numel} items")


def _ptr(t: torch.Tensor | None) -> int | None:
    return None if t is None else t.data_ptr()


# Adaptive thread count: on a shared machine the second core is often busy, and a parallel region then waits for
# a preempted thread (one 2,000-node layer measured 2.5-3.6x slower on 2 threads than on 1 next to another
# CPU-bound process, and 1.6x faster with the cores free). Each heavy kernel therefore runs with torch's thread
# count or with one thread, whichever cost less per unit of work lately, and retries the other every
# EXPLORE_EVERY calls. Results do not depend on the choice beyond float rounding (docs/kernels.md).
ADAPTIVE_THREADS = os.environ.get("WARPC_ADAPTIVE_THREADS", "1") != "0"
EXPLORE_EVERY = 32


class ThreadChoice:
    """Per kernel kind: the thread count to use next, from recent measured costs (seconds per unit of work)."""

    def __init__(self) -> None:
        self.cost: dict = {}
        self.calls: dict = {}

    def pick(self, kind) -> int:
        n = torch.get_num_threads()
        if n <= 1 or not ADAPTIVE_THREADS:
            return n
        calls = self.calls[kind] = self.calls.get(kind, 0) + 1
        many, one = self.cost.get((kind, n)), self.cost.get((kind, 1))
        if many is None:
            return n
        if one is None:
            return 1
        best, other = (n, 1) if many <= one else (1, n)
        return other if calls % EXPLORE_EVERY == 0 else best

    def record(self, kind, threads: int, seconds: float, work: int) -> None:
        if work <= 0:
            return
        key, cost = (kind, threads), seconds / work
        old = self.cost.get(key)
        self.cost[key] = cost if old is None else 0.5 * (old + cost)


def _timed(choice: ThreadChoice, kind, work: int, call):
    """Run call(threads) with the chosen thread count and record its cost."""
    threads = choice.pick(kind)
    t0 = time.perf_counter()
    rc = call(threads)
    choice.record(kind, threads, time.perf_counter() - t0, work)
    return rc


class Kernels:
    """Tensor-level wrappers (allocation, shape checks, thread count) around the library's C functions."""

    def __init__(self, lib: ctypes.CDLL):
        for name, (args, res) in _SIGNATURES.items():
            fn = getattr(lib, name)
            fn.argtypes, fn.restype = args, res
        if lib.warpc_abi_version() != ABI_VERSION:
            raise RuntimeError(f"kernel library ABI {lib.warpc_abi_version()} != {ABI_VERSION}")
        self.lib = lib
        self.openmp = _use_openmp()
        lib.warpc_set_openmp(int(self.openmp))
        self.threads = ThreadChoice()
        self._local = threading.local()

    def _scratch(self, numel: int) -> torch.Tensor:
        """A reused per-thread float32 buffer of at least `numel` items: a fresh 2 MB tensor per backward cost its
        page faults in every step (and made two threads look slower to the adaptive choice)."""
        buf = getattr(self._local, "buf", None)
        if buf is None or buf.numel() < numel:
            buf = self._local.buf = torch.empty(numel, dtype=torch.float32)
        return buf

    def forward(self, xT, idx, theta, tau, mode, seed, noiseT, st, lin, rows=None):
        """xT (in, B), idx (out, k) int32, theta (out, 2^k) -> (yT, ysT) node-major; ysT is yT unless st.
        rows = (row0, total): the batch is rows [row0, row0 + B) of a `total`-row batch split over processes,
        and mode 1 draws those rows' noise (default: the whole batch)."""
        _f32(xT, "xT")
        _f32(theta, "theta")
        out, k = idx.shape
        B = xT.shape[1]
        _int(idx, torch.int32, out * k, "idx")
        _need(2 <= k <= 6 and theta.shape == (out, 1 << k), "k must be 2..6 and theta (out, 2^k)")
        row0, total = rows if rows is not None else (0, B)
        _need(0 <= row0 and row0 + B <= total, "noise rows outside the batch")
        _need(out * total < 2**32, "layer too large for the 32-bit noise counter")
        if mode == 2:
            _f32(noiseT, "noiseT")
            _need(tuple(noiseT.shape) == (out, B), "noise shape mismatch")
        yT = torch.empty((out, B), dtype=torch.float32)
        ysT = torch.empty((out, B), dtype=torch.float32) if st else yT
        rc = _timed(self.threads, ("forward", k), out * B, lambda threads: self.lib.warpc_forward(
            xT.data_ptr(), idx.data_ptr(), theta.data_ptr(), B, out, k, 1.0 / tau, mode, seed & (2**64 - 1),
            _ptr(noiseT) if mode == 2 else None, row0, total, st, lin, yT.data_ptr(), ysT.data_ptr(), threads))
        _need(rc == 0, f"forward rejected its arguments ({rc})")
        return yT, ysT

    def backward(self, gT, xT, idx, theta, ysT, tau, rev_ptr, rev_slot, need_gx, lin):
        """-> (gtheta (out, 2^k), gxT (in, B) or None)."""
        for t, name in ((gT, "gT"), (xT, "xT"), (theta, "theta"), (ysT, "ysT")):
            _f32(t, name)
        n_in, B = xT.shape
        out, k = idx.shape
        _need(tuple(gT.shape) == (out, B) and tuple(ysT.shape) == (out, B), "gradient / output shape mismatch")
        gtheta = torch.empty_like(theta)
        gxT = None
        kind = ("backward", k, bool(need_gx))
        threads = self.threads.pick(kind)
        if need_gx:
            _int(rev_ptr, torch.int64, n_in + 1, "rev_ptr")
            _int(rev_slot, torch.int32, out * k, "rev_slot")
            gxT = torch.empty((n_in, B), dtype=torch.float32)
        # scratch rows for the multi-threaded input gradient (one thread accumulates in place)
        buf = self._scratch(out * k * B) if need_gx and threads > 1 else None
        t0 = time.perf_counter()
        rc = self.lib.warpc_backward(gT.data_ptr(), xT.data_ptr(), idx.data_ptr(), theta.data_ptr(), ysT.data_ptr(),
                                     n_in, B, out, k, 1.0 / tau, _ptr(rev_ptr) if need_gx else None,
                                     _ptr(rev_slot) if need_gx else None, lin, gtheta.data_ptr(), _ptr(gxT),
                                     _ptr(buf), threads)
        self.threads.record(kind, threads, time.perf_counter() - t0, out * B)
        _need(rc == 0, f"backward rejected its arguments ({rc})")
        return gtheta, gxT

    def noise(self, seed: int, out: int, B: int) -> torch.Tensor:
        """The logistic noise (out, B) the forward adds for `seed`."""
        nT = torch.empty((out, B), dtype=torch.float32)
        self.lib.warpc_noise(int(seed) & (2**64 - 1), out, B, nT.data_ptr(), torch.get_num_threads())
        return nT

    def thermometer(self, x: torch.Tensor, thr: torch.Tensor) -> torch.Tensor:
        """x (B, F) float32, thresholds (F, T) int64 -> node-major bits (F * T, B) float32."""
        _need(x.dim() == 2 and x.dtype == torch.float32 and x.device.type == "cpu", "x must be (B, F) float32 CPU")
        _need(thr.dim() == 2 and thr.dtype == torch.int64 and thr.shape[0] == x.shape[1],
              "thresholds must be (F, T) int64")
        x, thr = x.contiguous(), thr.contiguous()
        (B, F), T = x.shape, thr.shape[1]
        bits = torch.empty((F * T, B), dtype=torch.float32)
        self.lib.warpc_thermometer(x.data_ptr(), thr.data_ptr(), B, F, T, bits.data_ptr(), torch.get_num_threads())
        return bits

    def node_major(self, x: torch.Tensor) -> torch.Tensor:
        """(B, n) float32 with any strides -> (n, B) contiguous."""
        _need(x.dim() == 2 and x.dtype == torch.float32 and x.device.type == "cpu", "x must be 2-D float32 CPU")
        B, n = x.shape
        out = torch.empty((n, B), dtype=torch.float32)
        self.lib.warpc_node_major(x.data_ptr(), B, n, x.stride(0), x.stride(1), out.data_ptr(),
                                  torch.get_num_threads())
        return out

    def _mix_args(self, xT, cand, w):
        _f32(xT, "xT")
        _f32(w, "w")
        _need(cand.dtype == torch.int32 and cand.is_contiguous() and cand.dim() == 2 and cand.shape[1] >= 1,
              "cand must be int32 (slots, candidates)")
        _need(w.shape == cand.shape, "w must match cand")
        return cand.shape[0], cand.shape[1], xT.shape[1]

    def mix_forward(self, xT, cand, w) -> torch.Tensor:
        """xT (in, B), cand (S, C) int32, w (S, C) -> mT (S, B)."""
        S, C, B = self._mix_args(xT, cand, w)
        mT = torch.empty((S, B), dtype=torch.float32)
        _timed(self.threads, "mix_forward", S * C * B, lambda threads: self.lib.warpc_mix_forward(
            xT.data_ptr(), cand.data_ptr(), w.data_ptr(), S, C, B, mT.data_ptr(), threads))
        return mT

    def mix_backward(self, gT, xT, cand, w, rev_ptr, rev_pair, need_gx):
        """-> (gw (S, C), gxT (in, B) or None)."""
        S, C, B = self._mix_args(xT, cand, w)
        _f32(gT, "gT")
        _need(tuple(gT.shape) == (S, B), "gT shape mismatch")
        n_in = xT.shape[0]
        gw = torch.empty((S, C), dtype=torch.float32)
        gxT = None
        if need_gx:
            _int(rev_ptr, torch.int64, n_in + 1, "rev_ptr")
            _int(rev_pair, torch.int32, S * C, "rev_pair")
            gxT = torch.empty((n_in, B), dtype=torch.float32)
        _timed(self.threads, ("mix_backward", bool(need_gx)), S * C * B, lambda threads: self.lib.warpc_mix_backward(
            gT.data_ptr(), xT.data_ptr(), cand.data_ptr(), w.data_ptr(), S, C, B, n_in,
            _ptr(rev_ptr) if need_gx else None, _ptr(rev_pair) if need_gx else None, gw.data_ptr(), _ptr(gxT),
            threads))
        return gw, gxT
