"""The files of one training run, and the rules that keep a user's files safe.

For `out = DIR/NAME.safetensors` a run writes `out` (its best model), `DIR/NAME.last.safetensors` (the resumable
state) and `DIR/NAME.curve.png`. Rules (checked before any data is read or any file is written):

- an existing run (NAME / NAME.last / NAME.curve.png) is never replaced silently: `resume` continues it, `force`
  replaces it, otherwise the run does not start;
- a file at one of those names that is not a warpc checkpoint (or, for the curve, not a PNG) is never
  overwritten, even with `force`;
- a forced run over an existing run writes into NAME.pending.safetensors / NAME.pending.last.safetensors and
  replaces NAME and NAME.last only when it finishes, so an interrupted or failing replacement leaves the previous
  run as it was (and `resume` continues the pending run);
- the output folder must exist and be writable, or be creatable.
"""
from __future__ import annotations

import json
import os
import struct
from dataclasses import dataclass
from pathlib import Path

from ..errors import CheckpointError, ConfigError
from ..paths import check_folder_can_hold

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def run_name(out: str | Path) -> str:
    """NAME of `--out`: the file name without a `.safetensors` suffix. Other dots belong to the name (runs/lr0.02
    must not become runs/lr0 + ".02")."""
    name = Path(out).name
    return name[: -len(".safetensors")] if name.endswith(".safetensors") else name


def last_path(out: str | Path) -> Path:
    out = Path(out)
    return out.with_name(run_name(out) + ".last.safetensors")


def curve_path(out: str | Path) -> Path:
    out = Path(out)
    return out.with_name(run_name(out) + ".curve.png")


def pending_path(out: str | Path) -> Path:
    """Where a forced run over an existing run keeps its best model until it finishes."""
    out = Path(out)
    return out.with_name(run_name(out) + ".pending.safetensors")


def is_warpc_checkpoint(path: str | Path) -> bool:
    """True when `path` is a safetensors file whose header carries warpc metadata (reads the header only)."""
    try:
        with open(path, "rb") as f:
            head = f.read(8)
            if len(head) != 8:
                return False
            (n,) = struct.unpack("<Q", head)
            if n > 100_000_000:
                return False
            header = json.loads(f.read(n))
        meta = header.get("__metadata__") or {}
        return json.loads(meta.get("warpc", "{}")).get("format") == "warpc-checkpoint"
    except (OSError, ValueError, AttributeError, UnicodeDecodeError):
        return False


def _is_png(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(8) == PNG_MAGIC
    except OSError:
        return False


@dataclass(frozen=True)
class RunFiles:
    """Where a run writes. `best` is `out` or, for a forced replacement, the pending file; `staged` says the
    finished run must then move into `out` / `out`'s .last file."""

    out: Path
    best: Path
    staged: bool
    stale: tuple[Path, ...] = ()   # pending files of an earlier replacement that `force` discards

    @property
    def last(self) -> Path:
        return last_path(self.best)

    @property
    def final_last(self) -> Path:
        return last_path(self.out)

    @property
    def curve(self) -> Path:
        return curve_path(self.out)


def plan_run_files(out: str | Path, *, resume: bool = False, force: bool = False) -> RunFiles:
    """Decide where a run writes, or refuse (see the module docstring). Touches nothing on disk."""
    out = Path(out)
    if resume and force:
        raise ConfigError("give --resume (continue the run) or --force (replace it), not both")
    if out.is_dir():
        raise ConfigError(f"--out {out} is a folder; give a checkpoint file name such as {out}/model.safetensors")
    check_folder_can_hold(out.parent, f"cannot write {out}")
    pending = pending_path(out)
    runs = [out, last_path(out), pending, last_path(pending)]
    for p in runs:
        if (p.exists() or p.is_symlink()) and not (p.is_file() and is_warpc_checkpoint(p)):
            raise ConfigError(f"{p} exists and is not a warpc checkpoint; warpc never overwrites it (not even with "
                              f"--force): choose another --out or move that file")
    curve = curve_path(out)
    if (curve.exists() or curve.is_symlink()) and not (curve.is_file() and _is_png(curve)):
        raise ConfigError(f"{curve} exists and is not a PNG image; warpc never overwrites it (not even with "
                          f"--force): choose another --out or move that file")
    if resume:
        if last_path(pending).is_file():
            return RunFiles(out, pending, staged=True)
        if last_path(out).is_file():
            return RunFiles(out, out, staged=False)
        raise CheckpointError(f"cannot resume: nothing to resume at {out} ({last_path(out).name} not found; it is "
                              f"written beside {out.name} during training); start a new run without --resume")
    existing = [p for p in (*runs, curve) if p.exists()]
    if existing and not force:
        raise ConfigError(f"{existing[0]} already exists (an earlier run); pass --resume to continue that run or "
                          f"--force to replace it (the old files stay until the new run finishes)")
    stale = tuple(p for p in (pending, last_path(pending)) if p.exists())
    if out.exists() or last_path(out).exists():
        return RunFiles(out, pending, staged=True, stale=stale)
    return RunFiles(out, out, staged=False, stale=stale)


def finish_staged(files: RunFiles) -> None:
    """A finished forced run replaces the previous run: the pending files move to NAME / NAME.last."""
    if not files.staged:
        return
    if files.last.exists():
        os.replace(files.last, files.final_last)
    if files.best.exists():
        os.replace(files.best, files.out)
