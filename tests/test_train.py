"""warpc.train end to end on digits (small and fast): accuracy, checkpoint + curve files, save/load, resume, NaN."""
import math

import numpy as np
import pytest
import torch

import warpc
from warpc.checkpoint import read_checkpoint
from warpc.config import ModelConfig
from warpc.data import load_dataset
from warpc.errors import ConfigError, TrainingError
from warpc.training import Adam, curve_path, evaluate_dataset, last_path, train


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def _cfg(ds, **kw):
    base = dict(n_features=ds.n_features, classes=ds.classes, widths=[500, 500], thresholds=7, encoder="uniform")
    base.update(kw)
    return ModelConfig(**base)


@pytest.fixture(scope="module")
def trained(digits, tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "digits.safetensors"
    res = train(_cfg(digits), digits, steps=300, batch_size=128, lr=0.05, seed=0, device="cpu", out=out,
                progress=False, eval_every=50)
    return res, out


def test_digits_end_to_end_accuracy_and_files(trained, digits):
    res, out = trained
    m = res.metrics
    assert m["test_accuracy"] > 0.80, m          # chance is 0.10
    assert m["steps"] == 300 and m["n_test"] == len(digits.y_test)
    assert out.is_file() and last_path(out).is_file()
    png = curve_path(out)
    assert png.is_file() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    meta, tensors = read_checkpoint(out)
    assert meta["metrics"]["test_accuracy"] == m["test_accuracy"]
    assert meta["data"]["name"] == "digits" and meta["data"]["seed"] == 0
    assert meta["train_state"]["done"] and len(meta["train_state"]["history"]) == 6
    assert not any(k.startswith("optim.") for k in tensors)
    _, last = read_checkpoint(last_path(out))
    assert any(k.startswith("optim.") and k.endswith("exp_avg") for k in last)


def test_save_load_identical_eval_outputs(trained, digits):
    res, out = trained
    loaded = warpc.load(out)
    x = torch.tensor(digits.x_test, dtype=torch.float32)
    assert torch.equal(res.model.eval()(x), loaded(x))
    ev = evaluate_dataset(loaded, digits, "test")
    assert ev["accuracy"] == pytest.approx(res.metrics["test_accuracy"])
    assert np.array(ev["confusion"]).sum() == len(digits.y_test)


def test_resume_matches_an_uninterrupted_run(digits, tmp_path):
    cfg = _cfg(digits, widths=[200, 100])
    kw = dict(batch_size=64, lr=0.05, seed=3, device="cpu", progress=False, eval_every=20)
    full = train(cfg, digits, steps=80, out=tmp_path / "full.safetensors", **kw)
    train(cfg, digits, steps=40, out=tmp_path / "part.safetensors", **kw)
    resumed = train(cfg, digits, steps=80, out=tmp_path / "part.safetensors", resume=True, **kw)
    assert resumed.metrics["steps"] == 80
    assert [h["step"] for h in resumed.history] == [20, 40, 60, 80]
    a = {k: v for k, v in read_checkpoint(last_path(tmp_path / "full.safetensors"))[1].items()}
    b = {k: v for k, v in read_checkpoint(last_path(tmp_path / "part.safetensors"))[1].items()}
    assert torch.allclose(a["layers.0.theta"], b["layers.0.theta"], atol=1e-5)
    assert resumed.metrics["test_accuracy"] == pytest.approx(full.metrics["test_accuracy"])
    with pytest.raises(ConfigError, match="already trained"):
        train(cfg, digits, steps=80, out=tmp_path / "part.safetensors", resume=True, **kw)


def test_nan_loss_stops_and_keeps_last_good_checkpoint(digits, tmp_path, monkeypatch):
    import warpc.training.loop as wt

    cfg = _cfg(digits, widths=[100, 100])
    calls = {"n": 0}
    real = wt._loss

    def flaky(scores, y):
        calls["n"] += 1
        loss = real(scores, y)
        return loss * float("nan") if calls["n"] > 20 else loss

    monkeypatch.setattr(wt, "_loss", flaky)
    out = tmp_path / "nan.safetensors"
    with pytest.raises(TrainingError, match="nan") as e:
        train(cfg, digits, steps=100, out=out, progress=False, eval_every=10, device="cpu")
    assert "last good checkpoint" in str(e.value)
    meta, _ = read_checkpoint(out)
    assert meta["train_state"]["step"] == 20
    assert math.isfinite(meta["metrics"]["val_accuracy"])
    assert warpc.load(out) is not None


def test_bad_training_arguments(digits):
    with pytest.raises(ConfigError):
        train(_cfg(digits), digits, steps=10, lr=float("inf"), progress=False)
    with pytest.raises(ConfigError):
        train(_cfg(digits), digits, steps=10, epochs=1, progress=False)


def test_adam_matches_torch():
    torch.manual_seed(0)
    a = torch.randn(5, 4, requires_grad=True)
    b = a.detach().clone().requires_grad_()
    o1, o2 = torch.optim.Adam([a], lr=0.1, weight_decay=0.01), Adam([b], lr=0.1, weight_decay=0.01)
    for _ in range(10):
        for p, o in ((a, o1), (b, o2)):
            o.zero_grad()
            (p.sin() * torch.arange(4.0)).sum().backward()
            o.step()
    assert torch.allclose(a, b, atol=1e-5)


@pytest.mark.parametrize("kw", [dict(k=[2, 4]), dict(parametrization="dlgn"), dict(encoder="learnable", k=3)])
def test_fast_discrete_predict_equals_model_predict(digits, kw):
    from warpc.nn.model import WarpNet
    from warpc.training import predict

    cfg = _cfg(digits, widths=[200, 100], init="random", **kw)
    model = WarpNet(cfg).fit_encoder(digits.x_train)
    x = torch.tensor(digits.x_test, dtype=torch.float32)
    assert torch.equal(predict(model, x, batch_size=100), model.predict(x))


def test_run_file_names_keep_dots_in_the_name(tmp_path):
    """--out runs/lr0.02 names its companions runs/lr0.02.last.safetensors and runs/lr0.02.curve.png."""
    assert last_path(tmp_path / "lr0.02") == tmp_path / "lr0.02.last.safetensors"
    assert curve_path(tmp_path / "lr0.02") == tmp_path / "lr0.02.curve.png"
    assert last_path(tmp_path / "m.safetensors") == tmp_path / "m.last.safetensors"
    assert curve_path(tmp_path / "m.safetensors") == tmp_path / "m.curve.png"


def test_default_widths_fit_any_class_count_and_kernels_are_reported(tmp_path):
    """The default net rounds its last width to a multiple of the classes (iris: 999), an explicit width that does
    not fit is still an error, and train() reports which kernels ran."""
    assert ModelConfig(4, 3).widths == [2000, 999] and ModelConfig(64, 10).widths == [2000, 1000]
    with pytest.raises(ConfigError, match="multiple of the number of classes 3"):
        ModelConfig(4, 3, widths=[10, 10]).validate()
    ds = load_dataset("iris")
    res = train(ModelConfig(ds.n_features, ds.classes, widths=[60, 30]), ds, steps=5, progress=False)
    assert set(res.metrics["kernels"]) <= {"cpp", "torch"} and res.metrics["kernels"]
