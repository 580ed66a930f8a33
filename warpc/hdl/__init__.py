"""Backend HDL: the Amaranth core generated from the netlist IR (core.py), a small UART (uart.py) and the board
shell that frames samples over it (shell.py). The core does not import the shell."""
