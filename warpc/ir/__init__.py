"""Middle end: the netlist IR, discretization, optimisation passes, K-LUT packing, bit-parallel emulation, BLIF.
Nothing here imports torch at import time."""
from .netlist import CONST0, CONST1, InputBit, Netlist, Node
from .discretize import from_checkpoint, from_description, from_model
from .emulate import argmax_lowest, emulate_bits, emulate_counts, emulate_predict
from .passes import PassReport, optimize
from .pack import PackReport, pack
from .blif import read_blif, write_blif

__all__ = ["CONST0", "CONST1", "InputBit", "Netlist", "Node", "from_checkpoint", "from_description", "from_model",
           "argmax_lowest", "emulate_bits", "emulate_counts", "emulate_predict", "optimize", "PassReport", "pack",
           "PackReport", "read_blif", "write_blif"]
