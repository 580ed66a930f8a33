"""File readers: IDX (MNIST family), CIFAR-10 python pickles (restricted unpickler), CSV and NPZ."""
from __future__ import annotations

import csv
import gzip
import io
import math
import pickle
import zipfile
from pathlib import Path

import numpy as np

from ..errors import DatasetError

# --- IDX -------------------------------------------------------------------------------------------------------
_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (optionally .gz): magic 0x0000 <dtype> <ndim>, big-endian int32 dims, then the data."""
    path = Path(path)
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        raise DatasetError(f"cannot read IDX file {path}: {e}") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise DatasetError(f"{path} is not an IDX file (bad magic number)")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DatasetError(f"{path}: truncated IDX header")
    dims = tuple(int(d) for d in np.frombuffer(raw[4:header], dtype=">u4"))
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    n = math.prod(dims) if dims else 0  # exact: np.prod wraps around for forged dimensions
    if len(raw) - header != n * dtype.itemsize:
        raise DatasetError(f"{path}: IDX payload has {len(raw) - header} bytes, expected {n * dtype.itemsize} "
                           f"for shape {dims}")
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims).astype(dtype.newbyteorder("="))


def find_idx(data_dir: Path, split: str, kind: str) -> Path | None:
    """Locate e.g. train-images-idx3-ubyte[.gz] (also the dotted MNIST spelling and torchvision's raw/ folders)."""
    ndim = "idx3" if kind == "images" else "idx1"
    names = [f"{split}-{kind}-{ndim}-ubyte", f"{split}-{kind}.{ndim}-ubyte"]
    for sub in ("", "raw", "FashionMNIST/raw", "MNIST/raw"):
        for name in names:
            for suffix in (".gz", ""):
                p = data_dir / sub / (name + suffix)
                if p.is_file():
                    return p
    return None


def read_idx_dataset(data_dir: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    arrays = []
    for split in ("train", "t10k"):
        for kind in ("images", "labels"):
            p = find_idx(data_dir, split, kind)
            if p is None:
                raise FileNotFoundError(f"{split}-{kind}-{'idx3' if kind == 'images' else 'idx1'}-ubyte[.gz]")
            arrays.append(read_idx(p))
    xtr, ytr, xte, yte = arrays
    if xtr.ndim < 2 or xte.ndim < 2 or ytr.ndim != 1 or yte.ndim != 1 or len(xtr) != len(ytr) \
            or len(xte) != len(yte):
        raise DatasetError(f"{data_dir}: IDX images and labels disagree "
                           f"(train {xtr.shape} / {ytr.shape}, test {xte.shape} / {yte.shape})")
    return xtr, ytr, xte, yte


# --- CIFAR-10 python pickles ------------------------------------------------------------------------------------
class _RestrictedUnpickler(pickle.Unpickler):
    """Only what the CIFAR batches need: numpy array reconstruction and latin-1 bytes; anything else is refused,
    so a malicious 'batch' file cannot run code."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
        ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    }

    def find_class(self, module: str, name: str):
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        with open(path, "rb") as f:
            d = _RestrictedUnpickler(f, encoding="latin1").load()
    except (OSError, pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError,
            KeyError, MemoryError) as e:
        raise DatasetError(f"cannot read CIFAR batch {path}: {e}") from None
    if not isinstance(d, dict):
        raise DatasetError(f"{path}: not a CIFAR batch (expected a dict)")
    d = {k.decode() if isinstance(k, bytes) else k: v for k, v in d.items()}
    if "data" not in d or ("labels" not in d and "fine_labels" not in d):
        raise DatasetError(f"{path}: CIFAR batch without 'data'/'labels'")
    try:
        x = np.asarray(d["data"], dtype=np.uint8)
        y = np.asarray(d.get("labels", d.get("fine_labels")), dtype=np.int64)
    except (TypeError, ValueError, OverflowError):
        raise DatasetError(f"{path}: CIFAR batch 'data' must be bytes 0..255 and 'labels' integers") from None
    if x.ndim != 2 or y.ndim != 1 or len(x) != len(y):
        raise DatasetError(f"{path}: data {x.shape} and labels {y.shape} disagree")
    return x, y


def read_cifar_meta(folder: Path) -> list[str]:
    """Class names from batches.meta (part of every CIFAR-10 python download; its absence means a damaged or
    partial copy, so it is an error rather than a silent fallback)."""
    p = folder / "batches.meta"
    if not p.is_file():
        raise DatasetError(f"cifar10: {p} is missing; the CIFAR-10 python batches ship it beside data_batch_1 "
                           f"(extract cifar-10-python.tar.gz again)")
    try:
        with open(p, "rb") as f:
            d = _RestrictedUnpickler(f, encoding="latin1").load()
    except (OSError, pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError,
            KeyError, MemoryError) as e:
        raise DatasetError(f"cannot read CIFAR meta {p}: {e}") from None
    names = (d.get("label_names", d.get(b"label_names")) if isinstance(d, dict) else None)
    if not isinstance(names, (list, tuple)) or not names:
        raise DatasetError(f"{p}: not a CIFAR batches.meta (no 'label_names' list)")
    return [n.decode("latin1") if isinstance(n, bytes) else str(n) for n in names]


def find_cifar_folder(data_dir: Path) -> Path | None:
    for cand in (data_dir, data_dir / "cifar-10-batches-py"):
        if (cand / "data_batch_1").is_file() and (cand / "test_batch").is_file():
            return cand
    return None


def read_cifar_dataset(folder: Path):
    names = read_cifar_meta(folder)  # first: cheap, and a damaged copy fails before the large batches are read
    xs, ys = [], []
    for i in range(1, 6):
        p = folder / f"data_batch_{i}"
        if p.is_file():
            x, y = read_cifar_batch(p)
            xs.append(x)
            ys.append(y)
    xte, yte = read_cifar_batch(folder / "test_batch")
    if len(xs) and any(x.shape[1] != xte.shape[1] for x in xs):
        raise DatasetError(f"{folder}: CIFAR batches disagree on the sample size "
                           f"({sorted({x.shape[1] for x in xs + [xte]})} values)")
    return np.concatenate(xs), np.concatenate(ys), xte, yte, names


# --- CSV / NPZ --------------------------------------------------------------------------------------------------
def _is_number(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False


def read_csv(path: Path, label_column: str | int | None) -> tuple[np.ndarray, np.ndarray, str]:
    """(features float64, labels as strings/numbers, label column name). Header auto-detected: the first row is
    a header when any of its cells is not a number. Default label column: one named label/class/target/y, else
    the last column. `label_column` may be a name or an index (negative counts from the end)."""
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise DatasetError(f"cannot read CSV {path}: {e}") from None
    try:
        dialect = csv.Sniffer().sniff(text[:4096], delimiters=",;\t ")
    except csv.Error:
        dialect = csv.excel
    rows = [r for r in csv.reader(io.StringIO(text), dialect) if r and any(c.strip() for c in r)]
    if not rows:
        raise DatasetError(f"{path}: empty CSV")
    header = None
    if not all(_is_number(c) for c in rows[0]):
        header, rows = [c.strip() for c in rows[0]], rows[1:]
    if not rows:
        raise DatasetError(f"{path}: CSV has a header but no data rows")
    width = len(rows[0])
    bad = next((i for i, r in enumerate(rows) if len(r) != width), None)
    if bad is not None:
        raise DatasetError(f"{path}: row {bad + 1 + (header is not None)} has {len(rows[bad])} columns, expected {width}")
    if width < 2:
        raise DatasetError(f"{path}: need at least one feature column and a label column")
    col = _label_index(path, header, width, label_column)
    labels = np.array([r[col].strip() for r in rows])
    try:
        feats = np.array([[float(c) for j, c in enumerate(r) if j != col] for r in rows], dtype=np.float64)
    except ValueError as e:
        raise DatasetError(f"{path}: non-numeric feature value ({e}); only the label column may hold text") from None
    bad = ~np.isfinite(feats)
    if bad.any():
        r, c = (int(v[0]) for v in np.nonzero(bad))
        cols = [j for j in range(width) if j != col]
        cname = header[cols[c]] if header else str(cols[c])
        raise DatasetError(f"{path}: row {r + 1 + (header is not None)}, column {cname!r} is {feats[r, c]}; "
                           f"features must be finite numbers (values beyond ±1.8e308 read as infinite)")
    name = header[col] if header else str(col)
    if all(_is_number(v) for v in labels):
        num = labels.astype(np.float64)
        frac = ~np.isfinite(num) | (num != np.round(num))
        if frac.any():
            r = int(np.argmax(frac))
            raise DatasetError(f"{path}: label column {name!r} holds '{labels[r]}' "
                               f"(row {r + 1 + (header is not None)}); "
                               f"labels must be integers or text class names")
        labels = num.astype(np.int64)
    return feats, labels, name


def _label_index(path: Path, header: list[str] | None, width: int, label_column: str | int | None) -> int:
    if label_column is None:
        if header:
            for cand in ("label", "labels", "class", "target", "y"):
                hits = [i for i, h in enumerate(header) if h.lower() == cand]
                if hits:
                    return hits[0]
        return width - 1
    if isinstance(label_column, str) and header and label_column in header:
        return header.index(label_column)
    try:
        i = int(label_column)
    except (TypeError, ValueError):
        known = f"columns: {', '.join(header[:20])}" if header else "the file has no header row"
        raise DatasetError(f"{path}: label column {label_column!r} not found ({known})") from None
    if not -width <= i < width:
        raise DatasetError(f"{path}: label column index {i} out of range for {width} columns")
    return i % width


def read_npz(path: Path) -> dict:
    if path.is_file() and not zipfile.is_zipfile(path):  # numpy would try to unpickle it and complain about pickles
        raise DatasetError(f"cannot read NPZ {path}: not an .npz file (a zip archive of .npy arrays, as numpy.savez writes)")
    try:
        with np.load(path, allow_pickle=False) as z:  # no pickle: object arrays are refused
            if not hasattr(z, "files"):
                raise DatasetError(f"{path} holds a single .npy array, not an .npz archive of named arrays")
            return {k: z[k] for k in z.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError, KeyError, NotImplementedError) as e:
        raise DatasetError(f"cannot read NPZ {path}: {type(e).__name__}: {e}") from None


def load_arrays(path: str | Path, split: str = "test") -> tuple[np.ndarray, np.ndarray | None, str]:
    """(x, y or None, name) from an .npz for prediction: `x_<split>` (with `y_<split>`) or `x` (with `y`).
    x: (N, features) finite numbers, returned as given (raw features; the model or netlist checks their range);
    y: N integer class indices, as int64. Never unpickles."""
    p = Path(path)
    if p.is_dir():
        raise DatasetError(f"{p} is a directory, not an .npz file")
    if not p.is_file():
        raise DatasetError(f"{p}: no such .npz file")
    if split not in ("train", "val", "test"):
        raise DatasetError(f"unknown split {split!r}; choose train, val or test")
    z = read_npz(p)
    key = next((k for k in (f"x_{split}", "x") if k in z), None)
    if key is None:
        raise DatasetError(f"{p} has no array 'x_{split}' or 'x' (found: {', '.join(sorted(z)) or 'nothing'})")
    x = z[key]
    if x.dtype.kind not in "biuf" or x.ndim != 2 or not len(x):
        raise DatasetError(f"{p}: {key!r} must be a non-empty (samples, features) array of numbers, got "
                           f"{x.dtype} of shape {x.shape}")
    if x.dtype.kind == "f" and not np.all(np.isfinite(x)):
        raise DatasetError(f"{p}: {key!r} holds NaN or infinite values")
    ykey = "y" + key[1:]
    if ykey not in z:
        return x, None, str(p)
    y = z[ykey].reshape(-1) if z[ykey].ndim == 2 and 1 in z[ykey].shape else z[ykey]
    if y.dtype.kind not in "biuf" or y.ndim != 1:
        raise DatasetError(f"{p}: {ykey!r} must be one integer class index per sample, got {y.dtype} of shape "
                           f"{z[ykey].shape}")
    if y.dtype.kind == "f" and not np.all(np.isfinite(y) & (y == np.round(y))):
        raise DatasetError(f"{p}: {ykey!r} must hold integer class indices")
    if len(y) != len(x):
        raise DatasetError(f"{p}: {len(x)} samples in {key!r} but {len(y)} labels in {ykey!r}")
    if y.size and y.min() < 0:
        raise DatasetError(f"{p}: {ykey!r} holds negative class indices")
    return x, y.astype(np.int64), str(p)
