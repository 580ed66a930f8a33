"""Nothing silently wrong: ModelConfig checks every field, checkpoints are validated completely on load, and the
memory estimate refuses impossible networks before allocating them."""
import json
import time

import numpy as np
import pytest
import torch

import warpc
from warpc.checkpoint import read_checkpoint, save_checkpoint
from warpc.config import ModelConfig
from warpc.errors import CheckpointError, ConfigError
from warpc.nn.model import WarpNet


def _cfg(**kw) -> dict:
    return {"n_features": 4, "classes": 3, "widths": [12, 6], "thresholds": 3, **kw}


@pytest.mark.parametrize("changes,words", [
    (dict(tau=0), "tau must be a positive"),
    (dict(tau=float("nan")), "tau must be a positive"),
    (dict(tau=[1.0, -2.0]), "tau[1]"),
    (dict(tau=[1.0]), "tau has 1 entries for 2 layers"),
    (dict(tau="fast"), "tau must be a number"),
    (dict(tau_head=0), "tau_head must be a positive"),
    (dict(tau_head=float("inf")), "tau_head"),
    (dict(input_bits=0), "input_bits must be between 1 and 24"),
    (dict(input_bits=25), "input_bits must be between 1 and 24"),
    (dict(input_bits="8"), "input_bits must be an integer"),
    (dict(k=7), "k must be between 2 and 6"),
    (dict(k=[2, 2, 2]), "k has 3 entries for 2 layers"),
    (dict(k=True), "k must be an integer"),
    (dict(widths="12,6"), "widths must be a non-empty list"),
    (dict(widths=[]), "widths must be a non-empty list"),
    (dict(widths=[12, 0]), "widths[1] must be >= 1"),
    (dict(widths=[12.5, 6]), "widths[0] must be an integer"),
    (dict(widths=[12, 7]), "multiple of the number of classes 3"),
    (dict(thresholds=[3]), "thresholds must be an integer"),
    (dict(thresholds=0), "thresholds must be between 1 and 255"),
    (dict(thresholds=3, input_bits=1), "1 distinct compare levels"),
    (dict(wiring_candidates=0), "wiring_candidates must be >= 2"),
    (dict(wiring_candidates=1), "wiring_candidates must be >= 2"),
    (dict(encoder="quantile"), "encoder must be one of uniform, distributive, learnable"),
    (dict(wiring=["unique"]), "wiring must be one of"),
    (dict(parametrization="dlgn", k=[2, 3]), "dlgn"),
    (dict(classes=1, widths=[12, 6]), "classes must be >= 2"),
    (dict(n_features=0), "n_features must be >= 1"),
    (dict(class_names=["a", "b"]), "2 class names for 3 classes"),
    (dict(class_names="abc"), "class_names must be a list of strings"),
    (dict(seed=2**60), "seed must be between"),
])
def test_config_names_each_bad_field(changes, words):
    with pytest.raises(ConfigError) as e:
        ModelConfig.from_dict(_cfg(**changes))
    assert words in str(e.value)


def test_config_structure_errors():
    with pytest.raises(ConfigError, match="JSON object of ModelConfig fields, got list"):
        ModelConfig.from_dict([4, 3])
    with pytest.raises(ConfigError, match=r"unknown model config keys: \['depth'\]"):
        ModelConfig.from_dict(_cfg(depth=3))
    with pytest.raises(ConfigError, match="lacks n_features"):
        ModelConfig.from_dict({"classes": 3})


def test_config_normalises_integral_numbers_to_plain_ints():
    c = ModelConfig.from_dict(_cfg(widths=[np.int64(12), 6.0], k=np.int32(3), thresholds=3.0, tau=2))
    assert c.widths == [12, 6] and type(c.widths[0]) is int and c.k == 3 and type(c.thresholds) is int
    assert c.tau == 2.0 and isinstance(c.tau, float)
    json.dumps(c.to_dict())  # serialisable as checkpoint metadata
    assert ModelConfig.from_dict(c.to_dict()) == c
    assert ModelConfig.from_dict(_cfg(tau="auto")).tau is None
    assert ModelConfig.from_dict(_cfg(tau=["auto", 3])).layer_taus() == [None, 3.0]


def test_memory_estimate_refuses_before_allocating(monkeypatch):
    t0 = time.perf_counter()
    with pytest.raises(ConfigError) as e:
        ModelConfig(4, 3, widths=[1_000_000_002, 999_999_999]).validate()
    assert time.perf_counter() - t0 < 1.0
    msg = str(e.value)
    assert "GB" in msg and "widths 1000000002,999999999" in msg
    need = float(msg.split("about ")[1].split(" GB")[0])
    assert need > 100  # 2 x 1e9 nodes: far beyond any machine
    # the bound is the machine's memory: the same moderate net passes or fails with it
    cfg = ModelConfig(784, 10, widths=[8000, 8000], thresholds=3)
    est = cfg.memory_estimate(training=False)
    assert 8e6 < est < 1e8  # ~17 MB: parameters and buffers, held twice while loading
    assert cfg.memory_estimate(training=True) > est
    monkeypatch.setattr("warpc.config.machine_memory", lambda: est // 2)
    with pytest.raises(ConfigError, match="GB for holding the model"):
        cfg.validate()
    with pytest.raises(ConfigError, match="GB for training with batch 256"):
        cfg.check_memory(batch_size=256, training=True)


def test_warplut_refuses_bad_candidates_and_tau():
    from warpc.nn import WarpLUT

    with pytest.raises(ConfigError, match="at least 2 candidates"):
        WarpLUT(8, 4, wiring="learnable", candidates=0)
    with pytest.raises(ConfigError, match="tau must be a positive"):
        WarpLUT(8, 4, tau=0.0)


# --- checkpoints ----------------------------------------------------------------------------------------------
@pytest.fixture
def ckpt(tmp_path):
    cfg = ModelConfig(n_features=6, classes=3, widths=[24, 12], thresholds=3, k=[2, 3])
    model = WarpNet(cfg).fit_encoder(np.random.default_rng(0).integers(0, 17, size=(50, 6)))
    return save_checkpoint(tmp_path / "m.safetensors", model, {"data": {"n_features": 6, "classes": 3}})


def _rewrite(path, tensors=None, meta=None, raw=None):
    from safetensors.torch import save_file

    m, ts = read_checkpoint(path)
    ts = {k: v.clone() for k, v in ts.items()}
    if tensors:
        tensors(ts)
    if meta:
        meta(m)
    out = path.with_name("bad.safetensors")
    save_file(ts, str(out), metadata={"warpc": raw if raw is not None else json.dumps(m)})
    return out


def _set(name, value):
    def edit(ts):
        ts[name].view(-1)[-1] = value
    return edit


@pytest.mark.parametrize("edit,words", [
    (_set("layers.0.theta", float("nan")), ["'layers.0.theta'", "NaN or infinite"]),
    (_set("layers.1.theta", -float("inf")), ["'layers.1.theta'", "NaN or infinite"]),
    (_set("layers.0.idx", 18), ["'layers.0.idx'", "0..17"]),
    (_set("layers.1.idx", -1), ["'layers.1.idx'", "-1"]),
    (_set("encoder.thresholds", 257), ["'encoder.thresholds'", "0..256", "input_bits=8"]),
    (_set("encoder.thresholds", -5), ["'encoder.thresholds'"]),
    (lambda ts: ts.update({"layers.1.theta": ts["layers.1.theta"][:, :4].clone()}), ["'layers.1.theta'", "(12, 4)",
                                                                                    "(12, 8)"]),
    (lambda ts: ts.update({"layers.0.idx": ts["layers.0.idx"].double()}), ["'layers.0.idx'", "integers"]),
    (lambda ts: ts.update({"layers.0.theta": ts["layers.0.theta"].long()}), ["'layers.0.theta'", "floating"]),
    (lambda ts: ts.pop("layers.1.idx"), ["'layers.1.idx'", "missing"]),
    (lambda ts: ts.update({"head.bias": torch.zeros(3)}), ["unexpected tensor 'head.bias'"]),
])
def test_load_names_the_bad_tensor(ckpt, edit, words):
    bad = _rewrite(ckpt, tensors=edit)
    with pytest.raises(CheckpointError) as e:
        warpc.load(bad)
    for w in words:
        assert w in str(e.value)
    assert str(bad) in str(e.value)


@pytest.mark.parametrize("edit,raw,words", [
    (None, "[1, 2]", "must be a JSON object, got a JSON list"),
    (None, "{", "not valid JSON"),
    (lambda m: m.update(format_version="1"), None, "format_version must be a positive integer"),
    (lambda m: m.update(format_version=99), None, "newer than this warpc supports"),
    (lambda m: m.pop("config"), None, "no model config"),
    (lambda m: m.update(config=[6, 3]), None, "'config' must be a JSON object"),
    (lambda m: m.update(data=[1]), None, "'data' must be a JSON object"),
    (lambda m: m.update(metrics="good"), None, "'metrics' must be a JSON object"),
    (lambda m: m["config"].update(input_bits=0), None, "input_bits must be between 1 and 24"),
    (lambda m: m["config"].update(widths=[10**9, 10**9 - 1]), None, "GB"),
    (lambda m: m["data"].update(classes=10), None, "data.classes is 10"),
    (lambda m: m["data"].update(seed="x"), None, "data.seed is 'x'"),
    (lambda m: m["data"].update(val_fraction=2.0), None, "data.val_fraction is 2.0, not between 0 and 1"),
])
def test_load_names_the_bad_metadata_field(ckpt, edit, raw, words):
    bad = _rewrite(ckpt, meta=edit, raw=raw)
    with pytest.raises(CheckpointError) as e:
        warpc.load(bad)
    assert words in str(e.value)


def test_load_refuses_directories_and_passes_a_good_checkpoint(ckpt, tmp_path):
    (tmp_path / "dir.safetensors").mkdir()
    with pytest.raises(CheckpointError, match="is a directory"):
        warpc.load(tmp_path / "dir.safetensors")
    model = warpc.load(ckpt)
    assert model.config.widths == [24, 12] and not model.training


def test_learned_thresholds_are_bounded_by_input_bits(tmp_path):
    """A learnable encoder whose thresholds drift outside the features' range stays representable: the hard
    thresholds clamp to 0..2^input_bits, which changes no output for in-range features."""
    cfg = ModelConfig(n_features=3, classes=2, widths=[8, 4], thresholds=3, encoder="learnable", input_bits=4)
    model = WarpNet(cfg).fit_encoder(np.random.default_rng(0).integers(0, 16, size=(40, 3))).eval()
    x = torch.tensor(np.random.default_rng(1).integers(0, 16, size=(64, 3)), dtype=torch.float32)
    with torch.no_grad():
        model.encoder.base[0] = -1e6
        model.encoder.base[1] = 1e9
    soft = torch.ceil(model.encoder._soft_thresholds())
    expect = (x[:, :, None] >= soft[None]).float().flatten(1)
    t = model.encoder.hard_thresholds()
    assert t.min() == 0 and t.max() == 16
    assert torch.equal(model.encoder(x), expect)
    path = save_checkpoint(tmp_path / "l.safetensors", model)
    assert torch.equal(warpc.load(path).counts(x), model.counts(x))


def test_load_stays_fast(ckpt):
    warpc.load(ckpt)
    t0 = time.perf_counter()
    for _ in range(5):
        warpc.load(ckpt)
    assert (time.perf_counter() - t0) / 5 < 0.5, "validation must keep load cheap"


def test_save_refuses_what_load_would_refuse(tmp_path):
    cfg = ModelConfig(n_features=2, classes=2, widths=[4, 2], thresholds=2, input_bits=4)
    model = WarpNet(cfg).fit_encoder(np.array([[0, 3], [9, 15]]))
    with torch.no_grad():
        model.layers[1].theta[0, 0] = float("nan")
    with pytest.raises(CheckpointError, match="refusing to save.*'layers.1.theta'"):
        save_checkpoint(tmp_path / "m.safetensors", model)
    # features outside 0..2^input_bits - 1 fit thresholds that 4-bit hardware cannot compare against
    model = WarpNet(cfg).fit_encoder(np.array([[-50, 3], [-40, 15]]))
    with pytest.raises(CheckpointError, match="refusing to save.*'encoder.thresholds'.*input_bits=4"):
        save_checkpoint(tmp_path / "m.safetensors", model)
    assert not any(tmp_path.iterdir())
