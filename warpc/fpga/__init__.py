"""FPGA toolchain stage: boards, the build flow (elaborate -> synth -> place-and-route -> pack), equivalence
checks (simulation + formal), reports, programming and host-side streaming. Family- and board-specific facts live
in `boards/` and here; the Amaranth designs in `warpc.hdl` do not know which board they run on."""
