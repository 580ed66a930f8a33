"""Bad inputs for `warpc hdl / synth / report / flash / run` (see harness.py for what each row asserts).
None of them reaches a tool run: each fails while the inputs are validated."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

from .harness import Case

# files a user might keep in a build folder, with the names a build writes (or used to delete by pattern)
USER_FILES = {"top.bin": b"my bitstream", "report.json": b'{"mine": true}', "x.log": b"my log",
              "eq_1.json": b'{"mine": 1}'}


def _user_folder(d):
    out = d / "out"
    out.mkdir()
    for name, data in USER_FILES.items():
        (out / name).write_bytes(data)
    return out


def _bad_ckpt(d):
    p = d / "model.safetensors"
    p.write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{broken}")
    return p


def _board_doc(fx):
    from warpc.fpga.boards import load_board
    from pathlib import Path

    return json.loads(Path(load_board("icebreaker").source).read_text())


def _board_file(d, fx, change):
    doc = _board_doc(fx)
    new = change(doc)
    doc = doc if new is None else new
    p = d / "myboard.json"
    p.write_text(json.dumps(doc))
    return p


def _pll_board(d):
    """The ULX3S-85F board file with a PLL core clock of its own (core_clock_hz)."""
    doc = json.loads((Path(__file__).parents[2] / "boards" / "ulx3s-85f.json").read_text())
    p = d / "pllboard.json"
    p.write_text(json.dumps({**doc, "core_clock_hz": 50_000_000}))
    return p


def _synth_board(change):
    return lambda d, fx: ["synth", fx.netlist, "--board", _board_file(d, fx, change), "-o", d / "b"]


def _netlist(d, fx, change, name="n.json"):
    doc = json.loads(fx.netlist.read_text())
    change(doc)
    p = d / name
    p.write_text(json.dumps(doc))
    return p


def _two_classes(doc):
    doc["outputs"] = doc["outputs"][:2]
    if doc.get("class_names"):
        doc["class_names"] = doc["class_names"][:2]


def _build_copy(d, fx, change_netlist=None):
    b = d / "build"
    shutil.copytree(fx.build_dir, b)
    if change_netlist is not None:
        _netlist(b, fx, change_netlist, "netlist.json")
    return b


def _uart_build(d, fx):
    """A build copy whose report records its UART (115200 baud, as a real build does)."""
    b = _build_copy(d, fx)
    rep = json.loads((b / "report.json").read_text())
    rep.update(options={"baud": 115200}, uart={"baud": 115200, "feature_bytes": 1, "scores": False,
                                                "score_bits": 5})
    (b / "report.json").write_text(json.dumps(rep))
    return b


def _set(**kw):
    return lambda doc: doc.update(kw)


def _over_capacity(d):
    """A netlist that clearly cannot fit the UP5K (a 3,000-node chain whose input bits ride register chains
    through every stage: ~12,000 LCs): synth refuses it from the estimate, before synthesis."""
    from warpc.ir.netlist import InputBit, Netlist, Node

    n = 3000
    nodes = [Node((2, 3), 0b0110, 0)] + [Node((4 + j - 1, 2 + (j % 2)), 0b0110, j) for j in range(1, n)]
    last = 4 + n - 1
    net = Netlist(2, [InputBit(0, 128), InputBit(1, 64)], nodes, [[last, last - 1], [last - 2, 2]], input_bits=8)
    return net.validate().save(d / "big.json")


def _too_long_to_fold(d):
    """A 6,000-node chain: every node waits for the one before it, so its folded program needs ~18,000 words,
    more than the UP5K's SPRAM holds (16,384)."""
    from warpc.ir.netlist import InputBit, Netlist, Node

    n = 6000
    nodes = [Node((2, 3), 0b0110, 0)] + [Node((4 + j - 1, 2 + (j % 2)), 0b0110, j) for j in range(1, n)]
    last = 4 + n - 1
    net = Netlist(2, [InputBit(0, 128), InputBit(1, 64)], nodes, [[last, last - 1], [last - 2, 2]], input_bits=8)
    return net.validate().save(d / "long.json")


CASES: list[Case] = [
    # --- synth: the source, checked before the build folder is touched ---------------------------------------
    Case("synth-bad-ckpt-keeps-user-files",
         lambda d, fx: ["synth", _bad_ckpt(d), "-o", _user_folder(d)], ("model.safetensors",)),
    Case("synth-users-top-bin-refused",
         lambda d, fx: ["synth", fx.netlist, "-o", _user_folder(d)], ("already holds", "remove it yourself")),
    Case("synth-netlist-no-nodes",
         lambda d, fx: ["synth", _netlist(d, fx, _set(nodes=[], outputs=[[1], [0], [1, 1]])), "-o", d / "b"],
         ("0 lut nodes",)),
    Case("synth-dataset-other-feature-count",
         lambda d, fx: ["synth", fx.netlist, "--dataset", "digits", "-o", _user_folder(d)], ("features",)),
    Case("synth-out-is-a-file",
         lambda d, fx: ["synth", fx.netlist, "-o", _user_folder(d) / "x.log"], ("x.log",), exit_code=2),
    Case("synth-out-unwritable", lambda d, fx: ["synth", fx.netlist, "-o", "/proc/warpc-build"],
         ("/proc/warpc-build", "cannot")),
    # --- synth: options --------------------------------------------------------------------------------------
    Case("synth-pipeline-negative",
         lambda d, fx: ["synth", fx.netlist, "--pipeline", "-1", "-o", _user_folder(d)], ("--pipeline",)),
    Case("synth-max-vectors-0",
         lambda d, fx: ["synth", fx.netlist, "--max-vectors", "0", "-o", d / "b"], ("--max-vectors",)),
    Case("synth-formal-timeout-0",
         lambda d, fx: ["synth", fx.netlist, "--formal-timeout", "0", "-o", d / "b"], ("--formal-timeout",)),
    Case("synth-router2-timeout-negative",
         lambda d, fx: ["synth", fx.netlist, "--router2-timeout", "-5", "-o", d / "b"], ("--router2-timeout",)),
    Case("synth-seed-negative",
         lambda d, fx: ["synth", fx.netlist, "--seed", "-1", "-o", d / "b"], ("--seed",)),
    Case("synth-pnr-seeds-0",
         lambda d, fx: ["synth", fx.netlist, "--pnr-seeds", "0", "-o", _user_folder(d)], ("--pnr-seeds",)),
    Case("synth-pnr-seeds-too-many",
         lambda d, fx: ["synth", fx.netlist, "--pnr-seeds", "17", "-o", d / "b"], ("--pnr-seeds", "at most 16")),
    Case("synth-core-clock-0",
         lambda d, fx: ["synth", fx.netlist, "--core-clock", "0", "-o", _user_folder(d)], ("--core-clock", "positive")),
    Case("synth-core-clock-negative",
         lambda d, fx: ["synth", fx.netlist, "--core-clock", "-48", "-o", d / "b"], ("--core-clock",)),
    Case("synth-core-clock-not-a-number",
         lambda d, fx: ["synth", fx.netlist, "--core-clock", "fast", "-o", d / "b"], ("--core-clock",), exit_code=2),
    Case("synth-core-clock-beyond-the-pll",
         lambda d, fx: ["synth", fx.netlist, "--core-clock", "400", "-o", _user_folder(d)],
         ("pll", "400 mhz", "16-275")),
    Case("synth-core-clock-beyond-the-gowin-pll",
         lambda d, fx: ["synth", fx.netlist, "--board", "tangnano9k", "--core-clock", "700", "-o", d / "b"],
         ("gowin rpll cannot make", "700")),
    Case("synth-core-clock-and-a-board-pll",
         lambda d, fx: ["synth", fx.netlist, "--board", _pll_board(d), "--core-clock", "100", "-o", d / "b"],
         ("--core-clock", "already runs the design from its pll")),
    Case("synth-core-clock-folded",
         lambda d, fx: ["synth", fx.netlist, "--arch", "folded", "--core-clock", "48", "-o", d / "b"],
         ("--core-clock", "spatial")),
    Case("synth-core-clock-combinational",
         lambda d, fx: ["synth", fx.netlist, "--pipeline", "0", "--core-clock", "48", "-o", d / "b"],
         ("--core-clock", "--pipeline")),
    Case("synth-baud-0", lambda d, fx: ["synth", fx.netlist, "--baud", "0", "-o", _user_folder(d)], ("--baud",)),
    Case("synth-baud-negative",
         lambda d, fx: ["synth", fx.netlist, "--baud", "-115200", "-o", d / "b"], ("--baud",)),
    Case("synth-baud-not-an-integer",
         lambda d, fx: ["synth", fx.netlist, "--baud", "115k", "-o", d / "b"], ("--baud",), exit_code=2),
    Case("synth-baud-unreachable",
         lambda d, fx: ["synth", fx.netlist, "--baud", "2500000", "-o", _user_folder(d)],
         ("--baud", "2500000", "2 %", "supported rates", "3000000")),
    Case("synth-baud-too-fast",
         lambda d, fx: ["synth", fx.netlist, "--baud", "4000000", "-o", d / "b"],
         ("--baud", "too fast", "supported rates")),
    # --- boards ----------------------------------------------------------------------------------------------
    Case("synth-unknown-board", lambda d, fx: ["synth", fx.ckpt, "--board", "nosuchboard", "-o", d / "b"],
         ("nosuchboard",)),
    Case("synth-board-dotdot",
         lambda d, fx: ["synth", fx.netlist, "--board", "../x", "-o", d / "b"], ("unknown board", "icebreaker")),
    Case("synth-board-slash-name",
         lambda d, fx: ["synth", fx.netlist, "--board", "boards/icebreaker", "-o", d / "b"], ("unknown board",)),
    Case("synth-board-file-missing",
         lambda d, fx: ["synth", fx.netlist, "--board", d / "nope.json", "-o", d / "b"], ("nope.json", "not found")),
    Case("synth-board-empty-object", _synth_board(lambda doc: {}), ("myboard.json", "missing field")),
    Case("synth-board-list", _synth_board(lambda doc: []), ("myboard.json", "json object")),
    Case("synth-board-not-json",
         lambda d, fx: ["synth", fx.netlist, "--board", _write(d / "myboard.json", "{oops"), "-o", d / "b"],
         ("myboard.json", "not valid json")),
    Case("synth-board-no-uart", _synth_board(lambda doc: doc.pop("uart") and None), ("uart",)),
    Case("synth-board-0-hz", _synth_board(_set(clock_hz=0)), ("clock_hz",)),
    Case("synth-board-negative-clock", _synth_board(_set(clock_hz=-12_000_000)), ("clock_hz",)),
    Case("synth-board-clock-string", _synth_board(_set(clock_hz="12 MHz")), ("clock_hz",)),
    Case("synth-board-baud-0", _synth_board(lambda doc: doc["uart"].update(baud=0)), ("uart.baud",)),
    Case("synth-board-platform-os-system", _synth_board(_set(platform="os:system")), ("platform", "amaranth")),
    Case("synth-board-platform-not-a-platform",
         _synth_board(_set(platform="amaranth_boards.icebreaker:Resource")), ("platform",)),
    Case("synth-board-capacity-wrong-type", _synth_board(_set(capacity="5280")), ("capacity",)),
    Case("synth-board-programmer-ls",
         _synth_board(_set(programmers=[{"tool": "ls", "flash": ["{bin}"]}])), ("programmers[0]",)),
    Case("synth-board-unknown-field", _synth_board(_set(pll=None)), ("unknown field", "pll")),
    Case("synth-board-flash-at-without-offset",
         _synth_board(_set(programmers=[{"tool": "iceprog", "flash": ["{bin}"], "flash_at": ["{bin}"]}])),
         ("programmers[0].flash_at", "{offset}")),
    # --- synth: families (warpc.families) ---------------------------------------------------------------------
    Case("synth-board-unknown-family", _synth_board(_set(family="xilinx")), ("family", "ice40, ecp5, gowin")),
    Case("synth-board-ecp5-without-lut-capacity", _synth_board(_set(family="ecp5", lut_cells="ecp5_lut4")),
         ("capacity.LUT",)),
    Case("synth-board-ecp5-platform-said-ice40",
         _synth_board(_set(platform="amaranth_boards.ulx3s:ULX3S_85F_Platform", clock_hz=25_000_000)),
         ("not a lattice ice40 platform",)),
    Case("synth-lut-cells-of-another-family",
         lambda d, fx: ["synth", fx.netlist, "--board", "ulx3s-85f", "--lut-cells", "sb_lut4", "-o", _user_folder(d)],
         ("sb_lut4", "ulx3s-85f", "ecp5_lut4")),
    Case("synth-folded-on-ecp5",
         lambda d, fx: ["synth", fx.netlist, "--board", "tangnano9k", "--arch", "folded", "-o", _user_folder(d)],
         ("folded", "tangnano9k", "spatial")),
    Case("estimate-folded-on-gowin",
         lambda d, fx: ["estimate", fx.netlist, "--board", "tangnano9k", "--arch", "folded"], ("folded", "spatial")),
    Case("synth-no-hard-carry-with-a-value",
         lambda d, fx: ["synth", fx.netlist, "--board", "ulx3s-85f", "--no-hard-carry=yes", "-o", _user_folder(d)],
         ("--no-hard-carry",), exit_code=2),
    Case("boards-unknown-option", lambda d, fx: ["boards", "--family", "ecp5"], ("--family",), exit_code=2),
    # --- synth: the pre-synthesis estimate (warpc.fpga.estimate) ----------------------------------------------
    Case("synth-estimate-clearly-over-capacity-keeps-user-files",
         lambda d, fx: ["synth", _over_capacity(d), "-o", _user_folder(d), "--arch", "spatial"],
         ("does not fit", "needs ~", "5,280", "--no-estimate-check")),
    Case("synth-estimate-over-capacity-new-folder-not-made",
         lambda d, fx: ["synth", _over_capacity(d), "-o", d / "b", "--interval", "1", "--arch", "spatial"],
         ("needs ~",)),
    # --- synth / estimate: --arch ----------------------------------------------------------------------------
    Case("synth-arch-unknown", lambda d, fx: ["synth", fx.netlist, "-o", d / "b", "--arch", "fast"], ("--arch",),
         exit_code=2),
    Case("estimate-arch-unknown", lambda d, fx: ["estimate", fx.netlist, "--arch", "fast"], ("--arch",),
         exit_code=2),
    Case("synth-folded-with-interval-keeps-user-files",
         lambda d, fx: ["synth", fx.netlist, "-o", _user_folder(d), "--arch", "folded", "--interval", "4"],
         ("--interval applies to the spatial",)),
    Case("synth-auto-folded-misses-the-interval-keeps-user-files",
         lambda d, fx: ["synth", _over_capacity(d), "-o", _user_folder(d), "--interval", "2"],
         ("does not fit", "--interval 2", "cycles per sample")),
    Case("synth-folded-program-too-long-keeps-user-files",
         lambda d, fx: ["synth", _too_long_to_fold(d), "-o", _user_folder(d), "--arch", "folded"],
         ("does not fit", "words", "16384")),
    Case("estimate-folded-program-too-long",
         lambda d, fx: ["estimate", _too_long_to_fold(d), "--arch", "folded"], ("does not fit", "16384")),
    Case("synth-no-estimate-check-takes-no-value",
         lambda d, fx: ["synth", fx.netlist, "--no-estimate-check", "yes", "-o", d / "b"], ("yes",), exit_code=2),
    # --- synth / hdl: --interval -------------------------------------------------------------------------------
    Case("synth-interval-0-keeps-user-files", lambda d, fx: ["synth", fx.netlist, "-o", _user_folder(d),
                                                            "--interval", "0"], ("interval", ">= 1")),
    Case("synth-interval-over-class-size", lambda d, fx: ["synth", fx.netlist, "-o", d / "b", "--interval",
                                                          "100000"], ("--interval", "largest class")),
    Case("synth-interval-combinational", lambda d, fx: ["synth", fx.netlist, "-o", d / "b", "--pipeline", "0",
                                                        "--interval", "2"], ("--pipeline 0",)),
    Case("synth-interval-not-a-number", lambda d, fx: ["synth", fx.netlist, "-o", d / "b", "--interval", "x"],
         ("--interval",), exit_code=2),
    Case("hdl-interval-over-class-size", lambda d, fx: ["hdl", fx.netlist, "-o", d / "h", "--interval",
                                                        "100000"], ("--interval", "largest class")),
    Case("hdl-interval-combinational", lambda d, fx: ["hdl", fx.netlist, "-o", d / "h", "--pipeline", "0",
                                                      "--interval", "3"], ("--pipeline 0",)),
    # --- estimate --------------------------------------------------------------------------------------------
    Case("estimate-bad-ckpt", lambda d, fx: ["estimate", _bad_ckpt(d)], ("model.safetensors",)),
    Case("estimate-missing-source", lambda d, fx: ["estimate", d / "nope.json"], ("nope.json",), exit_code=2),
    Case("estimate-netlist-no-nodes",
         lambda d, fx: ["estimate", _netlist(d, fx, _set(nodes=[], outputs=[[1], [0], [1, 1]]))], ("0 lut nodes",)),
    Case("estimate-netlist-0-input-bits",
         lambda d, fx: ["estimate", _netlist(d, fx, _set(input_bits=0))], ("input",)),
    Case("estimate-pipeline-negative", lambda d, fx: ["estimate", fx.netlist, "--pipeline", "-1"], ("--pipeline",)),
    Case("estimate-interval-0", lambda d, fx: ["estimate", fx.netlist, "--interval", "0"], ("--interval",)),
    Case("estimate-interval-over-class-size",
         lambda d, fx: ["estimate", fx.netlist, "--interval", "100000"], ("--interval", "largest class")),
    Case("estimate-interval-combinational",
         lambda d, fx: ["estimate", fx.netlist, "--pipeline", "0", "--interval", "2"], ("--pipeline 0",)),
    Case("estimate-interval-not-a-number",
         lambda d, fx: ["estimate", fx.netlist, "--interval", "two"], ("--interval",), exit_code=2),
    Case("estimate-lut-cells-unknown",
         lambda d, fx: ["estimate", fx.netlist, "--lut-cells", "lut6"], ("--lut-cells",), exit_code=2),
    Case("estimate-unknown-board",
         lambda d, fx: ["estimate", fx.netlist, "--board", "nosuchboard"], ("nosuchboard",)),
    Case("estimate-board-capacity-wrong-type",
         lambda d, fx: ["estimate", fx.netlist, "--board", _board_file(d, fx, _set(capacity="5280"))], ("capacity",)),
    # --- hdl ---------------------------------------------------------------------------------------------------
    Case("hdl-out-is-a-file",
         lambda d, fx: ["hdl", fx.netlist, "-o", _write(d / "core.v", "module mine; endmodule")], ("core.v",),
         exit_code=2),
    Case("hdl-netlist-0-input-bits",
         lambda d, fx: ["hdl", _netlist(d, fx, _set(input_bits=0)), "-o", d / "o"], ("input",)),
    Case("hdl-netlist-no-nodes",
         lambda d, fx: ["hdl", _netlist(d, fx, _set(nodes=[], outputs=[[1], [0], [1, 1]])), "-o", d / "o"],
         ("0 lut nodes",)),
    Case("hdl-name-with-path", lambda d, fx: ["hdl", fx.netlist, "-o", d / "o", "--name", "../evil"],
         ("--name", "identifier")),
    Case("hdl-users-netlist-json-refused",
         lambda d, fx: ["hdl", fx.netlist, "-o", _folder_with(d, "netlist.json", "mine")], ("netlist.json",)),
    Case("hdl-out-unwritable", lambda d, fx: ["hdl", fx.netlist, "-o", "/proc/warpc-hdl"], ("/proc/warpc-hdl",)),
    Case("hdl-lut-size-9", lambda d, fx: ["hdl", fx.netlist, "-o", d / "o", "--lut-size", "9"], ("--lut-size",)),
    # --- report ------------------------------------------------------------------------------------------------
    Case("report-missing-folder", lambda d, fx: ["report", d / "nothing"], ("nothing",)),
    Case("report-folder-without-report",
         lambda d, fx: ["report", _folder_with(d, "top.bin", "x")], ("report.json",)),
    Case("report-corrupt-json",
         lambda d, fx: ["report", _folder_with(d, "report.json", "{broken")], ("report.json", "json")),
    Case("report-json-list", lambda d, fx: ["report", _folder_with(d, "report.json", "[1, 2]")],
         ("not a warpc build report",)),
    Case("report-incomplete", lambda d, fx: ["report", _folder_with(d, "report.json", '{"fmax": {"clk": 3}}')],
         ("incomplete",)),
    # --- flash -------------------------------------------------------------------------------------------------
    Case("flash-tool-ls", lambda d, fx: ["flash", _build_copy(d, fx), "--tool", "ls"], ("ls",), exit_code=2),
    Case("flash-no-top-bin",
         lambda d, fx: ["flash", _unlink(_build_copy(d, fx), "top.bin")], ("top.bin",)),
    Case("flash-missing-folder", lambda d, fx: ["flash", d / "nothing"], ("no build folder",)),
    # --- run ---------------------------------------------------------------------------------------------------
    Case("run-no-port-no-simulate", lambda d, fx: ["run", "--build", _build_copy(d, fx)], ("--port", "--simulate")),
    Case("run-simulate-2-class-netlist-3-class-data",
         lambda d, fx: ["run", "--build", _build_copy(d, fx, _two_classes), "--simulate"], ("2 classes",)),
    Case("run-limit-0", lambda d, fx: ["run", "--build", _build_copy(d, fx), "--simulate", "--limit", "0"],
         ("--limit",)),
    Case("run-baud-0", lambda d, fx: ["run", "--build", _build_copy(d, fx), "--port", "/dev/null", "--baud", "0"],
         ("--baud",)),
    Case("run-baud-negative",
         lambda d, fx: ["run", "--build", _build_copy(d, fx), "--port", "/dev/null", "--baud", "-9600"], ("--baud",)),
    Case("run-baud-not-an-integer",
         lambda d, fx: ["run", "--build", _build_copy(d, fx), "--port", "/dev/null", "--baud", "115200.5"],
         ("--baud",), exit_code=2),
    Case("run-baud-not-the-builds",
         lambda d, fx: ["run", "--build", _uart_build(d, fx), "--port", "/dev/null", "--baud", "230400"],
         ("--baud 230400", "115200")),
    Case("run-baud-unreachable",
         lambda d, fx: ["run", "--build", _uart_build(d, fx), "--port", "/dev/null", "--baud", "2500000"],
         ("--baud 2500000", "115200")),
    Case("run-baud-too-fast",
         lambda d, fx: ["run", "--build", _uart_build(d, fx), "--port", "/dev/null", "--baud", "4000000"],
         ("--baud 4000000",)),
    Case("run-retries-negative",
         lambda d, fx: ["run", "--build", _uart_build(d, fx), "--simulate", "--retries", "-1"], ("--retries",)),
    Case("run-missing-build-folder", lambda d, fx: ["run", "--build", d / "nothing", "--simulate"],
         ("no build folder",)),
    Case("run-simulate-incomplete-report",
         lambda d, fx: ["run", "--build", _build_copy(d, fx), "--simulate", "--limit", "2"], ("uart",)),
    Case("run-dataset-other-feature-count",
         lambda d, fx: ["run", "--build", _build_copy(d, fx), "--simulate", "--dataset", "digits"], ("features",)),
]


def _write(path, text):
    path.write_text(text)
    return path


def _folder_with(d, name, text):
    f = d / "f"
    f.mkdir(exist_ok=True)
    (f / name).write_text(text)
    return f


def _unlink(folder, name):
    (folder / name).unlink()
    return folder
