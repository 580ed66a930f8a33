"""CPU backend: the C++ extension in csrc/warplut_cpu.cpp, compiled on first use and cached.

The build goes to $WARPC_CACHE_DIR (default ~/.cache/warpc)/torch_extensions/<name>-<hash>, where the hash covers
the source, the flags, the torch version and the Python ABI, so a changed source or a new torch rebuilds instead of
loading a stale binary. If no compiler is present or the build fails, `load()` returns None once with a warning
and the layer uses the plain PyTorch path.
"""
from __future__ import annotations

import hashlib
import os
import sys
import threading
import warnings
from pathlib import Path

import torch

SRC = Path(__file__).with_name("csrc") / "warplut_cpu.cpp"
# -O3 and OpenMP only: the extension runs wherever the cache is read, so no -march=native.
CFLAGS = ["-O3", "-fopenmp", "-fno-math-errno", "-fno-trapping-math"]
LDFLAGS = ["-fopenmp"]

_lock = threading.Lock()
_state: dict = {"mod": None, "tried": False, "error": None}


def cache_dir() -> Path:
    root = os.environ.get("WARPC_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "warpc")
    return Path(root) / "torch_extensions"


def _build_key() -> str:
    h = hashlib.sha256(SRC.read_bytes())
    h.update(repr((CFLAGS, LDFLAGS, torch.__version__, sys.version_info[:2], sys.platform)).encode())
    return h.hexdigest()[:16]


def load(verbose: bool = False):
    """The compiled module, or None (with a one-time warning) if it cannot be built here."""
    if _state["tried"]:
        return _state["mod"]
    with _lock:
        if _state["tried"]:
            return _state["mod"]
        try:
            from torch.utils import cpp_extension

            name = f"warpc_cpu_{_build_key()}"
            build = cache_dir() / name
            build.mkdir(parents=True, exist_ok=True)
            if not any(build.glob(f"{name}*.so")) and not any(build.glob(f"{name}*.pyd")):
                print(f"warpc: compiling the fused CPU kernel (first use, ~30-60 s; cached in {build})",
                      file=sys.stderr, flush=True)
            _state["mod"] = cpp_extension.load(
                name=name, sources=[str(SRC)], extra_cflags=CFLAGS, extra_ldflags=LDFLAGS,
                build_directory=str(build), verbose=verbose,
            )
        except Exception as e:  # compiler missing, build error, import error: all mean "use the plain path"
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
