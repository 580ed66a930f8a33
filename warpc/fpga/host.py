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

from ..errors import BoardError, DatasetError, ToolchainError
from ..ir.netlist import Netlist
from ..ir.source import sample_data
from .protocol import SYNC_BYTE, frame_bytes, parse_reply, reply_length
from .report import load_report


def flash(build_dir: str | Path, sram: bool = False, tool: str | None = None) -> str:
    d = Path(build_dir)
    rep = load_report(d)
    binf = d / "top.bin"
    if not binf.is_file():
        raise BoardError(f"no bitstream at {binf} (run `warpc synth` first)")
    cands = [tool] if tool else ["iceprog", "openFPGALoader"]
    exe = next((c for c in cands if c and shutil.which(c)), None)
    if exe is None:
        raise BoardError(f"no programmer found ({' or '.join(c for c in cands if c)}); install one, e.g. "
                         "`apt-get install fpga-icestorm` (iceprog) or `apt-get install openfpgaloader`")
    if exe == "iceprog":
        cmd = ["iceprog"] + (["-S"] if sram else []) + [str(binf)]
    else:  # Debian's openFPGALoader 0.10 has no icebreaker entry
        cmd = ["openFPGALoader", "-b", "ice40_generic"] + ([] if sram else ["-f"]) + [str(binf)]
    r = subprocess.run(cmd, capture_output=True, text=True)
    text = (r.stdout + r.stderr).strip()
    if r.returncode:
        low = text.lower()
        if "can't find" in low or "no device" in low or "unable to open" in low or "not found" in low:
            raise BoardError(f"no board found by {exe} (is the iCEBreaker plugged in, with permission to "
                             f"its USB device?): {text.splitlines()[-1] if text else ''}")
        raise ToolchainError(f"{' '.join(cmd)} failed (exit {r.returncode}): {text[-800:]}")
    return f"flashed {binf} (build {rep.get('stamp', {}).get('id')}) with {exe}"


class SimulatedBoard:
    """A serial-port-like object (write / read / reset_input_buffer / close) running the build's post-synthesis
    encoder and core netlists per frame, with the shell's framing."""

    def __init__(self, build_dir: str | Path, net: Netlist, rep: dict) -> None:
        from .equiv import export_modules
        from .netsim import NetSim
        from .tools import tool

        d = Path(build_dir)
        if not (d / "eq_core_gate.json").exists() or not (d / "eq_encoder_gate.json").exists():
            export_modules(tool(rep.get("options", {}).get("toolchain", "yowasp"), "yosys"), d,
                           {"core": "top.shell.core", "encoder": "top.shell.encoder"})
        self.core = NetSim(json.loads((d / "eq_core_gate.json").read_text()))
        self.enc = NetSim(json.loads((d / "eq_encoder_gate.json").read_text()))
        self.net, self.latency = net, int(rep["Latency_cycles"])
        u = rep["uart"]
        self.fb, self.scores, self.score_bits = int(u["feature_bytes"]), bool(u["scores"]), int(u["score_bits"])
        self._in, self._out, self.timeout = bytearray(), bytearray(), 0

    def write(self, data: bytes) -> int:
        self._in += data
        need = 1 + self.net.n_features * self.fb
        while True:
            k = self._in.find(bytes([SYNC_BYTE]))
            if k < 0:
                self._in.clear()
                return len(data)
            del self._in[:k]
            if len(self._in) < need:
                return len(data)
            raw = bytes(self._in[1:need])
            del self._in[:need]
            x = np.array([int.from_bytes(raw[i * self.fb:(i + 1) * self.fb], "little") & ((1 << self.net.input_bits) - 1)
                          for i in range(self.net.n_features)], dtype=np.int64)
            self._out += self._answer(x)

    def _answer(self, x: np.ndarray) -> bytes:
        from .netsim import bits_of, value_of

        F = len(x)
        vw, iw = self.enc.inputs["value"], self.enc.inputs["index"]
        stim = {"value": bits_of(np.r_[x, 0], vw)[:, None, :], "index": bits_of(np.r_[np.arange(F), 0], iw)[:, None, :],
                "strobe": np.r_[np.ones(F, bool), False][:, None, None]}
        bits = self.enc.run(stim, F + 1)["bits"][F]  # (1, width)
        T = self.latency + 1
        cstim = {"bits": np.repeat(bits[None], T, 0), "valid_in": np.ones((T, 1, 1), dtype=bool)}
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


def run_on_board(build_dir: str | Path, port: str | None = None, dataset: str | None = None, data_dir=None,
                 limit: int | None = None, baud: int | None = None, simulate: bool = False, timeout: float = 2.0,
                 x=None, y=None, serial_port=None) -> dict:
    """Send each sample, read the class, and report accuracy (vs labels), agreement with the IR emulator and
    throughput. `serial_port` may be any object with write/read (tests pass a fake)."""
    from .reference import reference_counts

    d = Path(build_dir)
    rep = load_report(d)
    net = Netlist.load(d / "netlist.json")
    samples = sample_data(net, x=x, y=y, dataset=dataset, data_dir=data_dir)
    if samples is None:
        raise DatasetError("the build's model records no dataset; pass --dataset")
    x, y = samples.x, samples.y
    if limit:
        x, y = x[:limit], (None if y is None else y[:limit])
    u = rep["uart"]
    n_reply = reply_length(net.classes, int(u["score_bits"]), bool(u["scores"]))
    own = serial_port is None
    if serial_port is None:
        serial_port = SimulatedBoard(d, net, rep) if simulate else open_port(port, baud or int(u["baud"]), timeout)
    preds = np.zeros(len(x), dtype=np.int64)
    t0 = time.perf_counter()
    try:
        for i, row in enumerate(x):
            serial_port.write(frame_bytes(row, net.input_bits))
            got = serial_port.read(n_reply)
            if len(got) != n_reply:
                raise BoardError(f"sample {i}: the board answered {len(got)} of {n_reply} bytes within the timeout "
                                 "(wrong bitstream, port or baud rate?)")
            preds[i], _ = parse_reply(got, net.classes, int(u["score_bits"]), bool(u["scores"]))
    finally:
        if own:
            serial_port.close()
    dt = time.perf_counter() - t0
    ref = np.argmax(reference_counts(net, x), axis=1)
    res = {"build": rep.get("stamp", {}).get("id"), "samples": int(len(x)), "seconds": round(dt, 3),
           "samples_per_s": round(len(x) / dt, 1) if dt > 0 else None,
           "agreement_with_model": float((preds == ref).mean()),
           "mode": "simulated post-synthesis netlist" if simulate else f"board on {port}"}
    if y is not None:
        res["accuracy"] = float((preds == np.asarray(y)).mean())
    mism = np.flatnonzero(preds != ref)
    if len(mism):
        res["first_disagreement"] = int(mism[0])
    return res
