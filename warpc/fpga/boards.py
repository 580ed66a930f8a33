"""Boards are data: boards/<name>.json holds warpc's choices per board (device, clock, UART, capacity,
programmers) and names the amaranth-boards platform class."""
from __future__ import annotations

import importlib
import json
import os
import sys
from pathlib import Path

from ..errors import BoardError


def boards_dir() -> Path:
    """$WARPC_BOARDS, else the source tree's boards/ (editable install), else the copy a wheel installs under
    <prefix>/share/warpc/boards (pyproject's data-files)."""
    env = os.environ.get("WARPC_BOARDS")
    if env:
        return Path(env)
    source = Path(__file__).resolve().parents[2] / "boards"
    if source.is_dir():
        return source
    return Path(sys.prefix) / "share" / "warpc" / "boards"


def supported_boards() -> list[str]:
    d = boards_dir()
    return sorted(p.stem for p in d.glob("*.json")) if d.is_dir() else []


def load_board(name: str) -> dict:
    path = boards_dir() / f"{name.lower()}.json"
    if not path.is_file():
        have = supported_boards()
        raise BoardError(f"unknown board {name!r}; supported boards: {', '.join(have) or '(none found in ' + str(boards_dir()) + ')'}")
    try:
        board = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise BoardError(f"{path} is not valid JSON: {e}") from None
    board.setdefault("name", name.lower())
    return board


def platform_for(board: dict):
    mod, _, cls = board["platform"].partition(":")
    try:
        return getattr(importlib.import_module(mod), cls)()
    except (ImportError, AttributeError) as e:
        raise BoardError(f"board {board['name']}: cannot load platform {board['platform']} ({e})") from None
