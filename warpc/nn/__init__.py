"""PyTorch frontend: WARP-LUT layers, DLGN baseline, GroupSum head, thermometer encoders, WarpNet."""
from .encoders import Thermometer, fit_thresholds
from .groupsum import GroupSum, argmax_lowest
from .model import WarpNet
from .warplut import WarpLUT, default_tau, walsh_basis, warp_forward_reference

__all__ = ["WarpLUT", "GroupSum", "Thermometer", "WarpNet", "argmax_lowest", "default_tau", "fit_thresholds",
           "walsh_basis", "warp_forward_reference"]
