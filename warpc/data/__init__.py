"""Datasets for warpc: bundled scikit-learn sets, IDX (MNIST / Fashion-MNIST), CIFAR-10 pickles, CSV and NPZ.

`load_dataset(name_or_path, ...)` returns a `Dataset` with integer features (the raw hardware domain), labels
0..C-1, fixed train/val/test splits and a `to_meta()` dict; `dataset_from_meta(meta)` rebuilds the same splits
from a checkpoint's meta["data"].

Splits: datasets that ship a test set (IDX, CIFAR, NPZ with x_test) keep it; otherwise `test_fraction` of the
samples is held out (stratified, `seed`). Validation is `val_fraction` of what remains for training
(stratified, seed + 1).
"""
from __future__ import annotations

import numbers
from pathlib import Path

from ..errors import DatasetError
from .dataset import (Dataset, apply_quantization, check_fraction, check_input_bits, fit_quantization,
                      make_dataset)
from .readers import (find_cifar_folder, load_arrays, read_cifar_dataset, read_csv, read_idx, read_idx_dataset,
                      read_npz)

BUNDLED = ("digits", "breast_cancer", "iris", "wine")
IDX_SETS = ("fashion-mnist", "mnist")
KNOWN = BUNDLED + IDX_SETS + ("cifar10",)
_ALIASES = {"breast-cancer": "breast_cancer", "fashion_mnist": "fashion-mnist", "fashionmnist": "fashion-mnist",
            "cifar-10": "cifar10", "cifar_10": "cifar10"}
DEFAULT_DIRS = {"fashion-mnist": "/usr/share/datasets/fashion-mnist", "mnist": "/usr/share/datasets/mnist",
                "cifar10": "/usr/share/datasets/cifar10"}
_HOW_TO_GET = {
    "fashion-mnist": "install it with `apt-get install dataset-fashion-mnist` (files land in "
                     "/usr/share/datasets/fashion-mnist/), pass --data-dir DIR holding "
                     "{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz], or add --download (needs torchvision and "
                     "network)",
    "mnist": "pass --data-dir DIR holding {train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz] from "
             "http://yann.lecun.com/exdb/mnist/ or a mirror, or add --download (needs torchvision and network)",
    "cifar10": "pass --data-dir DIR holding cifar-10-batches-py/ (data_batch_1..5, test_batch) from "
               "https://www.cs.toronto.edu/~kriz/cifar.html, or add --download (needs torchvision and network)",
}
TEST_FRACTION = 0.2
VAL_FRACTION = 0.1

__all__ = ["Dataset", "load_dataset", "dataset_from_meta", "load_arrays", "KNOWN", "read_idx",
           "apply_quantization", "fit_quantization"]


def canonical_name(name: str) -> str:
    n = name.strip().lower()
    return _ALIASES.get(n, n)


def load_dataset(
    name_or_path: str | Path,
    data_dir: str | Path | None = None,
    label_column: str | int | None = None,
    val_fraction: float = VAL_FRACTION,
    test_fraction: float = TEST_FRACTION,
    seed: int = 0,
    input_bits: int = 8,
    download: bool = False,
) -> Dataset:
    """Load a bundled / IDX / CIFAR dataset by name, or a .csv / .npz file by path (see module docstring)."""
    # Cheap argument checks first, before any file is read.
    check_input_bits(input_bits)
    check_fraction("val", val_fraction)
    check_fraction("test", test_fraction)
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or not 0 <= seed < 2**32 - 1:
        raise DatasetError(f"the split seed must be an integer between 0 and {2**32 - 2}, got {seed!r}")
    spec = str(name_or_path)
    key = canonical_name(spec)
    common = dict(val_fraction=val_fraction, test_fraction=test_fraction, seed=seed, input_bits=input_bits)
    if key in BUNDLED:
        return _bundled(key, common)
    if key in IDX_SETS or key == "cifar10":
        return _from_folder(key, data_dir, download, common)
    path = Path(spec).expanduser()
    suffix = path.suffix.lower()
    if suffix in (".csv", ".tsv", ".txt", ".npz") or path.exists():
        if not path.is_file():
            raise DatasetError(f"dataset file not found: {path}")
        if suffix == ".npz":
            return _npz(spec, path, common)
        if suffix in (".csv", ".tsv", ".txt"):
            return _csv(spec, path, label_column, common)
        raise DatasetError(f"{path}: unsupported file type {suffix!r}; use a .csv or .npz file")
    raise DatasetError(f"unknown dataset {spec!r}; known datasets: {', '.join(KNOWN)} "
                       f"(or a path to a .csv / .npz file)")


_META_FIELDS = {  # what readers of a recorded dataset (meta["data"]) rely on: field -> accepted JSON types
    "name": (str,), "data_dir": (str, type(None)), "label_column": (str, int, type(None)),
    "val_fraction": (int, float), "test_fraction": (int, float, type(None)), "seed": (int,), "input_bits": (int,),
    "n_features": (int,), "classes": (int,), "class_names": (list,), "quantization": (list, type(None)),
    "test_fingerprint": (str, type(None)),
}


def check_data_meta(meta: dict) -> None:
    """Field types of a recorded dataset description (Dataset.to_meta()); DatasetError names the first bad one."""
    if not isinstance(meta, dict):
        raise DatasetError(f"the recorded dataset must be a JSON object, got {type(meta).__name__}")
    for key, types in _META_FIELDS.items():
        v = meta.get(key)
        if key in meta and (not isinstance(v, types) or isinstance(v, bool)):
            raise DatasetError(f"the recorded dataset field data.{key} is {v!r}, not a valid value")
    for key in ("val_fraction", "test_fraction"):
        if meta.get(key) is not None and not 0 < meta[key] < 1:
            raise DatasetError(f"the recorded dataset field data.{key} is {meta[key]!r}, not between 0 and 1")
    if "class_names" in meta and not all(isinstance(n, str) for n in meta["class_names"]):
        raise DatasetError("the recorded dataset field data.class_names must hold strings")


def dataset_from_meta(meta: dict, data_dir: str | Path | None = None) -> Dataset:
    """Rebuild the dataset recorded in a checkpoint (meta["data"]) with the same split parameters."""
    if not isinstance(meta, dict) or not meta.get("name"):
        raise DatasetError("the checkpoint records no dataset; pass --dataset")
    try:
        check_data_meta(meta)
    except DatasetError as e:
        raise DatasetError(f"{e}; pass --dataset") from None
    test_fraction = meta.get("test_fraction") or TEST_FRACTION
    return load_dataset(
        meta["name"], data_dir=data_dir if data_dir is not None else meta.get("data_dir"),
        label_column=meta.get("label_column"), val_fraction=meta.get("val_fraction", VAL_FRACTION),
        test_fraction=test_fraction, seed=meta.get("seed", 0), input_bits=meta.get("input_bits", 8),
    )


def _bundled(key: str, common: dict) -> Dataset:
    from sklearn import datasets as skd

    loader = {"digits": skd.load_digits, "breast_cancer": skd.load_breast_cancer, "iris": skd.load_iris,
              "wine": skd.load_wine}[key]
    d = loader()
    names = [str(n) for n in d.target_names]
    return make_dataset(key, d.data, d.target, None, None, class_names=names,
                        source={"kind": "bundled", "data_dir": None, "label_column": None}, **common)


def _from_folder(key: str, data_dir, download: bool, common: dict) -> Dataset:
    explicit = data_dir is not None
    folder = Path(data_dir if explicit else DEFAULT_DIRS[key]).expanduser()
    if download:
        _torchvision_download(key, folder)
    if key == "cifar10":
        found = find_cifar_folder(folder)
        if found is None:
            raise DatasetError(f"cifar10: no CIFAR-10 python batches (data_batch_1, test_batch) under {folder}; "
                               f"{_HOW_TO_GET[key]}")
        xtr, ytr, xte, yte, names = read_cifar_dataset(found)
    else:
        try:
            xtr, ytr, xte, yte = read_idx_dataset(folder)
        except FileNotFoundError as e:
            raise DatasetError(f"{key}: {e} not found in {folder}; {_HOW_TO_GET[key]}") from None
        names = (["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                  "Ankle boot"] if key == "fashion-mnist" else [str(i) for i in range(10)])
    if ytr.size and yte.size and key != "cifar10" and int(max(ytr.max(), yte.max())) >= len(names):
        names = None  # a foreign IDX set in the folder: number its classes
    return make_dataset(key, xtr, ytr, xte, yte, class_names=names,
                        source={"kind": "folder", "data_dir": str(folder) if explicit else None,
                                "label_column": None, "test_given": True}, **common)


def _torchvision_download(key: str, folder: Path) -> None:
    try:
        import torchvision  # noqa: F401
        from torchvision import datasets as tvd
    except ImportError:
        raise DatasetError("--download needs torchvision (pip install torchvision); or fetch the files yourself: "
                           + _HOW_TO_GET[key]) from None
    cls = {"fashion-mnist": tvd.FashionMNIST, "mnist": tvd.MNIST, "cifar10": tvd.CIFAR10}[key]
    try:
        for train in (True, False):
            cls(root=str(folder), train=train, download=True)
    except Exception as e:  # network errors come in many types
        raise DatasetError(f"download of {key} into {folder} failed: {e}") from None


def _csv(spec: str, path: Path, label_column, common: dict) -> Dataset:
    x, y, col = read_csv(path, label_column)
    return make_dataset(spec, x, y, None, None, class_names=None,
                        source={"kind": "csv", "data_dir": None, "label_column": label_column,
                                "label_name": col}, **common)


def _npz(spec: str, path: Path, common: dict) -> Dataset:
    z = read_npz(path)
    names = [str(n) for n in z["class_names"]] if "class_names" in z else None
    if {"x_train", "y_train", "x_test", "y_test"} <= set(z):
        return make_dataset(spec, z["x_train"], z["y_train"], z["x_test"], z["y_test"], class_names=names,
                            source={"kind": "npz", "data_dir": None, "label_column": None, "test_given": True},
                            **common)
    if {"x", "y"} <= set(z):
        return make_dataset(spec, z["x"], z["y"], None, None, class_names=names,
                            source={"kind": "npz", "data_dir": None, "label_column": None}, **common)
    raise DatasetError(f"{path}: NPZ must hold x_train, y_train, x_test, y_test (or x, y); found "
                       f"{', '.join(sorted(z)) or 'nothing'}")
