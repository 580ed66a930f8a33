"""Bad checkpoints, configs and data files: every command that reads them must refuse them with one line naming the
bad tensor / field / file (see harness.py for what each row asserts).

Checkpoint rows corrupt a copy of the fixture checkpoint (iris, widths 30,30, 3 thresholds, learnable first-layer
wiring) and spread over eval / compile / predict --check / hdl, which all load through warpc.checkpoint.load.
Data rows run `train` (tiny widths and steps, so a wrongly accepted file would fail fast) and `eval --dataset`.
"""
from __future__ import annotations

import json
import pickle

import numpy as np

from .harness import Case

TRAIN = ["train", "--steps", "3", "--quiet", "--device", "cpu", "--widths", "6,6", "--eval-every", "3"]


def _write(path, data: bytes):
    path.write_bytes(data)
    return path


def _text(path, text: str):
    path.write_text(text)
    return path


def _corrupt(fx, dst, tensors=None, meta=None, raw_meta=None, no_meta=False):
    """Copy fx.ckpt to dst with `tensors(dict)` and `meta(dict)` applied in place (or raw_meta as the JSON text;
    no_meta: no warpc metadata at all)."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(fx.ckpt), framework="pt") as f:
        header = json.loads(f.metadata()["warpc"])
        ts = {k: f.get_tensor(k).clone() for k in f.keys()}
    if tensors:
        tensors(ts)
    if meta:
        meta(header)
    text = raw_meta if raw_meta is not None else json.dumps(header)
    save_file(ts, str(dst), metadata=None if no_meta else {"warpc": text})
    return dst


def _set(name, value):
    def edit(ts):
        ts[name].view(-1)[0] = value
    return edit


def _config(**changes):
    def edit(meta):
        meta["config"].update(changes)
    return edit


def _ckpt(cmd, d, fx, **corrupt):
    path = _corrupt(fx, d / "x.safetensors", **corrupt)
    return _command(cmd, path, d)


def _command(cmd, path, d):
    return {"eval": ["eval", path], "compile": ["compile", path, "-o", d / "out"],
            "predict": ["predict", path, "--check"], "hdl": ["hdl", path, "-o", d / "out"]}[cmd]


def _replace(name, fn, source=None):
    """Set tensor `name` to fn(tensor `source`, default `name`): another shape or dtype, or a tensor that does not
    belong to the model."""
    def edit(ts):
        ts[name] = fn(ts[source or name]).clone()
    return edit


def _drop(name):
    return lambda ts: ts.pop(name)


def _truncated(d, fx):
    data = fx.ckpt.read_bytes()
    return _write(d / "x.safetensors", data[: len(data) // 2])


def _csv(d, rows, header="a,b,label"):
    return _text(d / "data.csv", header + "\n" + "\n".join(rows) + "\n")


def _iris_like_rows(n=40, label=None, big=None):
    rng = np.random.default_rng(0)
    rows = []
    for i in range(n):
        a, b = rng.integers(0, 50, 2)
        lab = label if label is not None else i % 2
        rows.append(f"{a},{b},{lab}")
    if big is not None:
        rows[0] = f"{big[0]},1,0"
        rows[1] = f"{big[1]},2,1"
    return rows


def _npz(d, **arrays):
    np.savez(d / "data.npz", **arrays)
    return d / "data.npz"


def _cifar_without_meta(d):
    """data_batch_1..5 and test_batch in the CIFAR python layout, but no batches.meta."""
    folder = d / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {b"data": rng.integers(0, 256, (20, 12), dtype=np.uint8), b"labels": [i % 10 for i in range(20)]}
        (folder / name).write_bytes(pickle.dumps(batch))
    return d


def _idx_bad_magic(d):
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                 "t10k-labels-idx1-ubyte"):
        (d / name).write_bytes(b"\x12\x34\x08\x01" + b"\x00" * 16)
    return d


def _config_row(name: str, config_json: str, expect: tuple[str, ...]) -> Case:
    """`warpc train` with a --config file holding `config_json`."""
    return Case(f"train-config-{name}", lambda d, fx: [*TRAIN, "--dataset", "iris", "--config",
                                                        _text(d / "c.json", config_json), "--out", d / "m.safetensors"],
                expect)


CASES: list[Case] = [
    # --- files that are not checkpoints -----------------------------------------------------------------------
    Case("ckpt-not-safetensors", lambda d, fx: ["eval", _write(d / "x.safetensors", b"garbage")],
         ("x.safetensors",)),
    Case("ckpt-zero-bytes", lambda d, fx: ["predict", _write(d / "x.safetensors", b""), "--check"],
         ("x.safetensors", "not a readable")),
    Case("ckpt-truncated", lambda d, fx: ["compile", _truncated(d, fx), "-o", d / "out"],
         ("x.safetensors", "not a readable")),
    Case("ckpt-directory", lambda d, fx: ["eval", (d / "x.safetensors").mkdir() or d / "x.safetensors"],
         ("x.safetensors", "directory")),
    Case("ckpt-no-warpc-metadata", lambda d, fx: _ckpt("hdl", d, fx, no_meta=True), ("not a warpc checkpoint",)),
    Case("ckpt-foreign-format", lambda d, fx: _ckpt("eval", d, fx, meta=lambda m: m.update(format="other")),
         ("format",)),
    # --- metadata -----------------------------------------------------------------------------------------------
    Case("ckpt-meta-json-list", lambda d, fx: _ckpt("compile", d, fx, raw_meta="[1, 2, 3]"),
         ("metadata", "json object")),
    Case("ckpt-meta-not-json", lambda d, fx: _ckpt("eval", d, fx, raw_meta="{not json"), ("not valid json",)),
    Case("ckpt-config-missing", lambda d, fx: _ckpt("eval", d, fx, meta=lambda m: m.pop("config")),
         ("config",)),
    Case("ckpt-config-is-list", lambda d, fx: _ckpt("predict", d, fx, meta=lambda m: m.update(config=[4, 3])),
         ("config",)),
    Case("ckpt-format-version-text", lambda d, fx: _ckpt("eval", d, fx, meta=lambda m: m.update(format_version="1")),
         ("format_version",)),
    Case("ckpt-data-meta-list", lambda d, fx: _ckpt("eval", d, fx, meta=lambda m: m.update(data=[1])),
         ("'data'",)),
    Case("ckpt-data-classes-disagree", lambda d, fx: _ckpt("compile", d, fx,
                                                           meta=lambda m: m["data"].update(classes=10)),
         ("data.classes",)),
    Case("ckpt-data-seed-text", lambda d, fx: [*_ckpt("eval", d, fx, meta=lambda m: m["data"].update(seed="x")),
                                                "--dataset", "iris"], ("data.seed",)),
    # --- config fields --------------------------------------------------------------------------------------------
    Case("ckpt-input-bits-0", lambda d, fx: _ckpt("hdl", d, fx, meta=_config(input_bits=0)), ("input_bits",)),
    Case("ckpt-input-bits-text", lambda d, fx: _ckpt("eval", d, fx, meta=_config(input_bits="8")),
         ("input_bits", "integer")),
    Case("ckpt-widths-1e9", lambda d, fx: _ckpt("eval", d, fx, meta=_config(widths=[1_000_000_002, 999_999_999])),
         ("gb", "widths")),
    Case("ckpt-widths-string", lambda d, fx: _ckpt("hdl", d, fx, meta=_config(widths="30,30")), ("widths",)),
    Case("ckpt-unknown-config-key", lambda d, fx: _ckpt("predict", d, fx, meta=_config(depth=3)),
         ("unknown", "depth")),
    Case("ckpt-tau-head-0", lambda d, fx: _ckpt("eval", d, fx, meta=_config(tau_head=0)), ("tau_head",)),
    Case("ckpt-tau-negative", lambda d, fx: _ckpt("compile", d, fx, meta=_config(tau=[-1.0, 1.0])), ("tau[0]",)),
    Case("ckpt-k-7", lambda d, fx: _ckpt("compile", d, fx, meta=_config(k=7)), ("k must be between 2 and 6",)),
    Case("ckpt-wiring-candidates-0", lambda d, fx: _ckpt("eval", d, fx, meta=_config(wiring_candidates=0)),
         ("wiring_candidates",)),
    Case("ckpt-thresholds-list", lambda d, fx: _ckpt("hdl", d, fx, meta=_config(thresholds=[3])),
         ("thresholds", "integer")),
    # --- tensors --------------------------------------------------------------------------------------------------
    Case("ckpt-theta-nan", lambda d, fx: _ckpt("eval", d, fx, tensors=_set("layers.0.theta", float("nan"))),
         ("layers.0.theta", "nan")),
    Case("ckpt-theta-inf", lambda d, fx: _ckpt("compile", d, fx, tensors=_set("layers.1.theta", float("inf"))),
         ("layers.1.theta", "infinite")),
    Case("ckpt-wiring-logits-nan",
         lambda d, fx: _ckpt("predict", d, fx, tensors=_set("layers.0.wiring_logits", float("nan"))),
         ("layers.0.wiring_logits",)),
    Case("ckpt-idx-out-of-range", lambda d, fx: _ckpt("hdl", d, fx, tensors=_set("layers.1.idx", 30)),
         ("layers.1.idx", "0..29")),
    Case("ckpt-cand-negative", lambda d, fx: _ckpt("eval", d, fx, tensors=_set("layers.0.cand", -1)),
         ("layers.0.cand",)),
    Case("ckpt-thresholds-1e12", lambda d, fx: _ckpt("compile", d, fx, tensors=_set("encoder.thresholds", 10**12)),
         ("encoder.thresholds", "input_bits")),
    Case("ckpt-thresholds-minus-1e12",
         lambda d, fx: _ckpt("predict", d, fx, tensors=_set("encoder.thresholds", -10**12)),
         ("encoder.thresholds",)),
    Case("ckpt-theta-wrong-shape",
         lambda d, fx: _ckpt("predict", d, fx, tensors=_replace("layers.0.theta", lambda t: t[:, :2])),
         ("layers.0.theta", "shape")),
    Case("ckpt-idx-float",
         lambda d, fx: _ckpt("compile", d, fx, tensors=_replace("layers.1.idx", lambda t: t.float())),
         ("layers.1.idx", "integers")),
    Case("ckpt-extra-tensor",
         lambda d, fx: _ckpt("hdl", d, fx, tensors=_replace("layers.2.theta", lambda t: t, "layers.1.theta")),
         ("unexpected tensor", "layers.2.theta")),
    Case("ckpt-missing-tensor", lambda d, fx: _ckpt("eval", d, fx, tensors=_drop("layers.1.idx")),
         ("layers.1.idx", "missing")),
    # --- data files through train / eval --dataset -----------------------------------------------------------------
    Case("train-csv-plus-minus-1e308",
         lambda d, fx: [*TRAIN, "--dataset", _csv(d, _iris_like_rows(big=("1e308", "-1e308"))),
                        "--out", d / "m.safetensors"], ("data.csv", "feature 0", "range")),
    Case("train-csv-inf", lambda d, fx: [*TRAIN, "--dataset", _csv(d, _iris_like_rows(big=("1e309", "2"))),
                                         "--out", d / "m.safetensors"], ("data.csv", "row 2", "'a'", "finite")),
    Case("train-csv-nan", lambda d, fx: [*TRAIN, "--dataset", _csv(d, _iris_like_rows(big=("nan", "2"))),
                                         "--out", d / "m.safetensors"], ("data.csv", "nan")),
    Case("train-csv-one-class", lambda d, fx: [*TRAIN, "--dataset", _csv(d, _iris_like_rows(label=7)),
                                               "--out", d / "m.safetensors"], ("at least 2 classes", "'7'")),
    Case("train-csv-fractional-labels",
         lambda d, fx: [*TRAIN, "--dataset", _csv(d, [f"{i},{i % 5},{(i % 2) + 0.5}" for i in range(40)]),
                        "--out", d / "m.safetensors"], ("label", "integers or text")),
    Case("train-csv-empty", lambda d, fx: [*TRAIN, "--dataset", _text(d / "data.csv", ""),
                                           "--out", d / "m.safetensors"], ("data.csv", "empty")),
    Case("train-npz-mismatched", lambda d, fx: [*TRAIN, "--dataset", _npz(d, x=np.zeros((30, 4)), y=np.arange(29) % 2),
                                                "--out", d / "m.safetensors"], ("data.npz", "30", "29")),
    Case("train-npz-without-x", lambda d, fx: [*TRAIN, "--dataset", _npz(d, features=np.zeros((30, 4))),
                                               "--out", d / "m.safetensors"], ("data.npz", "features")),
    Case("train-npz-empty-x", lambda d, fx: [*TRAIN, "--dataset", _npz(d, x=np.zeros((0, 4)), y=np.zeros(0)),
                                             "--out", d / "m.safetensors"], ("data.npz", "empty")),
    Case("train-cifar-without-meta",
         lambda d, fx: [*TRAIN, "--dataset", "cifar10", "--data-dir", _cifar_without_meta(d),
                        "--out", d / "m.safetensors"], ("batches.meta",)),
    Case("train-idx-bad-magic",
         lambda d, fx: [*TRAIN, "--dataset", "mnist", "--data-dir", _idx_bad_magic(d), "--out", d / "m.safetensors"],
         ("magic",)),
    Case("train-val-fraction-1.5", lambda d, fx: [*TRAIN, "--dataset", "iris", "--val-fraction", "1.5",
                                                  "--out", d / "m.safetensors"], ("val fraction", "1.5")),
    Case("train-test-fraction-1", lambda d, fx: [*TRAIN, "--dataset", "iris", "--test-fraction", "1",
                                                 "--out", d / "m.safetensors"], ("test fraction",)),
    Case("train-test-fraction-0", lambda d, fx: [*TRAIN, "--dataset", "iris", "--test-fraction", "0",
                                                 "--out", d / "m.safetensors"], ("test fraction",)),
    _config_row("input-bits-0", '{"input_bits": 0}', ("input_bits",)),
    _config_row("tau-per-layer-0", '{"tau": [1.0, 0]}', ("tau[1] must be a positive",)),
    _config_row("tau-head-text", '{"tau_head": "7"}', ("tau_head must be a number",)),
    _config_row("wiring-candidates-list", '{"wiring_candidates": [16]}', ("wiring_candidates must be an integer",)),
    Case("train-widths-1e9", lambda d, fx: [*TRAIN[:-4], "--widths", "1000000002,999999999", "--dataset", "iris",
                                            "--out", d / "m.safetensors"], ("gb",)),
    Case("train-config-widths-string",
         lambda d, fx: [*TRAIN[:-4], "--config", _text(d / "c.json", '{"widths": "30,30"}'), "--dataset", "iris",
                        "--out", d / "m.safetensors"], ("widths",)),
    Case("eval-dataset-one-class", lambda d, fx: ["eval", fx.ckpt, "--dataset", _text(
        d / "data.csv", "a,b,c,d,label\n" + "".join(f"{i},{i},{i},{i},setosa\n" for i in range(30)))],
         ("at least 2 classes", "setosa")),
    Case("eval-dataset-empty-csv", lambda d, fx: ["eval", fx.ckpt, "--dataset", _text(d / "data.csv", "a,b,label\n")],
         ("data.csv", "no data rows")),
]
