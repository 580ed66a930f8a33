"""The design space of a sweep: which model shapes and hardware options a trial may pick, and how an Optuna trial
turns into `warpc train` model options plus a build interval.

Dimensions: depth (layers), width per layer (log scale), k (inputs per node), thermometer thresholds, wiring,
parametrisation (WARP / DLGN; DLGN has k = 2 only), the GroupSum temperature and the build's --interval. Every
range can be narrowed from the CLI (`--k 2,4`, `--depth 1-2`, `--width 100-4000`, ...).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from ..config import K_RANGE, PARAMETRIZATIONS, WIRINGS
from ..errors import ConfigError


@dataclass(frozen=True)
class Space:
    depth: tuple[int, int] = (1, 3)
    width: tuple[int, int] = (100, 4000)
    k: tuple[int, ...] = (2, 3, 4, 6)
    thresholds: tuple[int, int] = (1, 8)
    wiring: tuple[str, ...] = ("random", "learnable")
    parametrization: tuple[str, ...] = ("warp", "dlgn")
    tau_head: tuple[float, float] = (2.0, 16.0)
    interval: tuple[int, ...] = (1,)

    def validate(self) -> "Space":
        _range("depth", self.depth, 1, 8)
        _range("width", self.width, 1, 1_000_000)
        _range("thresholds", self.thresholds, 1, 255)
        if not self.k or any(not K_RANGE[0] <= k <= K_RANGE[1] for k in self.k):
            raise ConfigError(f"--k choices must lie in {K_RANGE[0]}..{K_RANGE[1]}, got {list(self.k)}")
        for name, values, known in (("wiring", self.wiring, WIRINGS), ("parametrization", self.parametrization,
                                                                       PARAMETRIZATIONS)):
            bad = [v for v in values if v not in known]
            if not values or bad:
                raise ConfigError(f"--{name} choices must be among {', '.join(known)}, got {list(values)}")
        if self.parametrization == ("dlgn",) and 2 not in self.k:
            raise ConfigError("DLGN nodes have k = 2 only; add 2 to --k or allow --parametrization warp")
        lo, hi = self.tau_head
        if not (0 < lo <= hi and math.isfinite(hi)):
            raise ConfigError(f"--tau-head must be a positive range LO-HI, got {lo}-{hi}")
        if not self.interval or any(i < 1 for i in self.interval):
            raise ConfigError(f"--interval choices must be whole numbers >= 1, got {list(self.interval)}")
        return self

    def to_dict(self) -> dict:
        return {k: list(v) for k, v in self.__dict__.items()}


@dataclass
class Choice:
    """One trial's picks: model options for `warpc train` and the build interval."""

    model: dict = field(default_factory=dict)
    interval: int = 1

    def describe(self) -> str:
        m = self.model
        return (f"{'x'.join(map(str, m['widths']))} {m['parametrization']} k={m['k']} t={m['thresholds']} "
                f"{m['wiring']} tau_head={m['tau_head']:.1f}" + (f" II={self.interval}" if self.interval > 1 else ""))


def suggest(trial, space: Space, classes: int) -> Choice:
    """Draw one point of `space` through an Optuna trial (conditional: k only for WARP nodes)."""
    depth = _int(trial, "depth", space.depth)
    widths = [trial.suggest_int(f"width_{i}", *space.width, log=space.width[0] < space.width[1])
              for i in range(depth)]
    widths[-1] = max(classes, widths[-1] // classes * classes)  # GroupSum: a multiple of the classes
    par = _cat(trial, "parametrization", space.parametrization if 2 in space.k else
               tuple(p for p in space.parametrization if p != "dlgn"))
    k = 2 if par == "dlgn" else _cat(trial, "k", space.k)
    model = {"widths": widths, "k": k, "parametrization": par,
             "thresholds": _int(trial, "thresholds", space.thresholds),
             "wiring": _cat(trial, "wiring", space.wiring),
             "tau_head": round(trial.suggest_float("tau_head", *space.tau_head, log=True), 3)
             if space.tau_head[0] < space.tau_head[1] else space.tau_head[0]}
    return Choice(model, _cat(trial, "interval", space.interval))


def start_params(space: Space, model: dict, interval: int = 1) -> dict | None:
    """Optuna params that make `suggest` pick `model` (widths, k, parametrization, thresholds, wiring, tau_head),
    clamped into `space`; None when the space excludes its k or parametrization or depth."""
    widths = model["widths"]
    par = model.get("parametrization", "warp")
    k = 2 if par == "dlgn" else model.get("k", 2)
    if par not in space.parametrization or k not in space.k or not space.depth[0] <= len(widths) <= space.depth[1]:
        return None
    if interval not in space.interval:
        interval = space.interval[0]

    def clamp(v, bounds):
        return min(max(v, bounds[0]), bounds[1])

    params = {"depth": len(widths), **{f"width_{i}": clamp(w, space.width) for i, w in enumerate(widths)},
              "parametrization": par, "thresholds": clamp(model.get("thresholds", 7), space.thresholds),
              "wiring": model.get("wiring", "learnable") if model.get("wiring", "learnable") in space.wiring
              else space.wiring[0], "tau_head": float(clamp(model.get("tau_head", 7.0), space.tau_head)),
              "interval": interval}
    if par != "dlgn":
        params["k"] = k
    return params


def _int(trial, name: str, bounds: tuple[int, int]) -> int:
    return bounds[0] if bounds[0] == bounds[1] else trial.suggest_int(name, *bounds)


def _cat(trial, name: str, values: tuple):
    return values[0] if len(values) == 1 else trial.suggest_categorical(name, list(values))


def _range(name: str, bounds, lo: int, hi: int) -> None:
    a, b = bounds
    if not (isinstance(a, int) and isinstance(b, int) and lo <= a <= b <= hi):
        raise ConfigError(f"--{name.replace('_', '-')} must be a range LO-HI of whole numbers within {lo}..{hi}, "
                          f"got {a}-{b}")


def parse_range(text: str, name: str, kind=int) -> tuple:
    """'100-4000' or '3' -> (lo, hi)."""
    try:
        parts = [kind(p) for p in str(text).replace(" ", "").split("-") if p != ""]
    except ValueError:
        raise ConfigError(f"--{name} must be a number or a range LO-HI, got {text!r}") from None
    if len(parts) == 1:
        return parts[0], parts[0]
    if len(parts) != 2 or parts[0] > parts[1]:
        raise ConfigError(f"--{name} must be a number or a range LO-HI with LO <= HI, got {text!r}")
    return tuple(parts)


def parse_list(text: str, name: str, kind=str) -> tuple:
    """'2,4' -> (2, 4)."""
    try:
        vals = tuple(kind(p) for p in str(text).replace(" ", "").split(",") if p != "")
    except ValueError:
        raise ConfigError(f"--{name} must be a comma-separated list, got {text!r}") from None
    if not vals:
        raise ConfigError(f"--{name} is empty")
    return vals
