"""The UART framing's constants, shared by the board shell (warpc.hdl.shell) and the host side
(warpc.fpga.protocol); plain Python, no Amaranth import."""

SYNC_BYTE = 0xA5  # starts every host -> board frame; bytes outside a frame are ignored until the next one
