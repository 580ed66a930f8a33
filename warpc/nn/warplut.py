"""The WARP-LUT layer (and the DLGN baseline behind the same API): plain PyTorch reference implementation.

See warpc/nn/walsh.py for the sign and index conventions. Fused backends (warpc.nn.kernels) must match
`warp_forward_reference` exactly for fixed noise.
"""
from __future__ import annotations

import contextlib

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..config import INITS, PARAMETRIZATIONS, SAMPLINGS, WIRINGS
from ..errors import ConfigError
from .walsh import truth_tables_from_theta


def default_tau(k: int) -> float:
    """Node temperature by fan-in: 1, 4, 16 for k = 2, 4, 6, geometric in between (2^(k-2))."""
    return float(2.0 ** (k - 2))


def walsh_basis(xi: torch.Tensor) -> torch.Tensor:
    """chi (..., 2^k) from input bits/probabilities xi (..., k); chi_m = prod_{i in m} (1 - 2 x_i)."""
    s = 1.0 - 2.0 * xi
    chi = torch.ones_like(s[..., :1])
    for i in range(s.shape[-1]):
        chi = torch.cat([chi, chi * s[..., i : i + 1]], dim=-1)
    return chi


def logistic_noise(shape, device, dtype=torch.float32, generator: torch.Generator | None = None) -> torch.Tensor:
    """G1 - G2 for two independent Gumbel(0,1) variables, i.e. Logistic(0,1): log u - log(1-u)."""
    u = torch.rand(shape, device=device, dtype=dtype, generator=generator).clamp_(1e-6, 1.0 - 1e-6)
    return torch.log(u) - torch.log1p(-u)


# Data-parallel training: which rows (row0, total) of the global batch this process computes. The training noise
# of a sample depends on its row in the global batch, not on the process that computes it, so a run split over N
# processes draws exactly the noise of the one-process run (see warpc.training.distributed).
_NOISE_ROWS: tuple[int, int] | None = None


@contextlib.contextmanager
def noise_rows(row0: int, total: int):
    """Within this block, training forwards compute rows [row0, row0 + B) of a `total`-row batch."""
    global _NOISE_ROWS
    previous, _NOISE_ROWS = _NOISE_ROWS, (int(row0), int(total))
    try:
        yield
    finally:
        _NOISE_ROWS = previous


def batch_rows(batch: int) -> tuple[int, int]:
    """(row0, total) of a `batch`-row forward: the whole batch outside `noise_rows`."""
    if _NOISE_ROWS is None:
        return 0, batch
    row0, total = _NOISE_ROWS
    if row0 < 0 or row0 + batch > total:
        raise ValueError(f"noise rows [{row0}, {row0 + batch}) outside a batch of {total}")
    return row0, total


def row_noise(batch: int, out: int, device, dtype=torch.float32) -> torch.Tensor:
    """Logistic noise (batch, out) for the plain path: this process's rows of the global batch's noise."""
    row0, total = batch_rows(batch)
    n = logistic_noise((total, out), device, dtype)
    return n if total == batch else n[row0:row0 + batch]


def warp_forward_reference(
    x: torch.Tensor, idx: torch.Tensor, theta: torch.Tensor, tau: float, noise: torch.Tensor | None = None
) -> torch.Tensor:
    """Relaxed WARP-LUT layer: y = sigmoid(-(z + noise) / tau), z = sum_m theta_m chi_m(x[:, idx]).

    x (B, in), idx (out, k) long, theta (out, 2^k), noise (B, out) or None. Returns (B, out).
    """
    z = (walsh_basis(x[:, idx]) * theta).sum(-1)
    if noise is not None:
        z = z + noise
    return torch.sigmoid(-z / tau)


# DLGN: the 16 two-input gates of difflogic, each a multilinear polynomial c0 + c1 a + c2 b + c3 ab.
# Rows are difflogic's gate order (FALSE, AND, A&~B, A, ~A&B, B, XOR, OR, NOR, XNOR, ~B, A|~B, ~A, ~A|B, NAND, TRUE).
DLGN_POLY = torch.tensor(
    [
        [0, 0, 0, 0], [0, 0, 0, 1], [0, 1, 0, -1], [0, 1, 0, 0],
        [0, 0, 1, -1], [0, 0, 1, 0], [0, 1, 1, -2], [0, 1, 1, -1],
        [1, -1, -1, 1], [1, -1, -1, 2], [1, 0, -1, 0], [1, 0, -1, 1],
        [1, -1, 0, 0], [1, -1, 0, 1], [1, 0, 0, -1], [1, 0, 0, 0],
    ],
    dtype=torch.float32,
)


# {1, a, b, ab} coefficients -> Walsh coefficients (m = 0, {a}, {b}, {a, b}) with s = 1 - 2x:
# a = (1 - s_a)/2, b = (1 - s_b)/2, ab = (1 - s_a - s_b + s_a s_b)/4.
POLY_TO_WALSH = torch.tensor(
    [[1.0, 0.0, 0.0, 0.0], [0.5, -0.5, 0.0, 0.0], [0.5, 0.0, -0.5, 0.0], [0.25, -0.25, -0.25, 0.25]]
)
DLGN_WALSH = DLGN_POLY @ POLY_TO_WALSH  # (16, 4): each gate's Walsh coefficients


def dlgn_gate_tables() -> np.ndarray:
    """(16, 4) truth tables of the DLGN gates, corner c = a + 2 b, evaluated from DLGN_POLY itself."""
    a = np.array([0, 1, 0, 1], dtype=np.float64)
    b = np.array([0, 0, 1, 1], dtype=np.float64)
    p = DLGN_POLY.double().numpy()
    vals = p[:, :1] + p[:, 1:2] * a + p[:, 2:3] * b + p[:, 3:4] * a * b
    return (vals > 0.5).astype(np.uint8)


class WarpLUT(nn.Module):
    """A layer of `out_features` k-input logic nodes over `in_features` binary inputs.

    parametrization="warp": 2^k Walsh coefficients per node; training output sigmoid(-(z + L)/tau) with logistic
    noise L for sampling="gumbel" (none for "soft"; "*_st" = straight-through: hard forward, relaxed gradient);
    eval output [z < 0]. parametrization="dlgn": difflogic's softmax over 16 gates (k must be 2).
    Wiring: a saved buffer `idx` (out, k); "random" draws inputs uniformly, "unique" uses every input before any
    repeats, "learnable" learns a softmax over `candidates` random inputs per slot (argmax when discretized).
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        k: int = 2,
        tau: float | None = None,
        sampling: str = "gumbel",
        init: str = "residual",
        wiring: str = "random",
        parametrization: str = "warp",
        candidates: int = 16,
        seed: int | None = None,
        backend: str = "auto",
    ) -> None:
        super().__init__()
        if not 2 <= k <= 6:
            raise ConfigError(f"k must be between 2 and 6, got {k}")
        if sampling not in SAMPLINGS:
            raise ConfigError(f"sampling must be one of {SAMPLINGS}, got {sampling!r}")
        if init not in INITS:
            raise ConfigError(f"init must be one of {INITS}, got {init!r}")
        if wiring not in WIRINGS:
            raise ConfigError(f"wiring must be one of {WIRINGS}, got {wiring!r}")
        if parametrization not in PARAMETRIZATIONS:
            raise ConfigError(f"parametrization must be one of {PARAMETRIZATIONS}, got {parametrization!r}")
        if parametrization == "dlgn" and k != 2:
            raise ConfigError("the DLGN parametrization has 2-input gates only (k=2)")
        if in_features < 1 or out_features < 1:
            raise ConfigError("layer sizes must be positive")
        if wiring == "learnable" and candidates < 2:
            raise ConfigError(f"learnable wiring needs at least 2 candidates per input, got {candidates}")
        if tau is not None and not (math.isfinite(tau) and tau > 0):
            raise ConfigError(f"tau must be a positive finite number, got {tau}")
        self.in_features, self.out_features, self.k = in_features, out_features, k
        self.tau = float(tau) if tau is not None else default_tau(k)
        self.sampling, self.init_mode, self.wiring = sampling, init, wiring
        self.parametrization, self.backend = parametrization, backend
        gen = torch.Generator().manual_seed(seed if seed is not None else torch.seed() % (2**31))

        if wiring == "learnable":
            self.candidates = candidates
            cand = torch.randint(0, in_features, (out_features, k, candidates), generator=gen)
            self.register_buffer("cand", cand)
            self.wiring_logits = nn.Parameter(torch.zeros(out_features, k, candidates))
            self.register_buffer("idx", cand[..., 0].clone())
        else:
            self.register_buffer("idx", self._draw_wiring(wiring, in_features, out_features, k, gen))

        if parametrization == "warp":
            theta = torch.zeros(out_features, 1 << k)
            if init == "residual":
                # theta on input 0's basis element: the node passes input 0 through with probability 0.95.
                theta[:, 1] = self.tau * math.log(0.95 / 0.05)
                theta += 0.01 * self.tau * torch.randn(theta.shape, generator=gen)
            else:
                theta.normal_(0.0, self.tau, generator=gen)
            self.theta = nn.Parameter(theta)
        else:
            logits = torch.randn(out_features, 16, generator=gen)
            if init == "residual":
                logits[:, 3] += 5.0  # gate "A": pass input 0 through
            self.logits = nn.Parameter(logits)

    @staticmethod
    def _draw_wiring(wiring: str, n_in: int, n_out: int, k: int, gen: torch.Generator) -> torch.Tensor:
        if wiring == "random":
            return torch.randint(0, n_in, (n_out, k), generator=gen)
        # unique: walk through random permutations of the inputs so each is used before any repeats,
        # and avoid the same input twice in one node where possible.
        total = n_out * k
        perms = [torch.randperm(n_in, generator=gen) for _ in range((total + n_in - 1) // n_in)]
        flat = torch.cat(perms)[:total]
        return flat.view(k, n_out).t().contiguous()

    # --- wiring / coefficients -------------------------------------------------------------------------------
    def wiring_indices(self) -> torch.Tensor:
        """Hard wiring (out, k): the buffer, or the argmax candidate for learnable wiring."""
        if self.wiring == "learnable":
            best = self.wiring_logits.argmax(-1, keepdim=True)
            return torch.gather(self.cand, -1, best).squeeze(-1)
        return self.idx

    def coefficients(self) -> torch.Tensor:
        """Walsh-basis view (out, 2^k) of what the node computes in training (DLGN: in the {1,a,b,ab} basis)."""
        if self.parametrization == "warp":
            return self.theta
        return F.softmax(self.logits, -1) @ DLGN_POLY.to(self.logits.device)

    def coefficients_walsh(self) -> torch.Tensor:
        """(out, 2^k) Walsh coefficients of the training-mode node function (differentiable): WARP's theta; for
        DLGN softmax(logits) @ DLGN_WALSH, whose z = sum_m theta_m chi_m is the gate mixture itself (no sigmoid)."""
        if self.parametrization == "warp":
            return self.theta
        return F.softmax(self.logits, -1) @ DLGN_WALSH.to(self.logits.device, self.logits.dtype)

    @torch.no_grad()
    def truth_tables(self) -> np.ndarray:
        """Hard truth tables (out, 2^k) uint8, bit c = output at corner c (input i = bit i of c)."""
        if self.parametrization == "warp":
            return truth_tables_from_theta(self.theta.detach().double().cpu().numpy())
        return dlgn_gate_tables()[self.logits.argmax(-1).cpu().numpy()]

    # --- forward ---------------------------------------------------------------------------------------------
    def _gather(self, x: torch.Tensor) -> torch.Tensor:
        if self.wiring == "learnable" and self.training:
            w = F.softmax(self.wiring_logits, -1)  # (out, k, C)
            # Gather whole input rows node-major ((out, k, C, B), contiguous rows of B) and mix the candidates:
            # measured 2x faster than x[:, cand] for 2,400 nodes x 16 candidates, forward + backward.
            g = x.t().contiguous()[self.cand]
            return torch.einsum("okcb,okc->bok", g, w)
        return x[:, self.wiring_indices()]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 2 or x.shape[1] != self.in_features:
            from ..errors import ShapeError

            raise ShapeError(f"WarpLUT expects input (batch, {self.in_features}), got {tuple(x.shape)}")
        if not self.training:
            return self._forward_hard(x)
        from .kernels import fused_forward

        y = fused_forward(self, x)  # None: the plain path below
        if y is not None:
            return y
        xi = self._gather(x)
        if self.parametrization == "dlgn":
            c = self.coefficients()
            a, b = xi[..., 0], xi[..., 1]
            y = c[:, 0] + c[:, 1] * a + c[:, 2] * b + c[:, 3] * a * b
            if self.sampling.endswith("_st"):
                y = y + ((y > 0.5).to(y.dtype) - y).detach()
            return y
        z = (walsh_basis(xi) * self.theta).sum(-1)
        if self.sampling.startswith("gumbel"):
            z = z + row_noise(z.shape[0], z.shape[1], z.device, z.dtype)
        y = torch.sigmoid(-z / self.tau)
        if self.sampling.endswith("_st"):
            y = y + ((z < 0).to(y.dtype) - y).detach()
        return y

    @torch.no_grad()
    def hard_rows(self, hT: torch.Tensor) -> torch.Tensor:
        """Eval-mode outputs, node-major: input bits hT (in, B) uint8 -> (out, B) uint8. Each node's corner is looked
        up in truth_tables(), the very tables discretization hands to the netlist, so eval == netlist by
        construction. Node-major rows make every gather copy whole rows."""
        idx = self.wiring_indices()
        corner = torch.index_select(hT, 0, idx[:, 0])
        for i in range(1, self.k):
            corner |= torch.index_select(hT, 0, idx[:, i]) << i
        # Computed per call, not cached: torch._fused_adam_ (warpc.train.Adam on CPU) updates parameters without
        # bumping their version counter, so a version-keyed cache would serve stale tables after a training step.
        tables = torch.from_numpy(self.truth_tables()).to(hT.device)  # (out, 2^k) uint8
        return torch.gather(tables, 1, corner.long())

    def _forward_hard(self, x: torch.Tensor) -> torch.Tensor:
        def binary(t: torch.Tensor) -> bool:
            return bool(((t == 0) | (t == 1)).all())

        # Binary inputs (checked on the whole input first, on the wired ones only if that fails) use the tables;
        # fractional ones, which only a caller can feed in eval mode, are rounded at 0.5 for DLGN, and WARP takes
        # the sign of its relaxed z below.
        if self.parametrization == "dlgn" or binary(x) or binary(x[:, self.wiring_indices()]):
            return self.hard_rows((x > 0.5).t().to(torch.uint8).contiguous()).t().to(x.dtype)
        z = (walsh_basis(x[:, self.wiring_indices()].double()) * self.theta.double()).sum(-1)
        return (z < 0).to(x.dtype)

    def extra_repr(self) -> str:
        return (
            f"in={self.in_features}, out={self.out_features}, k={self.k}, tau={self.tau:g}, "
            f"{self.parametrization}, sampling={self.sampling}, wiring={self.wiring}"
        )
