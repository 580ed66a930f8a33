"""The `warpc` command line: a thin layer over the library. Commands live in frontend.py (train, eval), sweep.py
(sweep), middle.py (compile, predict) and backend.py (hdl, synth, report, flash, run); each module exports `commands`.
User mistakes print one line `error: ...` without a traceback: WarpcError exits 1, command-line usage errors
(unknown option, bad value) exit 2, as click's own convention."""
from __future__ import annotations

import sys

import click

from .. import __version__
from ..errors import WarpcError


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


# The top-level help lists commands in workflow order, each with a one-line summary that is never cut off.
WORKFLOW = ["train", "eval", "sweep", "compile", "predict", "hdl", "synth", "report", "flash", "run"]
SUMMARIES = {
    "train": "train a WARP-LUT network from a dataset into a checkpoint",
    "eval": "discrete (hardware-semantics) accuracy and confusion matrix of a checkpoint",
    "sweep": "search model shapes for the best accuracy per LC (Optuna; Pareto front + plot)",
    "compile": "checkpoint -> optimised, packed netlist IR (netlist.json + BLIF + summary)",
    "predict": "bit-exact emulation of the compiled netlist (--check compares with PyTorch)",
    "hdl": "Verilog / RTLIL of the core, for other toolchains",
    "synth": "bitstream for a board, with resource/timing report and equivalence checks",
    "report": "show a build's report (resources, Fmax, latency, accuracy, equivalence)",
    "flash": "program a build's bitstream onto the board",
    "run": "stream a dataset through the board (or its simulation) over UART",
}


class _Group(click.Group):
    def list_commands(self, ctx):
        names = super().list_commands(ctx)
        return [n for n in WORKFLOW if n in names] + [n for n in names if n not in WORKFLOW]

    def add_command(self, cmd, name=None):
        cmd.short_help = SUMMARIES.get(name or cmd.name, cmd.short_help)
        super().add_command(cmd, name)

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except WarpcError as e:
            click.echo(f"error: {_one_line(e)}", err=True)
            sys.exit(1)

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        # click prints usage errors as three lines (usage, hint, message); warpc's promise is one line
        try:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.UsageError as e:
            cmd = e.ctx.command_path if e.ctx else "warpc"
            click.echo(f"error: {_one_line(e.format_message())} (see '{cmd} --help')", err=True)
            sys.exit(e.exit_code)
        except click.ClickException as e:
            click.echo(f"error: {_one_line(e.format_message())}", err=True)
            sys.exit(e.exit_code)
        except click.exceptions.Abort:
            click.echo("error: aborted", err=True)
            sys.exit(1)
        except click.exceptions.Exit as e:
            sys.exit(e.exit_code)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(__version__, prog_name="warpc")
def main() -> None:
    """warpc: train WARP-LUT logic networks and compile them to FPGA bitstreams."""


def _register() -> None:
    from . import backend, frontend, middle, sweep

    for mod in (frontend, sweep, middle, backend):
        for cmd in mod.commands:
            main.add_command(cmd)


_register()
