"""The gate: on the full digits test split, the emulator's class scores equal PyTorch eval-mode counts exactly,
before and after every pass and after packing (K=4, K=6), for a trained model and for k=2,3,4,6, DLGN, learned
wiring and learnable-encoder models; the naive reference agrees too."""
import json

import numpy as np
import pytest

from ir_models import digits_split, model_counts, train_quick
from reference_eval import reference_counts
from warpc.ir import from_model
from warpc.ir.emulate import emulate_counts, emulate_predict
from warpc.ir.pack import pack
from warpc.ir.passes import ALL_PASSES, optimize


@pytest.fixture(scope="session")
def digits():
    return digits_split()


@pytest.fixture(scope="session")
def trained(digits):
    xtr, ytr, xte, yte = digits
    model = train_quick(xtr, ytr, 10, steps=150, thresholds=3, widths=[300, 150], k=2, init="residual")
    return model


def _check_all_stages(model, x, reference=True):
    expect = model_counts(model, x)
    net = from_model(model)
    assert (emulate_counts(net, x) == expect).all()
    if reference:
        assert (reference_counts(net, x) == expect).all()
    cur = net
    for p in ALL_PASSES:  # every pass on its own
        cur, _ = p(cur)
        assert (emulate_counts(cur, x) == expect).all(), p.__name__
    opt, _ = optimize(net)
    assert (emulate_counts(opt, x) == expect).all()
    for K in (4, 6):
        packed, rep = pack(opt, K=K)
        assert all(n.k <= K for n in packed.nodes)
        assert (emulate_counts(packed, x) == expect).all(), K
        if reference:
            assert (reference_counts(packed, x) == expect).all()
        if max(n.k for n in net.nodes) <= K:
            assert rep.luts <= len(opt.nodes)
    return net, opt


def test_trained_digits_bit_exact(trained, digits):
    xte, yte = digits[2], digits[3]
    net, opt = _check_all_stages(trained, xte)
    acc = (emulate_predict(opt, xte) == yte).mean()
    assert acc > 0.5  # it did learn something, so the net has real structure
    assert len(opt.nodes) < len(net.nodes)  # trained nets have wires / constants / dead nodes to remove


CASES = {
    "k2_random": dict(k=2, init="random"),
    "k3": dict(k=3, init="random"),
    "k4": dict(k=4, init="random"),
    "k6": dict(k=6, init="random", widths=[60, 30]),
    "mixed_k_residual": dict(k=[2, 4], init="residual"),
    "dlgn": dict(k=2, parametrization="dlgn", init="random"),
    "learned_wiring": dict(k=2, wiring="learnable", init="random"),
    "learnable_encoder": dict(k=3, encoder="learnable", init="random"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_model_families_bit_exact(case, digits):
    xtr, ytr, xte, _ = digits
    kw = dict(thresholds=3, widths=[120, 60])
    kw.update(CASES[case])
    steps = 5 if case in ("learned_wiring", "learnable_encoder", "dlgn") else 0  # move learned parameters
    model = train_quick(xtr, ytr, 10, steps=steps, **kw)
    _check_all_stages(model, xte, reference=case in ("k6", "dlgn"))


def test_compile_api_and_cli(trained, digits, tmp_path):
    from click.testing import CliRunner

    from warpc.checkpoint import save_checkpoint
    from warpc.cli import main
    from warpc.ir.compiler import compile as wcompile

    xte, yte = digits[2], digits[3]
    ckpt = save_checkpoint(tmp_path / "m.safetensors", trained, {"data": {"name": "digits"}})
    cn = wcompile(ckpt, K=4)
    assert (cn.counts(xte) == model_counts(trained, xte)).all()
    assert cn.report["pack"]["luts"] == len(cn.netlist.nodes)
    assert set(cn.stages) == {"discretized", "optimized", "packed"}
    np.savez(tmp_path / "d.npz", x=xte, y=yte)
    r = CliRunner().invoke(main, ["compile", str(ckpt), "-o", str(tmp_path / "out"), "--lut-size", "4"])
    assert r.exit_code == 0, r.output
    assert "LUT4" in r.output and "nodes per layer" in r.output
    for f in ("netlist.json", "netlist.blif", "netlist.opt.blif", "compile_report.json"):
        assert (tmp_path / "out" / f).exists()
    r = CliRunner().invoke(main, ["compile", str(ckpt), "-o", str(tmp_path / "out")])  # its own files: replaced
    assert r.exit_code == 0, r.output
    from warpc.ir import Netlist
    from warpc.ir.blif import read_blif

    saved = Netlist.load(tmp_path / "out" / "netlist.json")
    assert (emulate_counts(saved, xte) == cn.counts(xte)).all()
    assert (emulate_counts(read_blif(tmp_path / "out" / "netlist.blif"), xte) == cn.counts(xte)).all()
    r = CliRunner().invoke(main, ["predict", str(ckpt), "--npz", str(tmp_path / "d.npz"), "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert out["predictions"] == cn.predict(xte).tolist()
    assert out["K"] == 4 and out["accuracy"] == float((cn.predict(xte) == yte).mean())
    # the saved netlist records its dataset: predict needs no --dataset, and emulates the file as it is
    r = CliRunner().invoke(main, ["predict", str(tmp_path / "out" / "netlist.json"), "--json"])
    assert r.exit_code == 0, r.output
    from warpc.data import load_dataset

    x_rec = load_dataset("digits").split("test")[0]
    assert json.loads(r.output)["counts"] == cn.counts(x_rec).tolist()
    r = CliRunner().invoke(main, ["compile", str(tmp_path / "missing.safetensors"), "-o", str(tmp_path / "x")])
    assert r.exit_code == 1 and r.output.startswith("error:")


def test_predict_library_checks_torch_and_reads_npz(trained, digits, tmp_path):
    """warpc.ir.predict.predict: the CLI's logic as a library call (npz reading, --check against PyTorch)."""
    from warpc.checkpoint import save_checkpoint
    from warpc.errors import NetlistError, ShapeError
    from warpc.ir.predict import predict

    xte, yte = digits[2], digits[3]
    ckpt = save_checkpoint(tmp_path / "m.safetensors", trained, {"data": {"name": "digits"}})
    np.savez(tmp_path / "d.npz", x_val=xte[:50], y_val=yte[:50], x=xte, y=yte)
    r = predict(ckpt, npz=tmp_path / "d.npz", check=True)
    assert r.bit_exact is True and r.netlist.packed_k == 4
    assert (r.torch_counts == model_counts(trained, xte)).all() and (r.counts == r.torch_counts).all()
    assert r.accuracy == float((r.predictions == yte).mean())
    assert len(predict(ckpt, npz=tmp_path / "d.npz", split="val", lut_size=6, optimize=False).predictions) == 50
    assert predict(trained, x=xte[:40], check=True).bit_exact is True  # a WarpNet in memory, too
    r2 = predict(r.netlist, x=xte[:7])  # a Netlist is emulated as it is, no labels -> no accuracy
    assert r2.accuracy is None and (r2.counts == r.counts[:7]).all()
    with pytest.raises(NetlistError, match="--check"):
        predict(r.netlist, x=xte, check=True)
    with pytest.raises(ShapeError, match="10 classes"):  # labels beyond the netlist's classes
        predict(r.netlist, x=xte[:3], y=np.array([0, 1, 12]))
