"""Frontend training: the loop (`train`), evaluation, the optimizer, resume state and the curve plot."""
from .loop import (Adam, TrainResult, accuracy, build_model, confusion_matrix, copy_config, curve_path,
                   evaluate_dataset, last_path, plot_curve, predict, resolve_device, train)

__all__ = ["Adam", "TrainResult", "accuracy", "build_model", "confusion_matrix", "copy_config", "curve_path",
           "evaluate_dataset", "last_path", "plot_curve", "predict", "resolve_device", "train"]
