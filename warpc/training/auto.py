"""Defaults sized from the data and a time budget: what `warpc train --dataset X` trains when given no shape or length.

The fixed defaults (2,000 + 1,000 nodes, 7 thresholds, 1,500 steps) were tuned for digits on the UP5K; they are
too coarse for a tabular set with a handful of features and too short for 60,000 images. `choose()` keeps them
where they fit (digits gets exactly them) and scales from the dataset's shape elsewhere:

- thresholds: about 448 encoder bits (digits' 64 x 7), 7 to 31 per feature;
- encoder: quantile thresholds (`distributive`) for fewer than 64 features, whose columns differ in scale and
  skew (tabular data); evenly spaced ones (`uniform`) for many features of one kind (pixels);
- widths: 2,000 + 1,000 nodes up to 10,000 training samples, then x sqrt(samples / 10,000), at most x 4;
- GroupSum tau: 7 at 100 last-layer nodes per class, x sqrt(nodes per class / 100);
- length: 150 epochs, at least 1,500 steps (5,000 under 1,000 training samples), ended earlier by the time budget or a validation plateau (no new
  best for a quarter of the planned steps, at least PLATEAU_MIN_STEPS).

Every choice comes with a reason for the user (`AutoChoice.reasons`). Fields the user gives are never changed.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from ..data import Dataset
from ..errors import ConfigError

TARGET_BITS = 448              # encoder bits: digits' 64 features x 7 thresholds
THRESHOLDS_RANGE = (7, 31)        # 7: digits' and Fashion-MNIST's best for pixels (3 cost Fashion 0.9 points)
TABULAR_FEATURES = 64          # fewer features than this: per-feature quantile thresholds
BASE_WIDTHS = (2000, 1000)
BASE_SAMPLES = 10_000          # training samples the base widths serve
MAX_SCALE = 4.0
BASE_TAU = 7.0
BASE_PER_CLASS = 100
TAU_EXPONENT = 0.5
EPOCHS = 150
MIN_STEPS = 1500
SMALL_SAMPLES = 1000           # fewer training samples: at least SMALL_MIN_STEPS (the validation split is tiny,
SMALL_MIN_STEPS = 5000         # its best step noisy; steps are cheap there)
PLATEAU_MIN_STEPS = 3000
DEFAULT_BUDGET = "2m"
AUTO_FIELDS = ("thresholds", "encoder", "widths", "tau_head")


@dataclass
class AutoChoice:
    fields: dict = field(default_factory=dict)     # ModelConfig fields chosen (only those the user left out)
    steps: int | None = None                       # the planned length (None: the user gave --steps / --epochs)
    time_limit: float | None = None                # seconds of training before the run ends at a validation
    patience: int | None = None                    # steps without a new best validation accuracy that end it
    reasons: list[str] = field(default_factory=list)


def parse_budget(text: str | float | int | None) -> float | None:
    """'90s', '2m', '1h', '1m30s' or plain seconds -> seconds; 'none' / 'off' / '0' -> None (no budget)."""
    if text is None:
        return None
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        value = float(text)
    else:
        t = str(text).strip().lower().replace(" ", "")
        if t in ("none", "off", "0", "0s", "0m"):
            return None
        parts = re.fullmatch(r"(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s?)?", t)
        if not t or parts is None or not any(parts.groups()):
            raise ConfigError(f"--budget must be a duration such as 90s, 2m, 1h or 1m30s (or 'none'), got {text!r}")
        h, m, s = (float(g) if g else 0.0 for g in parts.groups())
        value = 3600 * h + 60 * m + s
    if not math.isfinite(value) or value < 0:
        raise ConfigError(f"--budget must be a positive duration, got {text!r}")
    return value or None


def choose(ds: Dataset, given: set[str] | frozenset[str], budget: float | None, *, batch_size: int,
           length_given: bool = False) -> AutoChoice:
    """The fields of AUTO_FIELDS not in `given`, and (unless `length_given`) the run's length, for `ds`."""
    F, C, n = ds.n_features, ds.classes, len(ds.y_train)
    c = AutoChoice()
    if "thresholds" not in given:
        t = min(THRESHOLDS_RANGE[1], max(THRESHOLDS_RANGE[0], round(TARGET_BITS / F)))
        c.fields["thresholds"] = t
        c.reasons.append(f"{t} thresholds per feature: about {TARGET_BITS} encoder bits for {F} features "
                         f"({F * t} bits)")
    if "encoder" not in given:
        if F < TABULAR_FEATURES:
            c.fields["encoder"] = "distributive"
            c.reasons.append(f"quantile thresholds (distributive): {F} features, likely columns of different "
                             f"scales (fewer than {TABULAR_FEATURES})")
        else:
            c.fields["encoder"] = "uniform"
            c.reasons.append(f"evenly spaced thresholds (uniform): {F} features of one kind, like pixels")
    widths = None
    if "widths" not in given:
        scale = min(MAX_SCALE, max(1.0, math.sqrt(n / BASE_SAMPLES)))
        first = int(round(BASE_WIDTHS[0] * scale / 10) * 10)
        last = max(C, int(BASE_WIDTHS[1] * scale) // C * C)
        widths = [first, last]
        c.fields["widths"] = widths
        why = (f"the base shape (up to {BASE_SAMPLES:,} training samples; here {n:,})" if scale == 1.0 else
               f"{BASE_WIDTHS[0]:,} + {BASE_WIDTHS[1]:,} x {scale:.2f} = sqrt({n:,} training samples / "
               f"{BASE_SAMPLES:,})")
        c.reasons.append(f"widths {first:,} + {last:,}: {why}")
    if "tau_head" not in given and widths is not None:
        per_class = widths[-1] / C
        tau = round(BASE_TAU * max(1.0, per_class / BASE_PER_CLASS) ** TAU_EXPONENT, 1)
        c.fields["tau_head"] = tau
        c.reasons.append(f"GroupSum tau {tau:g} for {per_class:.0f} last-layer nodes per class")
    if not length_given:
        per_epoch = max(1, n // min(batch_size, n))
        least = SMALL_MIN_STEPS if n < SMALL_SAMPLES else MIN_STEPS
        c.steps = max(least, EPOCHS * per_epoch)
        c.patience = max(PLATEAU_MIN_STEPS, c.steps // 4)
        c.time_limit = budget
        limit = f", or the {_duration(budget)} budget" if budget else ""
        small = f" with under {SMALL_SAMPLES:,} samples" if n < SMALL_SAMPLES else ""
        c.reasons.append(f"up to {c.steps:,} steps ({EPOCHS} epochs, at least {least:,}{small}){limit}, or "
                         f"{c.patience:,} steps without a better validation accuracy")
    return c


def _duration(seconds: float) -> str:
    m, s = divmod(round(seconds), 60)
    return f"{m} min {s} s" if m and s else f"{m} min" if m else f"{s} s"
