"""Backend build: toolchain runs, reports, equivalence checks, flashing, host-side streaming.

`warpc.build` is both this package and the function `warpc.build(source, board=..., out=...)`: importing any
submodule makes Python bind the package to the name `build` in `warpc`, so the package itself is callable and
forwards to `warpc.build.flow.build`.
"""
from __future__ import annotations

import sys
import types


class _CallablePackage(types.ModuleType):
    def __call__(self, source, board: str = "icebreaker", out="build", **kwargs) -> dict:
        from .flow import build as _build

        return _build(source, board=board, out=out, **kwargs)


sys.modules[__name__].__class__ = _CallablePackage
