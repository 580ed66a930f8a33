"""warpc run / flash without a board: a fake serial port that speaks the shell's framing."""
import json

import numpy as np
import pytest

from _backend_nets import random_net, random_x
from _faults import damage
from reference_eval import reference_counts
from warpc.fpga.host import flash, run_on_board
from warpc.fpga.protocol import (ACK_BYTE, BoardModel, crc8, frame_bytes, idle_timeout_s, parse_reply,
                                  reply_bytes)
from warpc.hdl.framing import crc8_matrix
from warpc.errors import BoardError


class FakeSerial:
    """Answers frames like the shell (protocol.BoardModel), from the IR; `wrong` flips the class of one sample.
    A read that finds a frame unfinished lets the board's idle timeout pass (NAK)."""

    def __init__(self, net, scores, sb, wrong=None):
        self.net, self.scores, self.sb, self.wrong = net, scores, sb, wrong
        self.out, self.n = bytearray(), 0
        self.model = BoardModel(net.n_features, net.input_bits, self._answer)
        self.writes = []

    def _answer(self, x):
        c = reference_counts(self.net, x[None])[0]
        cls = int(np.argmax(c)) if self.n != self.wrong else (int(np.argmax(c)) + 1) % self.net.classes
        self.n += 1
        out = bytes([cls])
        if self.scores:
            out += b"".join(int(v).to_bytes(-(-self.sb // 8), "little") for v in c)
        return out

    def line_in(self, data):
        """The host -> board line (a faulty fake changes the bytes here)."""
        return data

    def line_out(self, data):
        """The board -> host line."""
        return data

    def write(self, data):
        self.writes.append(bytes(data))
        self.out += self.line_out(self.model.feed(self.line_in(bytes(data))))
        return len(data)

    def read(self, n):
        if len(self.out) < n:
            self.out += self.line_out(self.model.idle())
        got = bytes(self.out[:n])
        del self.out[:n]
        return got

    def reset_input_buffer(self):
        self.out.clear()

    def close(self):
        pass


class FaultySerial(FakeSerial):
    """Damages the k-th write (host -> board) or the k-th reply (board -> host) in the listed ways:
    faults = {write number: kind} with kind drop / duplicate / corrupt / extra (a stray byte, SYNC) / noise
    (garbage before the frame); reply_faults = {reply number: kind} with kind drop / corrupt / duplicate."""

    def __init__(self, *a, faults=None, reply_faults=None, at=3, **kw):
        super().__init__(*a, **kw)
        self.faults, self.reply_faults, self.at = faults or {}, reply_faults or {}, at
        self.nw = self.nr = 0

    def line_in(self, data):
        kind = self.faults.get(self.nw)
        self.nw += 1
        return damage(data, kind, self.at) if kind else data

    def line_out(self, data):
        if not data:
            return data
        kind = self.reply_faults.get(self.nr)
        self.nr += 1
        return damage(data, kind, 1) if kind else data


def _build_dir(tmp_path, net, scores):
    sb = max(len(g) for g in net.outputs).bit_length()
    rep = {"stamp": {"id": "s"}, "Latency_cycles": 4,
           "uart": {"baud": 115200, "feature_bytes": 1, "scores": scores, "score_bits": sb}}
    (tmp_path / "report.json").write_text(json.dumps(rep))
    net.save(tmp_path / "netlist.json")
    return sb


@pytest.mark.parametrize("scores", [False, True])
def test_run_reports_accuracy_and_agreement(tmp_path, scores):
    net = random_net(seed=1)
    sb = _build_dir(tmp_path, net, scores)
    x = random_x(net, 30)
    y = np.argmax(reference_counts(net, x), 1)
    res = run_on_board(tmp_path, x=x, y=y, serial_port=FakeSerial(net, scores, sb, wrong=3))
    assert res["samples"] == 30 and res["first_disagreement"] == 3
    assert res["agreement_with_model"] == pytest.approx(29 / 30) and res["accuracy"] == pytest.approx(29 / 30)
    assert res["samples_per_s"] > 0


def test_run_timeout_is_a_board_error(tmp_path):
    net = random_net(seed=1)
    _build_dir(tmp_path, net, False)

    class Silent(FakeSerial):
        def read(self, n):
            return b""

    with pytest.raises(BoardError, match="no valid reply in 3 tries .*answered 0 of 3 bytes"):
        run_on_board(tmp_path, x=random_x(net, 2), serial_port=Silent(net, False, 1), retries=2, idle_wait=0)


def test_framing_roundtrip():
    feats = bytes([1, 0, 2, 0, 44, 1])
    assert frame_bytes([1, 2, 300], 10) == bytes([0xA5]) + feats + bytes([crc8(feats)])
    assert parse_reply(bytes([2, 5, 0, 7, 1]), 2, 9, True) == (2, [5, 263])
    assert crc8(b"123456789") == 0xF4  # CRC-8/SMBUS check value
    assert reply_bytes(b"\x02") == bytes([ACK_BYTE, 2, crc8(b"\x02")])


def test_crc8_matrix_matches_the_bytewise_crc():
    """The board's byte-parallel CRC update (xor rows of crc ^ byte) equals crc8 on every (crc, byte) pair."""
    rows = crc8_matrix()
    for c in range(256):
        for byte in range(0, 256, 7):
            xx = c ^ byte
            got = sum((sum((xx >> k) & 1 for k in row) & 1) << j for j, row in enumerate(rows))
            assert got == crc8(bytes([byte]), c)


@pytest.mark.parametrize("faults,reply_faults", [
    ({0: "drop"}, {}), ({1: "duplicate"}, {}), ({2: "corrupt"}, {}), ({0: "extra"}, {}), ({3: "noise"}, {}),
    ({0: "drop", 1: "corrupt", 2: "duplicate"}, {}),  # three damaged tries of one sample: the fourth works
    ({}, {0: "corrupt"}), ({}, {1: "drop"}), ({}, {2: "duplicate"}),
])
def test_run_survives_lost_extra_and_corrupted_bytes(tmp_path, faults, reply_faults):
    """Every damaged exchange is detected (NAK, timeout or check byte) and retried: the answers stay exact."""
    net = random_net(seed=2)
    sb = _build_dir(tmp_path, net, True)
    x = random_x(net, 6)
    port = FaultySerial(net, True, sb, faults=faults, reply_faults=reply_faults)
    res = run_on_board(tmp_path, x=x, y=np.argmax(reference_counts(net, x), 1), serial_port=port, idle_wait=0)
    assert res["agreement_with_model"] == 1.0 and res["accuracy"] == 1.0
    assert res["retries"] == len(faults) + len(reply_faults) > 0
    assert port.model.frames == 6 + len(reply_faults)  # a garbled reply's sample was computed twice


def test_run_gives_up_after_the_retries(tmp_path):
    net = random_net(seed=2)
    _build_dir(tmp_path, net, False)
    port = FaultySerial(net, False, 1, faults={k: "corrupt" for k in range(10)})
    with pytest.raises(BoardError, match="sample 0: no valid reply in 4 tries .*NAK"):
        run_on_board(tmp_path, x=random_x(net, 3), serial_port=port, idle_wait=0)
    assert len(port.writes) == 4


def test_run_waits_past_the_idle_timeout_and_flushes_before_a_retry(tmp_path, monkeypatch):
    """The default wait is twice the board's idle timeout at the build's rate; stale input is discarded."""
    import warpc.fpga.host as host

    net = random_net(seed=2)
    _build_dir(tmp_path, net, False)
    slept = []
    monkeypatch.setattr(host.time, "sleep", slept.append)
    port = FaultySerial(net, False, 1, reply_faults={0: "duplicate"})
    port.out += b"\x99"  # stale byte before the first reply: a bad start, retried
    res = run_on_board(tmp_path, x=random_x(net, 2), serial_port=port)
    assert res["agreement_with_model"] == 1.0
    assert slept and all(s == pytest.approx(2 * idle_timeout_s(115200)) for s in slept)


def test_host_idle_bound_covers_the_boards_timeout():
    """idle_timeout_s(baud) bounds the board's idle timeout (framing.idle_cycles / clock) at every rate the
    iCEBreaker's 12 MHz makes, and is not far above it."""
    from warpc.hdl.framing import idle_cycles
    from warpc.hdl.uart import supported_rates

    rates = supported_rates(12_000_000)
    assert {115200, 230400, 460800, 921600, 1_000_000, 2_000_000, 3_000_000} <= set(rates)
    for baud in rates:
        board = idle_cycles(12_000_000, round(12_000_000 / baud)) / 12e6
        assert board <= idle_timeout_s(baud) <= 2.1 * board, baud


def test_run_uses_the_builds_baud_and_refuses_another(tmp_path, monkeypatch):
    import warpc.fpga.host as host
    from warpc.errors import ConfigError

    net = random_net(seed=1)
    _build_dir(tmp_path, net, False)
    rep = json.loads((tmp_path / "report.json").read_text())
    rep["options"] = {"baud": 1_000_000}
    (tmp_path / "report.json").write_text(json.dumps(rep))
    opened = []
    monkeypatch.setattr(host, "open_port", lambda port, baud, timeout: opened.append(baud) or FakeSerial(net, False, 1))
    run_on_board(tmp_path, port="/dev/ttyX", x=random_x(net, 2))
    run_on_board(tmp_path, port="/dev/ttyX", x=random_x(net, 2), baud=1_010_000)  # within 2 %
    assert opened == [1_000_000, 1_010_000]
    with pytest.raises(ConfigError, match="--baud 115200 cannot talk to this build: its UART runs at 1000000"):
        run_on_board(tmp_path, port="/dev/ttyX", x=random_x(net, 2), baud=115200)


def _flashable(tmp_path):
    (tmp_path / "report.json").write_text(json.dumps({"stamp": {"id": "s"}, "board": "icebreaker"}))
    (tmp_path / "top.bin").write_bytes(b"\0")


def test_flash_without_programmer(tmp_path, monkeypatch):
    _flashable(tmp_path)
    monkeypatch.setattr("shutil.which", lambda name: None)
    with pytest.raises(BoardError, match="no programmer found"):
        flash(tmp_path)


def test_flash_runs_only_the_boards_programmers(tmp_path, monkeypatch):
    """Commands come from the board file's programmers list; an unknown --tool never runs anything."""
    import subprocess

    _flashable(tmp_path)
    ran = []
    monkeypatch.setattr("shutil.which", lambda name: "/usr/bin/" + name if name == "openFPGALoader" else None)
    monkeypatch.setattr(subprocess, "run", lambda cmd, **kw: ran.append(cmd) or subprocess.CompletedProcess(cmd, 0, "", ""))
    assert "with openFPGALoader" in flash(tmp_path)
    assert ran[-1] == ["openFPGALoader", "-b", "ice40_generic", "-f", str(tmp_path / "top.bin")]
    flash(tmp_path, sram=True)
    assert ran[-1] == ["openFPGALoader", "-b", "ice40_generic", str(tmp_path / "top.bin")]
    with pytest.raises(BoardError, match="unknown programmer 'ls'"):
        flash(tmp_path, tool="ls")
    with pytest.raises(BoardError, match="no programmer found \\(iceprog\\)"):
        flash(tmp_path, tool="iceprog")
    assert len(ran) == 2


def test_run_prints_a_readable_summary(tmp_path):
    from warpc.fpga.host import format_run

    net = random_net(seed=1)
    sb = _build_dir(tmp_path, net, False)
    x = random_x(net, 10)
    res = run_on_board(tmp_path, x=x, y=np.argmax(reference_counts(net, x), 1), serial_port=FakeSerial(net, False, sb))
    text = format_run(dict(res, mode="simulated post-synthesis netlist"))
    assert "accuracy:" in text and "100.00 %" in text and "simulator speed" in text and "samples/s" in text
    assert "board throughput" in format_run(dict(res, mode="board on /dev/ttyUSB1"))


@pytest.mark.parametrize("kwargs,words", [({"limit": 0}, "--limit"), ({"baud": 0}, "--baud"),
                                          ({"timeout": 0}, "--timeout"), ({}, "--port")])
def test_run_validates_its_options_first(tmp_path, kwargs, words):
    from warpc.errors import ConfigError

    with pytest.raises(ConfigError, match=words):
        run_on_board(tmp_path / "does-not-exist", **kwargs, **({} if not kwargs else {"simulate": True}))


def test_run_rejects_labels_beyond_the_netlists_classes(tmp_path):
    from warpc.errors import ShapeError

    net = random_net(seed=1, classes=2)
    _build_dir(tmp_path, net, False)
    x = random_x(net, 5)
    with pytest.raises(ShapeError, match="2 classes"):
        run_on_board(tmp_path, x=x, y=np.array([0, 1, 2, 0, 1]), serial_port=FakeSerial(net, False, 4))


def _folded_flashable(tmp_path, with_image=True):
    rep = {"stamp": {"id": "s"}, "board": "icebreaker", "arch": "folded",
           "folded": {"image": {"file": "program.bin", "flash_offset": 0x100000}}}
    (tmp_path / "report.json").write_text(json.dumps(rep))
    (tmp_path / "top.bin").write_bytes(b"\0")
    if with_image:
        (tmp_path / "program.bin").write_bytes(b"WFLD")


def test_flash_writes_a_folded_builds_program_image(tmp_path, monkeypatch):
    """A folded build's image goes into the flash at its offset beside the bitstream (with --sram too: the
    design copies SPRAM from the flash at power-up)."""
    import subprocess

    _folded_flashable(tmp_path)
    ran = []
    monkeypatch.setattr("shutil.which", lambda name: "/usr/bin/" + name if name == "iceprog" else None)
    monkeypatch.setattr(subprocess, "run", lambda cmd, **kw: ran.append(cmd) or subprocess.CompletedProcess(cmd, 0, "", ""))
    assert "program image at 0x100000" in flash(tmp_path)
    assert ran == [["iceprog", str(tmp_path / "top.bin")],
                   ["iceprog", "-o", str(0x100000), str(tmp_path / "program.bin")]]
    ran.clear()
    flash(tmp_path, sram=True)
    assert ran == [["iceprog", "-o", str(0x100000), str(tmp_path / "program.bin")],
                   ["iceprog", "-S", str(tmp_path / "top.bin")]]
    monkeypatch.setattr("shutil.which", lambda name: "/usr/bin/" + name if name == "openFPGALoader" else None)
    ran.clear()
    flash(tmp_path)
    assert ran[1] == ["openFPGALoader", "-b", "ice40_generic", "-f", "-o", str(0x100000), str(tmp_path / "program.bin")]


def test_flash_refuses_a_folded_build_without_its_image(tmp_path, monkeypatch):
    import subprocess

    _folded_flashable(tmp_path, with_image=False)
    ran = []
    monkeypatch.setattr("shutil.which", lambda name: "/usr/bin/" + name)
    monkeypatch.setattr(subprocess, "run", lambda cmd, **kw: ran.append(cmd) or subprocess.CompletedProcess(cmd, 0, "", ""))
    with pytest.raises(BoardError, match="no program image"):
        flash(tmp_path)
    assert ran == []  # nothing was written


def test_noprog_reply_is_a_clear_error(tmp_path):
    """A folded board whose flash holds no valid image answers NOPROG: `run` stops at once with the fix."""
    from warpc.hdl.framing import NOPROG_BYTE

    net = random_net(seed=1)
    _build_dir(tmp_path, net, False)

    class NoProg:
        def write(self, data):
            return len(data)

        def read(self, n):
            return bytes([NOPROG_BYTE])

        def reset_input_buffer(self):
            pass

    with pytest.raises(BoardError, match="no valid program image.*warpc flash"):
        run_on_board(tmp_path, x=random_x(net, 3), serial_port=NoProg(), retries=3)
