"""report.json: hls4ml-like totals (LUT, FF, CARRY, BRAM, IO, Fmax_MHz, Latency_cycles, Interval_cycles) plus
per-block resources (Yosys `stat -json` with kept hierarchy), nextpnr utilisation / Fmax / critical path, stage
times, equivalence and accuracy, and the build stamp. `format_report` renders it as a table."""
from __future__ import annotations

import json
from pathlib import Path

from ..errors import WarpcError
from ..families import ICE40, Family
from ..hdl.framing import SYNC_BYTE

REPORT = "report.json"
FORMAT = "warpc-build-report"


def _cells(d: dict) -> dict[str, int]:
    return {k: int(v) for k, v in (d.get("num_cells_by_type") or {}).items()}


KINDS = ("LUT", "FF", "CARRY", "BRAM", "DSP", "IO")  # the same keys for every family


def _kind_counts(cells: dict[str, int], family: Family = ICE40) -> dict[str, int]:
    """Cells by kind (family.kinds maps each family's cell types); MUX (ECP5 PFUMX, Gowin MUX2_LUT5..) and LUTRAM
    appear only where the family has them."""
    out = {k: 0 for k in KINDS}
    for typ, n in cells.items():
        kind = family.kind_of(typ)
        if kind is not None:
            out[kind] = out.get(kind, 0) + n
    return out


def parse_stat(stat: dict, blocks: dict[str, str], family: Family = ICE40) -> dict:
    """Yosys stat -json (hierarchy kept) -> totals and per-block {LUT, FF, CARRY, ...}; 'shell' is the rest."""
    mods = {k.lstrip("\\"): v for k, v in (stat.get("modules") or {}).items()}
    total = _kind_counts(_cells(stat.get("design") or {}), family)
    per: dict[str, dict[str, int]] = {}
    for label, mod in blocks.items():
        m = mods.get(mod)
        if m is not None:
            per[label] = _kind_counts(_cells(m), family)
    rest = {k: total[k] - sum(b.get(k, 0) for b in per.values()) for k in total}
    per["shell"] = rest
    return {"total": total, "blocks": per}


def parse_nextpnr(rep: dict) -> dict:
    """nextpnr --report JSON -> utilisation, Fmax per clock, critical path summaries."""
    util = {k: {"used": int(v.get("used", 0)), "available": int(v.get("available", 0))}
            for k, v in (rep.get("utilization") or {}).items()}
    fmax = {k: {"achieved_MHz": round(float(v.get("achieved", 0)), 2), "constraint_MHz": round(float(v.get("constraint", 0)), 2)}
            for k, v in (rep.get("fmax") or {}).items()}
    paths = []
    for cp in rep.get("critical_paths") or []:
        segs = cp.get("path") or []
        total = sum(float(s.get("delay", 0)) for s in segs)
        logic = sum(float(s.get("delay", 0)) for s in segs if s.get("type") not in ("routing",))
        first, last = (segs[0] if segs else {}), (segs[-1] if segs else {})
        paths.append({
            "from_clock": cp.get("from"), "to_clock": cp.get("to"), "delay_ns": round(total, 2),
            "logic_ns": round(logic, 2), "routing_ns": round(total - logic, 2),
            "segments": len(segs),
            "start": (first.get("from") or {}).get("cell"), "end": (last.get("to") or {}).get("cell"),
        })
    return {"utilization": util, "fmax": fmax, "critical_paths": paths}


def summarize_build(out: Path, board, net, shell, options: dict, stamp: dict, stages: dict, eq: dict,
                    accuracy: dict | None, src: dict, blocks: dict[str, str]) -> dict:
    fam = board.family
    stat = json.loads((out / "stat.json").read_text())
    res = parse_stat(stat, blocks, fam)
    pnr = parse_nextpnr(json.loads((out / "nextpnr.json").read_text())) if (out / "nextpnr.json").exists() else {}
    util = pnr.get("utilization", {})
    cap = dict(board.capacity)
    keys = fam.util_keys
    lc = fam.logic_cells(util)
    io = util.get(keys["IO"], {})
    bram = util.get(keys["BRAM"], {})
    dsp = util.get(keys["DSP"], {})
    fmax = pnr.get("fmax", {})
    core_clock = float(board.core_clock_hz)
    f_ach = min((v["achieved_MHz"] for v in fmax.values()), default=None)
    by_domain = None
    if getattr(board, "pll_split", False):
        # two clocks: nextpnr names them by net; tell them apart by their constraints (the core's is the PLL's)
        def closest(hz):
            return min(fmax.values(), key=lambda v: abs(v["constraint_MHz"] - hz / 1e6), default=None)
        core_f, shell_f = closest(core_clock), closest(board.clock_hz)
        by_domain = {"core": core_f, "shell": shell_f}
        f_ach = core_f["achieved_MHz"] if core_f else None
    d = shell.describe()
    lat, ii = d["Latency_cycles"], d["Interval_cycles"]
    report = {
        "format": FORMAT,
        "stamp": stamp,
        "board": board.name, "family": fam.name, "device": board.device, "package": board.package,
        "options": options,
        "model": {**net.stats(), "source": src},
        "LUT": res["total"]["LUT"], "FF": res["total"]["FF"], "CARRY": res["total"]["CARRY"],
        "BRAM": bram.get("used", res["total"]["BRAM"]), "IO": io.get("used", res["total"]["IO"]),
        "DSP": dsp.get("used", res["total"]["DSP"]),
        # placed logic cells: iCE40 LCs (LUT4 + carry + FF), ECP5 TRELLIS_COMB (LUT4 halves of slices), Gowin
        # LUT4 + ALU positions
        "LC": lc.get("used"), "LC_unit": fam.logic_cell_name,
        "capacity": {"LC": lc.get("available", cap.get(fam.logic_unit)),
                     "LUT": cap.get("LUT", lc.get("available", cap.get(fam.logic_unit))),
                     "BRAM": bram.get("available", cap.get("BRAM")), "IO": io.get("available", cap.get("IO")),
                     "DSP": dsp.get("available", cap.get("DSP"))},
        "Fmax_MHz": f_ach,
        "clock_MHz": core_clock / 1e6,
        # the board's oscillator; a board file's core_clock_hz runs the design from the family's PLL instead
        "clocks": {"board_MHz": board.clock_hz / 1e6, "core_MHz": core_clock / 1e6,
                   "shell_MHz": getattr(board, "shell_clock_hz", board.core_clock_hz) / 1e6,
                   "pll": board.core_clock_hz != board.clock_hz,
                   # --core-clock: the core alone on the PLL; Fmax_MHz is then the core domain's
                   "split": bool(getattr(board, "pll_split", False)),
                   **({"fmax_by_domain": by_domain} if by_domain else {})},
        "Latency_cycles": lat,
        "Interval_cycles": ii,
        # the core alone (one sample per interval at the clock it runs at, and at the Fmax nextpnr found);
        # over the UART the line rate bounds it: see uart.max_samples_per_s
        "throughput": {
            "core_samples_per_s": round(core_clock / ii),
            "core_samples_per_s_at_fmax": round(f_ach * 1e6 / ii) if f_ach else None,
        },
        "Latency_ns": round(lat * 1e3 / (core_clock / 1e6), 1) if lat else None,
        "Latency_from": d["Latency_from"],
        "pipeline": d["pipeline"],
        "blocks": res["blocks"],
        "fmax": fmax,
        "critical_paths": pnr.get("critical_paths", []),
        "utilization_raw": util,
        "stages_s": {k: round(v, 2) for k, v in stages.items()},
        "equivalence": eq,
        "accuracy": accuracy,
        "uart": {"baud": board.baud, "sync_byte": f"0x{SYNC_BYTE:02X}", "feature_bytes": shell.feature_bytes,
                 "reply_bytes": shell.reply_bytes, "scores": shell.with_scores,
                 "score_bits": d["score_bits"],
                 # 10 bits per byte on the line; host and board alternate, so this bounds `warpc run`
                 "max_samples_per_s": round(board.baud / 10 / (shell.request_bytes + shell.reply_bytes), 1)},
        "files": {"bitstream": fam.bitstream, "netlist": "netlist.json",
                  "logs": ["yosys.log", "nextpnr.log", fam.pack_log]},
    }
    util_pct = {}
    for k in ("LC", "BRAM", "IO", "DSP"):
        used, avail = report.get(k), report["capacity"].get(k)
        if used is not None and avail:
            util_pct[k] = round(100.0 * used / avail, 1)
    report["utilization_pct"] = util_pct
    return report


def write_report(out: Path, report: dict) -> Path:
    p = Path(out) / REPORT
    p.write_text(json.dumps(report, indent=1, default=str))
    return p


def load_report(build_dir: str | Path) -> dict:
    """The report.json of a build folder (or the file itself), checked to be a JSON object."""
    d = Path(build_dir)
    if not d.exists():
        raise WarpcError(f"no build folder {d} (run `warpc synth ... -o {build_dir}` first)")
    p = d / REPORT if d.is_dir() else d
    if not p.is_file():
        raise WarpcError(f"no build report at {p} (run `warpc synth ... -o {build_dir}` first)")
    try:
        rep = json.loads(p.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise WarpcError(f"{p} is not a readable JSON build report: {e}") from None
    if not isinstance(rep, dict) or rep.get("format", FORMAT) != FORMAT:
        raise WarpcError(f"{p} is not a warpc build report (expected a JSON object written by `warpc synth`)")
    return rep


def report_field(rep: dict, path: str, where: str | Path, kind=int):
    """rep["a"]["b"] for path "a.b", or WarpcError naming the missing field (reports of older or foreign builds)."""
    v = rep
    for key in path.split("."):
        if not isinstance(v, dict) or key not in v:
            raise WarpcError(f"{where}: the build report has no field {path} (rebuild with `warpc synth`)")
        v = v[key]
    if kind is not None and (not isinstance(v, kind) or isinstance(v, bool) and kind is not bool):
        raise WarpcError(f"{where}: the build report's field {path} is {v!r}, expected {kind.__name__}")
    return v


def format_report(r: dict) -> str:
    """A readable table of a report dict."""
    try:
        return _format_report(r)
    except (KeyError, TypeError, AttributeError, ValueError) as e:
        raise WarpcError(f"the build report is incomplete or malformed ({type(e).__name__}: {e}); rebuild with "
                         "`warpc synth`") from None


def _format_report(r: dict) -> str:
    L = []
    st = r.get("stamp", {})
    L.append(f"build {st.get('id')}  {st.get('time_utc')}  warpc {st.get('warpc_version')}")
    L.append(f"board {r.get('board')} ({r.get('device')}-{r.get('package')})  options "
             + ", ".join(f"{k}={v}" for k, v in (r.get("options") or {}).items() if not k.startswith("seed_tries")))
    m = r.get("model", {})
    L.append(f"model: {m.get('nodes')} nodes (k: {m.get('nodes_by_k')}), depth {m.get('depth')}, "
             f"{m.get('inputs_used')}/{m.get('inputs')} input bits used, {m.get('classes')} classes")
    cap, pct = r.get("capacity", {}), r.get("utilization_pct", {})
    L.append("")
    L.append(f"{'resource':<10}{'used':>8}{'avail':>8}{'util':>8}")
    for k in ("LC", "LUT", "FF", "CARRY", "BRAM", "IO"):
        v = r.get(k)
        a = cap.get(k, "")
        p = f"{pct[k]}%" if k in pct else ""
        L.append(f"{k:<10}{'' if v is None else v:>8}{'' if a is None else a:>8}{p:>8}")
    L.append("")
    blocks = r.get("blocks") or {}
    if blocks:
        L.append(f"{'block':<10}{'LUT':>8}{'FF':>8}{'CARRY':>8}")
        for b, v in blocks.items():
            L.append(f"{b:<10}{v.get('LUT', 0):>8}{v.get('FF', 0):>8}{v.get('CARRY', 0):>8}")
        L.append("")
    clocks = r.get("clocks") or {}
    if clocks.get("split"):
        L.append(f"clocks: shell (UART, encoder) {clocks.get('shell_MHz')} MHz from the board, core "
                 f"{clocks.get('core_MHz')} MHz from the PLL; Fmax below is the core's")
    for clk, f in (r.get("fmax") or {}).items():
        L.append(f"Fmax {clk}: {f['achieved_MHz']} MHz (constraint {f['constraint_MHz']} MHz)")
    tries = (r.get("options") or {}).get("seed_tries_MHz")
    if tries:
        L.append(f"placement: seed {r['options'].get('seed_kept')} kept of " + ", ".join(
            f"seed {k} {v} MHz" if isinstance(v, (int, float)) else f"seed {k} {v}" for k, v in tries.items()))
    for cp in (r.get("critical_paths") or [])[:1]:
        L.append(f"critical path: {cp['delay_ns']} ns ({cp['logic_ns']} logic + {cp['routing_ns']} routing, "
                 f"{cp['segments']} segments) {cp.get('start')} -> {cp.get('end')}")
    L.append(f"latency {r.get('Latency_cycles')} cycles"
             + (f" ({r['Latency_ns']} ns at {r.get('clock_MHz')} MHz)" if r.get("Latency_ns") else "")
             + f", interval {r.get('Interval_cycles')} cycle(s) per sample"
             + (f", core {r['throughput']['core_samples_per_s']:,} samples/s at {r.get('clock_MHz')} MHz"
                if (r.get("throughput") or {}).get("core_samples_per_s") else ""))
    f = r.get("folded")
    if f:
        mem, prog = f["memory"], f["program"]
        L.append(f"folded: {prog['words']:,} program words of {prog['layout']['word_bits']} bits "
                 f"({prog['layout']['lanes']} node(s) per clock), {f['cycles_per_sample']:,} cycles per sample; "
                 f"SPRAM {mem['SPRAM']} ({mem['program']['bits_used']:,} of {mem['program']['bits_available']:,} "
                 f"bits), EBR {mem['EBR']} (activations {mem['activations']['blocks']}, features "
                 f"{mem['features']['blocks']}); boot {f['boot_ms']} ms from flash offset "
                 f"0x{int(f['image']['flash_offset']):X} ({f['image']['file']}, {f['image']['bytes']:,} bytes)")
    uart = r.get("uart") or {}
    if uart.get("max_samples_per_s"):
        L.append(f"UART {uart.get('baud')} baud: at most {uart['max_samples_per_s']} samples/s")
    eq = r.get("equivalence") or {}
    if eq.get("enabled"):
        sims = eq.get("simulation") or {}
        L.append(f"equivalence: {'PASSED' if eq.get('passed') else 'FAILED/incomplete'} on {eq.get('vectors')} vectors "
                 f"({eq.get('data')}); simulated " + ", ".join(f"{k} {v.get('seconds')} s" for k, v in sims.items()
                                                                if v.get("simulated", True)))
        fo = eq.get("formal")
        if fo:
            L.append("formal: " + ", ".join(f"{k} {v['status']} ({v['seconds']} s)" for k, v in fo["modules"].items()))
    else:
        L.append("equivalence: disabled")
    acc = r.get("accuracy")
    if acc:
        L.append(f"accuracy of the built design: {100 * acc['accuracy']:.2f}% on {acc['samples']} samples ({acc['data']})")
    sg = r.get("stages_s") or {}
    if sg:
        L.append("stages: " + ", ".join(f"{k[:-2]} {v} s" for k, v in sg.items()))
    return "\n".join(L)
