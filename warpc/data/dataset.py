"""The Dataset record, deterministic splits and integer quantisation of float features.

Features are integers in the raw domain the hardware receives (digits 0..16, pixels 0..255). Float features are
quantised per feature to `input_bits` unsigned integers with the train split's min/max:
raw ≈ offset + scale * q, recorded in `quantization` so hardware users can quantise live inputs the same way.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np

from ..errors import DatasetError


@dataclass
class Dataset:
    name: str                       # dataset name or file path, as given to load_dataset
    x_train: np.ndarray             # (N, F) int64
    y_train: np.ndarray             # (N,) int64 in [0, classes)
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: list[str]
    quantization: list[dict] | None = None   # per feature {offset, scale, bits}; None = features already integer
    source: dict = field(default_factory=dict)  # how to rebuild: kind, data_dir, label_column, split params

    @property
    def n_features(self) -> int:
        return int(self.x_train.shape[1])

    @property
    def classes(self) -> int:
        return len(self.class_names)

    def split(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        if name not in ("train", "val", "test"):
            raise DatasetError(f"unknown split {name!r}; choose train, val or test")
        return getattr(self, f"x_{name}"), getattr(self, f"y_{name}")

    def fingerprint(self) -> str:
        """Short hash of the test split, so `warpc eval` can tell when a rebuilt split differs."""
        h = hashlib.sha1()
        h.update(np.ascontiguousarray(self.x_test, dtype=np.int64).tobytes())
        h.update(np.ascontiguousarray(self.y_test, dtype=np.int64).tobytes())
        return h.hexdigest()[:16]

    def to_meta(self) -> dict:
        """JSON-serialisable description stored as meta["data"] in checkpoints (enough to rebuild the splits)."""
        return {
            "name": self.name,
            **self.source,
            "n_features": self.n_features,
            "classes": self.classes,
            "class_names": list(self.class_names),
            "n_train": int(len(self.y_train)),
            "n_val": int(len(self.y_val)),
            "n_test": int(len(self.y_test)),
            "x_min": int(self.x_train.min()) if self.x_train.size else 0,
            "x_max": int(self.x_train.max()) if self.x_train.size else 0,
            "quantization": self.quantization,
            "test_fingerprint": self.fingerprint(),
        }

    describe = to_meta

    def __repr__(self) -> str:
        return (f"Dataset({self.name!r}, features={self.n_features}, classes={self.classes}, "
                f"train={len(self.y_train)}, val={len(self.y_val)}, test={len(self.y_test)})")


def encode_labels(y: np.ndarray, class_names: list[str] | None = None) -> tuple[np.ndarray, list[str]]:
    """Map labels to 0..C-1. Integer labels 0..C-1 keep their values; anything else is sorted and enumerated."""
    y = np.asarray(y)
    if y.ndim != 1:
        y = y.reshape(-1) if y.ndim == 2 and 1 in y.shape else y
    if y.ndim != 1:
        raise DatasetError(f"labels must be one-dimensional, got shape {y.shape}")
    if y.dtype.kind in "iu" or (y.dtype.kind == "f" and np.all(np.isfinite(y)) and np.all(y == np.round(y))):
        yi = y.astype(np.int64)
        if yi.size and yi.min() >= 0 and (class_names is None or yi.max() < len(class_names)):
            n = int(yi.max()) + 1 if class_names is None else len(class_names)
            names = list(class_names) if class_names is not None else [str(i) for i in range(n)]
            return yi, names
    uniq, inv = np.unique(y.astype(str) if y.dtype.kind not in "iuf" else y, return_inverse=True)
    names = [str(u) for u in uniq] if class_names is None else list(class_names)
    return inv.astype(np.int64), names


def _stratify_ok(y: np.ndarray, n_small: int) -> bool:
    counts = np.bincount(y)
    counts = counts[counts > 0]
    return counts.min() >= 2 and n_small >= len(counts)


def split_indices(y: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(keep, held_out) index arrays; stratified when every class has >= 2 samples."""
    from sklearn.model_selection import train_test_split

    n = len(y)
    if not 0.0 < fraction < 1.0:
        raise DatasetError(f"split fraction must be between 0 and 1, got {fraction}")
    n_small = int(np.ceil(n * fraction))
    if n_small < 1 or n - n_small < 1:
        raise DatasetError(f"cannot split {n} samples with fraction {fraction}")
    idx = np.arange(n)
    strat = y if _stratify_ok(y, n_small) and _stratify_ok(y, n - n_small) else None
    keep, held = train_test_split(idx, test_size=fraction, random_state=seed, stratify=strat)
    return np.sort(keep), np.sort(held)


def is_integer_domain(x: np.ndarray, bits: int) -> bool:
    """True when x already holds unsigned integers that fit `bits` (no quantisation needed)."""
    if x.dtype.kind in "iu":
        return bool(x.size == 0 or (x.min() >= 0 and x.max() < (1 << bits)))
    if x.dtype.kind == "f":
        if not np.all(np.isfinite(x)):
            return False
        return bool(np.all(x == np.round(x)) and (x.size == 0 or (x.min() >= 0 and x.max() < (1 << bits))))
    return False


def fit_quantization(x_train: np.ndarray, bits: int) -> list[dict]:
    """Per-feature affine map from the train split's min/max onto 0..2^bits-1."""
    x = np.asarray(x_train, dtype=np.float64)
    lo, hi = x.min(0), x.max(0)
    levels = (1 << bits) - 1
    scale = np.where(hi > lo, (hi - lo) / levels, 1.0)
    return [{"offset": float(o), "scale": float(s), "bits": int(bits)} for o, s in zip(lo, scale)]


def apply_quantization(x: np.ndarray, quant: list[dict]) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.shape[1] != len(quant):
        raise DatasetError(f"quantisation has {len(quant)} features, data has {x.shape[1]}")
    off = np.array([q["offset"] for q in quant])
    scale = np.array([q["scale"] for q in quant])
    top = np.array([(1 << int(q["bits"])) - 1 for q in quant])
    q = np.rint((x - off) / scale)
    return np.clip(q, 0, top).astype(np.int64)


def make_dataset(
    name: str,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray | None,
    y_test: np.ndarray | None,
    *,
    class_names: list[str] | None,
    source: dict,
    val_fraction: float,
    test_fraction: float,
    seed: int,
    input_bits: int,
) -> Dataset:
    """Split (test carved from train when no test set is given, then val from train), quantise, check shapes."""
    x_train = _as_features(x_train, "x_train")
    if len(x_train) != len(np.asarray(y_train).reshape(-1)):
        raise DatasetError(f"{name}: {len(x_train)} training samples but {np.asarray(y_train).size} labels")
    y_all = np.asarray(y_train).reshape(-1)
    if x_test is not None:
        x_test = _as_features(x_test, "x_test")
        y_test = np.asarray(y_test).reshape(-1)
        if x_test.shape[1] != x_train.shape[1]:
            raise DatasetError(f"{name}: train has {x_train.shape[1]} features but test has {x_test.shape[1]}")
        if len(x_test) != len(y_test):
            raise DatasetError(f"{name}: {len(x_test)} test samples but {len(y_test)} labels")
        y_cat, class_names = encode_labels(np.concatenate([y_all, y_test]), class_names)
        y_tr, y_te = y_cat[: len(y_all)], y_cat[len(y_all):]
    else:
        y_tr, class_names = encode_labels(y_all, class_names)
        keep, held = split_indices(y_tr, test_fraction, seed)
        x_test, y_te = x_train[held], y_tr[held]
        x_train, y_tr = x_train[keep], y_tr[keep]
    if len(class_names) < 2:
        raise DatasetError(f"{name}: need at least 2 classes, found {len(class_names)}")
    keep, held = split_indices(y_tr, val_fraction, seed + 1)
    x_val, y_val = x_train[held], y_tr[held]
    x_train, y_tr = x_train[keep], y_tr[keep]

    quant = None
    if not is_integer_domain(x_train, input_bits):
        quant = fit_quantization(x_train, input_bits)
        x_train, x_val, x_test = (apply_quantization(a, quant) for a in (x_train, x_val, x_test))
    else:
        x_train, x_val, x_test = (_to_int(a, input_bits) for a in (x_train, x_val, x_test))
    src = dict(source)
    src.update(val_fraction=val_fraction, test_fraction=test_fraction if src.get("test_given") is not True else None,
               seed=seed, input_bits=input_bits)
    return Dataset(name, x_train, y_tr, x_val, y_val, x_test, y_te, [str(c) for c in class_names], quant, src)


def _as_features(x: np.ndarray, what: str) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim < 2:
        raise DatasetError(f"{what} must have shape (samples, features...), got {x.shape}")
    x = x.reshape(len(x), -1)
    if x.dtype.kind not in "iufb":
        try:
            x = x.astype(np.float64)
        except (TypeError, ValueError):
            raise DatasetError(f"{what} holds non-numeric values") from None
    if x.dtype.kind == "f" and not np.all(np.isfinite(x)):
        raise DatasetError(f"{what} holds NaN or infinite values")
    return x


def _to_int(x: np.ndarray, bits: int) -> np.ndarray:
    """Integer-domain data (checked on train) as int64; val/test values outside the range are clipped."""
    return np.clip(np.rint(np.asarray(x, dtype=np.float64)), 0, (1 << bits) - 1).astype(np.int64) \
        if x.dtype.kind == "f" else np.clip(x.astype(np.int64), 0, (1 << bits) - 1)
