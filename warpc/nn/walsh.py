"""Walsh–Hadamard conventions shared by training, discretization and tests.

Conventions (tested in tests/test_walsh.py):
- A node reads k bits x_0..x_{k-1}; s_i = 1 - 2 x_i (bit 0 -> +1, bit 1 -> -1).
- Coefficient index m in [0, 2^k): bit i of m set <=> input i belongs to the subset S; chi_m = prod_{i in S} s_i.
  m = 0 is the constant term.
- Corner / truth-table index c in [0, 2^k): bit i of c is x_i (input 0 is the least significant bit, as in
  iCE40's LUT_INIT and BLIF cube order).
- z(c) = sum_m theta_m chi_m(c) = (H theta)[c] with H[c, m] = (-1)^popcount(c & m) (Sylvester order).
- The hard output is [z < 0]; truth table bit c = 1 iff z(c) < 0.
"""
from __future__ import annotations

import numpy as np


def hadamard(k: int) -> np.ndarray:
    """H[c, m] = (-1)^popcount(c & m), shape (2^k, 2^k), int8."""
    n = 1 << k
    c = np.arange(n)[:, None]
    m = np.arange(n)[None, :]
    bits = np.bitwise_and(c, m)
    par = np.zeros_like(bits)
    for i in range(k):
        par ^= (bits >> i) & 1
    return (1 - 2 * par).astype(np.int8)


def corners(k: int) -> np.ndarray:
    """All 2^k input corners, shape (2^k, k); row c holds the bits of c (input 0 = LSB)."""
    c = np.arange(1 << k)[:, None]
    return ((c >> np.arange(k)[None, :]) & 1).astype(np.uint8)


def corner_values(theta: np.ndarray) -> np.ndarray:
    """z at every corner for coefficients theta (..., 2^k), computed in float64. Returns (..., 2^k)."""
    theta = np.asarray(theta, dtype=np.float64)
    n = theta.shape[-1]
    k = n.bit_length() - 1
    if 1 << k != n:
        raise ValueError(f"coefficient count {n} is not a power of two")
    return theta @ hadamard(k).T.astype(np.float64)


def truth_tables_from_theta(theta: np.ndarray) -> np.ndarray:
    """Hard truth tables (..., 2^k) uint8: bit c = [z(c) < 0] (the nearest LUT)."""
    return (corner_values(theta) < 0).astype(np.uint8)


def theta_from_truth_table(table: np.ndarray, scale: float = 1.0) -> np.ndarray:
    """Walsh coefficients whose sign pattern reproduces `table` (..., 2^k): theta = scale * H^T (1 - 2 t) / 2^k."""
    t = np.asarray(table, dtype=np.float64)
    n = t.shape[-1]
    k = n.bit_length() - 1
    target = scale * (2.0 * t - 1.0) * -1.0  # want z < 0 where t = 1
    return target @ hadamard(k).astype(np.float64) / n


def pack_table(bits: np.ndarray) -> int:
    """Truth table bits (2^k,) -> integer with bit c = bits[c]."""
    return int(sum(int(b) << i for i, b in enumerate(np.asarray(bits).reshape(-1))))


def unpack_table(table: int, k: int) -> np.ndarray:
    return np.array([(table >> c) & 1 for c in range(1 << k)], dtype=np.uint8)
