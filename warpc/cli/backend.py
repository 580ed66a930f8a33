"""backend commands of the warpc CLI: hdl, synth, estimate, report, flash, run."""
from __future__ import annotations

import json

import click

from ..families import CELL_STYLES
from ..fpga.boards import PROGRAMMERS, supported_boards

commands: list[click.Command] = []

DATA_DIR_HELP = "folder holding the dataset's files (IDX, CIFAR batches, CSV)"
DATA_DIR_DEFAULT = "the recorded folder, else the dataset's standard folder"
ARCH_HELP = ("spatial: a LUT per node (a sample per --interval clocks); folded: the net streamed from the chip's "
             "memories by a small engine (thousands of cycles per sample, nets far bigger than the LCs); auto: "
             "spatial when it fits, else folded")


def _cmd(f):
    commands.append(f)
    return f


def _echo_err(msg: str) -> None:
    click.echo(msg, err=True)


def _board_help() -> str:
    return (f"board from the catalogue ({', '.join(supported_boards()) or 'none found'}) or the path of a board "
            ".json file")


@_cmd
@click.command("hdl")
@click.argument("source", type=click.Path(exists=True, dir_okay=False))
@click.option("-o", "--out", "out", type=click.Path(file_okay=False), required=True,
              help="output folder for <name>.v, <name>.il, <name>.json and netlist.json")
@click.option("--pipeline", default=1, show_default=True, help="LUT levels per pipeline stage (0 = combinational)")
@click.option("--interval", default=1, show_default=True,
              help="cycles per sample (II): 1 = a new sample every clock; N > 1 counts each class over N cycles "
                   "in fewer LCs (1 .. the largest class's bit count)")
@click.option("--lut-cells", type=click.Choice(CELL_STYLES), default="portable", show_default=True,
              help="portable logic (any toolchain) or a family's LUT4 instances (sb_lut4: iCE40, ecp5_lut4, "
                   "gowin_lut4)")
@click.option("--lut-size", "-K", "lut_size", default=4, show_default=True,
              help="LUT size (inputs per cell) to pack a checkpoint or netlist into")
@click.option("--name", default="warp_core", show_default=True, help="Verilog module name (also the file names)")
@click.option("--toolchain", type=click.Choice(["yowasp", "native"]), default="yowasp", show_default=True,
              help="Yosys used for the Verilog export: yowasp (PyPI) or native (on PATH)")
def hdl_cmd(source, out, pipeline, interval, lut_cells, lut_size, name, toolchain):
    """Write the core of SOURCE (checkpoint or netlist JSON) as Verilog and RTLIL (ports: x, valid_in -> cls,
    scores, valid_out; clk/rst when pipelined)."""
    from ..fpga.hdl_export import export_hdl

    info = export_hdl(source, out, pipeline=pipeline, interval=interval, lut_cells=lut_cells, lut_size=lut_size,
                      name=name, toolchain=toolchain)
    for k, v in info["files"].items():
        click.echo(f"{k}: {v}")
    click.echo(f"ports: {info['ports']}; latency {info['latency']} cycles, interval {info['interval']}")


@_cmd
@click.command("synth")
@click.argument("source", type=click.Path(exists=True, dir_okay=False))
@click.option("--board", default="icebreaker", show_default=True, help=_board_help())
@click.option("-o", "--out", "out", type=click.Path(file_okay=False), required=True,
              help="build folder (created; only files of an earlier warpc build there are replaced)")
@click.option("--pipeline", default=1, show_default=True, help="LUT levels per pipeline stage (0 = combinational)")
@click.option("--interval", default=1, show_default=True,
              help="cycles per sample (II): 1 = a new sample every clock; N > 1 counts each class over N cycles "
                   "in fewer LCs (1 .. the largest class's bit count)")
@click.option("--toolchain", type=click.Choice(["yowasp", "native"]), default="yowasp", show_default=True,
              help="yowasp (Yosys/nextpnr from PyPI) or native (on PATH)")
@click.option("--lut-cells", type=click.Choice(CELL_STYLES), default=None,
              show_default="the board's", help="LUT network as SB_LUT4 instances or portable logic for ABC to map")
@click.option("--scores/--no-scores", default=False, show_default=True, help="UART reply carries class scores")
@click.option("--baud", type=int, default=None, show_default="the board's (115200 on the iCEBreaker)",
              help="UART rate in bits/s; at 12 MHz up to 3000000 (e.g. 115200, 230400, 460800, 921600, 1000000, "
                   "1500000, 2000000, 3000000); refused when the clock cannot make it within 2 %")
@click.option("--router", type=click.Choice(["auto", "router1", "router2"]), default="auto", show_default=True,
              help="nextpnr router; auto: router2 (on iCE40 redone with router1 if it does not converge in "
                   "--router2-timeout)")
@click.option("--router2-timeout", default=300.0, show_default=True,
              help="iCE40 with --router auto: seconds before a stuck router2 run is redone with router1")
@click.option("--seed", default=1, show_default=True, help="nextpnr placement seed")
@click.option("--pnr-seeds", default=1, show_default=True,
              help="place and route N times (seeds --seed .. --seed + N - 1, as many at a time as there are cores) "
                   "and keep the highest Fmax; the report lists every try")
@click.option("--no-equiv", is_flag=True, show_default="off",
              help="skip the equivalence checks (simulation and formal)")
@click.option("--no-formal", is_flag=True, show_default="off", help="skip only the formal check")
@click.option("--formal-timeout", default=120.0, show_default=True, help="seconds per block for the formal check")
@click.option("--dataset", default=None,
              show_default="the checkpoint's dataset", help="test data for the equivalence check and accuracy")
@click.option("--data-dir", type=click.Path(file_okay=False), default=None, show_default=DATA_DIR_DEFAULT,
              help=DATA_DIR_HELP)
@click.option("--max-vectors", type=int, default=None,
              show_default="all", help="check only the first N test vectors")
@click.option("--allow-timing-fail", is_flag=True, show_default="off",
              help="keep the bitstream even if Fmax < the board clock")
@click.option("--no-estimate-check", is_flag=True, show_default="off",
              help="synthesise even when the pre-synthesis estimate is clearly over the device (> 110 % of its LCs)")
@click.option("--arch", type=click.Choice(["auto", "spatial", "folded"]), default="auto", show_default=True,
              help=ARCH_HELP)
@click.option("--hard-carry/--no-hard-carry", default=None, show_default="by size: on up to ~12,000 LUT4s",
              help="ECP5 / Gowin: the counters' carries on the hard carry chain (faster), or as LUTs (a very large "
                   "random-wired design routes only so; docs/families.md)")
@click.option("--core-clock", type=float, default=None, show_default="off: one clock, the board's",
              help="MHz: run the core (LUT network, counters, argmax) on a PLL clock of its own, the UART shell "
                   "and encoder on the board clock (iCE40; e.g. 48 on the iCEBreaker); the build fails unless the "
                   "core meets it")
@click.option("--json", "as_json", is_flag=True, show_default="off", help="print the report as JSON")
def synth_cmd(source, board, out, pipeline, interval, toolchain, lut_cells, scores, baud, router, router2_timeout, seed,
              pnr_seeds, no_equiv,
              no_formal, formal_timeout, dataset, data_dir, max_vectors, allow_timing_fail, as_json, arch="auto",
              no_estimate_check=False, hard_carry=None, core_clock=None):
    """Checkpoint (or netlist JSON) -> bitstream (OUT/top.bin, top.bit or top.fs), OUT/report.json, with
    equivalence checks.
    Progress goes to stderr, the report to stdout."""
    from ..fpga.flow import build
    from ..fpga.report import format_report

    rep = build(source, board=board, out=out, dataset=dataset, data_dir=data_dir, progress=_echo_err,
                pipeline=pipeline, interval=interval, toolchain=toolchain, lut_cells=lut_cells, scores=scores, seed=seed,
                pnr_seeds=pnr_seeds, router=router, equivalence=not no_equiv, formal=not no_formal, formal_timeout=formal_timeout,
                max_vectors=max_vectors, allow_timing_fail=allow_timing_fail, router2_timeout=router2_timeout,
                baud=baud, estimate_check=not no_estimate_check, arch=arch, hard_carry=hard_carry,
                core_clock=core_clock)
    click.echo(json.dumps(rep, indent=1, default=str) if as_json else format_report(rep))


@_cmd
@click.command("estimate")
@click.argument("source", type=click.Path(exists=True, dir_okay=False))
@click.option("--board", default="icebreaker", show_default=True, help=_board_help())
@click.option("--pipeline", default=1, show_default=True, help="LUT levels per pipeline stage (0 = combinational)")
@click.option("--interval", default=1, show_default=True,
              help="cycles per sample (II): 1 = a new sample every clock; N > 1 counts each class over N cycles "
                   "in fewer LCs (1 .. the largest class's bit count)")
@click.option("--lut-cells", type=click.Choice(CELL_STYLES), default=None,
              show_default="the board's", help="LUT network as SB_LUT4 instances or portable logic for ABC to map")
@click.option("--scores/--no-scores", default=False, show_default=True, help="UART reply carries class scores")
@click.option("--arch", type=click.Choice(["spatial", "folded", "auto"]), default="spatial", show_default=True,
              help=ARCH_HELP)
@click.option("--json", "as_json", is_flag=True, show_default="off", help="print the estimate as JSON")
def estimate_cmd(source, board, pipeline, interval, lut_cells, scores, arch, as_json):
    """What `warpc synth` of SOURCE (checkpoint or netlist JSON) will cost, without synthesis: LCs per block and in
    total, LUT4s, flip-flops, carries, BRAM, IO, whether it fits the board, and an Fmax class."""
    from ..fpga.estimate import estimate, format_estimate

    est = estimate(source, board=board, interval=interval, pipeline=pipeline, lut_cells=lut_cells, scores=scores,
                   arch=arch)
    click.echo(json.dumps(est, indent=1, default=str) if as_json else format_estimate(est))


@_cmd
@click.command("boards")
@click.option("--json", "as_json", is_flag=True, show_default="off", help="print the catalogue as JSON")
def boards_cmd(as_json):
    """List the boards warpc builds for: family, device, logic cells or LUT4s, block RAM, clock, UART and
    programmers."""
    from ..fpga.boards import catalogue, format_catalogue

    rows = catalogue()
    click.echo(json.dumps(rows, indent=1) if as_json else format_catalogue(rows))


@_cmd
@click.command("report")
@click.argument("build_dir", type=click.Path())
@click.option("--json", "as_json", is_flag=True, show_default="off", help="print the raw report.json")
def report_cmd(build_dir, as_json):
    """Show the build report of BUILD_DIR."""
    from ..fpga.report import format_report, load_report

    rep = load_report(build_dir)
    click.echo(json.dumps(rep, indent=1) if as_json else format_report(rep))


@_cmd
@click.command("flash")
@click.argument("build_dir", type=click.Path())
@click.option("--sram", is_flag=True, show_default="off", help="load into SRAM only (lost at power-off)")
@click.option("--tool", type=click.Choice(PROGRAMMERS), default=None,
              show_default="the first installed one of the board's list", help="programmer to use")
def flash_cmd(build_dir, sram, tool):
    """Program BUILD_DIR's bitstream (top.bin, top.bit or top.fs) onto the board."""
    from ..fpga.host import flash

    click.echo(flash(build_dir, sram=sram, tool=tool))


@_cmd
@click.command("run")
@click.option("--port", default=None, show_default="none", help="serial port of the board, e.g. /dev/ttyUSB1")
@click.option("--build", "build_dir", type=click.Path(file_okay=False), required=True,
              help="build folder (report.json gives the framing and the model)")
@click.option("--dataset", default=None, show_default="the model's test set", help="samples to stream")
@click.option("--data-dir", type=click.Path(file_okay=False), default=None, show_default=DATA_DIR_DEFAULT,
              help=DATA_DIR_HELP)
@click.option("--limit", type=int, default=None, show_default="all", help="stream only the first N samples")
@click.option("--baud", type=int, default=None, show_default="the build's rate",
              help="UART baud rate; must be the rate the build was synthesised for")
@click.option("--simulate", is_flag=True, show_default="off",
              help="no board: answer with the bit-exact simulated post-synthesis design")
@click.option("--timeout", default=2.0, show_default=True, help="seconds to wait for each reply")
@click.option("--retries", default=3, show_default=True,
              help="resend a sample this many times after a rejected (NAK), lost or garbled exchange")
@click.option("--json", "as_json", is_flag=True, show_default="off", help="print the result as JSON (for programs)")
def run_cmd(port, build_dir, dataset, data_dir, limit, baud, simulate, timeout, retries, as_json):
    """Stream samples through the board over UART (or the simulated design); report accuracy, agreement with
    the model and throughput."""
    from ..fpga.host import format_run, run_on_board

    res = run_on_board(build_dir, port=port, dataset=dataset, data_dir=data_dir, limit=limit, baud=baud,
                       simulate=simulate, timeout=timeout, retries=retries, progress=_echo_err)
    click.echo(json.dumps(res, indent=1) if as_json else format_run(res))
