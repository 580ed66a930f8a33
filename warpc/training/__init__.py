"""Frontend training: the loop (loop.py: `train`), evaluation (evaluation.py), the optimizer (optim.py), the
resumable state (state.py), the run's files and their safety rules (files.py), SIGINT/SIGTERM (signals.py), the
curve plot (curve.py) and the set-up that turns a dataset spec + config + overrides into a run (plan.py)."""
from .curve import plot_curve
from .device import resolve_device
from .evaluation import accuracy, confusion_matrix, evaluate_checkpoint, evaluate_dataset, predict
from .files import curve_path, last_path, pending_path, plan_run_files
from .loop import TrainResult, build_model, check_train_options, copy_config, train
from .optim import Adam
from .plan import TrainingPlan, plan_training

__all__ = ["Adam", "TrainResult", "TrainingPlan", "accuracy", "build_model", "check_train_options",
           "confusion_matrix", "copy_config", "curve_path", "evaluate_checkpoint", "evaluate_dataset", "last_path",
           "pending_path", "plan_run_files", "plan_training", "plot_curve", "predict", "resolve_device", "train"]
