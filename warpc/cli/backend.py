"""backend commands of the warpc CLI: hdl, synth, report, flash, run."""
from __future__ import annotations

import json
from pathlib import Path

import click

from ..errors import ConfigError

commands: list[click.Command] = []


def _cmd(f):
    commands.append(f)
    return f


def _echo_err(msg: str) -> None:
    click.echo(msg, err=True)


@_cmd
@click.command("hdl")
@click.argument("source", type=click.Path(exists=True, dir_okay=False))
@click.option("-o", "--out", "out", type=click.Path(file_okay=False), required=True, help="output folder")
@click.option("--pipeline", default=1, show_default=True, help="LUT levels per pipeline stage (0 = combinational)")
@click.option("--lut-cells", type=click.Choice(["portable", "sb_lut4"]), default="portable", show_default=True,
              help="portable logic (any toolchain) or iCE40 SB_LUT4 instances")
@click.option("-K", "pack_k", default=4, show_default=True, help="LUT size to pack a checkpoint into")
@click.option("--name", default="warp_core", show_default=True, help="Verilog module name")
@click.option("--toolchain", type=click.Choice(["yowasp", "native"]), default="yowasp", show_default=True)
def hdl_cmd(source, out, pipeline, lut_cells, pack_k, name, toolchain):
    """Write the core of SOURCE (checkpoint or netlist JSON) as Verilog and RTLIL (ports: x, valid_in -> cls,
    scores, valid_out; clk/rst when pipelined)."""
    from ..fpga.hdl_export import export_hdl

    info = export_hdl(source, out, pipeline=pipeline, lut_cells=lut_cells, pack_k=pack_k, name=name,
                      toolchain=toolchain)
    for k, v in info["files"].items():
        click.echo(f"{k}: {v}")
    click.echo(f"ports: {info['ports']}; latency {info['latency']} cycles, interval 1")


@_cmd
@click.command("synth")
@click.argument("source", type=click.Path(exists=True, dir_okay=False))
@click.option("--board", default="icebreaker", show_default=True)
@click.option("-o", "--out", "out", type=click.Path(file_okay=False), required=True, help="build folder")
@click.option("--pipeline", default=1, show_default=True, help="LUT levels per pipeline stage (0 = combinational)")
@click.option("--toolchain", type=click.Choice(["yowasp", "native"]), default="yowasp", show_default=True)
@click.option("--lut-cells", type=click.Choice(["sb_lut4", "portable"]), default=None,
              help="LUT network as SB_LUT4 instances (board default) or portable logic for ABC to map")
@click.option("--scores/--no-scores", default=False, show_default=True, help="UART reply carries class scores")
@click.option("--router", type=click.Choice(["auto", "router1", "router2"]), default="auto", show_default=True)
@click.option("--router2-timeout", default=300.0, show_default=True,
              help="with --router auto: seconds before a stuck router2 run is redone with router1")
@click.option("--seed", default=1, show_default=True, help="nextpnr placement seed")
@click.option("--no-equiv", is_flag=True, help="skip the equivalence checks (simulation and formal)")
@click.option("--no-formal", is_flag=True, help="skip only the formal check")
@click.option("--formal-timeout", default=120.0, show_default=True, help="seconds per block")
@click.option("--dataset", default=None, help="test data for the equivalence check (default: the checkpoint's)")
@click.option("--data-dir", type=click.Path(file_okay=False), default=None)
@click.option("--max-vectors", type=int, default=None, help="check only the first N test vectors")
@click.option("--allow-timing-fail", is_flag=True, help="keep the bitstream even if Fmax < the board clock")
@click.option("--json", "as_json", is_flag=True, help="print the report as JSON")
def synth_cmd(source, board, out, pipeline, toolchain, lut_cells, scores, router, router2_timeout, seed, no_equiv,
              no_formal, formal_timeout, dataset, data_dir, max_vectors, allow_timing_fail, as_json):
    """Checkpoint (or netlist JSON) -> bitstream OUT/top.bin, OUT/report.json, with equivalence checks."""
    from ..fpga.flow import build
    from ..fpga.report import format_report

    x = y = None
    if dataset:
        from ..data import load_dataset

        ds = load_dataset(dataset, data_dir=data_dir)
        x, y = ds.x_test, ds.y_test
    rep = build(source, board=board, out=out, pipeline=pipeline, toolchain=toolchain, lut_cells=lut_cells,
                scores=scores, seed=seed, router=router, equivalence=not no_equiv, formal=not no_formal,
                formal_timeout=formal_timeout, x=x, y=y, data_dir=data_dir, max_vectors=max_vectors,
                allow_timing_fail=allow_timing_fail, router2_timeout=router2_timeout, progress=_echo_err)
    click.echo(json.dumps(rep, indent=1, default=str) if as_json else format_report(rep))


@_cmd
@click.command("report")
@click.argument("build_dir", type=click.Path())
@click.option("--json", "as_json", is_flag=True, help="print the raw report.json")
def report_cmd(build_dir, as_json):
    """Show the build report of BUILD_DIR."""
    from ..fpga.report import format_report, load_report

    rep = load_report(build_dir)
    click.echo(json.dumps(rep, indent=1) if as_json else format_report(rep))


@_cmd
@click.command("flash")
@click.argument("build_dir", type=click.Path())
@click.option("--sram", is_flag=True, help="load into SRAM only (iceprog -S), lost at power-off")
@click.option("--tool", default=None, help="iceprog or openFPGALoader (default: whichever is installed)")
def flash_cmd(build_dir, sram, tool):
    """Program BUILD_DIR/top.bin onto the board."""
    from ..fpga.host import flash

    click.echo(flash(build_dir, sram=sram, tool=tool))


@_cmd
@click.command("run")
@click.option("--port", default=None, help="serial port of the board, e.g. /dev/ttyUSB1")
@click.option("--build", "build_dir", type=click.Path(file_okay=False), required=True,
              help="build folder (report.json gives the framing and the model)")
@click.option("--dataset", default=None, help="samples to stream (default: the model's test set)")
@click.option("--data-dir", type=click.Path(file_okay=False), default=None)
@click.option("--limit", type=int, default=None, help="stream only the first N samples")
@click.option("--baud", type=int, default=None, help="default: the build's")
@click.option("--simulate", is_flag=True, help="no board: answer with the bit-exact simulated design")
@click.option("--timeout", default=2.0, show_default=True, help="seconds to wait for each reply")
def run_cmd(port, build_dir, dataset, data_dir, limit, baud, simulate, timeout):
    """Stream samples through the board over UART; report accuracy, agreement with the model, throughput."""
    from ..fpga.host import run_on_board

    if not port and not simulate:
        raise ConfigError("give --port (e.g. /dev/ttyUSB1) or --simulate")
    res = run_on_board(build_dir, port=port, dataset=dataset, data_dir=data_dir, limit=limit, baud=baud,
                       simulate=simulate, timeout=timeout)
    click.echo(json.dumps(res, indent=1))
