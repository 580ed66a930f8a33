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


def encode_labels(y: np.ndarray, class_names: list[str] | None = None,
                  what: str = "labels") -> tuple[np.ndarray, list[str]]:
    """Map labels to 0..C-1. Integer labels keep their values when they cover 0..max (or fit `class_names`);
    other integers and text labels are sorted and enumerated. Labels must be integers or text: fractional,
    NaN or infinite numbers are refused (they are not classes)."""
    y = np.asarray(y)
    if y.ndim != 1:
        y = y.reshape(-1) if y.ndim == 2 and 1 in y.shape else y
    if y.ndim != 1:
        raise DatasetError(f"{what} must be one-dimensional, got shape {y.shape}")
    if y.dtype.kind == "b":
        y = y.astype(np.int64)
    if y.dtype.kind == "f":
        bad = ~np.isfinite(y) | (y != np.round(y))
        if bad.any():
            raise DatasetError(f"{what} must be integers or text (class names); got {y[bad][0]} at sample "
                               f"{int(np.argmax(bad))}")
        y = y.astype(np.int64)
    if y.dtype.kind == "O" and all(isinstance(v, str) for v in y):
        y = y.astype(str)
    if y.dtype.kind not in "iuUS":
        raise DatasetError(f"{what} must be integers or text (class names), got an array of {y.dtype}")
    if y.dtype.kind in "iu":
        yi = y.astype(np.int64)
        if class_names is not None:
            if yi.size and (yi.min() < 0 or yi.max() >= len(class_names)):
                raise DatasetError(f"{what} run {int(yi.min())}..{int(yi.max())} but there are "
                                   f"{len(class_names)} class names")
            return yi, list(class_names)
        present = np.unique(yi)
        if present.size and present[0] == 0 and present[-1] == present.size - 1:
            return yi, [str(i) for i in range(present.size)]
        return np.searchsorted(present, yi).astype(np.int64), [str(v) for v in present]
    ys = y.astype(str)
    uniq, inv = np.unique(ys, return_inverse=True)
    if class_names is None:
        return inv.astype(np.int64), [str(u) for u in uniq]
    index = {n: i for i, n in enumerate(class_names)}
    unknown = [u for u in uniq if u not in index]
    if unknown:
        raise DatasetError(f"{what}: label '{unknown[0]}' is not one of the class names {list(class_names)[:10]}")
    return np.array([index[u] for u in uniq], dtype=np.int64)[inv], list(class_names)


def _stratify_ok(y: np.ndarray, n_small: int) -> bool:
    counts = np.bincount(y)
    counts = counts[counts > 0]
    return counts.min() >= 2 and n_small >= len(counts)


def split_indices(y: np.ndarray, fraction: float, seed: int, what: str = "split") -> tuple[np.ndarray, np.ndarray]:
    """(keep, held_out) index arrays; stratified when every class has >= 2 samples."""
    from sklearn.model_selection import train_test_split

    n = len(y)
    check_fraction(what, fraction)
    n_small = int(np.ceil(n * fraction))
    if n_small < 1 or n - n_small < 1:
        raise DatasetError(f"cannot hold out a {what} of {fraction:g} from {n} samples; the data needs more samples")
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


def check_input_bits(bits) -> int:
    """input_bits as the model accepts it (see warpc.config.INPUT_BITS_RANGE)."""
    from ..config import INPUT_BITS_RANGE

    lo, hi = INPUT_BITS_RANGE
    if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)) or not lo <= bits <= hi:
        raise DatasetError(f"input_bits must be an integer between {lo} and {hi}, got {bits!r}")
    return int(bits)


def check_fraction(what: str, fraction) -> float:
    """A split fraction strictly between 0 and 1."""
    try:
        f = float(fraction)
    except (TypeError, ValueError):
        raise DatasetError(f"{what} fraction must be a number between 0 and 1, got {fraction!r}") from None
    if not 0.0 < f < 1.0:
        raise DatasetError(f"{what} fraction must be between 0 and 1 (exclusive), got {fraction}")
    return f


def check_quantisable(name: str, x: np.ndarray) -> None:
    """Refuse a feature whose range (max - min, over all samples) exceeds float64 (e.g. -1e308 and 1e308): such
    values are sentinels or corrupt data, and a linear quantisation over that range would put every ordinary value
    in one level, i.e. silently erase the feature."""
    if x.dtype.kind != "f":
        return  # integers: the range is exact
    x = np.asarray(x, dtype=np.float64)
    with np.errstate(over="ignore"):
        span = x.max(0) - x.min(0)
    bad = np.nonzero(~np.isfinite(span))[0]
    if bad.size:
        f = int(bad[0])
        raise DatasetError(f"{name}: feature {f} spans {x[:, f].min():g}..{x[:, f].max():g}, a range too wide to "
                           f"quantise to integers (it would erase every ordinary value); remove or rescale "
                           f"such values")


def fit_quantization(x_train: np.ndarray, bits: int) -> list[dict]:
    """Per-feature affine map from the train split's min/max onto 0..2^bits-1. Any finite values work, even
    ±1e308: the step is hi/levels - lo/levels, which cannot overflow the way (hi - lo) can."""
    x = np.asarray(x_train, dtype=np.float64)
    lo, hi = x.min(0), x.max(0)
    levels = (1 << bits) - 1
    with np.errstate(over="ignore", under="ignore"):
        scale = hi / levels - lo / levels
    scale = np.where((hi > lo) & np.isfinite(scale) & (scale > 0), scale, 1.0)
    return [{"offset": float(o), "scale": float(s), "bits": int(bits)} for o, s in zip(lo, scale)]


def apply_quantization(x: np.ndarray, quant: list[dict]) -> np.ndarray:
    """raw -> round((raw - offset) / scale) clipped to 0..2^bits-1. Values beyond the fitted range saturate
    (an overflow of raw - offset to ±inf saturates too); NaN or infinite features are refused."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != len(quant):
        raise DatasetError(f"quantisation has {len(quant)} features, data has shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise DatasetError("features hold NaN or infinite values; they cannot be quantised")
    off = np.array([q["offset"] for q in quant], dtype=np.float64)
    scale = np.array([q["scale"] for q in quant], dtype=np.float64)
    if not (np.all(np.isfinite(off)) and np.all(np.isfinite(scale)) and np.all(scale > 0)):
        raise DatasetError("quantisation offsets must be finite and scales positive finite numbers")
    top = np.array([(1 << int(q["bits"])) - 1 for q in quant])
    with np.errstate(over="ignore"):
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
    check_input_bits(input_bits)
    check_fraction("val", val_fraction)
    if x_test is None:
        check_fraction("test", test_fraction)
    x_train = _as_features(x_train, f"{name}: features" if x_test is None else f"{name}: training features")
    y_all = np.asarray(y_train).reshape(-1)
    if len(x_train) != len(y_all):
        raise DatasetError(f"{name}: {len(x_train)} training samples but {y_all.size} labels")
    if x_test is not None:
        x_test = _as_features(x_test, f"{name}: test features")
        y_test = np.asarray(y_test).reshape(-1)
        if x_test.shape[1] != x_train.shape[1]:
            raise DatasetError(f"{name}: train has {x_train.shape[1]} features but test has {x_test.shape[1]}")
        if len(x_test) != len(y_test):
            raise DatasetError(f"{name}: {len(x_test)} test samples but {len(y_test)} labels")
        y_cat, class_names = encode_labels(np.concatenate([y_all, y_test]), class_names, f"{name}: labels")
        y_tr, y_te = y_cat[: len(y_all)], y_cat[len(y_all):]
    else:
        y_tr, class_names = encode_labels(y_all, class_names, f"{name}: labels")
    check_quantisable(name, x_train if x_test is None else np.concatenate([x_train, x_test]))
    present = np.unique(y_tr if x_test is None else np.concatenate([y_tr, y_te]))
    if len(class_names) < 2 or present.size < 2:
        only = f" (every sample is {class_names[int(present[0])]!r})" if present.size == 1 else ""
        raise DatasetError(f"{name}: a classifier needs at least 2 classes, the labels hold {present.size}{only}")
    if x_test is None:
        keep, held = split_indices(y_tr, test_fraction, seed, "test")
        x_test, y_te = x_train[held], y_tr[held]
        x_train, y_tr = x_train[keep], y_tr[keep]
    keep, held = split_indices(y_tr, val_fraction, seed + 1, "val")
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
    if len(x) == 0 or x[0].size == 0:
        raise DatasetError(f"{what} are empty (shape {x.shape}); need at least one sample and one feature")
    x = x.reshape(len(x), -1)
    if x.dtype.kind == "b":
        x = x.astype(np.uint8)
    if x.dtype.kind == "c":
        raise DatasetError(f"{what} are complex numbers; features must be real numbers")
    if x.dtype.kind not in "iufb":
        try:
            x = x.astype(np.float64)
        except (TypeError, ValueError):
            raise DatasetError(f"{what} hold non-numeric values") from None
    if x.dtype.kind == "f":
        bad = ~np.isfinite(x)
        if bad.any():
            r, c = (int(v[0]) for v in np.nonzero(bad))
            raise DatasetError(f"{what} hold NaN or infinite values ({x[r, c]} at sample {r}, feature {c}); "
                               f"features must be finite numbers")
    return x


def _to_int(x: np.ndarray, bits: int) -> np.ndarray:
    """Integer-domain data (checked on train) as int64; val/test values outside the range are clipped."""
    top = (1 << bits) - 1
    return np.clip(np.rint(np.asarray(x, dtype=np.float64)), 0, top).astype(np.int64) \
        if x.dtype.kind == "f" else np.clip(x, 0, top).astype(np.int64)  # clip first: uint64 must not wrap
