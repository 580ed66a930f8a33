"""Checkpoints: one safetensors file, tensors = the model's state dict, metadata["warpc"] = JSON with the config,
data description (dataset, split seed, quantisation), metrics and version. No pickle anywhere.

Metadata JSON keys: format ("warpc-checkpoint"), format_version, warpc_version, config (ModelConfig dict),
data (dict, free-form but see warpc.data), metrics (dict), train_state (dict, for --resume), extra (dict).
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import torch

from . import __version__
from .config import ModelConfig
from .errors import CheckpointError, WarpcError

FORMAT = "warpc-checkpoint"
FORMAT_VERSION = 1


def save_checkpoint(path: str | Path, model, meta: dict | None = None, extra_tensors: dict | None = None) -> Path:
    """Write model (+ optional extra tensors, e.g. optimizer state under 'optim.*') atomically."""
    from safetensors.torch import save_file

    path = Path(path)
    meta = dict(meta or {})
    header = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "warpc_version": __version__,
        "config": model.config.to_dict(),
        **{k: v for k, v in meta.items() if k not in ("format", "format_version", "warpc_version", "config")},
    }
    if hasattr(model.encoder, "sync_thresholds"):
        model.encoder.sync_thresholds()
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    for k, v in (extra_tensors or {}).items():
        tensors[k] = v.detach().cpu().contiguous()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata={"warpc": json.dumps(header)})
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def read_checkpoint(path: str | Path) -> tuple[dict, dict]:
    """(metadata dict, tensors dict) with clear errors for missing, corrupt or foreign files."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            raw = (f.metadata() or {}).get("warpc")
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as e:  # safetensors raises several types for corrupt files
        raise CheckpointError(f"{path} is not a readable safetensors checkpoint ({type(e).__name__}: {e})") from None
    if raw is None:
        raise CheckpointError(f"{path} is a safetensors file but not a warpc checkpoint (no 'warpc' metadata)")
    try:
        meta = json.loads(raw)
    except json.JSONDecodeError:
        raise CheckpointError(f"{path}: warpc metadata is not valid JSON") from None
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{path}: unknown checkpoint format {meta.get('format')!r}")
    if int(meta.get("format_version", 0)) > FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format {meta['format_version']} is newer than this warpc supports ({FORMAT_VERSION})"
        )
    return meta, tensors


def load(path: str | Path, device: str | torch.device = "cpu"):
    """Load a checkpoint into a ready WarpNet in eval mode; `model.meta` holds the metadata."""
    from .nn.model import WarpNet

    meta, tensors = read_checkpoint(path)
    try:
        config = ModelConfig.from_dict(meta["config"])
        model = WarpNet(config)
    except (KeyError, WarpcError) as e:
        raise CheckpointError(f"{path}: invalid model config in checkpoint ({e})") from None
    state = {k: v for k, v in tensors.items() if not k.startswith("optim.")}
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        first = str(e).strip().splitlines()
        raise CheckpointError(f"{path}: tensors do not match the config ({first[1] if len(first) > 1 else first[0]})") from None
    model.meta = meta
    return model.to(device).eval()
