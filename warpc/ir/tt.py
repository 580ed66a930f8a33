"""Truth-table arithmetic on Python ints (k <= 6 inputs, bit c = output when input i = bit i of c).

Small, memoised helpers shared by the passes, the packer and BLIF I/O. Tables are plain ints so they hash,
compare and serialise like the IR's `Node.table`.
"""
from __future__ import annotations

from functools import lru_cache

# VAR[i] over 6 variables: the projection x_i as a 64-bit table.
_VAR6 = [sum(1 << c for c in range(64) if (c >> i) & 1) for i in range(6)]


def full(k: int) -> int:
    """All-ones table over k inputs."""
    return (1 << (1 << k)) - 1


def var(i: int, k: int) -> int:
    """Projection table x_i over k inputs."""
    return _VAR6[i] & full(k)


def is_const(table: int, k: int) -> int | None:
    """0 or 1 if the table is constant, else None."""
    if table == 0:
        return 0
    if table == full(k):
        return 1
    return None


@lru_cache(maxsize=1 << 16)
def cofactor(table: int, k: int, i: int, v: int) -> int:
    """Table over k-1 inputs: input i fixed to v and removed (inputs above i shift down by one)."""
    h = 1 << i
    t = (table >> (h if v else 0)) & ~_VAR6[i] & full(k)  # corners with x_i = 0 now hold f(.., x_i = v, ..)
    out, block = 0, (1 << h) - 1
    for hi in range(1 << (k - 1 - i)):  # squeeze out the gaps: blocks of 2^i bits every 2^(i+1)
        out |= ((t >> (hi << (i + 1))) & block) << (hi << i)
    return out


def depends(table: int, k: int, i: int) -> bool:
    """Whether the table depends on input i (corners c and c + 2^i differ somewhere)."""
    return bool(((table >> (1 << i)) ^ table) & ~_VAR6[i] & full(k))


@lru_cache(maxsize=1 << 16)
def negate_input(table: int, k: int, i: int) -> int:
    """Table of f(.., not x_i, ..)."""
    m = var(i, k)
    s = 1 << i
    return ((table & m) >> s) | ((table & ~m & full(k)) << s)


@lru_cache(maxsize=1 << 16)
def permute(table: int, k: int, perm: tuple[int, ...]) -> int:
    """New table g with g(y) = f(x) where new input j carries old input perm[j]."""
    out = 0
    for c in range(1 << k):  # c = new corner
        old = 0
        for j in range(k):
            if (c >> j) & 1:
                old |= 1 << perm[j]
        out |= ((table >> old) & 1) << c
    return out


@lru_cache(maxsize=1 << 16)
def merge_inputs(table: int, k: int, i: int, j: int) -> int:
    """Inputs i < j read the same signal: restrict to x_i = x_j and drop input j."""
    out = 0
    low = (1 << j) - 1
    for c in range(1 << k):
        if ((c >> i) & 1) == ((c >> j) & 1):
            out |= ((table >> c) & 1) << ((c & low) | ((c >> (j + 1)) << j))
    return out


def compose(table: int, args: list[int], width: int) -> int:
    """Evaluate a k-input table on argument tables (each over `width` variables): bitwise Shannon expansion."""
    ones = full(width)
    out = 0
    for c in range(1 << len(args)):
        if (table >> c) & 1:
            m = ones
            for i, a in enumerate(args):
                m &= a if (c >> i) & 1 else ~a
                if not m:
                    break
            out |= m
    return out & ones
