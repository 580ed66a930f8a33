"""The `warpc` command line: a thin layer over the library. Commands live in frontend.py (train, eval),
middle.py (compile, predict) and backend.py (hdl, synth, report, flash, run); each module exports `commands`.
User mistakes (WarpcError) print one line `error: ...` and exit 1, without a traceback."""
from __future__ import annotations

import sys

import click

from .. import __version__
from ..errors import WarpcError


class _Group(click.Group):
    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except WarpcError as e:
            click.echo(f"error: {e}", err=True)
            sys.exit(1)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="warpc")
def main() -> None:
    """warpc: train WARP-LUT logic networks and compile them to FPGA bitstreams."""


def _register() -> None:
    from . import backend, frontend, middle

    for mod in (frontend, middle, backend):
        for cmd in mod.commands:
            main.add_command(cmd)


_register()
