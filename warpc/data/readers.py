"""File readers: IDX (MNIST family), CIFAR-10 python pickles (restricted unpickler), CSV and NPZ."""
from __future__ import annotations

import csv
import gzip
import io
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
    n = int(np.prod(dims)) if dims else 0
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
    if xtr.ndim < 2 or len(xtr) != len(ytr) or len(xte) != len(yte):
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
    except (OSError, pickle.UnpicklingError, EOFError, ValueError, TypeError) as e:
        raise DatasetError(f"cannot read CIFAR batch {path}: {e}") from None
    if not isinstance(d, dict):
        raise DatasetError(f"{path}: not a CIFAR batch (expected a dict)")
    d = {k.decode() if isinstance(k, bytes) else k: v for k, v in d.items()}
    if "data" not in d or ("labels" not in d and "fine_labels" not in d):
        raise DatasetError(f"{path}: CIFAR batch without 'data'/'labels'")
    x = np.asarray(d["data"], dtype=np.uint8)
    y = np.asarray(d.get("labels", d.get("fine_labels")), dtype=np.int64)
    if x.ndim != 2 or len(x) != len(y):
        raise DatasetError(f"{path}: data {x.shape} and labels {y.shape} disagree")
    return x, y


def read_cifar_meta(folder: Path) -> list[str] | None:
    p = folder / "batches.meta"
    if not p.is_file():
        return None
    try:
        with open(p, "rb") as f:
            d = _RestrictedUnpickler(f, encoding="latin1").load()
        names = d.get("label_names") or d.get(b"label_names")
        return [n.decode() if isinstance(n, bytes) else str(n) for n in names]
    except Exception:  # names are cosmetic; fall back to indices
        return None


def find_cifar_folder(data_dir: Path) -> Path | None:
    for cand in (data_dir, data_dir / "cifar-10-batches-py"):
        if (cand / "data_batch_1").is_file() and (cand / "test_batch").is_file():
            return cand
    return None


def read_cifar_dataset(folder: Path):
    xs, ys = [], []
    for i in range(1, 6):
        p = folder / f"data_batch_{i}"
        if p.is_file():
            x, y = read_cifar_batch(p)
            xs.append(x)
            ys.append(y)
    xte, yte = read_cifar_batch(folder / "test_batch")
    return np.concatenate(xs), np.concatenate(ys), xte, yte, read_cifar_meta(folder)


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
    if all(_is_number(v) for v in labels):
        num = labels.astype(np.float64)
        labels = num.astype(np.int64) if np.all(num == np.round(num)) else labels
    name = header[col] if header else str(col)
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
    try:
        with np.load(path, allow_pickle=False) as z:  # no pickle: object arrays are refused
            return {k: z[k] for k in z.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise DatasetError(f"cannot read NPZ {path}: {e}") from None
