"""Output-folder checks shared by every stage that writes (train, compile, hdl, synth): run before any work, so a
bad path fails in one line and nothing is created. No heavy imports here."""
from __future__ import annotations

import os
from pathlib import Path

from .errors import ConfigError


def check_folder_can_hold(folder: str | Path, what: str) -> Path:
    """`folder` is a writable folder, or can be created: its nearest existing ancestor is a writable folder.
    Raises ConfigError "<what>: <reason>"; creates nothing."""
    folder = Path(folder)
    probe = folder
    while not probe.exists() and not probe.is_symlink() and probe.parent != probe:
        probe = probe.parent
    if not probe.is_dir():
        raise ConfigError(f"{what}: {probe} is not a folder (it is a file)")
    if not os.access(probe, os.W_OK | os.X_OK):
        where = "" if probe == folder else f", so {folder} cannot be created"
        raise ConfigError(f"{what}: {probe} is not writable{where}")
    return folder
