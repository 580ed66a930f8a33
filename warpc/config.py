"""Model configuration: a JSON-serialisable dataclass that fully determines the network's shape."""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

from .errors import ConfigError


@dataclass
class ModelConfig:
    n_features: int
    classes: int
    # Defaults = the `warpc train` recipe for digits: >= 96 % discrete test accuracy in ~5 s of training on 2 CPU
    # cores, and it fits the iCEBreaker's UP5K (~3,600 of 5,280 LCs; the last layer's width sets the popcount cost).
    # README "Measured results" has the numbers; 2 x 4,000 with fixed wiring reaches 98 % but needs 11,963 LCs.
    # None = that default, [2000, 1000] with the last width rounded down to a multiple of `classes` (999 for 3).
    widths: list[int] | None = None
    k: list[int] | int = 2                  # per layer, or one value for all
    encoder: str = "uniform"                # uniform | distributive | learnable
    thresholds: int = 7                     # thermometer thresholds per feature
    wiring: str = "learnable"               # random | unique | learnable (learnable: first layer only)
    wiring_candidates: int = 16
    parametrization: str = "warp"           # warp | dlgn
    sampling: str = "gumbel"                # soft | gumbel | soft_st | gumbel_st
    init: str = "residual"                  # residual | random
    tau: list[float] | float | None = None  # node temperature(s); None = default by k
    tau_head: float = 7.0                   # GroupSum temperature
    input_bits: int = 8                     # width of the integer features the hardware receives
    class_names: list[str] | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if self.widths is None:
            last = (1000 // self.classes) * self.classes if 0 < self.classes <= 1000 else max(self.classes, 1)
            self.widths = [2000, last]

    def layer_ks(self) -> list[int]:
        ks = self.k if isinstance(self.k, list) else [self.k] * len(self.widths)
        if len(ks) != len(self.widths):
            raise ConfigError(f"k has {len(ks)} entries for {len(self.widths)} layers")
        return [int(v) for v in ks]

    def layer_taus(self) -> list[float | None]:
        if self.tau is None or not isinstance(self.tau, list):
            return [self.tau] * len(self.widths)
        if len(self.tau) != len(self.widths):
            raise ConfigError(f"tau has {len(self.tau)} entries for {len(self.widths)} layers")
        return list(self.tau)

    def validate(self) -> "ModelConfig":
        if self.n_features < 1:
            raise ConfigError("n_features must be positive")
        if self.classes < 2:
            raise ConfigError("need at least 2 classes")
        if not self.widths or any(w < 1 for w in self.widths):
            raise ConfigError(f"layer widths must be positive, got {self.widths}")
        if self.widths[-1] % self.classes:
            raise ConfigError(
                f"the last layer's width {self.widths[-1]} must be a multiple of the number of classes {self.classes}"
            )
        self.layer_ks()
        self.layer_taus()
        if self.class_names is not None and len(self.class_names) != self.classes:
            raise ConfigError(f"{len(self.class_names)} class names for {self.classes} classes")
        return self

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ConfigError(f"unknown model config keys: {sorted(unknown)}")
        try:
            return cls(**d).validate()
        except TypeError as e:
            raise ConfigError(f"bad model config: {e}") from None

    @classmethod
    def from_json(cls, path: str | Path) -> "ModelConfig":
        try:
            return cls.from_dict(json.loads(Path(path).read_text()))
        except (OSError, json.JSONDecodeError) as e:
            raise ConfigError(f"cannot read config {path}: {e}") from None
