"""Model configuration: a JSON-serialisable dataclass that fully determines the network's shape.

`validate()` checks every field's type and range (each error names the field and what it accepts) and estimates
the memory the network needs, so a config that cannot fit fails before anything is allocated.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

from .errors import ConfigError

ENCODERS = ("uniform", "distributive", "learnable")
WIRINGS = ("random", "unique", "learnable")
PARAMETRIZATIONS = ("warp", "dlgn")
SAMPLINGS = ("soft", "gumbel", "soft_st", "gumbel_st")
INITS = ("residual", "random")
K_RANGE = (2, 6)
# Features reach torch as float32, which holds every integer exactly only up to 2^24; wider features would make
# the model and the bit-exact emulator / hardware disagree.
INPUT_BITS_RANGE = (1, 24)
MAX_SEED = 1 << 53          # the layers seed their generators with seed * 1000 + layer (must fit 64 bits)
MEMORY_BATCH = 128          # the batch the training estimate assumes (the trainer's default)


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
        if self.widths is None and _is_int(self.classes):
            c = int(self.classes)
            last = (1000 // c) * c if 0 < c <= 1000 else max(c, 1)
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

    def layer_inputs(self) -> list[int]:
        """Number of inputs each layer reads (the encoder's bits for the first)."""
        return [self.n_features * self.thresholds, *self.widths[:-1]]

    def validate(self) -> "ModelConfig":
        """Check (and normalise to plain Python types) every field; raise ConfigError naming the first bad one."""
        self.n_features = _int("n_features", self.n_features, 1)
        self.classes = _int("classes", self.classes, 2)
        if self.widths is None:
            self.__post_init__()
        if isinstance(self.widths, (str, bytes)) or not isinstance(self.widths, (list, tuple)) or not self.widths:
            raise ConfigError(f"widths must be a non-empty list of layer widths (integers), got {self.widths!r}")
        self.widths = [_int(f"widths[{i}]", w, 1) for i, w in enumerate(self.widths)]
        if self.widths[-1] % self.classes:
            raise ConfigError(
                f"the last layer's width {self.widths[-1]} must be a multiple of the number of classes {self.classes}"
            )
        self.k = _per_layer("k", self.k, len(self.widths), lambda name, v: _int(name, v, *K_RANGE))
        self.encoder = _choice("encoder", self.encoder, ENCODERS)
        self.wiring = _choice("wiring", self.wiring, WIRINGS)
        self.parametrization = _choice("parametrization", self.parametrization, PARAMETRIZATIONS)
        self.sampling = _choice("sampling", self.sampling, SAMPLINGS)
        self.init = _choice("init", self.init, INITS)
        if self.parametrization == "dlgn" and any(k != 2 for k in self.layer_ks()):
            raise ConfigError(f"parametrization 'dlgn' has 2-input gates only (k=2), got k={self.k}")
        self.input_bits = _int("input_bits", self.input_bits, *INPUT_BITS_RANGE)
        levels = (1 << self.input_bits) - 1
        self.thresholds = _int("thresholds", self.thresholds, 1, levels,
                               why=f" ({self.input_bits}-bit features have {levels} distinct compare levels)")
        self.wiring_candidates = _int("wiring_candidates", self.wiring_candidates, 2)
        if self.tau is not None:  # None or "auto": the default by k (per layer, too)
            self.tau = _per_layer("tau", self.tau, len(self.widths),
                                  lambda name, v: None if v is None or v == "auto" else _positive(name, v))
        self.tau_head = _positive("tau_head", self.tau_head)
        if self.class_names is not None:
            if not isinstance(self.class_names, (list, tuple)) or not all(isinstance(n, str) for n in self.class_names):
                raise ConfigError(f"class_names must be a list of strings, got {self.class_names!r}")
            if len(self.class_names) != self.classes:
                raise ConfigError(f"{len(self.class_names)} class names for {self.classes} classes")
            self.class_names = list(self.class_names)
        self.seed = _int("seed", self.seed, -MAX_SEED + 1, MAX_SEED - 1)
        self.check_memory()
        return self

    # --- memory ----------------------------------------------------------------------------------------------
    def memory_estimate(self, batch_size: int = MEMORY_BATCH, training: bool = True) -> int:
        """Approximate peak bytes: parameters and buffers (twice when loading: the model and the file's tensors),
        plus, when training, gradients, Adam's two moments and the activations of one batch."""
        params = buffers = acts = 0
        f_bits = self.n_features * self.thresholds
        buffers += 8 * f_bits
        if self.encoder == "learnable":
            params += 4 * f_bits
        for i, (n_in, out, k) in enumerate(zip(self.layer_inputs(), self.widths, self.layer_ks())):
            buffers += 8 * out * k                                  # idx
            params += 4 * out * (16 if self.parametrization == "dlgn" else 1 << k)
            acts += 4 * batch_size * (n_in + 4 * out)               # gathered inputs, z, noise, outputs
            if self.wiring == "learnable" and i == 0:
                slots = out * k * self.wiring_candidates
                buffers += 8 * slots                                # cand
                params += 4 * slots                                 # wiring_logits
                acts += 4 * batch_size * slots                      # the candidate mix (plain path)
        if training:
            return 4 * params + buffers + 2 * acts
        # eval: uint8 node-major rows of a 256-sample batch and one layer's truth tables
        return 2 * (params + buffers) + max(self.widths) * (256 + 2 ** max(self.layer_ks()))

    def check_memory(self, batch_size: int | None = None, training: bool = False) -> None:
        """Raise ConfigError when the estimate exceeds this machine's memory (see memory_estimate)."""
        need = self.memory_estimate(batch_size or MEMORY_BATCH, training)
        have = machine_memory()
        if need > have:
            what = f"training with batch {batch_size or MEMORY_BATCH}" if training else "holding the model"
            raise ConfigError(
                f"this model config needs about {need / 2**30:.1f} GB for {what} (widths {_short(self.widths)}, "
                f"{self.n_features} features x {self.thresholds} thresholds, wiring_candidates "
                f"{self.wiring_candidates}) but this machine has {have / 2**30:.1f} GB; use smaller widths "
                f"(or fewer thresholds / candidates)"
            )

    # --- (de)serialisation -------------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def check_keys(cls, d: dict, what: str = "model config") -> None:
        """Every key of `d` names a ModelConfig field (ConfigError listing the unknown ones otherwise)."""
        known = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(d) - set(known))
        if unknown:
            raise ConfigError(f"{what}: unknown model config keys: {unknown}; known: {', '.join(known)}")

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        if not isinstance(d, dict):
            raise ConfigError(f"a model config must be a JSON object of ModelConfig fields, got {type(d).__name__}")
        cls.check_keys(d)
        missing = [f for f in ("n_features", "classes") if f not in d]
        if missing:
            raise ConfigError(f"model config lacks {', '.join(missing)}")
        return cls(**d).validate()

    @classmethod
    def from_json(cls, path: str | Path) -> "ModelConfig":
        try:
            d = json.loads(Path(path).read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ConfigError(f"cannot read config {path}: {e}") from None
        try:
            return cls.from_dict(d)
        except ConfigError as e:
            raise ConfigError(f"{path}: {e}") from None


def machine_memory() -> int:
    """Physical memory in bytes (64 GiB when the OS does not say)."""
    try:
        return int(os.sysconf("SC_PHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, ValueError, OSError):
        return 64 << 30


def _is_int(v) -> bool:
    import numbers

    return isinstance(v, numbers.Integral) and not isinstance(v, bool) or (
        isinstance(v, float) and math.isfinite(v) and v.is_integer())


def _show(v) -> str:
    """A value as the user wrote it (numpy scalars without their type wrapper)."""
    return repr(v.item() if hasattr(v, "item") and not isinstance(v, (list, tuple)) else v)


def _int(name: str, v, lo: int, hi: int | None = None, why: str = "") -> int:
    if not _is_int(v):
        raise ConfigError(f"{name} must be an integer, got {_show(v)}")
    v = int(v)
    if v < lo or (hi is not None and v > hi):
        want = f"between {lo} and {hi}" if hi is not None else f">= {lo}"
        raise ConfigError(f"{name} must be {want}{why}, got {v}")
    return v


def _positive(name: str, v) -> float:
    import numbers

    if isinstance(v, bool) or not isinstance(v, numbers.Real):
        raise ConfigError(f"{name} must be a number, got {_show(v)}")
    v = float(v)
    if not (math.isfinite(v) and v > 0):
        raise ConfigError(f"{name} must be a positive finite number, got {v}")
    return v


def _choice(name: str, v, options: tuple[str, ...]) -> str:
    if v not in options:
        raise ConfigError(f"{name} must be one of {', '.join(options)}; got {_show(v)}")
    return v


def _per_layer(name: str, v, layers: int, check):
    """One value for all layers, or a list with one per layer; each checked by check(name, value)."""
    if isinstance(v, (list, tuple)):
        if len(v) != layers:
            raise ConfigError(f"{name} has {len(v)} entries for {layers} layers")
        return [check(f"{name}[{i}]", e) for i, e in enumerate(v)]
    return check(name, v)


def _short(widths: list[int]) -> str:
    return ",".join(str(w) for w in widths[:8]) + (",..." if len(widths) > 8 else "")
