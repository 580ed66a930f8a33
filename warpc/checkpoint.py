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
from .errors import CheckpointError, DatasetError, WarpcError

FORMAT = "warpc-checkpoint"
FORMAT_VERSION = 1


def save_checkpoint(path: str | Path, model, meta: dict | None = None, extra_tensors: dict | None = None) -> Path:
    """Write model (+ optional extra tensors, e.g. optimizer state under 'optim.*') atomically, after the same
    tensor checks as load() (finite values, wiring and threshold ranges)."""
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
    try:  # never write a file that load() would refuse (cheap: a few reductions over the tensors)
        check_state(path, model, tensors)
    except CheckpointError as e:
        raise CheckpointError(f"refusing to save: {e}") from None
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


def read_checkpoint(path: str | Path, prepare=None) -> tuple[dict, dict]:
    """(metadata dict, tensors dict) with clear errors for missing, corrupt or foreign files. The metadata is
    checked (a JSON object with the expected field types) before any tensor is read. `prepare(meta)` may return
    {tensor name: shape} expected from the metadata; names and shapes are then checked from the file's header,
    so a tensor that does not belong is refused before it is read into memory."""
    from safetensors import safe_open

    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"{path} is a directory, not a checkpoint file")
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = read_meta(path, (f.metadata() or {}).get("warpc"))
            if prepare is not None:
                shapes = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys() if not k.startswith("optim.")}
                _check_names_shapes(path, prepare(meta), shapes)
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except WarpcError:
        raise
    except Exception as e:  # safetensors raises several types for corrupt files
        raise CheckpointError(f"{path} is not a readable safetensors checkpoint ({type(e).__name__}: {e})") from None
    return meta, tensors


_META_TYPES = {"config": dict, "data": (dict, type(None)), "metrics": dict, "train": dict, "train_state": dict,
               "extra": dict}


def read_meta(path: Path, raw: str | None) -> dict:
    """The parsed metadata["warpc"] JSON, or CheckpointError naming the bad field."""
    if raw is None:
        raise CheckpointError(f"{path} is a safetensors file but not a warpc checkpoint (no 'warpc' metadata)")
    try:
        meta = json.loads(raw)
    except json.JSONDecodeError:
        raise CheckpointError(f"{path}: warpc metadata is not valid JSON") from None
    if not isinstance(meta, dict):
        raise CheckpointError(f"{path}: warpc metadata must be a JSON object, got a JSON {type(meta).__name__}")
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{path}: unknown checkpoint format {meta.get('format')!r} (expected {FORMAT!r})")
    version = meta.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise CheckpointError(f"{path}: metadata field format_version must be a positive integer, got {version!r}")
    if version > FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format {version} is newer than this warpc supports ({FORMAT_VERSION})")
    if "config" not in meta:
        raise CheckpointError(f"{path}: metadata has no model config (field 'config')")
    for key, types in _META_TYPES.items():
        if key in meta and not isinstance(meta[key], types):
            raise CheckpointError(f"{path}: metadata field {key!r} must be a JSON object, "
                                  f"got {type(meta[key]).__name__}")
    return meta


def load(path: str | Path, device: str | torch.device = "cpu"):
    """Load a checkpoint into a ready WarpNet in eval mode; `model.meta` holds the metadata. Everything is
    validated first (config, tensor names/shapes/dtypes, finite values, wiring and threshold ranges), so every
    command that loads a checkpoint refuses a corrupt one with one error naming the bad field or tensor."""
    from .nn.model import WarpNet

    path = Path(path)
    built = {}

    def prepare(meta: dict) -> dict[str, tuple]:
        # The config (and its memory estimate) is checked before any tensor is read.
        try:
            config = ModelConfig.from_dict(meta["config"])
            _check_data_meta(path, config, meta.get("data"))
            built["model"] = WarpNet(config)
        except CheckpointError:
            raise
        except WarpcError as e:
            raise CheckpointError(f"{path}: invalid model config in checkpoint ({e})") from None
        return {k: tuple(v.shape) for k, v in built["model"].state_dict().items()}

    meta, tensors = read_checkpoint(path, prepare)
    model = built["model"]
    state = {k: v for k, v in tensors.items() if not k.startswith("optim.")}
    check_state(path, model, state)
    model.load_state_dict(state, strict=True)
    model.meta = meta
    return model.to(device).eval()


def _check_data_meta(path: Path, config: ModelConfig, data: dict | None) -> None:
    """The recorded dataset (meta["data"]) is read by eval / predict / synth: check its field types here, once."""
    if data is None:
        return
    from .data import check_data_meta

    try:
        check_data_meta(data)
    except DatasetError as e:
        raise CheckpointError(f"{path}: {e}") from None
    for key in ("n_features", "classes"):
        v = data.get(key)
        if v is not None and v != getattr(config, key):
            raise CheckpointError(f"{path}: metadata data.{key} is {v!r} but the model config has "
                                  f"{key}={getattr(config, key)}")


def _check_names_shapes(path: Path, expected: dict[str, tuple], got: dict[str, tuple]) -> None:
    missing = sorted(set(expected) - set(got))
    extra = sorted(set(got) - set(expected))
    if missing:
        raise CheckpointError(f"{path}: tensor {missing[0]!r} is missing" + _more(missing))
    if extra:
        raise CheckpointError(f"{path}: unexpected tensor {extra[0]!r} for this model config" + _more(extra))
    for name, shape in expected.items():
        if tuple(got[name]) != tuple(shape):
            raise CheckpointError(f"{path}: tensor {name!r} has shape {tuple(got[name])}, the config needs "
                                  f"{tuple(shape)}")


def check_state(path: Path, model, state: dict[str, torch.Tensor]) -> None:
    """Tensors against the model built from the config: the same names, shapes and kinds of dtype, finite float
    values, wiring indices inside each layer's inputs and thresholds inside 0..2^input_bits."""
    expected = model.state_dict()
    _check_names_shapes(path, {k: tuple(v.shape) for k, v in expected.items()},
                        {k: tuple(v.shape) for k, v in state.items()})
    for name, want in expected.items():
        got = state[name]
        if want.is_floating_point():
            if not got.is_floating_point():
                raise CheckpointError(f"{path}: tensor {name!r} must be floating point, got {got.dtype}")
            if not bool(torch.isfinite(got).all()):
                raise CheckpointError(f"{path}: tensor {name!r} holds NaN or infinite values")
        elif got.is_floating_point() or got.is_complex() or got.dtype == torch.bool:
            raise CheckpointError(f"{path}: tensor {name!r} must hold integers, got {got.dtype}")
    for i, layer in enumerate(model.layers):
        for buf in ("idx", "cand"):
            name = f"layers.{i}.{buf}"
            t = state.get(name)
            if t is not None and t.numel() and (int(t.min()) < 0 or int(t.max()) >= layer.in_features):
                raise CheckpointError(f"{path}: tensor {name!r} wires inputs {int(t.min())}..{int(t.max())} but "
                                      f"layer {i} has inputs 0..{layer.in_features - 1}")
    if not model.encoder.learnable:  # a learnable encoder's thresholds are derived (and bounded) on use
        t, top = state["encoder.thresholds"], 1 << model.config.input_bits
        if t.numel() and (int(t.min()) < 0 or int(t.max()) > top):
            raise CheckpointError(f"{path}: tensor 'encoder.thresholds' holds {int(t.min())}..{int(t.max())}, "
                                  f"outside 0..{top} that input_bits={model.config.input_bits} can represent")


def _more(names: list[str]) -> str:
    return f" (and {len(names) - 1} more: {', '.join(names[1:4])}{', ...' if len(names) > 4 else ''})" \
        if len(names) > 1 else ""
