"""The build folder: warpc removes only files that it wrote there itself, never by pattern.

Each build leaves a manifest (DIR/.warpc-build.json) listing the files it wrote with their sha256. A new build
into the same folder first checks (without touching anything) that none of the files it is about to write exists
unless the previous manifest lists it unchanged; then it removes exactly those listed, unchanged files of the
previous build and records its own. A user's top.bin, x.log or eq_1.json is never removed or overwritten.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

from ..errors import ConfigError
from ..paths import check_folder_can_hold

MANIFEST = ".warpc-build.json"
FORMAT = "warpc-build-manifest"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _plain_name(name) -> bool:
    """A manifest entry must name a file directly inside the folder (a crafted manifest must not reach out)."""
    return (isinstance(name, str) and name not in ("", ".", "..", MANIFEST) and "/" not in name
            and "\\" not in name and Path(name).name == name)


class BuildDir:
    """`check()` validates (no disk change), `open(build_id)` clears the previous build's files and starts the
    manifest, `close(status)` records every file this build wrote."""

    def __init__(self, out: str | Path, planned: set[str]) -> None:
        self.out = Path(out)
        self.planned = set(planned)
        self.previous: dict[str, str] = {}   # name -> sha256 of the previous build's files
        self._before: set[str] = set()
        self.build_id: str | None = None

    def check(self) -> None:
        out = self.out
        if out.exists() and not out.is_dir():
            raise ConfigError(f"-o {out} is a file, not a folder; give a folder for the build")
        check_folder_can_hold(out, f"-o {out}")
        if not out.exists():
            return
        self.previous = self._read_manifest()
        for name in sorted(self.planned):
            p = out / name
            if not (p.exists() or p.is_symlink()):
                continue
            if name not in self.previous:
                raise ConfigError(f"{out} already holds {name}, which no finished warpc build recorded there; "
                                  "choose an empty folder or remove it yourself")
            if not p.is_file() or p.is_symlink() or _sha256(p) != self.previous[name]:
                raise ConfigError(f"{out / name} changed since warpc wrote it; choose another folder or remove "
                                  "it yourself")

    def _read_manifest(self) -> dict[str, str]:
        p = self.out / MANIFEST
        if not p.exists():
            return {}
        try:
            d = json.loads(p.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            d = None
        files = d.get("files") if isinstance(d, dict) and d.get("format") == FORMAT else None
        if not isinstance(files, dict) or not all(_plain_name(k) and isinstance(v, str) for k, v in files.items()):
            raise ConfigError(f"{p} is not a warpc build manifest; choose another folder or remove it yourself")
        return dict(files)

    def open(self, build_id: str) -> None:
        """Create the folder, remove the previous build's unchanged files, and mark this build as running."""
        self.build_id = build_id
        try:
            self.out.mkdir(parents=True, exist_ok=True)
            for name, sha in self.previous.items():
                p = self.out / name
                if p.is_file() and not p.is_symlink() and _sha256(p) == sha:
                    p.unlink()
            # an interrupted build (killed before close) leaves no file list: its files then count as the user's
            self._write("running", {})
        except OSError as e:
            raise ConfigError(f"-o {self.out}: cannot write there ({e.strerror or e})") from None
        self._before = {p.name for p in self.out.iterdir()}

    def close(self, status: str) -> dict[str, str]:
        """Record every regular file that appeared in the folder since `open` (this build's files)."""
        files = {p.name: _sha256(p) for p in sorted(self.out.iterdir())
                 if p.name not in self._before and p.is_file() and not p.is_symlink() and _plain_name(p.name)}
        self._write(status, files)
        return files

    def _write(self, status: str, files: dict[str, str]) -> None:
        (self.out / MANIFEST).write_text(json.dumps(
            {"format": FORMAT, "build": self.build_id, "status": status, "files": files}, indent=1))
