"""backend commands of the warpc CLI."""
from __future__ import annotations

import click

commands: list[click.Command] = []
