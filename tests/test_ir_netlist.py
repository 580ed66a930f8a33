"""The netlist JSON contract: strict parsing (one NetlistError naming the field, never a conversion or a
traceback), Netlist.validate's ranges, the legacy `meta` fields, and discretize's exact threshold clipping."""
import numpy as np
import pytest

from ir_gen import all_features, random_netlist
from warpc.errors import NetlistError
from warpc.ir import InputBit, Netlist, Node
from warpc.ir.discretize import from_description
from warpc.ir.emulate import emulate_counts


def _doc(**changes) -> dict:
    d = random_netlist(3, n_nodes=12).to_dict()
    d.update(changes)
    return d


def test_round_trip_keeps_every_field(tmp_path):
    net = random_netlist(5, n_nodes=30)
    net.dataset, net.packed_k, net.class_names = {"name": "iris", "seed": 0}, 6, ["a", "b", "c"]
    back = Netlist.load(net.save(tmp_path / "n.json"))
    assert back.to_dict() == net.to_dict()
    x = all_features(net, 100, 1)
    assert (emulate_counts(back, x) == emulate_counts(net, x)).all()


def test_legacy_meta_fields_are_read():
    d = _doc()
    del d["dataset"], d["packed_k"]
    d["meta"] = {"data": {"name": "digits"}, "packed_K": 4}
    net = Netlist.from_dict(d)
    assert net.dataset == {"name": "digits"} and net.packed_k == 4


@pytest.mark.parametrize("changes, words", [
    ({"n_features": "4"}, "'n_features' must be an integer"),
    ({"n_features": True}, "'n_features' must be an integer"),
    ({"input_bits": 4.0}, "'input_bits' must be an integer"),
    ({"inputs": {"0": [0, 1]}}, "'inputs' must be a list"),
    ({"inputs": [[0, 1, 2]]}, "'inputs[0]' must have 2 entries"),
    ({"outputs": [[2], "3"]}, "'outputs[1]' must be a list"),
    ({"nodes": [{"fanin": [2]}]}, "'nodes[0]' must be an object"),
    ({"nodes": [{"fanin": [2], "table": "0xg"}]}, "hex string"),
    ({"nodes": [{"fanin": [2], "table": 2}]}, "hex string"),
    ({"nodes": [{"fanin": [2], "table": "0x" + "f" * 5000}]}, "hex string"),
    ({"nodes": [{"fanin": list(range(2, 9)), "table": "0x1"}]}, "at most 6"),
    ({"class_names": "abc"}, "'class_names'"),
    ({"dataset": [1]}, "'dataset'"),
    ({"packed_k": 9}, "'packed_k'"),
    ({"tau_head": float("nan")}, "'tau_head'"),
    ({"format_version": 2}, "format_version"),
    ({"format": "other"}, "not a warpc netlist"),
])
def test_malformed_fields_name_the_field(changes, words):
    with pytest.raises(NetlistError, match=words.replace("[", r"\[").replace("]", r"\]").replace("(", r"\(")):
        Netlist.from_dict(_doc(**changes))


def test_missing_keys_and_non_objects():
    d = _doc()
    del d["nodes"], d["outputs"]
    with pytest.raises(NetlistError, match="lacks the key\\(s\\) nodes, outputs"):
        Netlist.from_dict(d)
    for bad in ([1, 2], "x", None, 3):
        with pytest.raises(NetlistError, match="not a warpc netlist"):
            Netlist.from_dict(bad)


@pytest.mark.parametrize("text, words", [
    ("{not json", "not valid JSON"),
    ('{"a": ' + "9" * 5000 + "}", "not valid JSON"),
    ("[" * 100000 + "]" * 100000, "not valid JSON"),
])
def test_load_reports_the_file(tmp_path, text, words):
    p = tmp_path / "n.json"
    p.write_text(text)
    with pytest.raises(NetlistError, match=words) as e:
        Netlist.load(p)
    assert "n.json" in str(e.value)
    p.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(NetlistError, match="cannot read netlist"):
        Netlist.load(p)


def test_validate_ranges():
    def net(**kw):
        base = dict(n_features=2, inputs=[InputBit(0, 1)], nodes=[Node((2,), 0b10)], outputs=[[3], [2]],
                    input_bits=4)
        base.update(kw)
        return Netlist(**base)

    net().validate()
    net(inputs=[InputBit(0, 0), InputBit(1, 16)]).validate()  # constant 1 and constant 0 are in range
    for kw, words in [({"input_bits": 0}, "input_bits is 0"), ({"input_bits": 64}, "input_bits is 64"),
                      ({"inputs": [InputBit(0, 17)]}, "threshold 17"), ({"inputs": [InputBit(0, -1)]}, "threshold -1"),
                      ({"inputs": [InputBit(2, 1)]}, "feature 2"), ({"n_features": 0}, "n_features is 0"),
                      ({"nodes": [Node((4,), 0b10)]}, "not defined before it"),
                      ({"nodes": [Node((2,), 0b10000)]}, "does not fit"),
                      ({"outputs": [[3]]}, "two output classes"), ({"outputs": [[3], [9]]}, "unknown signal 9"),
                      ({"class_names": ["a"]}, "class_names")]:
        with pytest.raises(NetlistError, match=words):
            net(**kw).validate()


def test_discretize_clips_thresholds_exactly():
    """Thresholds <= 0 and >= 2^input_bits are constants on the hardware's domain; clipping keeps every bit."""
    desc = {"thresholds": [[-7, 3, 1000]], "classes": 2, "input_bits": 4,
            "layers": [{"k": 1, "wiring": [[0], [1], [2], [1]], "tables": [[0, 1]] * 4}]}
    net = from_description(desc)
    assert [b.threshold for b in net.inputs] == [0, 3, 16]
    x = np.arange(16)[:, None]
    expect = np.stack([np.ones(16, int) + (x[:, 0] >= 3), (x[:, 0] >= 3) + np.zeros(16, int)], 1)
    assert (emulate_counts(net, x) == expect).all()
    with pytest.raises(NetlistError, match="1..32"):
        from_description(dict(desc, input_bits=40))
