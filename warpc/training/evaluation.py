"""Evaluation: class predictions (discrete = hardware semantics, or relaxed), accuracy, confusion matrices and the
per-split report behind `warpc eval`."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..data import Dataset
from ..errors import DatasetError, ShapeError
from ..nn.groupsum import argmax_lowest
from ..nn.model import WarpNet
from .device import resolve_device

EVAL_BATCH = 2048


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


def check_data_dir(data_dir: str | Path | None) -> None:
    """A --data-dir that does not exist is a mistake even for datasets that do not read it (bundled, CSV)."""
    if data_dir is not None and not Path(data_dir).is_dir():
        raise DatasetError(f"data folder not found: {data_dir} (--data-dir must name an existing folder)")


def evaluate_checkpoint(checkpoint: str | Path, dataset: str | Path | Dataset | None = None, *,
                        data_dir: str | Path | None = None, label_column: str | int | None = None,
                        split: str = "test", device: str | torch.device = "cpu") -> dict:
    """`warpc eval`: load a checkpoint and evaluate one split (see evaluate_dataset). Without `dataset`, the one
    recorded in the checkpoint is rebuilt with the same split; a named dataset is split with the recorded split
    parameters. The result's "warnings" list says when the rebuilt test split differs from the recorded one."""
    from .. import data as wdata
    from ..checkpoint import load

    if split not in ("train", "val", "test"):
        raise DatasetError(f"unknown split {split!r}; choose train, val or test")
    dev = resolve_device(device)
    check_data_dir(data_dir)
    model = load(checkpoint, device=dev)
    dmeta = model.meta.get("data")
    dmeta = dict(dmeta) if isinstance(dmeta, dict) else {}
    if isinstance(dataset, Dataset):
        ds = dataset
    elif dataset is None:
        ds = wdata.dataset_from_meta(dmeta, data_dir=data_dir)
    else:
        ds = wdata.load_dataset(
            dataset, data_dir=data_dir, label_column=label_column,
            val_fraction=dmeta.get("val_fraction", wdata.VAL_FRACTION),
            test_fraction=dmeta.get("test_fraction") or wdata.TEST_FRACTION, seed=int(dmeta.get("seed", 0)),
            input_bits=model.config.input_bits)
    res = evaluate_dataset(model, ds, split)
    res["warnings"] = []
    if dataset is None and split == "test" and dmeta.get("test_fingerprint") not in (None, ds.fingerprint()):
        res["warnings"].append("the rebuilt test split differs from the one recorded at training time")
    return res
