"""Bad inputs for `warpc compile` and `warpc predict` (see harness.py for what each row asserts).

Malformed netlists are derived from the fixture's valid netlist JSON, one defect each, and every one is tried with
both commands; data mistakes use small .npz / .csv files written into the case folder."""
from __future__ import annotations

import json

import numpy as np

from .harness import Case


def _write(path, text):
    path.write_text(text)
    return path


def _users_file(out, name, folder=False):
    """An output folder that already holds a file (or folder) of the user's under one of compile's output names."""
    out.mkdir()
    if folder:
        (out / name).mkdir()
    else:
        _write(out / name, '{"mine": true}')
    return out


def _netlist(edit):
    """make(): the fixture netlist with `edit(dict)` applied (edit returns the new JSON value)."""
    def make(d, fx):
        data = json.loads(fx.netlist.read_text())
        return _write(d / "bad.json", json.dumps(edit(data)))
    return make


def _set(**fields):
    def edit(data):
        data.update(fields)
        return data
    return edit


def _drop(key):
    def edit(data):
        del data[key]
        return data
    return edit


def _first_node(data) -> dict:
    if not data["nodes"]:  # the fixture's tiny net may optimise to constants: give it a wire of input 0
        data["nodes"].append({"fanin": [2], "table": "0x2", "layer": 0})
    return data["nodes"][0]


def _node0(**fields):
    def edit(data):
        _first_node(data).update(fields)
        return data
    return edit


def _later_fanin(data):
    node = _first_node(data)
    later = 2 + len(data["inputs"]) + len(data["nodes"])  # a signal defined after the node (or never)
    node["fanin"] = [later] + node["fanin"][1:] if node["fanin"] else [later]
    node["table"] = node["table"] if node["fanin"][1:] else "0x2"
    return data


def _unknown_output(data):
    data["outputs"][0].append(10 ** 6)
    return data


def _one_class(data):
    data["outputs"] = data["outputs"][:1]
    data["class_names"] = None
    return data


def _threshold(value):
    def edit(data):
        data["inputs"][0][1] = value
        return data
    return edit


# (id, how the netlist is spoiled, words the error must contain)
MALFORMED: list[tuple[str, object, tuple[str, ...]]] = [
    ("not-json", lambda d, fx: _write(d / "bad.json", "{not json"), ("bad.json", "not valid json")),
    ("binary", lambda d, fx: (d / "bad.json").write_bytes(b"\x00\xff\xfe" * 10) and d / "bad.json",
     ("bad.json",)),
    ("json-list", lambda d, fx: _write(d / "bad.json", "[1, 2, 3]"), ("bad.json", "not a warpc netlist")),
    ("missing-nodes", _netlist(_drop("nodes")), ("bad.json", "nodes")),
    ("string-for-int", _netlist(_set(n_features="4")), ("n_features", "integer")),
    ("dict-for-inputs", _netlist(_set(inputs={"0": [0, 1]})), ("inputs", "list")),
    ("table-not-hex", _netlist(_node0(table="0xZZ")), ("nodes[0].table", "hex")),
    ("table-int", _netlist(_node0(table=8)), ("nodes[0].table", "hex")),
    ("fanin-later-signal", _netlist(_later_fanin), ("not defined before",)),
    ("output-unknown-signal", _netlist(_unknown_output), ("unknown signal",)),
    ("one-class", _netlist(_one_class), ("two output classes",)),
    ("input-bits-0", _netlist(_set(input_bits=0)), ("input_bits", "1..32")),
    ("input-bits-64", _netlist(_set(input_bits=64)), ("input_bits", "1..32")),
    ("threshold-beyond-input-bits", _netlist(_threshold(1 << 20)), ("threshold", "0..256")),
    ("threshold-negative", _netlist(_threshold(-5)), ("threshold",)),
    ("huge-n-features", _netlist(_set(n_features=10 ** 30)), ("n_features",)),
    ("huge-literal", lambda d, fx: _write(d / "bad.json", '{"format": "warpc-netlist", "n_features": '
                                          + "9" * 5000 + "}"), ("bad.json", "not valid json")),
    ("deep-nesting", lambda d, fx: _write(d / "bad.json", "[" * 100000 + "]" * 100000), ("bad.json",)),
]


def _compile_case(name, make, expect) -> Case:
    return Case(f"compile-netlist-{name}", lambda d, fx: ["compile", make(d, fx), "-o", d / "out"], expect)


def _predict_case(name, make, expect) -> Case:
    return Case(f"predict-netlist-{name}", lambda d, fx: ["predict", make(d, fx), "--dataset", "iris"], expect)


def _npz(path, **arrays):
    np.savez(path, **arrays)
    return path


def _csv(path, n_features, classes, rows=60):
    rng = np.random.default_rng(0)
    lines = [",".join([f"f{i}" for i in range(n_features)] + ["label"])]
    for r in range(rows):
        lines.append(",".join([str(int(v)) for v in rng.integers(0, 8, n_features)] + [str(r % classes)]))
    return _write(path, "\n".join(lines) + "\n")


CASES: list[Case] = [
    *(_compile_case(*m) for m in MALFORMED),
    *(_predict_case(*m) for m in MALFORMED),
    # compile: output folder and options
    Case("compile-out-is-a-file", lambda d, fx: ["compile", fx.ckpt, "-o", _write(d / "out.txt", "mine")],
         ("out.txt", "file"), exit_code=2),
    Case("compile-out-under-a-file", lambda d, fx: ["compile", fx.ckpt, "-o", _write(d / "f", "mine") / "sub"],
         ("is a file",), exit_code=1),
    Case("compile-out-holds-a-users-netlist-json",
         lambda d, fx: ["compile", fx.ckpt, "-o", _users_file(d / "out", "netlist.json")],
         ("netlist.json", "not written by warpc"), exit_code=1),
    Case("compile-out-has-a-folder-named-netlist-blif",
         lambda d, fx: ["compile", fx.ckpt, "-o", _users_file(d / "out", "netlist.blif", folder=True)],
         ("netlist.blif", "not written by warpc"), exit_code=1),
    Case("compile-depth-not-a-number", lambda d, fx: ["compile", fx.ckpt, "-o", d / "out", "--depth", "abc"],
         ("--depth", "'min'"), exit_code=2),
    Case("compile-depth-zero", lambda d, fx: ["compile", fx.ckpt, "-o", d / "out", "--depth", "0"],
         ("--depth",), exit_code=2),
    Case("compile-cuts-1", lambda d, fx: ["compile", fx.ckpt, "-o", d / "out", "--cuts", "1"],
         ("--cuts",), exit_code=2),
    Case("compile-lut-size-7", lambda d, fx: ["compile", fx.ckpt, "-o", d / "out", "--lut-size", "7"],
         ("--lut-size",), exit_code=2),
    Case("compile-txt-file", lambda d, fx: ["compile", _write(d / "model.txt", "hello"), "-o", d / "out"],
         ("model.txt",), exit_code=1),
    Case("compile-directory", lambda d, fx: ["compile", d, "-o", d / "out"], ("directory",), exit_code=2),
    Case("compile-missing-source", lambda d, fx: ["compile", d / "nope.safetensors", "-o", d / "out"],
         ("nope.safetensors",), exit_code=1),
    # predict: samples
    Case("predict-npz-missing", lambda d, fx: ["predict", fx.netlist, "--npz", d / "none.npz"],
         ("none.npz", "no such"), exit_code=1),
    Case("predict-npz-without-x", lambda d, fx: ["predict", fx.netlist, "--npz",
                                                 _npz(d / "a.npz", features=np.zeros((3, 4)))],
         ("a.npz", "'x'", "features"), exit_code=1),
    Case("predict-npz-wrong-feature-count", lambda d, fx: ["predict", fx.netlist, "--npz",
                                                           _npz(d / "a.npz", x=np.zeros((3, 7), dtype=np.int64))],
         ("a.npz", "4 features", "7"), exit_code=1),
    Case("predict-npz-not-npz", lambda d, fx: ["predict", fx.netlist, "--npz", _write(d / "a.npz", "text")],
         ("a.npz",), exit_code=1),
    Case("predict-npz-strings", lambda d, fx: ["predict", fx.netlist, "--npz",
                                               _npz(d / "a.npz", x=np.array([["a", "b", "c", "d"]]))],
         ("a.npz", "numbers"), exit_code=1),
    Case("predict-npz-features-out-of-range", lambda d, fx: ["predict", fx.netlist, "--npz",
                                                             _npz(d / "a.npz", x=np.full((2, 4), 1000))],
         ("a.npz", "0..255"), exit_code=1),
    Case("predict-npz-labels-beyond-classes", lambda d, fx: ["predict", fx.netlist, "--npz",
                                                             _npz(d / "a.npz", x=np.zeros((3, 4), dtype=int),
                                                                  y=np.array([0, 1, 9]))],
         ("a.npz", "3 classes"), exit_code=1),
    Case("predict-npz-and-dataset", lambda d, fx: ["predict", fx.netlist, "--dataset", "iris", "--npz",
                                                   _npz(d / "a.npz", x=np.zeros((3, 4), dtype=int))],
         ("one source",), exit_code=1),
    Case("predict-check-on-netlist-json", lambda d, fx: ["predict", fx.netlist, "--check"],
         ("--check", "checkpoint"), exit_code=1),
    Case("predict-dataset-other-feature-count", lambda d, fx: ["predict", fx.netlist, "--dataset", "digits"],
         ("4 features", "64"), exit_code=1),
    Case("predict-dataset-more-classes", lambda d, fx: ["predict", fx.netlist, "--dataset",
                                                        _csv(d / "ten.csv", 4, 10)],
         ("ten.csv", "3 classes"), exit_code=1),
    Case("predict-checkpoint-dataset-more-classes", lambda d, fx: ["predict", fx.ckpt, "--dataset",
                                                                   _csv(d / "ten.csv", 4, 10)],
         ("ten.csv", "3 classes"), exit_code=1),
    Case("predict-netlist-recorded-dataset-garbled",
         lambda d, fx: ["predict", _netlist(_set(dataset={"name": 5}))(d, fx)], ("recorded dataset", "name"),
         exit_code=1),
    Case("predict-netlist-recorded-seed-garbled",
         lambda d, fx: ["predict", _netlist(_set(dataset={"name": "iris", "seed": "x"}))(d, fx), "--dataset", "iris"],
         ("seed",), exit_code=1),
    Case("predict-unknown-dataset", lambda d, fx: ["predict", fx.netlist, "--dataset", "nosuchset"],
         ("nosuchset",), exit_code=1),
    Case("predict-split-bad", lambda d, fx: ["predict", fx.netlist, "--split", "bad"], ("--split",), exit_code=2),
    Case("predict-old-k-option", lambda d, fx: ["predict", fx.ckpt, "--k", "4"], ("--k",), exit_code=2),
    Case("predict-directory", lambda d, fx: ["predict", d], ("directory",), exit_code=2),
    Case("predict-txt-file", lambda d, fx: ["predict", _write(d / "model.txt", "hello"), "--dataset", "iris"],
         ("model.txt",), exit_code=1),
]
