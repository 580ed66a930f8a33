"""The resumable state of a run, as safetensors tensors (no pickle): Adam moments and steps (`optim.<param>.*`),
RNG states (`optim.rng.*`), the epoch's batch order (`optim.batch.perm`) and the unreported loss sum, so that a
run stopped at any step and resumed takes the same batches and reaches the same weights as an uninterrupted one."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..checkpoint import check_state, read_checkpoint
from ..config import ModelConfig
from ..data import Dataset
from ..errors import CheckpointError, ConfigError, ShapeError
from ..nn.model import WarpNet
from .optim import Adam


@dataclass
class LoopState:
    """What the loop needs to continue: position, history, best so far, batch order and running loss."""

    step: int = 0
    history: list[dict] = field(default_factory=list)
    best_acc: float = -1.0
    best_step: int = 0
    seconds: float = 0.0
    best_state: dict | None = None
    perm: torch.Tensor | None = None
    pos: int | None = None
    loss_sum: float = 0.0
    loss_n: int = 0


def state_tensors(model: WarpNet, opt: Adam, gen: torch.Generator, perm: torch.Tensor | None,
                  loss_sum: torch.Tensor) -> dict[str, torch.Tensor]:
    names = {id(p): n for n, p in model.named_parameters()}
    out: dict[str, torch.Tensor] = {}
    params = [p for g in opt.param_groups for p in g["params"]]
    for p in params:
        for key, val in opt.state.get(p, {}).items():
            if torch.is_tensor(val):
                out[f"optim.{names[id(p)]}.{key}"] = val.detach().float() if key == "step" else val.detach()
    out["optim.rng.batch"] = gen.get_state()
    out["optim.rng.torch"] = torch.get_rng_state()
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        out["optim.rng.cuda"] = torch.cuda.get_rng_state()
    if perm is not None:
        out["optim.batch.perm"] = perm.detach()
    out["optim.loss_sum"] = loss_sum.detach().reshape(1).float()
    return out


def _restore_optim(model: WarpNet, opt: Adam, gen: torch.Generator, tensors: dict) -> None:
    for n, p in model.named_parameters():
        state = {}
        for key in ("step", "exp_avg", "exp_avg_sq"):
            t = tensors.get(f"optim.{n}.{key}")
            if t is not None:
                state[key] = t.to(torch.float32).reshape(()) if key == "step" else t.to(p.device, p.dtype)
        if state:
            opt.state[p] = state
    if "optim.rng.batch" in tensors:
        gen.set_state(tensors["optim.rng.batch"])
    if "optim.rng.torch" in tensors:
        torch.set_rng_state(tensors["optim.rng.torch"])
    if "optim.rng.cuda" in tensors and torch.cuda.is_available():
        torch.cuda.set_rng_state(tensors["optim.rng.cuda"])


def resume_state(last: Path, best: Path, model: WarpNet, opt: Adam, gen: torch.Generator, config: ModelConfig,
                 dataset: Dataset, dev: torch.device) -> LoopState:
    """Load `last` (model, optimizer, RNG, loop position) into the given objects; the best model so far from
    `best` when it exists."""
    if not last.is_file():
        raise CheckpointError(f"cannot resume: {last} not found (it is written beside {best.name} during training)")
    meta, tensors = read_checkpoint(last)
    if meta.get("config") != config.to_dict():
        raise ConfigError(f"cannot resume: {last} was trained with a different model config")
    st = meta.get("train_state") or {}
    data = meta.get("data") if isinstance(meta.get("data"), dict) else {}
    if data.get("n_features") not in (None, dataset.n_features):
        raise ShapeError(f"cannot resume: {last} was trained on {data['n_features']} features, "
                         f"{dataset.name} has {dataset.n_features}")
    state = {k: v for k, v in tensors.items() if not k.startswith("optim.")}
    check_state(last, model, state)  # the same complete checks as warpc.load (finite values, index ranges, ...)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise CheckpointError(f"cannot resume from {last}: {str(e).splitlines()[0]}") from None
    model.to(dev)
    _restore_optim(model, opt, gen, tensors)
    best_state = None
    if best.is_file():
        _, bt = read_checkpoint(best)
        best_state = {k: v.to(dev) for k, v in bt.items() if not k.startswith("optim.")}
    perm = tensors.get("optim.batch.perm")
    loss_sum = tensors.get("optim.loss_sum")
    return LoopState(
        step=int(st.get("step", 0)), history=list(st.get("history", [])),
        best_acc=float(st.get("best_val_accuracy", -1.0)), best_step=int(st.get("best_step", 0)),
        seconds=float(st.get("seconds", 0.0)), best_state=best_state,
        perm=perm.to(dev) if perm is not None else None,
        pos=int(st["batch_pos"]) if perm is not None and "batch_pos" in st else None,
        loss_sum=float(loss_sum.reshape(-1)[0]) if loss_sum is not None else 0.0, loss_n=int(st.get("loss_n", 0)))
