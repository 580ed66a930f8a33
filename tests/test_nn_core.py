"""Sign conventions, truth tables, encoders, GroupSum, checkpoints and discretization of the frontend."""
import math

import numpy as np
import pytest
import torch

from warpc.config import ModelConfig
from warpc.errors import CheckpointError, ConfigError, ShapeError
from warpc.nn import GroupSum, Thermometer, WarpLUT, WarpNet, argmax_lowest, walsh_basis
from warpc.nn.walsh import corners, hadamard, theta_from_truth_table, truth_tables_from_theta
from warpc.nn.warplut import DLGN_POLY, dlgn_gate_tables


def naive_z(theta, bits):
    """Independent reference: z = sum over subsets S of theta_S * prod_{i in S} (1 - 2 x_i)."""
    z = 0.0
    for m in range(len(theta)):
        p = 1.0
        for i, x in enumerate(bits):
            if (m >> i) & 1:
                p *= 1 - 2 * x
        z += theta[m] * p
    return z


@pytest.mark.parametrize("k", [2, 3, 4, 5, 6])
def test_walsh_conventions_match_naive_sum(k):
    rng = np.random.default_rng(k)
    theta = rng.normal(size=1 << k)
    H = hadamard(k)
    for c, bits in enumerate(corners(k).astype(int)):
        assert bits.tolist() == [(c >> i) & 1 for i in range(k)]  # input i = bit i of the corner index
        assert math.isclose((H @ theta)[c], naive_z(theta, bits), rel_tol=1e-12, abs_tol=1e-12)
    chi = walsh_basis(torch.tensor(corners(k), dtype=torch.float64))
    assert torch.allclose(chi, torch.tensor(H, dtype=torch.float64))


def test_single_coefficient_signs():
    # theta on input 0's basis element, positive: z = c*(1-2x0) < 0 exactly when x0 = 1 -> the node is a wire.
    th = np.zeros(4)
    th[1] = 3.0
    assert truth_tables_from_theta(th).tolist() == [0, 1, 0, 1]
    # negative constant term: output 1 everywhere
    assert truth_tables_from_theta(np.array([-1.0, 0, 0, 0])).tolist() == [1, 1, 1, 1]
    # theta_{01} > 0: z = c*s0*s1 < 0 iff exactly one input is 1 -> XOR
    assert truth_tables_from_theta(np.array([0, 0, 0, 1.0])).tolist() == [0, 1, 1, 0]


@pytest.mark.parametrize("k", [2, 4, 6])
def test_theta_from_truth_table_roundtrip(k):
    rng = np.random.default_rng(0)
    t = rng.integers(0, 2, size=(10, 1 << k)).astype(np.uint8)
    assert (truth_tables_from_theta(theta_from_truth_table(t)) == t).all()


@pytest.mark.parametrize("k", [2, 3, 4, 5, 6])
@pytest.mark.parametrize("init", ["random", "residual"])
def test_eval_output_equals_truth_table_lookup(k, init):
    torch.manual_seed(k)
    layer = WarpLUT(40, 64, k=k, init=init, seed=1).eval()
    x = torch.randint(0, 2, (500, 40)).float()
    y = layer(x)
    tables = layer.truth_tables()
    idx = layer.wiring_indices().numpy()
    xn = x.numpy().astype(np.int64)
    corner = sum(xn[:, idx[:, i]] << i for i in range(k))  # (B, out)
    expect = np.take_along_axis(tables[None].repeat(len(xn), 0), corner[..., None], 2)[..., 0]
    assert (y.numpy() == expect).all()


def test_residual_init_passes_input_through():
    layer = WarpLUT(10, 20, k=2, init="residual", sampling="soft", seed=0)
    x = torch.randint(0, 2, (64, 10)).float()
    y = layer.train()(x)
    x0 = x[:, layer.idx[:, 0]]
    assert torch.allclose(y, 0.05 + 0.9 * x0, atol=0.02)
    assert (layer.eval()(x) == x0).all()


def test_training_output_formula_soft():
    layer = WarpLUT(8, 5, k=3, init="random", sampling="soft", seed=0).train()
    x = torch.rand(7, 8)
    xi = x[:, layer.idx]
    z = torch.zeros(7, 5)
    for m in range(8):
        p = torch.ones(7, 5)
        for i in range(3):
            if (m >> i) & 1:
                p = p * (1 - 2 * xi[..., i])
        z = z + layer.theta[:, m] * p
    assert torch.allclose(layer(x), torch.sigmoid(-z / layer.tau), atol=1e-6)


def test_gumbel_noise_is_noisy_and_straight_through_is_hard():
    layer = WarpLUT(8, 50, k=2, sampling="gumbel", seed=0).train()
    x = torch.rand(4, 8)
    assert not torch.equal(layer(x), layer(x))
    st = WarpLUT(8, 50, k=2, sampling="soft_st", seed=0).train()
    y = st(x)
    assert set(y.detach().unique().tolist()) <= {0.0, 1.0}


def test_unique_wiring_uses_every_input_before_repeats():
    layer = WarpLUT(30, 40, k=2, wiring="unique", seed=3)
    assert len(torch.unique(layer.idx)) == 30


def test_dlgn_tables_and_eval():
    t = dlgn_gate_tables()
    assert t[1].tolist() == [0, 0, 0, 1]  # AND
    assert t[6].tolist() == [0, 1, 1, 0]  # XOR
    assert t[3].tolist() == [0, 1, 0, 1]  # A (input 0)
    layer = WarpLUT(12, 30, k=2, parametrization="dlgn", init="random", seed=0).eval()
    x = torch.randint(0, 2, (100, 12)).float()
    tables, idx = layer.truth_tables(), layer.idx.numpy()
    xn = x.numpy().astype(int)
    corner = xn[:, idx[:, 0]] + 2 * xn[:, idx[:, 1]]
    expect = np.take_along_axis(tables[None].repeat(100, 0), corner[..., None], 2)[..., 0]
    assert (layer(x).numpy() == expect).all()
    with pytest.raises(ConfigError):
        WarpLUT(4, 4, k=3, parametrization="dlgn")


def test_learnable_wiring_argmax():
    layer = WarpLUT(20, 10, k=2, wiring="learnable", candidates=4, seed=0)
    with torch.no_grad():
        layer.wiring_logits.zero_()
        layer.wiring_logits[:, :, 2] = 5.0
    assert torch.equal(layer.wiring_indices(), layer.cand[:, :, 2])


def test_groupsum_and_argmax_ties():
    g = GroupSum(3, tau=2.0)
    x = torch.tensor([[1.0, 1, 0, 1, 1, 0]])
    assert torch.equal(g(x), torch.tensor([[1.0, 0.5, 0.5]]))
    assert argmax_lowest(torch.tensor([[1.0, 3, 3], [2, 2, 2]])).tolist() == [1, 0]
    with pytest.raises(ShapeError):
        g(torch.zeros(1, 4))


@pytest.mark.parametrize("method", ["uniform", "distributive", "learnable"])
def test_thermometer_integer_thresholds(method):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(200, 5))
    enc = Thermometer(5, 4, learnable=method == "learnable").fit(x, method).eval()
    t = enc.hard_thresholds()
    assert t.dtype == np.int64 and (np.diff(t, axis=1) >= 0).all()
    bits = enc(torch.tensor(x, dtype=torch.float32)).numpy()
    expect = (x[:, :, None] >= t[None]).reshape(200, -1)
    assert (bits == expect).all()


def _small_model(**kw):
    cfg = ModelConfig(n_features=6, classes=3, widths=[24, 12], thresholds=3, **kw)
    rng = np.random.default_rng(0)
    return WarpNet(cfg).fit_encoder(rng.integers(0, 17, size=(50, 6))), rng


def test_checkpoint_roundtrip(tmp_path):
    import warpc
    from warpc.checkpoint import save_checkpoint

    model, rng = _small_model(encoder="learnable", wiring="learnable", k=[2, 3])
    path = save_checkpoint(tmp_path / "m.safetensors", model, {"metrics": {"acc": 0.5}})
    loaded = warpc.load(path)
    x = torch.tensor(rng.integers(0, 17, size=(40, 6)), dtype=torch.float32)
    assert torch.equal(model.eval()(x), loaded(x))
    assert loaded.meta["metrics"] == {"acc": 0.5}
    (tmp_path / "bad.safetensors").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError):
        warpc.load(tmp_path / "bad.safetensors")
    with pytest.raises(CheckpointError):
        warpc.load(tmp_path / "missing.safetensors")


def test_discretize_matches_model_counts():
    from warpc.ir import from_model

    model, rng = _small_model(k=[2, 4], init="random")
    model.eval()
    net = from_model(model)
    x = rng.integers(0, 17, size=(100, 6))
    bits = net.encode(x)
    vals = np.zeros((100, net.n_signals), dtype=np.uint8)
    vals[:, 1] = 1
    vals[:, 2 : net.first_node] = bits
    for j, n in enumerate(net.nodes):
        c = sum(vals[:, f].astype(np.int64) << i for i, f in enumerate(n.fanin))
        vals[:, net.node_id(j)] = (n.table >> c) & 1
    counts = np.stack([vals[:, g].sum(1) for g in net.outputs], 1)
    assert (counts == model.counts(torch.tensor(x, dtype=torch.float32)).numpy()).all()


def test_groupsum_transposed_layout_equals_contiguous():
    g = GroupSum(4, tau=3.0)
    x = torch.randn(12, 8)
    node_major = x.t().contiguous().t()  # what the fused kernels return
    assert not node_major.is_contiguous()
    assert torch.allclose(g(x), g(node_major))


def test_learnable_wiring_training_mix_matches_naive_formula():
    layer = WarpLUT(20, 10, k=3, wiring="learnable", candidates=5, sampling="soft", seed=0).train()
    with torch.no_grad():
        layer.wiring_logits.normal_()
    x = torch.rand(6, 20, requires_grad=True)
    w = torch.softmax(layer.wiring_logits, -1)
    naive = (x[:, layer.cand] * w).sum(-1)  # (B, out, k): sum_c softmax_c * x[cand_c]
    got = layer._gather(x)
    assert torch.allclose(got, naive, atol=1e-6)
    (gx_naive, gw_naive) = torch.autograd.grad(naive.sum(), (x, layer.wiring_logits))
    (gx, gw) = torch.autograd.grad(got.sum(), (x, layer.wiring_logits))
    assert torch.allclose(gx, gx_naive, atol=1e-5) and torch.allclose(gw, gw_naive, atol=1e-5)


def test_eval_tables_follow_parameter_updates():
    """Eval reads truth tables; load_state_dict, an in-place edit and a fused Adam step (which does not bump the
    parameters' version counters) must all show in the next eval output."""
    import torch

    from warpc.nn import WarpLUT
    from warpc.training import Adam

    for par in ("warp", "dlgn"):
        layer = WarpLUT(30, 20, k=2, parametrization=par, init="random", seed=0).eval()
        x = (torch.rand(50, 30) > 0.5).float()
        before = layer(x)
        fresh = WarpLUT(30, 20, k=2, parametrization=par, init="random", seed=1)
        layer.load_state_dict({**fresh.state_dict(), "idx": layer.idx})
        after = layer(x)
        assert not torch.equal(before, after)
        assert torch.equal(after, torch.from_numpy(layer.truth_tables()).float()[
            torch.arange(20), (x[:, layer.idx[:, 0]] + 2 * x[:, layer.idx[:, 1]]).long()])
        params = layer.theta if par == "warp" else layer.logits
        with torch.no_grad():
            params.neg_()
        negated = layer(x)
        assert not torch.equal(negated, after)
        opt = Adam([params], lr=100.0)
        params.grad = torch.randn_like(params)
        opt.step()
        assert not torch.equal(layer(x), negated)
