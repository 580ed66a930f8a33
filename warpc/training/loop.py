"""The training loop for WarpNet: Adam, device-resident data, periodic relaxed + discrete validation,
best-checkpoint keeping, a resumable state, NaN detection, SIGINT/SIGTERM handling and a training-curve PNG.

Files (see files.py for the rules that keep a user's files safe): for `out = DIR/NAME.safetensors`,
- `out`                       the best model by discrete validation accuracy (+ final test metrics when done);
- `DIR/NAME.last.safetensors` the latest state for `resume=True` (model, Adam moments, RNG states, batch order,
                              step, history; see state.py), refreshed at every evaluation and on SIGINT/SIGTERM;
- `DIR/NAME.curve.png`        validation accuracy (discrete and relaxed) and training loss vs step.

Under torchrun (or `warpc train --nproc N`) the same loop runs data-parallel (see distributed.py): each process
computes a shard of every global batch, only rank 0 validates and writes, and the run equals the one-process run
up to float reduction order.
"""
from __future__ import annotations

import contextlib
import copy
import math
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from ..checkpoint import save_checkpoint
from ..config import ModelConfig
from ..data import Dataset
from ..errors import ConfigError, ShapeError, TrainingError, TrainingInterrupted
from ..nn import kernels
from ..nn.model import WarpNet
from ..nn.warplut import noise_rows
from . import distributed
from .curve import plot_curve
from .device import resolve_device
from .evaluation import accuracy
from .files import RunFiles, finish_staged, plan_run_files
from .optim import Adam
from .signals import StopRequests
from .state import LoopState, resume_state, state_tensors

# Defaults of `warpc train` (chosen for digits: >= 95 % discrete test accuracy in about a minute on 2 CPU cores;
# see docs/frontend.md for the measurements).
DEFAULT_STEPS = 1500
DEFAULT_BATCH_SIZE = 128
DEFAULT_LR = 0.05
DEFAULT_WEIGHT_DECAY = 0.0
# Data-parallel: a signal repeated within this many seconds (the launcher forwarding Ctrl-C) is the same stop.
REPEAT_SIGNAL_GRACE = 3.0


@dataclass
class TrainResult:
    checkpoint: Path | None
    curve: Path | None
    metrics: dict
    history: list[dict]
    model: WarpNet = field(repr=False)


def build_model(config: ModelConfig, dataset: Dataset) -> WarpNet:
    """A fresh WarpNet for `dataset` with its encoder fitted on the training split."""
    if config.n_features != dataset.n_features:
        raise ShapeError(f"config has n_features={config.n_features} but {dataset.name} has {dataset.n_features}")
    if config.classes != dataset.classes:
        raise ShapeError(f"config has classes={config.classes} but {dataset.name} has {dataset.classes}")
    return WarpNet(config).fit_encoder(dataset.x_train)


def copy_config(config: ModelConfig, **changes) -> ModelConfig:
    c = copy.deepcopy(config)
    for k, v in changes.items():
        setattr(c, k, v)
    return c.validate()


def check_train_options(*, steps=None, epochs=None, batch_size=DEFAULT_BATCH_SIZE, lr=DEFAULT_LR,
                        weight_decay=DEFAULT_WEIGHT_DECAY, eval_every=None) -> None:
    """Training hyper-parameters a run can use (checked before any data is loaded)."""
    if steps is not None and epochs is not None:
        raise ConfigError("give --steps or --epochs, not both")
    if steps is not None and not (isinstance(steps, int) and steps >= 1):
        raise ConfigError(f"--steps must be a positive whole number, got {steps}")
    if epochs is not None and not (math.isfinite(epochs) and epochs > 0):
        raise ConfigError(f"--epochs must be a positive number, got {epochs}")
    if not (isinstance(batch_size, int) and batch_size >= 1):
        raise ConfigError(f"--batch-size must be a positive whole number, got {batch_size}")
    if not (math.isfinite(lr) and lr > 0):
        raise ConfigError(f"--lr (learning rate) must be a positive finite number, got {lr}")
    if not (math.isfinite(weight_decay) and weight_decay >= 0):
        raise ConfigError(f"--weight-decay must be a finite number >= 0, got {weight_decay}")
    if eval_every is not None and not (isinstance(eval_every, int) and eval_every >= 1):
        raise ConfigError(f"--eval-every must be a positive whole number of steps, got {eval_every}")


def train(
    config: ModelConfig,
    dataset: Dataset,
    *,
    steps: int | None = None,
    epochs: float | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    lr: float = DEFAULT_LR,
    weight_decay: float = DEFAULT_WEIGHT_DECAY,
    seed: int = 0,
    device: str | torch.device = "auto",
    out: str | Path | None = None,
    resume: bool = False,
    force: bool = False,
    progress: bool = True,
    eval_every: int | None = None,
    curve: bool = True,
    time_limit: float | None = None,
    patience: int | None = None,
) -> TrainResult:
    """Train a WarpNet on `dataset` and return the best model (by discrete validation accuracy) with metrics.

    `steps` (or `epochs` of the training split) sets the length; default DEFAULT_STEPS. The run ends earlier, at a
    validation, once `time_limit` seconds of training have passed or `patience` steps have brought no better
    validation accuracy (metrics["stopped"] says which: "steps", "budget" or "plateau"). With `out`, the best model
    is saved there, the resumable state beside it and a curve PNG (see files.py: an existing run at `out` is
    continued with `resume=True`, replaced with `force=True` once the new run finishes, and otherwise refused).
    A non-finite loss raises TrainingError; SIGINT / SIGTERM stop at the next step, save the resumable state and
    raise TrainingInterrupted. Either way the files keep the last good state.

    Under torchrun (WORLD_SIZE > 1, or a process group the caller started) the run is data-parallel: `batch_size`
    is the global batch, each process computes its shard, rank 0 alone validates, shows progress and writes the
    files, and every process returns rank 0's best model and metrics (distributed.py).
    """
    if resume and out is None:
        raise ConfigError("resume needs the checkpoint path (out)")
    files = plan_run_files(out, resume=resume, force=force) if out is not None else None
    dev = resolve_device(device)
    check_train_options(steps=steps, epochs=epochs, batch_size=batch_size, lr=lr, weight_decay=weight_decay,
                        eval_every=eval_every)
    if time_limit is not None and not (isinstance(time_limit, (int, float)) and time_limit > 0):
        raise ConfigError(f"time_limit must be a positive number of seconds, got {time_limit!r}")
    if patience is not None and not (isinstance(patience, int) and patience >= 1):
        raise ConfigError(f"patience must be a positive whole number of steps, got {patience!r}")
    ddp = distributed.setup(dev)  # None: one process
    if ddp is not None:
        dev = ddp.device
        progress = progress and ddp.is_main
    writer = files is not None and (ddp is None or ddp.is_main)  # the one process that writes the run's files
    n_train = len(dataset.y_train)
    if n_train == 0:
        raise ConfigError(f"{dataset.name}: empty training split")
    bs = min(batch_size, n_train)
    if ddp is not None and bs < ddp.world:
        raise ConfigError(f"a global batch of {bs} cannot be split over {ddp.world} processes; use --batch-size "
                          f">= {ddp.world} or fewer processes")
    per_epoch = max(1, n_train // bs)
    total = steps if steps is not None else (
        max(1, round(epochs * per_epoch)) if epochs is not None else DEFAULT_STEPS)
    every = eval_every or max(1, min(500, total // 20))

    config.check_memory(batch_size=bs, training=True)  # refuse a net that cannot fit before allocating it
    torch.manual_seed(seed)
    model = build_model(config, dataset).to(dev)
    xtr = torch.as_tensor(dataset.x_train, dtype=torch.float32, device=dev)
    ytr = torch.as_tensor(dataset.y_train, dtype=torch.long, device=dev)
    xva = torch.as_tensor(dataset.x_val, dtype=torch.float32, device=dev)
    yva = torch.as_tensor(dataset.y_val, dtype=torch.long, device=dev)
    xte = torch.as_tensor(dataset.x_test, dtype=torch.float32, device=dev)
    yte = torch.as_tensor(dataset.y_test, dtype=torch.long, device=dev)
    if len(yva) == 0:  # tiny data: validate on the training split rather than not at all
        xva, yva = xtr, ytr
    opt = Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    gen = torch.Generator(device=dev)
    gen.manual_seed(seed)

    train_args = {"steps": total, "batch_size": bs, "lr": lr, "weight_decay": weight_decay, "seed": seed,
                  "device": str(dev), "eval_every": every, "processes": ddp.world if ddp else 1,
                  "time_limit": time_limit, "patience": patience}
    s = LoopState()
    if resume:
        s = resume_state(files.last, files.best, model, opt, gen, config, dataset, dev)
        if s.step >= total:
            raise ConfigError(f"{out}: already trained {s.step} steps; pass a larger --steps to continue")
        if ddp is not None and not ddp.is_main:
            s.loss_sum = 0.0  # the file holds the global running sum; rank 0 alone carries it on
    if writer:
        for p in files.stale:  # pending files of an earlier replacement; `force` asked to discard them
            p.unlink(missing_ok=True)
    net = ddp.wrap(model) if ddp is not None else model  # after resume: DDP starts from the restored weights
    saved_step = s.step if resume else None  # the step of the resumable state on disk (for error messages)

    data_meta = dataset.to_meta()
    start_step = s.step
    perm, pos = (s.perm, s.pos) if s.perm is not None and s.pos is not None else (None, per_epoch)
    loss_sum = torch.full((), s.loss_sum, device=dev)
    loss_n = s.loss_n

    def meta(done: bool, metrics: dict) -> dict:
        return {"data": data_meta, "metrics": metrics, "train": train_args,
                "train_state": {"step": s.step, "best_step": s.best_step, "best_val_accuracy": s.best_acc,
                                "seconds": s.seconds + (time.perf_counter() - t0), "done": done,
                                "history": s.history, "batch_pos": pos, "loss_n": loss_n}}

    def save_last(done: bool, metrics: dict, loss_total: torch.Tensor | None = None) -> None:
        nonlocal saved_step
        if writer:
            _save(files.last, model, meta(done, metrics), state_tensors(model, opt, gen, perm,
                                                                        loss_sum if loss_total is None else loss_total))
            saved_step = s.step

    kernels.prepare(model.layers, dev)  # a first run builds the fused CPU kernel here, not inside the progress bar
    from tqdm.auto import tqdm

    bar = tqdm(total=total, initial=s.step, disable=not progress, desc="train", unit="step", dynamic_ncols=True,
               leave=True)
    t0 = last_eval = time.perf_counter()
    ended = None
    stopped = "steps"  # or "budget" / "plateau" when the run ends early
    eval_seconds = 0.0  # validation + checkpoint writes, reported apart from the optimisation time
    model.train()
    # Signals stay caught until the run's files are final: a stop request after the last step lets it finish.
    with StopRequests(repeat_grace=REPEAT_SIGNAL_GRACE if ddp is not None else 0.0) as stop:
        try:
            while s.step < total:
                if _collective(_stop_requested, stop, ddp, s.step, ddp=ddp, s=s, files=files, saved=saved_step):
                    _stop(stop, s, total, files, save_last, ddp, loss_sum)
                if pos >= per_epoch:
                    perm, pos = torch.randperm(n_train, device=dev, generator=gen), 0
                idx = perm[pos * bs:(pos + 1) * bs]
                pos += 1
                try:
                    loss = _step(net, opt, xtr, ytr, idx, ddp)
                except RuntimeError as e:
                    _peer_failed(e, ddp, s, files, saved_step)
                    raise
                loss_sum += loss  # stays on the device: no per-step host sync
                loss_n += 1
                s.step += 1
                bar.update(1)
                if s.step % every == 0 or s.step == total:
                    mean_loss = float(loss_sum) / loss_n
                    if ddp is not None:  # the shards' parts of the global batches' mean losses
                        mean_loss = _collective(ddp.sum, mean_loss, ddp=ddp, s=s, files=files, saved=saved_step)
                    loss_sum.zero_()
                    loss_n = 0
                    if not math.isfinite(mean_loss):
                        raise TrainingError(f"loss became {mean_loss} before step {s.step}{_kept(files, s)}; "
                                            f"try a lower learning rate (now {lr})")
                    te = time.perf_counter()
                    if ddp is None or ddp.is_main:  # the others wait at their next collective
                        with ddp.main_threads() if ddp is not None else contextlib.nullcontext():
                            va = accuracy(model, xva, yva)
                            var = accuracy(model, xva, yva, relaxed=True)
                        model.train()
                        s.history.append({"step": s.step, "loss": mean_loss, "val_accuracy": va,
                                          "val_accuracy_relaxed": var,
                                          "seconds": round(s.seconds + time.perf_counter() - t0, 3)})
                        if va > s.best_acc:
                            s.best_acc, s.best_step = va, s.step
                            s.best_state = _state_copy(model)
                            if writer:
                                _save(files.best, model, meta(False, {
                                    "val_accuracy": va, "val_accuracy_relaxed": var, "step": s.step}))
                        save_last(False, {})
                        bar.set_postfix(loss=f"{mean_loss:.3f}", val=f"{va:.4f}", relaxed=f"{var:.4f}",
                                        best=f"{s.best_acc:.4f}")
                        now = time.perf_counter()
                        ended = _ended_early(s, now - t0, now - last_eval, time_limit, patience)
                        last_eval = now
                    eval_seconds += time.perf_counter() - te
                    if ddp is not None and (time_limit or patience):  # rank 0 decided; all stop together
                        ended = _collective(ddp.broadcast_object, ended, ddp=ddp, s=s, files=files, saved=saved_step)
                    if ended is not None and s.step < total:
                        stopped = ended
                        break
        finally:
            bar.close()
        time_run = time.perf_counter() - t0
        seconds = s.seconds + time_run
        if ddp is not None:  # every process returns rank 0's best model, history and position
            s.best_state = _collective(ddp.broadcast_state, s.best_state, _state_copy(model), ddp=ddp, s=s,
                                       files=files, saved=saved_step)
            s.history, s.best_step = ddp.broadcast_object((s.history, s.best_step))

        # Final: the best model, evaluated on the test split (discrete is what the hardware computes).
        final_state = _state_copy(model)
        if s.best_state is not None:
            model.load_state_dict(s.best_state)
        model.eval()
        if ddp is None:
            final = _test_metrics(model, xte, yte, xva, yva)
        else:  # rank 0 evaluates (with its machine's threads), the others take its numbers
            final = None
            if ddp.is_main:
                with ddp.main_threads():
                    final = _test_metrics(model, xte, yte, xva, yva)
            final = ddp.broadcast_object(final)
        metrics = {**final,
                   "best_step": s.best_step, "steps": s.step, "stopped": stopped, "seconds": round(seconds, 3),
                   "eval_seconds": round(eval_seconds, 3),
                   # optimisation only (this session's steps; validation and checkpoint writes excluded)
                   "seconds_per_step": round((time_run - eval_seconds) / max(s.step - start_step, 1), 6),
                   "n_train": n_train, "n_val": int(len(dataset.y_val)), "n_test": int(len(yte)),
                   "nodes": int(sum(config.widths)), "device": str(dev), "kernels": _kernels_used(model, dev)}
        if ddp is not None:
            metrics["processes"] = ddp.world
        ckpt = cpath = None
        if writer:
            _save(files.best, model, meta(True, metrics))
            # The .last file keeps the final (not best) weights so that --resume with more steps continues the run.
            best_now = _state_copy(model)
            model.load_state_dict(final_state)
            save_last(True, metrics)
            model.load_state_dict(best_now)
            try:
                finish_staged(files)
                ckpt = files.out
                if curve:
                    cpath = plot_curve(s.history, files.curve,
                                       title=f"{dataset.name}: test {metrics['test_accuracy']:.4f}")
            except OSError as e:
                raise TrainingError(f"cannot write the run's files beside {files.out}: {e.strerror or e}") from None
        elif files is not None:
            ckpt = files.out
    model.meta = meta(True, metrics)
    return TrainResult(ckpt, cpath, metrics, s.history, model.eval())


def _state_copy(model: WarpNet) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _test_metrics(model: WarpNet, xte, yte, xva, yva) -> dict:
    """Discrete (what the hardware computes) and relaxed accuracy of the final model on test and validation."""
    return {"test_accuracy": accuracy(model, xte, yte),
            "test_accuracy_relaxed": accuracy(model, xte, yte, relaxed=True),
            "val_accuracy": accuracy(model, xva, yva), "val_accuracy_relaxed": accuracy(model, xva, yva, relaxed=True)}


def _kernels_used(model: WarpNet, dev: torch.device) -> list[str]:
    """Which training kernels ran: "cpp" / "triton" (fused) or "torch" (the plain path)."""
    return sorted({kernels.resolve_backend(layer, torch.empty(0, layer.in_features, device=dev))
                   for layer in model.layers})


def _save(path: Path, model: WarpNet, meta: dict, extra: dict | None = None) -> None:
    """save_checkpoint with a one-line error for a full disk or a folder that became unwritable."""
    try:
        save_checkpoint(path, model, meta, extra)
    except OSError as e:
        raise TrainingError(f"cannot write {path}: {e.strerror or e}") from None


def _loss(scores: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(scores, y)


def _step(net, opt: Adam, xtr: torch.Tensor, ytr: torch.Tensor, idx: torch.Tensor,
          ddp: distributed.Distributed | None) -> torch.Tensor:
    """One optimizer step on the global batch `idx`; returns this process's part of its mean loss (detached).
    Data-parallel: this process's rows of the batch, with the noise of those rows, and a loss scaled so that
    DDP's average over processes is the gradient of the global batch's mean loss."""
    if ddp is None:
        loss = _loss(net(xtr[idx]), ytr[idx])
        part = loss
    else:
        lo, hi = ddp.shard(len(idx))
        rows = idx[lo:hi]
        with noise_rows(lo, len(idx)):
            scores = net(xtr[rows])
        part = F.cross_entropy(scores, ytr[rows], reduction="sum") / len(idx)
        loss = part * ddp.world
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return part.detach()


def _stop_requested(stop: StopRequests, ddp: distributed.Distributed | None, step: int) -> bool:
    """A stop request, agreed on by every process of a data-parallel run (checked every STOP_CHECK_EVERY steps,
    at the same steps everywhere, so that all stop at the same boundary)."""
    if ddp is None:
        return stop.signum is not None
    if step % distributed.STOP_CHECK_EVERY:
        return False
    return ddp.any(stop.signum is not None)


def _collective(fn, *args, ddp, s: LoopState, files: RunFiles | None, saved: int | None):
    """fn(*args), a collective of the data-parallel run; a peer's failure becomes a TrainingError."""
    try:
        return fn(*args)
    except RuntimeError as e:
        _peer_failed(e, ddp, s, files, saved)
        raise


def _peer_failed(e: RuntimeError, ddp: distributed.Distributed | None, s: LoopState, files: RunFiles | None,
                 saved: int | None) -> None:
    """Raise a TrainingError when `e` means another process of the run died or hung (else return)."""
    if ddp is None or not distributed.is_peer_failure(e):
        return
    where = f"another training process stopped during step {s.step + 1} ({distributed._first_line(e)})"
    if files is None:
        raise TrainingError(f"{where}; nothing saved (no output file)") from None
    if saved is None:
        raise TrainingError(f"{where}; no resumable state was saved yet ({files.last} is written at every "
                            f"validation)") from None
    raise TrainingError(f"{where}; the resumable state {files.last} (step {saved}) is intact: continue with "
                        f"--resume") from None


def _ended_early(s: LoopState, elapsed: float, interval: float, time_limit: float | None,
                 patience: int | None) -> str | None:
    """At a validation: 'budget' when another validation interval would overrun `time_limit`, 'plateau' when
    `patience` steps brought no better validation accuracy, else None."""
    if time_limit is not None and elapsed + interval > time_limit:
        return "budget"
    if patience is not None and s.step - s.best_step >= patience:
        return "plateau"
    return None


def _kept(files: RunFiles | None, s: LoopState) -> str:
    """What a failed run leaves behind, for its error message."""
    if files is None or s.best_state is None:
        return ""
    kept = f"; kept the last good checkpoint {files.best} (step {s.best_step})"
    return kept + (f"; the previous {files.out} is unchanged" if files.staged else "")


def _stop(stop: StopRequests, s: LoopState, total: int, files: RunFiles | None, save_last,
          ddp: distributed.Distributed | None = None, loss_sum: torch.Tensor | None = None) -> None:
    """A stop was requested: save the resumable state at this step boundary and raise TrainingInterrupted."""
    signum = stop.signum or signal.SIGTERM  # a data-parallel peer's request (this process got none itself)
    name = stop.name or signal.Signals(signum).name
    where = f"interrupted by {name} at step {s.step} of {total}"
    if files is None:
        raise TrainingInterrupted(f"{where}; nothing saved (no output file)", signum, s.step)
    if ddp is not None:  # the file keeps the global running loss (every process's part)
        save_last(False, {}, torch.tensor(ddp.sum(float(loss_sum))))
    else:
        save_last(False, {})
    prev = f"; the previous {files.out} is unchanged" if files.staged else ""
    raise TrainingInterrupted(f"{where}; saved the state in {files.last}{prev}", signum, s.step)
