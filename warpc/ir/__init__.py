"""Middle end: the netlist IR, discretization, optimisation passes, K-LUT packing, bit-parallel emulation, BLIF.
Nothing here imports torch at import time."""
from .netlist import CONST0, CONST1, InputBit, Netlist, Node
from .discretize import from_checkpoint, from_description, from_model

__all__ = ["CONST0", "CONST1", "InputBit", "Netlist", "Node", "from_checkpoint", "from_description", "from_model"]
