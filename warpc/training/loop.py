"""Training loop for WarpNet: Adam, device-resident data, periodic relaxed + discrete validation, best-checkpoint
keeping, resumable state, NaN detection and a training-curve PNG.

Files written for `out = DIR/NAME.safetensors`:
- `out`                       the best model by discrete validation accuracy (+ final test metrics when done);
- `DIR/NAME.last.safetensors` the latest state for `resume=True` (model, Adam moments as `optim.*` tensors,
                              RNG states, step, history), refreshed at every evaluation;
- `DIR/NAME.curve.png`        validation accuracy (discrete and relaxed) and training loss vs step.
"""
from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..checkpoint import read_checkpoint, save_checkpoint
from ..config import ModelConfig
from ..data import Dataset
from ..errors import CheckpointError, ConfigError, ShapeError, TrainingError
from ..nn import kernels
from ..nn.groupsum import argmax_lowest
from ..nn.model import WarpNet

# Defaults of `warpc train` (chosen for digits: >= 95 % discrete test accuracy in about a minute on 2 CPU cores;
# see docs/frontend.md for the measurements).
DEFAULT_STEPS = 1500
DEFAULT_BATCH_SIZE = 128
DEFAULT_LR = 0.05
DEFAULT_WEIGHT_DECAY = 0.0
EVAL_BATCH = 2048


@dataclass
class TrainResult:
    checkpoint: Path | None
    curve: Path | None
    metrics: dict
    history: list[dict]
    model: WarpNet = field(repr=False)


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """'auto' -> CUDA when available, else CPU; errors for a CUDA request without CUDA."""
    if isinstance(device, torch.device):
        return device
    d = (device or "auto").lower()
    if d == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if d.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError("--device cuda requested but CUDA is not available (use --device auto or cpu)")
    try:
        return torch.device(d)
    except RuntimeError:
        raise ConfigError(f"unknown device {device!r}; use auto, cpu or cuda") from None


def _run_name(out: Path) -> str:
    """NAME of `--out`: the file name without a `.safetensors` suffix. Other dots belong to the name (runs/lr0.02
    must not become runs/lr0 + ".02")."""
    return out.name[: -len(".safetensors")] if out.name.endswith(".safetensors") else out.name


def last_path(out: str | Path) -> Path:
    out = Path(out)
    return out.with_name(_run_name(out) + ".last.safetensors")


def curve_path(out: str | Path) -> Path:
    out = Path(out)
    return out.with_name(_run_name(out) + ".curve.png")


# --- evaluation ------------------------------------------------------------------------------------------------
class _relaxed:
    """Training-mode forward without noise (sampling gumbel -> soft), restoring the mode afterwards."""

    def __init__(self, model: WarpNet) -> None:
        self.model = model

    def __enter__(self):
        self.was = self.model.training
        self.saved = [layer.sampling for layer in self.model.layers]
        for layer in self.model.layers:
            layer.sampling = layer.sampling.replace("gumbel", "soft")
        self.model.train()
        return self.model

    def __exit__(self, *exc):
        for layer, s in zip(self.model.layers, self.saved):
            layer.sampling = s
        self.model.train(self.was)


@torch.no_grad()
def predict(model: WarpNet, x: torch.Tensor, relaxed: bool = False, batch_size: int = EVAL_BATCH) -> torch.Tensor:
    """Class predictions in batches: discrete (eval mode, hardware semantics) or relaxed (soft, no noise)."""
    if x.dim() != 2 or x.shape[1] != model.config.n_features:
        raise ShapeError(f"the model expects {model.config.n_features} features, the data has "
                         f"{x.shape[1] if x.dim() == 2 else tuple(x.shape)}")
    outs = []
    if not relaxed:
        for i in range(0, len(x), batch_size):
            outs.append(model.predict(x[i:i + batch_size]))
    else:
        with _relaxed(model):
            for i in range(0, len(x), batch_size):
                outs.append(argmax_lowest(model(x[i:i + batch_size])))
    return torch.cat(outs) if outs else torch.zeros(0, dtype=torch.long, device=x.device)


def accuracy(model: WarpNet, x: torch.Tensor, y: torch.Tensor, relaxed: bool = False) -> float:
    if len(y) == 0:
        return float("nan")
    return float((predict(model, x, relaxed) == y).float().mean())


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, classes: int) -> np.ndarray:
    """(classes, classes) int64; rows = true class, columns = predicted class."""
    cm = np.zeros((classes, classes), dtype=np.int64)
    np.add.at(cm, (np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)), 1)
    return cm


def build_model(config: ModelConfig, dataset: Dataset) -> WarpNet:
    """A fresh WarpNet for `dataset` with its encoder fitted on the training split."""
    if config.n_features != dataset.n_features:
        raise ShapeError(f"config has n_features={config.n_features} but {dataset.name} has {dataset.n_features}")
    if config.classes != dataset.classes:
        raise ShapeError(f"config has classes={config.classes} but {dataset.name} has {dataset.classes}")
    return WarpNet(config).fit_encoder(dataset.x_train)


class Adam:
    """Plain Adam (L2 weight decay as torch.optim.Adam). torch.optim's first step imports torch._dynamo, which
    costs 3-8 s of start-up on this CPU: a large share of a one-minute training run."""

    def __init__(self, params, lr: float, betas=(0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0.0) -> None:
        self.param_groups = [{"params": [p for p in params if p.requires_grad], "lr": lr, "betas": betas,
                              "eps": eps, "weight_decay": weight_decay}]
        self.state: dict = {}
        self._fused: bool | None = None  # None: try torch._fused_adam_ on the first step

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.param_groups[0]["params"]:
            p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        g = self.param_groups[0]
        b1, b2 = g["betas"]
        if self._fused is not False:
            # CPU: one fused ATen kernel for all parameters (what torch.optim.Adam(fused=True) runs, without
            # importing torch._dynamo), same formula as torch.optim.Adam. Otherwise the loop below.
            ps = [p for p in g["params"] if p.grad is not None]
            if ps and all(p.device.type == "cpu" and p.dtype == torch.float32 for p in ps):
                sts = [self.state.get(p) or self.state.setdefault(p, {
                    "step": torch.zeros((), dtype=torch.float32),
                    "exp_avg": torch.zeros_like(p), "exp_avg_sq": torch.zeros_like(p)}) for p in ps]
                steps = [st["step"] for st in sts]
                torch._foreach_add_(steps, 1)
                try:
                    torch._fused_adam_(ps, [p.grad for p in ps], [st["exp_avg"] for st in sts],
                                       [st["exp_avg_sq"] for st in sts], [], steps, amsgrad=False, lr=g["lr"],
                                       beta1=b1, beta2=b2, weight_decay=g["weight_decay"], eps=g["eps"],
                                       maximize=False, grad_scale=None, found_inf=None)
                    self._fused = True
                    return
                except (AttributeError, RuntimeError, NotImplementedError):
                    torch._foreach_sub_(steps, 1)
                    if self._fused:
                        raise
                    self._fused = False  # no fused kernel in this torch: the plain loop from now on
        for p in g["params"]:
            if p.grad is None:
                continue
            grad = p.grad if g["weight_decay"] == 0 else p.grad.add(p, alpha=g["weight_decay"])
            st = self.state.get(p)
            if st is None:
                st = self.state[p] = {"step": torch.zeros((), dtype=torch.float32),
                                      "exp_avg": torch.zeros_like(p), "exp_avg_sq": torch.zeros_like(p)}
            st["step"] += 1
            t = float(st["step"])  # a CPU scalar: no device sync
            st["exp_avg"].lerp_(grad, 1 - b1)
            st["exp_avg_sq"].mul_(b2).addcmul_(grad, grad, value=1 - b2)
            denom = (st["exp_avg_sq"] / (1 - b2 ** t)).sqrt_().add_(g["eps"])
            p.addcdiv_(st["exp_avg"], denom, value=-g["lr"] / (1 - b1 ** t))


# --- optimizer / RNG state as tensors (for --resume without pickle) --------------------------------------------
def _optim_tensors(model: WarpNet, opt: Adam, gen: torch.Generator) -> dict[str, torch.Tensor]:
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


# --- the loop ----------------------------------------------------------------------------------------------------
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
    progress: bool = True,
    eval_every: int | None = None,
    curve: bool = True,
) -> TrainResult:
    """Train a WarpNet on `dataset` and return the best model (by discrete validation accuracy) with metrics.

    `steps` (or `epochs` of the training split) sets the length; default DEFAULT_STEPS. With `out`, the best model
    is saved there, the resumable state beside it (see module docstring) and a curve PNG. `resume=True` continues
    from `out`'s `.last` file up to `steps`. A non-finite loss raises TrainingError; the files keep the last good
    state.
    """
    dev = resolve_device(device)
    if batch_size < 1:
        raise ConfigError(f"batch size must be positive, got {batch_size}")
    if not (math.isfinite(lr) and lr > 0):
        raise ConfigError(f"learning rate must be a positive finite number, got {lr}")
    if not (math.isfinite(weight_decay) and weight_decay >= 0):
        raise ConfigError(f"weight decay must be >= 0, got {weight_decay}")
    n_train = len(dataset.y_train)
    if n_train == 0:
        raise ConfigError(f"{dataset.name}: empty training split")
    bs = min(batch_size, n_train)
    per_epoch = max(1, n_train // bs)
    if steps is not None and epochs is not None:
        raise ConfigError("give steps or epochs, not both")
    total = int(steps) if steps is not None else (
        max(1, round(epochs * per_epoch)) if epochs is not None else DEFAULT_STEPS)
    if total < 1:
        raise ConfigError(f"steps must be positive, got {total}")
    every = int(eval_every) if eval_every else max(1, min(500, total // 20))
    out = Path(out) if out is not None else None
    if resume and out is None:
        raise ConfigError("resume needs the checkpoint path (out)")

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
                  "device": str(dev), "eval_every": every}
    step, history, best_acc, best_step, prior_seconds = 0, [], -1.0, 0, 0.0
    best_state = None
    if resume:
        step, history, best_acc, best_step, prior_seconds, best_state = _resume(
            out, model, opt, gen, config, dataset, dev)
        if step >= total:
            raise ConfigError(f"{out}: already trained {step} steps; pass a larger --steps to continue")

    data_meta = dataset.to_meta()
    start_step = step

    def meta(done: bool, metrics: dict) -> dict:
        return {"data": data_meta, "metrics": metrics, "train": train_args,
                "train_state": {"step": step, "best_step": best_step, "best_val_accuracy": best_acc,
                                "seconds": prior_seconds + (time.perf_counter() - t0), "done": done,
                                "history": history}}

    from tqdm.auto import tqdm

    bar = tqdm(total=total, initial=step, disable=not progress, desc="train", unit="step", dynamic_ncols=True,
               leave=True)
    t0 = time.perf_counter()
    loss_sum = torch.zeros((), device=dev)
    loss_n = 0
    eval_seconds = 0.0  # validation + checkpoint writes, reported apart from the optimisation time
    perm, pos = None, per_epoch  # forces a fresh permutation on the first step
    model.train()
    try:
        while step < total:
            if pos >= per_epoch:
                perm, pos = torch.randperm(n_train, device=dev, generator=gen), 0
            idx = perm[pos * bs:(pos + 1) * bs]
            pos += 1
            loss = _loss(model(xtr[idx]), ytr[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            loss_sum += loss.detach()  # stays on the device: no per-step host sync
            loss_n += 1
            step += 1
            bar.update(1)
            if step % every == 0 or step == total:
                mean_loss = float(loss_sum) / loss_n
                loss_sum.zero_()
                loss_n = 0
                if not math.isfinite(mean_loss):
                    kept = f"; kept the last good checkpoint {out} (step {best_step})" if out and best_state else ""
                    raise TrainingError(f"loss became {mean_loss} before step {step}{kept}; "
                                        f"try a lower learning rate (now {lr})")
                te = time.perf_counter()
                va = accuracy(model, xva, yva)
                var = accuracy(model, xva, yva, relaxed=True)
                model.train()
                history.append({"step": step, "loss": mean_loss, "val_accuracy": va, "val_accuracy_relaxed": var,
                                "seconds": round(prior_seconds + time.perf_counter() - t0, 3)})
                if va > best_acc:
                    best_acc, best_step = va, step
                    best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
                    if out is not None:
                        save_checkpoint(out, model, meta(False, {"val_accuracy": va, "val_accuracy_relaxed": var,
                                                                 "step": step}))
                if out is not None:
                    save_checkpoint(last_path(out), model, meta(False, {}), _optim_tensors(model, opt, gen))
                eval_seconds += time.perf_counter() - te
                bar.set_postfix(loss=f"{mean_loss:.3f}", val=f"{va:.4f}", relaxed=f"{var:.4f}", best=f"{best_acc:.4f}")
    finally:
        bar.close()
    time_run = time.perf_counter() - t0
    seconds = prior_seconds + time_run

    # Final: the best model, evaluated on the test split (discrete is what the hardware computes).
    final_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    metrics = {
        "test_accuracy": accuracy(model, xte, yte),
        "test_accuracy_relaxed": accuracy(model, xte, yte, relaxed=True),
        "val_accuracy": accuracy(model, xva, yva),
        "val_accuracy_relaxed": accuracy(model, xva, yva, relaxed=True),
        "best_step": best_step, "steps": step, "seconds": round(seconds, 3),
        "eval_seconds": round(eval_seconds, 3),
        # optimisation only (this session's steps; validation and checkpoint writes excluded)
        "seconds_per_step": round((time_run - eval_seconds) / max(step - start_step, 1), 6),
        "n_train": n_train, "n_val": int(len(dataset.y_val)), "n_test": int(len(yte)),
        "nodes": int(sum(config.widths)), "device": str(dev),
        # which training kernels ran: "cpp" / "triton" (fused) or "torch" (the plain path)
        "kernels": sorted({kernels.resolve_backend(layer, torch.empty(0, layer.in_features, device=dev))
                           for layer in model.layers}),
    }
    model.eval()
    ckpt = cpath = None
    if out is not None:
        ckpt = save_checkpoint(out, model, meta(True, metrics))
        # The .last file keeps the final (not best) weights so that --resume with more steps continues the run.
        best_now = {k: v.detach().clone() for k, v in model.state_dict().items()}
        model.load_state_dict(final_state)
        save_checkpoint(last_path(out), model, meta(True, metrics), _optim_tensors(model, opt, gen))
        model.load_state_dict(best_now)
        if curve:
            cpath = plot_curve(history, curve_path(out), title=f"{dataset.name}: test {metrics['test_accuracy']:.4f}")
    model.meta = meta(True, metrics)
    return TrainResult(ckpt, cpath, metrics, history, model.eval())


def _loss(scores: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(scores, y)


def _resume(out: Path, model: WarpNet, opt, gen, config: ModelConfig, dataset: Dataset, dev):
    lp = last_path(out)
    if not lp.is_file():
        raise CheckpointError(f"cannot resume: {lp} not found (it is written beside {out.name} during training)")
    meta, tensors = read_checkpoint(lp)
    if meta.get("config") != config.to_dict():
        raise ConfigError(f"cannot resume: {lp} was trained with a different model config")
    st = meta.get("train_state") or {}
    if meta.get("data", {}).get("n_features") not in (None, dataset.n_features):
        raise ShapeError(f"cannot resume: {lp} was trained on {meta['data']['n_features']} features, "
                         f"{dataset.name} has {dataset.n_features}")
    state = {k: v for k, v in tensors.items() if not k.startswith("optim.")}
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise CheckpointError(f"cannot resume from {lp}: {str(e).splitlines()[0]}") from None
    model.to(dev)
    _restore_optim(model, opt, gen, tensors)
    best_state = None
    if out.is_file():
        _, bt = read_checkpoint(out)
        best_state = {k: v.to(dev) for k, v in bt.items() if not k.startswith("optim.")}
    return (int(st.get("step", 0)), list(st.get("history", [])), float(st.get("best_val_accuracy", -1.0)),
            int(st.get("best_step", 0)), float(st.get("seconds", 0.0)), best_state)


def plot_curve(history: list[dict], path: str | Path, title: str = "") -> Path | None:
    """Validation accuracy (discrete, relaxed) and training loss vs step, as a PNG."""
    if not history:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = [h["step"] for h in history]
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    ax.plot(s, [h["val_accuracy"] for h in history], label="val accuracy (discrete)", marker=".")
    ax.plot(s, [h["val_accuracy_relaxed"] for h in history], label="val accuracy (relaxed)", marker=".")
    ax.set_xlabel("step")
    ax.set_ylabel("accuracy")
    ax.grid(alpha=0.3)
    ax2 = ax.twinx()
    ax2.plot(s, [h["loss"] for h in history], color="gray", alpha=0.5, label="train loss")
    ax2.set_ylabel("train loss")
    lines = ax.get_legend_handles_labels()
    lines2 = ax2.get_legend_handles_labels()
    ax.legend(lines[0] + lines2[0], lines[1] + lines2[1], loc="center right")
    ax.set_title(title)
    fig.tight_layout()
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    tmp.replace(path)
    return path


def copy_config(config: ModelConfig, **changes) -> ModelConfig:
    c = copy.deepcopy(config)
    for k, v in changes.items():
        setattr(c, k, v)
    return c.validate()


def evaluate_dataset(model: WarpNet, dataset: Dataset, split: str = "test", device: str | torch.device | None = None
                     ) -> dict:
    """Discrete (hardware-semantics) evaluation of one split: accuracy, confusion matrix, per-class numbers."""
    x, y = dataset.split(split)
    if x.shape[1] != model.config.n_features:
        raise ShapeError(f"the model expects {model.config.n_features} features but {dataset.name} has {x.shape[1]}")
    if int(y.max(initial=0)) >= model.config.classes:
        raise ShapeError(f"{dataset.name} has labels up to {int(y.max())} but the model has "
                         f"{model.config.classes} classes")
    dev = next((b.device for b in model.buffers()), torch.device("cpu")) if device is None else resolve_device(device)
    pred = predict(model.to(dev).eval(), torch.as_tensor(x, dtype=torch.float32, device=dev)).cpu().numpy()
    classes = model.config.classes
    cm = confusion_matrix(y, pred, classes)
    names = list(model.config.class_names or dataset.class_names)
    if len(names) != classes:
        names = [str(i) for i in range(classes)]
    per_class = []
    for i in range(classes):
        support, predicted = int(cm[i].sum()), int(cm[:, i].sum())
        per_class.append({"class": names[i], "support": support,
                          "recall": float(cm[i, i] / support) if support else 0.0,
                          "precision": float(cm[i, i] / predicted) if predicted else 0.0})
    return {"accuracy": float((pred == y).mean()) if len(y) else float("nan"), "n_samples": int(len(y)),
            "correct": int((pred == y).sum()), "split": split, "dataset": dataset.name, "class_names": names,
            "confusion": cm.tolist(), "per_class": per_class}
