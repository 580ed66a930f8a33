"""Fused WARP-LUT backends (warpc.nn.kernels) against the plain PyTorch reference.

C++: built on first use (~30-60 s, cached under ~/.cache/warpc). Triton: run under its CPU interpreter
(TRITON_INTERPRET=1) in a subprocess, skipped when triton is not importable.
"""
import contextlib
import os
import subprocess
import sys
import textwrap

import pytest
import torch
from torch import nn

from warpc.errors import ConfigError
from warpc.nn import GroupSum, WarpLUT, warp_forward_reference
from warpc.nn import kernels as K

SAMPLINGS = ["soft", "gumbel", "soft_st", "gumbel_st"]


@pytest.fixture(autouse=True)
def _fixed_thread_count(monkeypatch):
    """Tests that set a thread count mean it: no adaptive choice (tested on its own below)."""
    from warpc.nn.kernels import _cpu

    monkeypatch.setattr(_cpu, "ADAPTIVE_THREADS", False)


@pytest.fixture(scope="module")
def cpp():
    if not K.cpp_available():
        pytest.skip("C++ extension cannot be built here")
    return "cpp"


def _reference(layer, x, noise):
    """Plain reference output and its soft version (straight-through: hard forward, relaxed gradient)."""
    ys = warp_forward_reference(x, layer.idx, layer.theta, layer.tau, noise)
    if layer.sampling.endswith("_st"):
        return ys + ((ys > 0.5).to(ys.dtype) - ys).detach()
    return ys


def _assert_same_step(y, yr, sampling, grads, device="cpu"):
    """Outputs equal (straight-through: the hard outputs may differ only where the pre-threshold value is within
    float rounding of it), then equal gradients, pairs (fused tensor, reference tensor), for one upstream gradient."""
    if sampling.endswith("_st"):
        assert (y != yr).float().mean().item() < 1e-3
    else:
        torch.testing.assert_close(y, yr, rtol=1e-5, atol=1e-6)
    g = torch.randn(y.shape, device=device)
    (y * g).sum().backward()
    (yr * g).sum().backward()
    for a, b in grads:
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-4, atol=1e-5)


def compare_backend(backend, k, sampling, batch=37, n_in=50, n_out=40, init="random", tau=None, device="cpu"):
    torch.manual_seed(k)
    layer = WarpLUT(n_in, n_out, k=k, sampling=sampling, init=init, tau=tau, seed=k).to(device)
    x = torch.rand(batch, n_in, device=device, requires_grad=True)
    seed = 1234 + k
    y = K.layer_forward(layer, x, backend, seed=seed)
    noise = K.kernel_noise(backend, seed, batch, n_out, device) if sampling.startswith("gumbel") else None
    ref = WarpLUT(n_in, n_out, k=k, sampling=sampling, init=init, tau=tau, seed=k).to(device)
    x2 = x.detach().clone().requires_grad_(True)
    yr = _reference(ref, x2, noise)
    _assert_same_step(y, yr, sampling, [(layer.theta, ref.theta), (x, x2)], device)


def compare_shards(backend, k, sampling, batch=37, n_in=50, n_out=40, cut=16, device="cpu"):
    """A batch computed in two row shards (data-parallel training: warplut.noise_rows) draws the very noise of the
    whole batch: the shards' outputs are the whole batch's rows, bit for bit (fused: same seed; plain: same torch
    RNG state)."""
    from warpc.nn.warplut import noise_rows

    plain = {"backend": "torch"} if backend == "torch" else {}
    layer = WarpLUT(n_in, n_out, k=k, sampling=sampling, init="random", seed=k, **plain).to(device)
    x = torch.rand(batch, n_in, device=device)

    def run(xs, rows=None):
        torch.manual_seed(7)
        with torch.no_grad(), (noise_rows(*rows) if rows else contextlib.nullcontext()):
            return layer.train()(xs) if backend == "torch" else K.layer_forward(layer, xs, backend, seed=4321)

    whole = run(x)
    parts = torch.cat([run(x[:cut], (0, batch)), run(x[cut:], (cut, batch))])
    assert torch.equal(whole, parts)
    if sampling.startswith("gumbel"):  # and the noise does depend on the row: a shard is not a batch of its own
        assert not torch.equal(run(x[cut:]), whole[cut:])


def compare_learnable(backend, k, sampling, batch=37, n_in=50, n_out=30, candidates=5, device="cpu"):
    """Learnable wiring on a fused backend against the plain mixture (WarpLUT._gather) + reference layer:
    forward, and gradients of theta, the wiring logits and the input."""
    def make():
        return WarpLUT(n_in, n_out, k=k, sampling=sampling, init="random", wiring="learnable",
                       candidates=candidates, seed=k).to(device)

    layer, ref = make(), make()
    torch.manual_seed(k)
    logits = torch.randn(n_out, k, candidates, device=device)
    with torch.no_grad():
        layer.wiring_logits.copy_(logits)
        ref.wiring_logits.copy_(logits)
    x = torch.rand(batch, n_in, device=device, requires_grad=True)
    seed = 99 + k
    y = K.layer_forward(layer, x, backend, seed=seed)
    noise = K.kernel_noise(backend, seed, batch, n_out, device) if sampling.startswith("gumbel") else None
    x2 = x.detach().clone().requires_grad_(True)
    slots = torch.arange(n_out * k, device=device).view(n_out, k)
    ys = warp_forward_reference(ref._gather(x2).reshape(batch, n_out * k), slots, ref.theta, ref.tau, noise)
    yr = ys + ((ys > 0.5).to(ys.dtype) - ys).detach() if sampling.endswith("_st") else ys
    _assert_same_step(y, yr, sampling,
                      [(layer.theta, ref.theta), (layer.wiring_logits, ref.wiring_logits), (x, x2)], device)


@pytest.mark.parametrize("backend", ["cpp", "torch"])
@pytest.mark.parametrize("k,sampling", [(2, "gumbel"), (2, "gumbel_st"), (4, "gumbel"), (6, "gumbel"), (3, "soft")])
def test_batch_shards_draw_the_whole_batchs_noise(backend, k, sampling, request):
    if backend == "cpp":
        request.getfixturevalue("cpp")
    compare_shards(backend, k, sampling)


@pytest.mark.parametrize("k", [2, 3, 4, 5, 6])
@pytest.mark.parametrize("sampling", SAMPLINGS)
def test_cpp_matches_reference(cpp, k, sampling):
    compare_backend(cpp, k, sampling)


@pytest.mark.parametrize("k", [2, 3, 4, 5, 6])
@pytest.mark.parametrize("sampling", ["soft", "gumbel_st"])
def test_cpp_learnable_wiring_matches_reference(cpp, k, sampling):
    compare_learnable(cpp, k, sampling)


def compare_dlgn(backend, sampling, wiring="random", batch=37, n_in=50, n_out=40, device="cpu"):
    """DLGN on a fused backend (its gate mixture as Walsh coefficients, linear output) against the plain path."""
    def make(b):
        return WarpLUT(n_in, n_out, parametrization="dlgn", sampling=sampling, wiring=wiring, candidates=4,
                       seed=3, backend=b).to(device)

    fused, plain = make(backend), make("torch")
    if wiring == "learnable":
        with torch.no_grad():
            logits = torch.randn_like(fused.wiring_logits)
            fused.wiring_logits.copy_(logits)
            plain.wiring_logits.copy_(logits)
    x = torch.rand(batch, n_in, device=device, requires_grad=True)
    x2 = x.detach().clone().requires_grad_(True)
    y = K.layer_forward(fused, x, backend)
    yr = plain(x2)
    pairs = [(fused.logits, plain.logits), (x, x2)]
    if wiring == "learnable":
        pairs.append((fused.wiring_logits, plain.wiring_logits))
    _assert_same_step(y, yr, sampling, pairs, device)


def test_dlgn_walsh_coefficients_reproduce_the_gates():
    """Each of the 16 gates, written in the Walsh basis, gives c0 + c1 a + c2 b + c3 ab at every corner."""
    from warpc.nn.warplut import DLGN_POLY, DLGN_WALSH, walsh_basis

    corners = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [0.3, 0.8]])
    a, b = corners[:, 0], corners[:, 1]
    poly = DLGN_POLY[:, :1] + DLGN_POLY[:, 1:2] * a + DLGN_POLY[:, 2:3] * b + DLGN_POLY[:, 3:4] * a * b
    walsh = DLGN_WALSH @ walsh_basis(corners).t()
    torch.testing.assert_close(walsh, poly)


@pytest.mark.parametrize("sampling", ["soft", "gumbel", "soft_st", "gumbel_st"])
@pytest.mark.parametrize("wiring", ["random", "learnable"])
def test_cpp_dlgn_matches_plain(cpp, sampling, wiring):
    compare_dlgn(cpp, sampling, wiring)


@pytest.mark.parametrize("threads", [1, 2])
def test_cpp_learnable_wiring_thread_counts_and_gumbel(cpp, threads):
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        compare_learnable(cpp, 2, "gumbel", batch=130, n_in=70, n_out=64, candidates=16)
    finally:
        torch.set_num_threads(old)


def test_cpp_learnable_wiring_is_used_in_training_and_not_in_eval(cpp):
    layer = WarpLUT(20, 16, wiring="learnable", seed=0)
    x = torch.rand(8, 20)
    assert K.resolve_backend(layer, x) == "cpp"
    y = layer.train()(x)
    assert y.t().is_contiguous()  # node-major: the fused path ran
    assert K.resolve_backend(WarpLUT(20, 16, wiring="learnable", seed=0, backend="torch"), x) == "torch"
    hard = layer.eval()(x)
    assert set(hard.unique().tolist()) <= {0.0, 1.0}


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("k", [2, 5])
def test_cpp_thread_counts(cpp, threads, k):
    # one thread accumulates the input gradient in place, more threads go through the reverse index
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        compare_backend(cpp, k, "gumbel", batch=70, n_in=33, n_out=300)
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("tau", [1.0, 0.7, 3.0])
def test_cpp_tau_paths(cpp, tau):
    # tau = 1 takes the log-free noise path; others the general one
    compare_backend(cpp, 2, "gumbel", tau=tau, batch=130)
    compare_backend(cpp, 2, "gumbel_st", tau=tau, batch=130)


def test_cpp_explicit_noise_and_batch_major_input(cpp):
    torch.manual_seed(0)
    layer = WarpLUT(30, 20, k=3, sampling="gumbel", init="random", seed=0)
    x = torch.rand(65, 30)
    noise = torch.randn(65, 20)
    y = K.layer_forward(layer, x, "cpp", noise=noise)
    torch.testing.assert_close(y, warp_forward_reference(x, layer.idx, layer.theta, layer.tau, noise),
                               rtol=1e-5, atol=1e-6)
    # a node-major input (the previous fused layer's output) gives the same result
    y2 = K.layer_forward(layer, x.t().contiguous().t(), "cpp", noise=noise)
    assert torch.equal(y, y2)


@pytest.mark.parametrize("k", [2, 4, 6])
def test_cpp_input_gradient_one_thread_equals_reverse_index(cpp, k):
    # one thread: the first consumer of each input stores its row, later ones add (no zero-fill pass); inputs no
    # node reads get zero rows. Same sums as the reverse-index path (2 threads), up to FMA contraction.
    layer = WarpLUT(700, 150, k=k, sampling="gumbel", init="random", seed=k)  # 700 > 150 k: unread inputs
    x = torch.rand(200, 700)
    g = torch.randn(200, 150)
    grads = []
    before = torch.get_num_threads()
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            xg = x.clone().requires_grad_(True)
            (K.layer_forward(layer, xg, "cpp", seed=9) * g).sum().backward()
            grads.append(xg.grad)
    finally:
        torch.set_num_threads(before)
    unread = torch.ones(700, dtype=torch.bool)
    unread[layer.idx.reshape(-1)] = False
    assert unread.any() and torch.equal(grads[0][:, unread], torch.zeros(200, int(unread.sum())))
    assert torch.equal(grads[0], grads[1])  # bit-identical on 1 and 2 threads


def test_encoder_bits_are_node_major_and_read_without_a_copy(cpp, monkeypatch):
    import numpy as np

    from warpc.nn.encoders import Thermometer
    from warpc.nn.kernels import _cpu

    enc = Thermometer(40, 3).fit(np.random.default_rng(0).integers(0, 256, (200, 40)), "uniform")
    feats = torch.randint(0, 256, (33, 40)).float()
    bits = enc.train()(feats)
    ref = (feats[:, :, None] >= enc.thresholds[None].float()).float().flatten(1)
    assert torch.equal(bits, ref) and bits.t().is_contiguous()
    assert torch.equal(enc.eval()(feats), ref) and enc.eval()(feats).is_contiguous()
    layer = WarpLUT(120, 50, k=2, sampling="soft", seed=0, backend="cpp").train()
    mod = _cpu.load()

    class NoTranspose:
        def __getattr__(self, name):
            if name == "node_major":
                raise AssertionError("the first layer transposed node-major encoder bits")
            return getattr(mod, name)

    monkeypatch.setattr(_cpu, "load", lambda: NoTranspose())
    torch.testing.assert_close(layer(bits), warp_forward_reference(ref, layer.idx, layer.theta, layer.tau),
                               rtol=1e-5, atol=1e-6)


def test_cpp_thermometer_equals_pytorch_encoder(cpp):
    from warpc.nn.encoders import Thermometer
    from warpc.nn.kernels import _cpu

    mod = _cpu.load()
    thr = torch.randint(-5, 260, (37, 4))
    x = torch.randint(-10, 270, (70, 37)).float()
    x[::3] += 0.5  # non-integer features
    x[1, 2], x[2, 3] = float("nan"), float("inf")
    ref = (x[:, :, None] >= thr[None].to(x.dtype)).to(torch.float32).flatten(1)
    assert torch.equal(mod.thermometer(x, thr).t(), ref)
    assert torch.equal(mod.thermometer(x.t().contiguous().t(), thr).t(), ref)  # any input strides
    enc = Thermometer(37, 4).train()
    enc.thresholds.copy_(thr)
    used = []
    orig = K.thermometer_bits
    try:
        K.thermometer_bits = lambda *a: used.append(1) or orig(*a)
        assert torch.equal(enc(x), ref) and used  # the encoder takes the C++ path once the extension is loaded
        K.set_backend("torch")
        assert K.thermometer_bits(x, enc.thresholds) is None  # ... but not when everything must be plain PyTorch
        assert torch.equal(enc(x), ref)
    finally:
        K.thermometer_bits = orig
        K.set_backend(None)


def test_cpp_noise_is_logistic_and_reproducible(cpp):
    n = K.kernel_noise("cpp", 7, 500, 400)
    assert torch.equal(n, K.kernel_noise("cpp", 7, 500, 400))
    assert not torch.equal(n, K.kernel_noise("cpp", 8, 500, 400))
    # Logistic(0, 1): mean 0, variance pi^2 / 3
    assert abs(n.mean().item()) < 0.02
    assert abs(n.var().item() - torch.pi**2 / 3) < 0.05
    torch.manual_seed(3)
    layer = WarpLUT(10, 10, sampling="gumbel", seed=0, backend="cpp").train()
    x = torch.rand(8, 10)
    torch.manual_seed(5)
    a = layer(x)
    torch.manual_seed(5)
    b = layer(x)
    assert torch.equal(a, b)  # the kernel's seed comes from torch's generator


def test_reverse_index_cache_follows_wiring(cpp):
    layer = WarpLUT(12, 9, k=2, seed=0)
    _, ptr, slot = K.reverse_index(layer, layer.idx)
    flat = layer.idx.reshape(-1)
    for p in range(12):
        assert sorted(flat[slot[ptr[p]:ptr[p + 1]].long()].tolist()) == [p] * int(ptr[p + 1] - ptr[p])
    with torch.no_grad():
        layer.idx.copy_(torch.zeros_like(layer.idx))
    _, ptr2, _ = K.reverse_index(layer, layer.idx)
    assert ptr2[1].item() == 18


def test_dispatch_selection(cpp, monkeypatch):
    x = torch.rand(4, 10)
    warp = WarpLUT(10, 8, seed=0)
    assert K.resolve_backend(warp, x) == "cpp"
    assert K.resolve_backend(WarpLUT(10, 8, seed=0, backend="torch"), x) == "torch"
    assert K.resolve_backend(WarpLUT(10, 8, parametrization="dlgn", seed=0), x) == "cpp"
    assert K.resolve_backend(WarpLUT(10, 8, parametrization="dlgn", seed=0, backend="torch"), x) == "torch"
    assert K.resolve_backend(WarpLUT(10, 8, wiring="learnable", seed=0), x) == "cpp"
    assert K.resolve_backend(warp, x.double()) == "torch"
    monkeypatch.setenv("WARPC_BACKEND", "torch")
    assert K.resolve_backend(warp, x) == "torch"
    assert K.resolve_backend(WarpLUT(10, 8, seed=0, backend="cpp"), x) == "cpp"  # the layer's choice wins
    K.set_backend("cpp")
    try:
        assert K.resolve_backend(warp, x) == "cpp"
    finally:
        K.set_backend(None)
    monkeypatch.setenv("WARPC_BACKEND", "bogus")
    with pytest.raises(ConfigError):
        K.resolve_backend(warp, x)
    with pytest.raises(ConfigError):
        K.set_backend("cuda")


def test_plain_fallback_when_extension_missing(monkeypatch):
    from warpc.nn.kernels import _cpu

    monkeypatch.setitem(_cpu._state, "tried", True)
    monkeypatch.setitem(_cpu._state, "mod", None)
    layer = WarpLUT(10, 8, seed=0)
    assert K.resolve_backend(layer, torch.rand(3, 10)) == "torch"
    assert layer.train()(torch.rand(3, 10)).shape == (3, 8)


def test_build_failure_warns_and_falls_back(monkeypatch, tmp_path):
    from warpc.nn.kernels import _cpu

    monkeypatch.setitem(_cpu._state, "tried", False)
    monkeypatch.setitem(_cpu._state, "mod", None)
    monkeypatch.setattr(_cpu, "SRC", tmp_path / "missing.cpp")
    with pytest.warns(RuntimeWarning, match="plain PyTorch path"):
        assert _cpu.load() is None
    assert _cpu.load() is None  # no second attempt


def test_no_compiler_warns_once_and_falls_back(monkeypatch, tmp_path):
    from warpc.nn.kernels import _cpu

    monkeypatch.setitem(_cpu._state, "tried", False)
    monkeypatch.setitem(_cpu._state, "mod", None)
    monkeypatch.setattr(_cpu, "compiler", lambda: None)
    with pytest.warns(RuntimeWarning, match="no C\\+\\+ compiler"):
        assert _cpu.load() is None
    assert _cpu.load() is None


def test_cache_key_covers_source_compiler_flags(monkeypatch, tmp_path):
    from warpc.nn.kernels import _cpu

    cxx = _cpu.compiler()
    if cxx is None:
        pytest.skip("no C++ compiler")
    key = _cpu.build_key(cxx, _cpu.CFLAGS)
    assert key == _cpu.build_key(cxx, list(_cpu.CFLAGS))
    assert key != _cpu.build_key(cxx, _cpu.PORTABLE_CFLAGS)
    changed = tmp_path / "warplut_cpu.cpp"
    changed.write_text(_cpu.SRC.read_text() + "\n// changed\n")
    monkeypatch.setattr(_cpu, "SRC", changed)
    assert _cpu.build_key(cxx, _cpu.CFLAGS) != key


_BUILD_AND_RUN = """
import sys, torch
from warpc.nn.kernels import _cpu
mod = _cpu.load()
assert mod is not None, _cpu._state["error"]
y, _ = mod.forward(torch.rand(4, 3), torch.tensor([[0, 1], [2, 3]], dtype=torch.int32), torch.rand(2, 4),
                   1.0, 1, 7, None, False, False)
print("ok", tuple(y.shape), _cpu._state["build_seconds"] is not None)
"""


def test_two_first_runs_build_one_cache_concurrently(tmp_path):
    """Two processes start with an empty cache at once: both build (to temporary names), rename atomically and
    load a complete library; the cache ends with one library and no temporary files; a third run only loads."""
    from warpc.nn.kernels import _cpu

    if _cpu.compiler() is None:
        pytest.skip("no C++ compiler")
    env = dict(os.environ, WARPC_CACHE_DIR=str(tmp_path))
    procs = [subprocess.Popen([sys.executable, "-c", _BUILD_AND_RUN], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    for (out, err), p in zip(outs, procs):
        assert p.returncode == 0, err
        assert out.startswith("ok (2, 3)")
        assert "compiling the fused CPU kernel (first run only)" in err  # progress that does not lie
        assert "compiled the fused CPU kernel in" in err
    files = sorted(f.name for f in (tmp_path / "kernels").iterdir())
    assert len(files) == 1 and files[0].startswith("warplut_cpu-") and files[0].endswith(".so"), files
    third = subprocess.run([sys.executable, "-c", _BUILD_AND_RUN], env=env, capture_output=True, text=True)
    assert third.stdout.strip() == "ok (2, 3) False" and "compiling" not in third.stderr


@pytest.mark.parametrize("rejected", ["native", "openmp"])
def test_rejected_flags_fall_back_to_portable_then_serial(monkeypatch, tmp_path, rejected):
    """A compiler that rejects -march=native gets the portable build; one without OpenMP (e.g. Apple clang) the
    serial build."""
    from warpc.nn.kernels import _cpu

    if _cpu.compiler() is None:
        pytest.skip("no C++ compiler")
    monkeypatch.setenv("WARPC_CACHE_DIR", str(tmp_path))
    monkeypatch.setitem(_cpu._state, "tried", False)
    monkeypatch.setitem(_cpu._state, "mod", None)
    bad = ["-fno-such-flag-warpc"]
    monkeypatch.setattr(_cpu, "CFLAGS", bad + _cpu.PORTABLE_CFLAGS)
    used = _cpu.PORTABLE_CFLAGS
    if rejected == "openmp":
        monkeypatch.setattr(_cpu, "PORTABLE_CFLAGS", bad + _cpu.PORTABLE_CFLAGS)
        used = _cpu.SERIAL_CFLAGS
    mod = _cpu.load()
    assert mod is not None
    libs = list((tmp_path / "kernels").glob("*.so"))
    assert len(libs) == 1 and libs[0].name == f"warplut_cpu-{_cpu.build_key(_cpu.compiler(), used)}.so"
    x = torch.rand(5, 8)
    idx = torch.tensor([[0, 1], [2, 3], [4, 7]], dtype=torch.int32)
    y, _ = mod.forward(x.t().contiguous(), idx, torch.rand(3, 4), 1.0, 0, 0, None, False, False)
    assert y.shape == (3, 5)


def _stack(backend, sampling="gumbel", k=2):
    torch.manual_seed(0)
    return nn.Sequential(
        WarpLUT(64, 120, k=k, sampling=sampling, seed=1, backend=backend),
        WarpLUT(120, 120, k=k, sampling=sampling, seed=2, backend=backend),
        WarpLUT(120, 60, k=k, sampling=sampling, seed=3, backend=backend),
        GroupSum(3, 3.0),
    )


def test_cpp_stack_matches_plain_and_trains(cpp):
    torch.manual_seed(0)
    x = (torch.rand(96, 64) > 0.5).float()
    target = (x[:, :3].sum(1) + x[:, 3]).long() % 3
    fused, plain = _stack("cpp", "soft"), _stack("torch", "soft")
    torch.testing.assert_close(fused(x), plain(x), rtol=1e-5, atol=1e-5)  # no noise: whole-stack equality
    torch.manual_seed(0)
    model = _stack("cpp", "gumbel")
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    losses = []
    for _ in range(60):
        loss = nn.functional.cross_entropy(model(x), target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert sum(losses[-10:]) / 10 < 0.85 * sum(losses[:10]) / 10


needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (scripts/gpu/check.sh)")


@needs_cuda
@pytest.mark.parametrize("k", [2, 3, 4, 5, 6])
@pytest.mark.parametrize("sampling", SAMPLINGS)
def test_cuda_triton_matches_reference(k, sampling):
    pytest.importorskip("triton")
    compare_backend("triton", k, sampling, batch=300, n_in=700, n_out=900, device="cuda")


@needs_cuda
@pytest.mark.parametrize("k", [2, 4, 6])
def test_cuda_triton_learnable_wiring_matches_reference(k):
    pytest.importorskip("triton")
    compare_learnable("triton", k, "gumbel", batch=300, n_in=500, n_out=400, candidates=16, device="cuda")


@needs_cuda
@pytest.mark.parametrize("sampling", ["gumbel", "soft_st"])
def test_cuda_triton_dlgn_matches_plain(sampling):
    pytest.importorskip("triton")
    compare_dlgn("triton", sampling, "random", batch=300, n_in=700, n_out=900, device="cuda")


@needs_cuda
def test_cuda_auto_selects_triton_and_a_bf16_stack_trains():
    pytest.importorskip("triton")
    torch.manual_seed(0)
    net = _stack("auto").cuda()
    x = (torch.rand(256, 64, device="cuda") > 0.5).float()
    assert K.resolve_backend(net[0], x) == "triton"
    target = (x[:, :3].sum(1) + x[:, 3]).long() % 3
    opt = torch.optim.Adam(net.parameters(), lr=0.05)
    losses = []
    for _ in range(60):
        loss = nn.functional.cross_entropy(net(x.bfloat16()).float(), target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert sum(losses[-10:]) / 10 < 0.85 * sum(losses[:10]) / 10


TRITON_SCRIPT = textwrap.dedent(
    """
    import os, sys
    os.environ["TRITON_INTERPRET"] = "1"
    sys.path.insert(0, {root!r})
    import torch
    from tests.test_kernels import compare_backend
    from warpc.nn import kernels as K
    assert K.triton_available()
    for k in (2, 3, 4, 5, 6):
        for s in ("soft", "gumbel", "soft_st", "gumbel_st"):
            compare_backend("triton", k, s, batch=20, n_in=24, n_out=18)
    compare_backend("triton", 2, "gumbel", tau=0.7, batch=20, n_in=24, n_out=18)
    from tests.test_kernels import compare_shards
    for k, s in ((2, "gumbel"), (4, "gumbel_st"), (3, "soft")):
        compare_shards("triton", k, s, batch=20, n_in=24, n_out=18, cut=7)
    from tests.test_kernels import compare_learnable
    for k, s in ((2, "soft"), (2, "gumbel"), (3, "gumbel_st"), (6, "soft")):
        compare_learnable("triton", k, s, batch=20, n_in=24, n_out=10, candidates=4)
    from tests.test_kernels import compare_dlgn
    for s, w in (("soft", "random"), ("gumbel_st", "learnable")):
        compare_dlgn("triton", s, w, batch=20, n_in=24, n_out=18)
    # bf16 activations: forward within bf16 rounding, gradients in fp32 for theta
    from warpc.nn import WarpLUT, warp_forward_reference
    lay = WarpLUT(24, 18, k=3, sampling="soft", init="random", seed=0)
    xb = torch.rand(20, 24).bfloat16().requires_grad_(True)
    yb = K.layer_forward(lay, xb, "triton")
    assert yb.dtype == torch.bfloat16
    xf = xb.detach().float().requires_grad_(True)
    ref = WarpLUT(24, 18, k=3, sampling="soft", init="random", seed=0)
    yf = warp_forward_reference(xf, ref.idx, ref.theta, ref.tau)
    torch.testing.assert_close(yb.float(), yf, rtol=0, atol=8e-3)
    yb.float().sum().backward(); yf.sum().backward()
    torch.testing.assert_close(lay.theta.grad, ref.theta.grad, rtol=2e-2, atol=2e-2)
    # bf16 through learnable wiring and DLGN: outputs stay bf16, parameter gradients fp32, close to the fp32 plain path
    for kw in (dict(wiring="learnable", candidates=4), dict(parametrization="dlgn")):
        lay = WarpLUT(24, 18, sampling="soft", init="random", seed=0, **kw)
        ref = WarpLUT(24, 18, sampling="soft", init="random", seed=0, backend="torch", **kw)
        xb = torch.rand(20, 24).bfloat16().requires_grad_(True)
        yb = K.layer_forward(lay, xb, "triton")
        assert yb.dtype == torch.bfloat16
        xf = xb.detach().float().requires_grad_(True)
        yf = ref(xf)
        torch.testing.assert_close(yb.float(), yf, rtol=0, atol=2e-2)
        yb.float().sum().backward(); yf.sum().backward()
        for p, q in zip(lay.parameters(), ref.parameters()):
            assert p.grad.dtype == torch.float32
            torch.testing.assert_close(p.grad, q.grad, rtol=5e-2, atol=5e-2)
        assert xb.grad.dtype == torch.bfloat16
    n = K.kernel_noise("triton", 3, 256, 64)
    assert abs(n.mean().item()) < 0.1 and abs(n.var().item() - 3.29) < 0.3, (n.mean(), n.var())
    # auto-dispatch on CPU tensors never picks triton unless asked
    K.set_backend("triton")
    from warpc.nn import WarpLUT
    w = WarpLUT(24, 18, seed=0)
    assert K.resolve_backend(w, torch.rand(2, 24)) == "triton"  # runs the self-test for k = 2
    from warpc.nn.kernels import selftest
    assert selftest.results[(2, "cpu")] is True
    # a layer stack trains through the Triton kernels (interpreter)
    torch.manual_seed(0)
    net = torch.nn.Sequential(WarpLUT(24, 40, seed=1), WarpLUT(40, 30, seed=2), torch.nn.Flatten())
    xs = (torch.rand(32, 24) > 0.5).float()
    tgt = xs[:, :3].sum(1).long()
    opt = torch.optim.Adam(net.parameters(), lr=0.1)
    losses = []
    for _ in range(25):
        loss = torch.nn.functional.cross_entropy(net(xs).reshape(32, 3, 10).sum(-1) / 2.0, tgt.clamp(max=2))
        opt.zero_grad(); loss.backward(); opt.step(); losses.append(loss.item())
    assert sum(losses[-5:]) < sum(losses[:5]), losses
    print("OK")
    """
)


def test_triton_matches_reference_under_interpreter():
    pytest.importorskip("triton")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    r = subprocess.run([sys.executable, "-c", TRITON_SCRIPT.format(root=root)], capture_output=True, text=True,
                       timeout=600, env={**os.environ, "TRITON_INTERPRET": "1"})
    assert r.returncode == 0 and "OK" in r.stdout, r.stdout[-3000:] + r.stderr[-3000:]


def _compile_for_sm90(fn, signature, constexprs):
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    return triton.compile(ASTSource(fn=fn, signature=signature, constexprs=constexprs),
                          target=GPUTarget("cuda", 90, 32))


@pytest.mark.parametrize("k", [2, pytest.param(6, marks=pytest.mark.slow)])
def test_triton_kernels_compile_for_sm90_without_a_gpu(k):
    """The interpreter does not catch everything the compiler rejects: compile every kernel down to an sm_90
    cubin (Triton bundles ptxas), no GPU needed."""
    pytest.importorskip("triton")
    from warpc.nn.kernels import _triton as T

    bn, bb = T._tiles(128, k)
    fwd_sig = {"xT": "*bf16", "idx": "*i32", "theta": "*fp32", "noise": "*fp32", "yT": "*bf16", "ysT": "*fp32",
               "out": "i32", "B": "i32", "seed": "i64", "inv_tau": "fp32", "row0": "i32", "total": "i32",
               "K": "constexpr", "MODE": "constexpr",
               "ST": "constexpr", "BN": "constexpr", "BB": "constexpr", "LIN": "constexpr"}
    for mode, st, lin in ((1, True, False), (2, False, False), (0, False, True)):
        k_fwd = _compile_for_sm90(T._fwd_kernel, fwd_sig, {"K": k, "MODE": mode, "ST": st, "BN": bn, "BB": bb,
                                                            "LIN": lin})
        assert len(k_fwd.asm["cubin"]) > 0
    bwd_sig = {"gT": "*fp32", "xT": "*fp32", "idx": "*i32", "theta": "*fp32", "ysT": "*fp32", "gth_part": "*fp32",
               "buf": "*fp32", "out": "i32", "B": "i32", "inv_tau": "fp32", "K": "constexpr", "NEED_GX": "constexpr",
               "BN": "constexpr", "BB": "constexpr", "LIN": "constexpr"}
    for lin in (False, True):
        assert len(_compile_for_sm90(T._bwd_node_kernel, bwd_sig, {"K": k, "NEED_GX": True, "BN": bn, "BB": bb,
                                                                   "LIN": lin}).asm["cubin"]) > 0
    if k == 2:
        in_sig = {"buf": "*fp32", "w": "*fp32", "rev_ptr": "*i64", "rev_slot": "*i32", "gxT": "*bf16", "n_in": "i32",
                  "B": "i32", "C": "i32", "WEIGHTED": "constexpr", "BP": "constexpr", "BB": "constexpr"}
        for weighted in (False, True):
            assert len(_compile_for_sm90(T._bwd_input_kernel, in_sig, {"WEIGHTED": weighted, "BP": 16, "BB": 128})
                       .asm["cubin"]) > 0
        mix_sig = {"xT": "*bf16", "cand": "*i32", "w": "*fp32", "mT": "*bf16", "S": "i32", "B": "i32", "C": "i32",
                   "BS": "constexpr", "BB": "constexpr"}
        assert len(_compile_for_sm90(T._mix_fwd_kernel, mix_sig, {"BS": 32, "BB": 128}).asm["cubin"]) > 0
        gw_sig = {"gT": "*fp32", "xT": "*bf16", "cand": "*i32", "part": "*fp32", "S": "i32", "B": "i32", "C": "i32",
                  "BS": "constexpr", "BB": "constexpr"}
        assert len(_compile_for_sm90(T._mix_grad_w_kernel, gw_sig, {"BS": 32, "BB": 128}).asm["cubin"]) > 0
        nz_sig = {"nT": "*fp32", "total": "i32", "seed": "i64", "BLOCK": "constexpr"}
        assert len(_compile_for_sm90(T._noise_kernel, nz_sig, {"BLOCK": 1024}).asm["cubin"]) > 0


def test_prepare_builds_first_and_hints_at_torch_spin_waits(cpp, monkeypatch):
    """kernels.prepare resolves each WarpLUT's backend before a loop; a process whose torch was imported before
    warpc (libgomp's long default spin) gets one hint, a process with warpc's default or the user's setting none."""
    import warpc

    if not sys.platform.startswith("linux"):
        pytest.skip("the hint is about libgomp (Linux)")
    layers = [WarpLUT(10, 8, seed=0), GroupSum(2, 1.0), WarpLUT(8, 6, seed=1, backend="torch")]
    monkeypatch.setattr(K, "_warned", set())
    monkeypatch.setattr(warpc, "TORCH_LOADED_FIRST", False)
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert K.prepare(layers) == ["cpp", "torch"]
    monkeypatch.setattr(warpc, "TORCH_LOADED_FIRST", True)
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    monkeypatch.delenv("GOMP_SPINCOUNT", raising=False)
    with pytest.warns(RuntimeWarning, match="Import warpc before torch"):
        K.prepare(layers)
    monkeypatch.setenv("OMP_WAIT_POLICY", "PASSIVE")
    assert not K.omp_spins_long()


def test_adaptive_thread_choice_follows_measured_cost(monkeypatch):
    """Each kernel kind tries torch's thread count, then one thread, then keeps the cheaper and retries the
    other every EXPLORE_EVERY calls; a changed cost moves the choice."""
    from warpc.nn.kernels import _cpu

    monkeypatch.setattr(_cpu, "ADAPTIVE_THREADS", True)
    old = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        c = _cpu.ThreadChoice()
        cost = {2: 3.0, 1: 1.0}  # a busy second core: two threads cost more
        picks = []
        for _ in range(2 * _cpu.EXPLORE_EVERY):
            t = c.pick("fwd")
            picks.append(t)
            c.record("fwd", t, cost[t], 1)
        assert picks[:2] == [2, 1]
        assert picks.count(2) <= 4 and picks[-2] == 1  # the last call is an exploration
        cost = {2: 0.5, 1: 1.0}  # the second core is free again
        for _ in range(4 * _cpu.EXPLORE_EVERY):
            t = c.pick("fwd")
            c.record("fwd", t, cost[t], 1)
        assert c.pick("fwd") == 2
        monkeypatch.setattr(_cpu, "ADAPTIVE_THREADS", False)
        assert c.pick("fwd") == 2
    finally:
        torch.set_num_threads(old)


def test_adaptive_threads_do_not_change_results(cpp, monkeypatch):
    """Whatever thread count the adaptive choice takes, a layer's forward and gradients are bit-identical (the
    input gradient adds the same rounded contributions in the same order on one thread and on several)."""
    from warpc.nn.kernels import _cpu

    old = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        layer = WarpLUT(300, 256, seed=0, sampling="gumbel")
        x = torch.rand(64, 300)
        outs = []
        for adaptive, forced in ((False, None), (True, 1), (True, 2)):
            monkeypatch.setattr(_cpu, "ADAPTIVE_THREADS", adaptive)
            if forced is not None:
                monkeypatch.setattr(_cpu.ThreadChoice, "pick", lambda self, kind, n=forced: n)
            xi = x.clone().requires_grad_(True)
            layer.zero_grad()
            y = K.layer_forward(layer, xi, "cpp", seed=5)
            (y * torch.arange(256)).sum().backward()
            outs.append((y.detach(), layer.theta.grad.clone(), xi.grad.clone()))
        for y, gt, gx in outs[1:]:
            torch.testing.assert_close(y, outs[0][0], rtol=0, atol=0)
            torch.testing.assert_close(gt, outs[0][1], rtol=0, atol=0)
            assert torch.equal(gx, outs[0][2])  # bit-identical: training is reproducible whatever was chosen
    finally:
        torch.set_num_threads(old)


_FORK_AFTER_USE = """
import os, sys, torch
from warpc.nn.kernels import _cpu
_cpu.ADAPTIVE_THREADS = False
torch.set_num_threads(2)
mod = _cpu.load()
x = torch.rand(300, 64)
idx = torch.randint(0, 300, (400, 2), dtype=torch.int32)
th = torch.rand(400, 4)
y0, _ = mod.forward(x, idx, th, 1.0, 1, 3, None, False, False)  # starts the pool's worker
pid = os.fork()
if pid == 0:  # the child's pool is rebuilt (the parent's worker thread does not exist here)
    y1, _ = mod.forward(x, idx, th, 1.0, 1, 3, None, False, False)
    os._exit(0 if torch.equal(y0, y1) else 3)
_, status = os.waitpid(pid, 0)
y2, _ = mod.forward(x, idx, th, 1.0, 1, 3, None, False, False)
print("ok" if os.waitstatus_to_exitcode(status) == 0 and torch.equal(y0, y2) else "bad")
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork here")
def test_kernel_thread_pool_survives_fork(cpp):
    """A process forked after the kernels ran on two threads (e.g. a DataLoader worker) runs them again."""
    res = subprocess.run([sys.executable, "-c", _FORK_AFTER_USE], capture_output=True, text=True, timeout=120)
    assert res.stdout.strip() == "ok", res.stderr


def test_openmp_and_pool_threads_give_identical_results(cpp):
    """The kernels run on the library's pool or on torch's OpenMP team (when torch's libgomp spins long); both give
    the same bits."""
    from warpc.nn.kernels import _cpu

    mod = _cpu.load()
    old = torch.get_num_threads()
    torch.set_num_threads(2)
    layer = WarpLUT(300, 256, seed=0, sampling="gumbel")
    x = torch.rand(64, 300)
    outs = []
    try:
        for openmp in (0, 1):
            mod.lib.warpc_set_openmp(openmp)
            xi = x.clone().requires_grad_(True)
            layer.zero_grad()
            y = K.layer_forward(layer, xi, "cpp", seed=9)
            (y * torch.arange(256)).sum().backward()
            outs.append((y.detach(), layer.theta.grad.clone(), xi.grad.clone()))
    finally:
        mod.lib.warpc_set_openmp(int(mod.openmp))
        torch.set_num_threads(old)
    assert all(torch.equal(a, b) for a, b in zip(*outs))
