"""Importing the peer trainers the benchmarks compare against (never needed by warpc itself).

difflogic imports its compiled CUDA extension at module load, even though its `implementation="python"` path
(the one its README names as the CPU implementation) never calls it. On a machine without the extension,
`import_difflogic(cpu_ok=True)` loads the package with a placeholder for that module, so the CPU path can be
timed; any call into the placeholder raises. Point DIFFLOGIC_SRC at an unpacked difflogic source tree (e.g. from
scripts/gpu/prepare.sh's sdist) when the package is not installed.
"""
from __future__ import annotations

import importlib
import os
import sys
import types


def import_difflogic(cpu_ok: bool = False):
    src = os.environ.get("DIFFLOGIC_SRC")
    if src and src not in sys.path:
        sys.path.insert(0, src)
    try:
        return importlib.import_module("difflogic"), "cuda"
    except ModuleNotFoundError as e:
        if not cpu_ok or e.name != "difflogic_cuda":
            raise
    stub = types.ModuleType("difflogic_cuda")

    def _missing(*_a, **_k):
        raise RuntimeError("difflogic's CUDA extension is not built here (CPU python implementation only)")

    stub.__getattr__ = lambda name: _missing  # type: ignore[attr-defined]
    sys.modules["difflogic_cuda"] = stub
    sys.modules.pop("difflogic", None)
    sys.modules.pop("difflogic.difflogic", None)
    return importlib.import_module("difflogic"), "python"
