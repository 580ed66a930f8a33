"""Design-space sweeps on Optuna (`warpc sweep`): which model is the most accurate for its hardware cost.

space.py   the dimensions a trial picks (depth, widths, k, thresholds, wiring, WARP / DLGN, tau_head, interval);
runner.py  the study (storage, workers, heartbeats), one trial (train, compile, estimate), pruning, progress;
results.py trials.csv / .json, the Pareto front (front.json + checkpoints) and pareto.png.
"""
from .runner import SweepSettings, check_settings, open_study, run_sweep
from .space import Choice, Space, suggest

__all__ = ["Choice", "Space", "SweepSettings", "check_settings", "open_study", "run_sweep", "suggest"]
