"""warpc run / flash without a board: a fake serial port that speaks the shell's framing."""
import json

import numpy as np
import pytest

from _backend_nets import random_net, random_x
from reference_eval import reference_counts
from warpc.fpga.host import flash, run_on_board
from warpc.fpga.protocol import SYNC_BYTE, frame_bytes, parse_reply
from warpc.errors import BoardError


class FakeSerial:
    """Answers frames like the shell, from the IR; `wrong` flips the class of one sample."""

    def __init__(self, net, scores, sb, wrong=None):
        self.net, self.scores, self.sb, self.wrong = net, scores, sb, wrong
        self.buf, self.out, self.n = bytearray(), bytearray(), 0

    def write(self, data):
        self.buf += data
        need = 1 + self.net.n_features * (-(-self.net.input_bits // 8))
        assert self.buf[0] == SYNC_BYTE
        if len(self.buf) >= need:
            fb = -(-self.net.input_bits // 8)
            x = np.array([[int.from_bytes(self.buf[1 + i * fb:1 + (i + 1) * fb], "little")
                           for i in range(self.net.n_features)]])
            del self.buf[:need]
            c = reference_counts(self.net, x)[0]
            cls = int(np.argmax(c)) if self.n != self.wrong else (int(np.argmax(c)) + 1) % self.net.classes
            self.out += bytes([cls])
            if self.scores:
                self.out += b"".join(int(v).to_bytes(-(-self.sb // 8), "little") for v in c)
            self.n += 1
        return len(data)

    def read(self, n):
        got = bytes(self.out[:n])
        del self.out[:n]
        return got

    def close(self):
        pass


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

    with pytest.raises(BoardError, match="answered 0 of 1"):
        run_on_board(tmp_path, x=random_x(net, 2), serial_port=Silent(net, False, 1))


def test_framing_roundtrip():
    assert frame_bytes([1, 2, 300], 10) == bytes([0xA5, 1, 0, 2, 0, 44, 1])
    assert parse_reply(bytes([2, 5, 0, 7, 1]), 2, 9, True) == (2, [5, 263])


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
