"""warpc.data: bundled sets, IDX, CIFAR pickles, CSV, NPZ, splits, quantisation and errors."""
import gzip
import pickle
import struct

import numpy as np
import pytest

from warpc.data import dataset_from_meta, load_dataset, read_idx
from warpc.errors import DatasetError


def _check_splits(ds, n_total=None):
    for split in ("train", "val", "test"):
        x, y = ds.split(split)
        assert x.dtype == np.int64 and y.dtype == np.int64
        assert x.shape == (len(y), ds.n_features)
        assert y.min() >= 0 and y.max() < ds.classes
    if n_total is not None:
        assert len(ds.y_train) + len(ds.y_val) + len(ds.y_test) == n_total


def test_digits_split_is_fixed_and_integer():
    ds = load_dataset("digits")
    _check_splits(ds, 1797)
    assert ds.n_features == 64 and ds.classes == 10 and ds.quantization is None
    assert ds.x_train.min() == 0 and ds.x_train.max() == 16
    assert abs(len(ds.y_test) - 0.2 * 1797) <= 1
    again = load_dataset("digits")
    assert np.array_equal(again.x_test, ds.x_test) and np.array_equal(again.y_val, ds.y_val)
    other = load_dataset("digits", seed=1)
    assert not np.array_equal(other.y_test, ds.y_test)
    rebuilt = dataset_from_meta(ds.to_meta())
    assert rebuilt.fingerprint() == ds.fingerprint()


@pytest.mark.parametrize("name,n,features,classes", [("iris", 150, 4, 3), ("wine", 178, 13, 3),
                                                     ("breast_cancer", 569, 30, 2)])
def test_float_sets_are_quantised(name, n, features, classes):
    ds = load_dataset(name)
    _check_splits(ds, n)
    assert ds.n_features == features and ds.classes == classes
    assert ds.x_train.min() == 0 and ds.x_train.max() == 255
    q = ds.quantization
    assert len(q) == features and all(e["bits"] == 8 for e in q)
    # raw ≈ offset + scale * q for the training split
    from sklearn import datasets as skd

    raw = {"iris": skd.load_iris, "wine": skd.load_wine, "breast_cancer": skd.load_breast_cancer}[name]().data
    recon = np.array([e["offset"] for e in q]) + np.array([e["scale"] for e in q]) * ds.x_train[:1]
    assert np.isclose(np.abs(raw - recon).sum(1), 0, atol=np.array([e["scale"] for e in q]).sum()).any()
    meta = ds.to_meta()
    assert meta["quantization"] == q and meta["class_names"] == ds.class_names


def _write_idx(path, arr):
    arr = np.asarray(arr, dtype=np.uint8)
    head = struct.pack(">BBBB", 0, 0, 0x08, arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape)
    with gzip.open(path, "wb") as f:
        f.write(head + arr.tobytes())


def _fake_mnist(folder, n_train=60, n_test=20):
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", n_train), ("t10k", n_test)):
        _write_idx(folder / f"{split}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 4, 5)))
        _write_idx(folder / f"{split}-labels-idx1-ubyte.gz", np.arange(n) % 10)


def test_idx_reader_and_fashion_loader(tmp_path):
    _fake_mnist(tmp_path)
    x = read_idx(tmp_path / "train-images-idx3-ubyte.gz")
    assert x.shape == (60, 4, 5) and x.dtype == np.uint8
    ds = load_dataset("fashion-mnist", data_dir=tmp_path)
    _check_splits(ds, 80)
    assert ds.n_features == 20 and len(ds.y_test) == 20 and ds.class_names[0] == "T-shirt/top"
    assert ds.to_meta()["data_dir"] == str(tmp_path)
    assert dataset_from_meta(ds.to_meta()).fingerprint() == ds.fingerprint()
    (tmp_path / "bad-idx").write_bytes(b"\x01\x02\x03")
    with pytest.raises(DatasetError, match="not an IDX"):
        read_idx(tmp_path / "bad-idx")


def test_missing_idx_files_say_where_and_how(tmp_path):
    with pytest.raises(DatasetError) as e:
        load_dataset("fashion-mnist", data_dir=tmp_path)
    assert str(tmp_path) in str(e.value) and "apt-get install dataset-fashion-mnist" in str(e.value)
    with pytest.raises(DatasetError, match="mnist"):
        load_dataset("mnist", data_dir=tmp_path / "nope")


def test_cifar_batches_with_restricted_unpickler(tmp_path):
    rng = np.random.default_rng(0)
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for name, n in [(f"data_batch_{i}", 10) for i in range(1, 6)] + [("test_batch", 10)]:
        d = {b"data": rng.integers(0, 256, (n, 3072)).astype(np.uint8), b"labels": list(rng.integers(0, 10, n))}
        d[b"labels"] = [int(v) for v in d[b"labels"]]
        with open(folder / name, "wb") as f:
            pickle.dump(d, f, protocol=2)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({b"label_names": [f"c{i}".encode() for i in range(10)]}, f, protocol=2)
    ds = load_dataset("cifar10", data_dir=tmp_path)
    assert ds.n_features == 3072 and len(ds.y_test) == 10 and ds.class_names[3] == "c3"
    _check_splits(ds, 60)

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    with open(folder / "test_batch", "wb") as f:
        pickle.dump({"data": Evil(), "labels": [0]}, f)
    with pytest.raises(DatasetError, match="refusing"):
        load_dataset("cifar10", data_dir=tmp_path)


def test_csv_header_label_by_name_and_index(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 3))
    labels = np.where(x[:, 0] > 0, "pos", "neg")
    p = tmp_path / "d.csv"
    p.write_text("a,b,kind,c\n" + "\n".join(f"{r[0]},{r[1]},{lab},{r[2]}" for r, lab in zip(x, labels)))
    ds = load_dataset(str(p), label_column="kind")
    _check_splits(ds, 40)
    assert ds.n_features == 3 and ds.class_names == ["neg", "pos"] and ds.quantization is not None
    ds2 = load_dataset(str(p), label_column=2)
    assert np.array_equal(ds2.x_test, ds.x_test)
    assert dataset_from_meta(ds.to_meta()).fingerprint() == ds.fingerprint()
    with pytest.raises(DatasetError, match="label column 'nope' not found"):
        load_dataset(str(p), label_column="nope")
    # no header, integer features in range: no quantisation, label = last column by default
    q = tmp_path / "ints.csv"
    q.write_text("\n".join(f"{i % 7},{(3 * i) % 11},{i % 2}" for i in range(30)))
    ds3 = load_dataset(str(q))
    assert ds3.quantization is None and ds3.n_features == 2 and ds3.classes == 2


def test_npz_both_layouts(tmp_path):
    rng = np.random.default_rng(0)
    p = tmp_path / "a.npz"
    np.savez(p, x_train=rng.integers(0, 256, (30, 2, 3)), y_train=np.arange(30) % 3,
             x_test=rng.integers(0, 256, (9, 2, 3)), y_test=np.arange(9) % 3)
    ds = load_dataset(str(p))
    assert ds.n_features == 6 and len(ds.y_test) == 9 and ds.quantization is None
    q = tmp_path / "b.npz"
    np.savez(q, x=rng.normal(size=(50, 4)), y=np.arange(50) % 2)
    ds2 = load_dataset(str(q), test_fraction=0.2)
    _check_splits(ds2, 50)
    assert len(ds2.y_test) == 10 and ds2.quantization is not None
    bad = tmp_path / "c.npz"
    np.savez(bad, foo=np.zeros(3))
    with pytest.raises(DatasetError, match="x_train"):
        load_dataset(str(bad))
    mism = tmp_path / "d.npz"
    np.savez(mism, x=np.zeros((5, 2)), y=np.zeros(4))
    with pytest.raises(DatasetError, match="labels"):
        load_dataset(str(mism))


def test_unknown_dataset_and_missing_file(tmp_path):
    with pytest.raises(DatasetError, match="known datasets: digits"):
        load_dataset("imagenet")
    with pytest.raises(DatasetError, match="not found"):
        load_dataset(str(tmp_path / "missing.csv"))


def test_download_needs_torchvision(tmp_path):
    import importlib.util

    if importlib.util.find_spec("torchvision") is not None:
        pytest.skip("torchvision installed: --download would go to the network")
    with pytest.raises(DatasetError, match="torchvision"):
        load_dataset("mnist", data_dir=tmp_path, download=True)


# --- hostile data: nothing silently wrong ------------------------------------------------------------------------
def _csv_file(tmp_path, rows, header="a,b,label"):
    p = tmp_path / "d.csv"
    p.write_text(header + "\n" + "\n".join(rows) + "\n")
    return p


def _rows(n=40, first=None):
    rows = [f"{i % 9},{(5 * i) % 13},{i % 2}" for i in range(n)]
    if first:
        rows[0], rows[1] = first
    return rows


def test_huge_feature_values_quantise_or_are_refused(tmp_path):
    # one outlier of 1e308: a finite range, quantised (saturating), never wrapped to INT64_MIN
    ds = load_dataset(str(_csv_file(tmp_path, _rows(first=("1e308,1,0", "0.5,2,1")))))
    for split in ("train", "val", "test"):
        x, _ = ds.split(split)
        assert x.min() >= 0 and x.max() <= 255
    # +-1e308 in one column: the range overflows float64, the feature would be erased: refused, naming it
    with pytest.raises(DatasetError, match="feature 0 spans -1e.308..1e.308"):
        load_dataset(str(_csv_file(tmp_path, _rows(first=("1e308,1,0", "-1e308,2,1")))))
    # beyond float64 (inf), nan: refused with row and column
    with pytest.raises(DatasetError, match=r"row 3, column 'a' is inf"):
        load_dataset(str(_csv_file(tmp_path, _rows(first=("0,1,0", "1e309,2,1")))))
    with pytest.raises(DatasetError, match=r"row 2, column 'b' is nan"):
        load_dataset(str(_csv_file(tmp_path, _rows(first=("0,nan,0", "1,2,1")))))


def test_quantisation_never_wraps():
    from warpc.data import apply_quantization, fit_quantization
    from warpc.data.dataset import _to_int

    x = np.array([[-1e308], [1e308 / 3], [0.0]])
    q = fit_quantization(x[:1].repeat(2, 0) * [[1], [0.5]], 8)
    out = apply_quantization(np.array([[1e308], [-1e308], [0.0]]), q)
    assert out.min() >= 0 and out.max() <= 255 and out[0, 0] == 255 and out[1, 0] == 0
    with pytest.raises(DatasetError, match="NaN or infinite"):
        apply_quantization(np.array([[np.nan]]), q)
    assert _to_int(np.array([[2**64 - 1, 3]], dtype=np.uint64), 8).tolist() == [[255, 3]]


def test_labels_must_be_classes(tmp_path):
    with pytest.raises(DatasetError, match="at least 2 classes.*every sample is '7'"):
        load_dataset(str(_csv_file(tmp_path, [f"{i},{i % 3},7" for i in range(30)])))
    with pytest.raises(DatasetError, match="label column 'label' holds '0.5'.*integers or text"):
        load_dataset(str(_csv_file(tmp_path, [f"{i},{i % 3},{i % 2 + 0.5}" for i in range(30)])))
    # integer labels with gaps become dense classes named by their values (not 8 classes for labels 3 and 7)
    ds = load_dataset(str(_csv_file(tmp_path, [f"{i},{i % 3},{3 if i % 2 else 7}" for i in range(30)])))
    assert ds.classes == 2 and ds.class_names == ["3", "7"]
    p = tmp_path / "f.npz"
    np.savez(p, x=np.zeros((20, 2)), y=np.full(20, np.nan))
    with pytest.raises(DatasetError, match="labels must be integers or text"):
        load_dataset(str(p))
    np.savez(p, x=np.zeros((20, 2)), y=np.arange(20) % 2, class_names=np.array(["only"]))
    with pytest.raises(DatasetError, match="1 class names"):
        load_dataset(str(p))


def test_empty_and_malformed_files(tmp_path):
    for text, words in (("", "empty CSV"), ("a,b,label\n", "no data rows")):
        p = tmp_path / "e.csv"
        p.write_text(text)
        with pytest.raises(DatasetError, match=words):
            load_dataset(str(p))
    p = tmp_path / "e.npz"
    np.savez(p, x=np.zeros((0, 3)), y=np.zeros(0))
    with pytest.raises(DatasetError, match="empty"):
        load_dataset(str(p))
    (tmp_path / "z.npz").write_bytes(b"")
    with pytest.raises(DatasetError, match="cannot read NPZ"):
        load_dataset(str(tmp_path / "z.npz"))
    # IDX: wrong magic, a payload that disagrees with the header, forged dimensions that overflow int64
    (tmp_path / "m.idx").write_bytes(b"\x00\x00\x07\x01" + b"\x00" * 8)
    with pytest.raises(DatasetError, match="bad magic"):
        read_idx(tmp_path / "m.idx")
    (tmp_path / "s.idx").write_bytes(struct.pack(">BBBBI", 0, 0, 8, 1, 10) + b"\x00" * 9)
    with pytest.raises(DatasetError, match="9 bytes, expected 10"):
        read_idx(tmp_path / "s.idx")
    (tmp_path / "f.idx").write_bytes(struct.pack(">BBBB4I", 0, 0, 8, 4, *[2**16] * 4) + b"\x00")
    with pytest.raises(DatasetError, match="expected 18446744073709551616"):
        read_idx(tmp_path / "f.idx")


def test_cifar_without_batches_meta_is_one_clean_error(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for name in ["data_batch_1", "test_batch"]:
        (folder / name).write_bytes(pickle.dumps({b"data": np.zeros((10, 12), np.uint8), b"labels": list(range(10))}))
    with pytest.raises(DatasetError, match="batches.meta is missing"):
        load_dataset("cifar10", data_dir=tmp_path)
    (folder / "batches.meta").write_bytes(b"\x80\x02garbage")
    with pytest.raises(DatasetError, match="cannot read CIFAR meta"):
        load_dataset("cifar10", data_dir=tmp_path)
    (folder / "batches.meta").write_bytes(pickle.dumps({b"num_cases_per_batch": 10}))
    with pytest.raises(DatasetError, match="no 'label_names'"):
        load_dataset("cifar10", data_dir=tmp_path)


@pytest.mark.parametrize("kw,words", [
    (dict(val_fraction=1.5), "val fraction must be between 0 and 1"),
    (dict(val_fraction=0.0), "val fraction"),
    (dict(test_fraction=float("nan")), "test fraction"),
    (dict(test_fraction=-0.1), "test fraction"),
    (dict(input_bits=0), "input_bits must be an integer between 1 and 24"),
    (dict(input_bits=40), "input_bits"),
    (dict(seed=-1), "split seed"),
])
def test_bad_split_and_width_arguments(kw, words):
    with pytest.raises(DatasetError, match=words):
        load_dataset("iris", **kw)


def test_load_arrays_for_prediction(tmp_path):
    from warpc.data import load_arrays

    p = tmp_path / "p.npz"
    np.savez(p, x_test=np.arange(12).reshape(4, 3), y_test=np.array([0, 1, 2, 1]), x=np.zeros((2, 3)))
    x, y, name = load_arrays(p, "test")
    assert x.shape == (4, 3) and y.tolist() == [0, 1, 2, 1] and y.dtype == np.int64 and name == str(p)
    x, y, _ = load_arrays(p, "train")  # no x_train: the plain 'x', and no 'y' beside it
    assert x.shape == (2, 3) and y is None
    for arrays, words in ((dict(features=np.zeros((2, 3))), "no array 'x_test' or 'x' \\(found: features\\)"),
                          (dict(x=np.zeros((3, 2)), y=np.zeros(2)), "3 samples in 'x' but 2 labels"),
                          (dict(x=np.array([[np.inf, 1.0]])), "NaN or infinite"),
                          (dict(x=np.zeros(5)), "samples, features"),
                          (dict(x=np.zeros((2, 2)), y=np.array([0.5, 1.0])), "integer class indices"),
                          (dict(x=np.zeros((2, 2)), y=np.array(["a", "b"])), "integer class index")):
        np.savez(p, **arrays)
        with pytest.raises(DatasetError, match=words):
            load_arrays(p)
    with pytest.raises(DatasetError, match="no such .npz"):
        load_arrays(tmp_path / "none.npz")
    with pytest.raises(DatasetError, match="directory"):
        load_arrays(tmp_path)
