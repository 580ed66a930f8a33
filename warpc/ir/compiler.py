"""The middle end's Python API (hls4ml-like): ``net = warpc.compile(ckpt, K=4)`` -> ``net.predict(x)``.

compile() discretizes a checkpoint / model / netlist, runs the optimisation passes to a fixed point and packs the
result into K-input LUT cells; the CompiledNet keeps every stage, the per-pass reports and the packing report.
Pure numpy after discretization (reading a checkpoint or a torch model imports torch).
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import ConfigError
from ..paths import check_folder_can_hold
from .emulate import argmax_lowest, emulate_counts
from .netlist import Netlist
from .passes import ALL_PASSES, PassReport, layer_counts, popcount_rewrite, optimize as _optimize, summarize


@dataclass
class CompiledNet:
    """The compiled network: `netlist` is the final IR (packed into K-LUTs unless K=None)."""

    netlist: Netlist
    stages: dict[str, Netlist] = field(default_factory=dict)  # "discretized", "optimized", "packed"
    report: dict = field(default_factory=dict)
    pass_reports: list[PassReport] = field(default_factory=list)

    def counts(self, x: np.ndarray) -> np.ndarray:
        """Class scores (N, classes) int64 from raw integer features, bit-exact with the hardware."""
        return emulate_counts(self.netlist, x)

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Predicted class (N,) int64; ties go to the lowest class index."""
        return argmax_lowest(self.counts(x))

    def save(self, out_dir: str | Path) -> dict[str, Path]:
        """Write netlist.json + netlist.blif (final), netlist.opt.json/.blif (optimised, unpacked) and
        compile_report.json into out_dir."""
        from .blif import write_blif

        out = check_out_dir(out_dir)
        try:
            out.mkdir(parents=True, exist_ok=True)
            paths = {"netlist.json": self.netlist.save(out / "netlist.json")}
            write_blif(self.netlist, out / "netlist.blif")
            paths["netlist.blif"] = out / "netlist.blif"
            opt = self.stages.get("optimized")
            if opt is not None and opt is not self.netlist:
                paths["netlist.opt.json"] = opt.save(out / "netlist.opt.json")
                write_blif(opt, out / "netlist.opt.blif")
                paths["netlist.opt.blif"] = out / "netlist.opt.blif"
            (out / "compile_report.json").write_text(json.dumps(self.report, indent=1, default=str))
        except OSError as e:
            raise ConfigError(f"cannot write the compiled netlist into {out}: {e.strerror or e}") from None
        paths["compile_report.json"] = out / "compile_report.json"
        return paths

    def layer_table(self) -> list[list]:
        """Rows [layer, count per stage...] with a header row; see report['layers']."""
        lay = self.report.get("layers", {})
        cols = list(lay)
        layers = sorted({int(l) for c in cols for l in lay[c]})
        rows = [["layer", *cols]]
        for l in layers:
            rows.append([l if l >= 0 else "pass", *[lay[c].get(l, 0) for c in cols]])
        rows.append(["total", *[sum(lay[c].values()) for c in cols]])
        return rows


OUTPUT_FILES = ("netlist.json", "netlist.blif", "netlist.opt.json", "netlist.opt.blif", "compile_report.json")


def _written_by_warpc(path: Path) -> bool:
    """Whether an existing output file carries the header warpc compile writes (only those may be replaced)."""
    with path.open("rb") as f:
        head = f.read(256)
    if path.suffix == ".blif":
        return head.startswith(b"# warpc netlist")
    key = b'"summary"' if path.name == "compile_report.json" else b'"format": "warpc-netlist"'
    return head.lstrip().startswith(b"{") and key in head


def check_out_dir(out_dir: str | Path) -> Path:
    """The output folder, checked before any work: a folder (or a path that can become one) that is writable,
    where every output file that already exists was written by warpc compile (a user's file is never replaced)."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"output folder {out} is an existing file; pass a folder (-o DIR)")
    for name in OUTPUT_FILES if out.is_dir() else ():
        f = out / name
        if f.exists() and not (f.is_file() and not f.is_symlink() and _written_by_warpc(f)):
            raise ConfigError(f"{f} exists and was not written by warpc compile; remove it or choose another "
                              "output folder")
    return check_folder_can_hold(out, f"output folder {out}")


def check_compile_options(K, depth, cuts: int, area_rounds: int) -> None:
    """Reject option values the packer cannot use, before any work (ConfigError names the option)."""
    if K is not None and not (_is_int(K) and 3 <= K <= 6):
        raise ConfigError(f"LUT size K={K!r}: choose 3, 4, 5 or 6 (or None to skip packing)")
    if depth is not None and depth != "min" and not (_is_int(depth) and depth >= 1):
        raise ConfigError(f"depth={depth!r}: give a number of LUT levels (1 or more), 'min', or None")
    if not (_is_int(cuts) and cuts >= 2):
        raise ConfigError(f"cuts={cuts!r}: keep at least 2 priority cuts per node")
    if not (_is_int(area_rounds) and area_rounds >= 0):
        raise ConfigError(f"area_rounds={area_rounds!r}: expected a count (0 or more)")


def _is_int(v) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def compile(source, K: int | None = 4, optimize: bool = True, depth: int | str | None = None, cuts: int = 8,
            area_rounds: int = 3, keep_output_bits: bool = False) -> CompiledNet:
    """Discretize, optimise (to a fixed point) and pack into K-input LUTs.

    K: LUT size (4 for iCE40, 6 selectable; None = do not pack). depth: None = area-oriented packing, an int =
    at most that many LUT levels, "min" = minimum depth. keep_output_bits=True keeps every output bit's function
    (by default `popcount_rewrite` may replace output pairs by others with the same per-class sum).
    Returns a CompiledNet with .counts / .predict / .save, .stages and .report (per-pass statistics, packing
    result, timings).
    """
    from .pack import pack

    check_compile_options(K, depth, cuts, area_rounds)
    t0 = time.perf_counter()
    from .source import to_netlist

    net = to_netlist(source)
    stages = {"discretized": net}
    layers = {"discretized": layer_counts(net)}
    timings = {"discretize_s": round(time.perf_counter() - t0, 3)}
    reports: list[PassReport] = []
    cur = net
    if optimize:
        t = time.perf_counter()
        # first round pass by pass, for the per-layer table; then the fixed point
        for p in ALL_PASSES:
            if keep_output_bits and p is popcount_rewrite:
                continue
            cur, rep = p(cur)
            reports.append(rep)
            layers[rep.name] = rep.layers_after
        cur, more = _optimize(cur, head=not keep_output_bits)
        reports += more
        timings["optimize_s"] = round(time.perf_counter() - t, 3)
        stages["optimized"] = cur
        layers["optimized"] = layer_counts(cur)
    pack_report = None
    if K is not None:
        t = time.perf_counter()
        cur, pr = pack(cur, K=K, depth=depth, cuts=cuts, area_rounds=area_rounds, head=not keep_output_bits)
        pack_report = pr.to_dict()
        timings["pack_s"] = round(time.perf_counter() - t, 3)
        stages["packed"] = cur
        layers[f"packed K={K}"] = layer_counts(cur)
    timings["total_s"] = round(time.perf_counter() - t0, 3)
    final = cur
    report = {
        "summary": {
            "K": K, "nodes_discretized": len(net.nodes),
            "nodes_optimized": len(stages["optimized"].nodes) if "optimized" in stages else None,
            "luts": len(final.nodes) if K is not None else None,
            "luts_by_k": final.k_histogram(), "depth": final.depth(),
            "input_bits_used": len(final.used_inputs()), "input_bits": len(net.inputs),
            "seconds": timings["total_s"],
        },
        "stats": {name: n.stats() for name, n in stages.items()},
        "passes": summarize(reports),
        "pass_reports": [r.to_dict() for r in reports],
        "layers": layers,
        "pack": pack_report,
        "timings": timings,
        "K": K,
        "depth_bound": depth,
    }
    return CompiledNet(cur, stages, report, reports)
