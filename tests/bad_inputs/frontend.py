"""Bad inputs for `warpc train` and `warpc eval` (see harness.py for what each row asserts). Every train row fails
before a step is taken; none may leave a file behind or change one (an existing run, a user's file)."""
from __future__ import annotations

import shutil

from .harness import Case

TRAIN = ["train", "--steps", "5", "--quiet", "--device", "cpu", "--widths", "30,30"]   # train + TRAIN[3:]: no --steps
RESUME = ["train", "--quiet", "--device", "cpu", "--dataset", "iris", "--out", "m.safetensors", "--resume"]


def _train(*extra):
    """A train row: iris to m.safetensors in the case folder, plus the bad options."""
    return lambda d, fx: [*TRAIN, "--dataset", "iris", "--out", d / "m.safetensors", *extra]


def _sweep(*extra):
    """A sweep row: iris into the case folder's sw/, plus the bad options (nothing may be created)."""
    return lambda d, fx: ["sweep", "--dataset", "iris", "--out", d / "sw", "--trials", "2", *extra]


def _run_at(d, fx, name="m"):
    """A finished run at d/NAME (the fixture checkpoint and its resumable state)."""
    shutil.copy(fx.ckpt, d / f"{name}.safetensors")
    shutil.copy(fx.ckpt.with_name(fx.ckpt.name.replace(".safetensors", ".last.safetensors")),
                d / f"{name}.last.safetensors")


def _with_run(*extra):
    def make(d, fx):
        _run_at(d, fx)
        return [*TRAIN, "--dataset", "iris", "--out", "m.safetensors", *extra]
    return make


def _foreign(name, *extra):
    def make(d, fx):
        (d / name).write_text("my notes, not a checkpoint\n")
        return [*TRAIN, "--dataset", "iris", "--out", "m.safetensors", *extra]
    return make


def _config(content: bytes | None):
    def make(d, fx):
        if content is not None:
            (d / "c.json").write_bytes(content)
        return [*TRAIN, "--dataset", "iris", "--out", "m.safetensors", "--config", "c.json"]
    return make


def _resume(*extra):
    def make(d, fx):
        _run_at(d, fx)
        return [*RESUME, *extra]
    return make


def _under_a_file(d, fx):
    (d / "afile").write_text("x")
    return [*TRAIN, "--dataset", "iris", "--out", d / "afile" / "sub" / "m.safetensors"]


def _out_is_folder(d, fx):
    (d / "runs").mkdir()
    return [*TRAIN, "--dataset", "iris", "--out", d / "runs"]


CASES: list[Case] = [
    Case("train-unknown-dataset", lambda d, fx: [*TRAIN, "--dataset", "nosuchset", "--out", d / "m.safetensors"],
         ("nosuchset",)),
    Case("train-unknown-option", lambda d, fx: [*TRAIN, "--dataset", "iris", "--out", d / "m.safetensors",
                                                 "--no-such-flag"], ("no-such-flag",), exit_code=2),
    Case("eval-missing-checkpoint", lambda d, fx: ["eval", d / "none.safetensors"], ("none.safetensors",)),
    # --- nothing lost: existing runs and a user's files ---------------------------------------------------------
    Case("train-out-existing-run", _with_run(), ("m.safetensors already exists", "--resume", "--force")),
    Case("train-out-existing-interrupted-run",
         lambda d, fx: (_run_at(d, fx), (d / "m.safetensors").unlink(),
                        [*TRAIN, "--dataset", "iris", "--out", "m.safetensors"])[-1],
         ("m.last.safetensors already exists",)),
    Case("train-out-existing-curve",
         lambda d, fx: ((d / "m.curve.png").write_bytes(b"\x89PNG\r\n\x1a\n"),
                        [*TRAIN, "--dataset", "iris", "--out", "m.safetensors"])[-1], ("m.curve.png",)),
    Case("train-out-foreign-file", _foreign("m.safetensors"), ("not a warpc checkpoint", "m.safetensors")),
    Case("train-out-foreign-file-force", _foreign("m.safetensors", "--force"), ("not a warpc checkpoint",)),
    Case("train-out-foreign-last-force", _foreign("m.last.safetensors", "--force"),
         ("m.last.safetensors", "not a warpc checkpoint")),
    Case("train-out-foreign-curve-force", _foreign("m.curve.png", "--force"), ("m.curve.png", "not a png")),
    Case("train-out-under-a-file", _under_a_file, ("afile", "not a folder")),
    Case("train-out-is-a-folder", _out_is_folder, ("runs",), exit_code=2),
    # --- resume ----------------------------------------------------------------------------------------------------
    Case("train-resume-nothing", lambda d, fx: RESUME, ("nothing to resume",)),
    Case("train-resume-with-model-flags", _resume("--widths", "60,30"), ("--resume", "widths")),
    Case("train-resume-with-config", _resume("--config", "c.json"), ("--resume", "config")),
    Case("train-resume-and-force", _resume("--force"), ("--resume", "--force", "not both")),
    Case("train-resume-finished-run", _resume(), ("already trained",)),
    Case("train-resume-other-split", _resume("--split-seed", "3", "--steps", "40"), ("cannot resume",)),
    # --- the config file ---------------------------------------------------------------------------------------
    Case("train-config-binary", _config(b"\x89PNG\r\n\x1a\n\x00\xff\xfe\x00"), ("c.json", "not a text file")),
    Case("train-config-list", _config(b"[30, 30]"), ("c.json", "JSON object", "list")),
    Case("train-config-number", _config(b"42"), ("c.json", "JSON object")),
    Case("train-config-not-json", _config(b"{widths: 30"), ("c.json", "not valid JSON")),
    Case("train-config-missing", _config(None), ("c.json",)),
    Case("train-config-unknown-key", _config(b'{"widthz": [30, 30]}'), ("widthz",)),
    Case("train-config-input-bits-list", _config(b'{"input_bits": [8]}'), ("input_bits",)),
    # --- hyper-parameters ----------------------------------------------------------------------------------------
    Case("train-steps-0", _train("--steps", "0"), ("--steps",)),
    Case("train-epochs-negative", lambda d, fx: ["train", *TRAIN[3:], "--dataset", "iris", "--out", d / "m.safetensors",
                                                  "--epochs", "-1"], ("--epochs",)),
    Case("train-steps-and-epochs", _train("--epochs", "1"), ("not both",)),
    Case("train-batch-size-0", _train("--batch-size", "0"), ("--batch-size",)),
    Case("train-lr-0", _train("--lr", "0"), ("--lr",)),
    Case("train-lr-nan", _train("--lr", "nan"), ("--lr",)),
    Case("train-weight-decay-negative", _train("--weight-decay", "-1"), ("--weight-decay",)),
    Case("train-eval-every-0", _train("--eval-every", "0"), ("--eval-every",)),
    Case("train-device-nonsense", _train("--device", "nonsense"), ("nonsense",)),
    # --- model options (validated by ModelConfig) -------------------------------------------------------------------
    Case("train-tau-head-0", _train("--tau-head", "0"), ("tau_head",)),
    Case("train-tau-0", _train("--tau", "0"), ("tau",)),
    Case("train-input-bits-0", _train("--input-bits", "0"), ("input_bits",)),
    Case("train-widths-letters", _train("--widths", "a,b"), ("--widths", "a,b")),
    Case("train-widths-0", _train("--widths", "0"), ("widths",)),
    Case("train-widths-not-multiple", _train("--widths", "30,31"), ("multiple",)),
    Case("train-k-9", _train("--k", "9"), ("k",)),
    Case("train-k-per-layer-count", _train("--k", "2,2,2"), ("k has 3 entries",)),
    Case("train-thresholds-0", _train("--thresholds", "0"), ("thresholds",)),
    Case("train-wiring-candidates-0", _train("--wiring", "learnable", "--wiring-candidates", "0"),
         ("wiring_candidates",)),
    Case("train-encoder-bad-choice", _train("--encoder", "linear"), ("linear",), exit_code=2),
    # --- data ----------------------------------------------------------------------------------------------------
    Case("train-data-dir-missing", _train("--data-dir", "nodir"), ("nodir", "not found")),
    Case("train-fashion-empty-data-dir", lambda d, fx: ((d / "empty").mkdir(), [
        *TRAIN, "--dataset", "fashion-mnist", "--data-dir", d / "empty", "--out", d / "m.safetensors"])[-1],
        ("empty",)),
    Case("train-nproc-0", _train("--nproc", "0"), ("--nproc", "positive")),
    Case("train-nproc-letters", _train("--nproc", "two"), ("--nproc", "two"), exit_code=2),
    Case("train-nproc-under-torchrun", _train("--nproc", "2"), ("--nproc-per-node", "torchrun"),
         env={"WORLD_SIZE": "2"}),
    Case("train-nproc-more-than-batch", _train("--nproc", "3", "--batch-size", "2"), ("batch", "--nproc 3")),
    Case("train-budget-words", _train("--budget", "soon"), ("--budget", "soon")),
    Case("train-budget-negative", _train("--budget", "-5"), ("--budget",)),
    Case("train-budget-unit-unknown", _train("--budget", "3d"), ("--budget", "3d")),
    Case("train-budget-with-fit", lambda d, fx: [*TRAIN[:-2], "--dataset", "iris", "--out", d / "m.safetensors",
                                                 "--fit", "icebreaker", "--budget", "1m"], ("--fit", "--budget")),
    Case("train-budget-on-resume-bad", _resume("--budget", "soon"), ("--budget",)),
    Case("train-fit-unknown-board", lambda d, fx: [*TRAIN[:-2], "--dataset", "iris", "--out", d / "m.safetensors",
                                                   "--fit", "nosuchboard"], ("nosuchboard",)),
    Case("train-fit-with-widths", _train("--fit", "icebreaker"), ("--widths",)),
    Case("train-fit-trials-0", lambda d, fx: [*TRAIN[:-2], "--dataset", "iris", "--out", d / "m.safetensors",
                                              "--fit", "icebreaker", "--fit-trials", "0"], ("--fit-trials",)),
    Case("train-interval-without-fit", _train("--interval", "4"), ("--fit",)),
    Case("train-fit-with-resume", _resume("--fit", "icebreaker"), ("--resume",)),
    Case("train-fit-with-nproc", lambda d, fx: [*TRAIN[:-2], "--dataset", "iris", "--out", d / "m.safetensors",
                                                "--fit", "icebreaker", "--nproc", "2"], ("--nproc",)),
    Case("train-fit-over-existing-run", lambda d, fx: (_run_at(d, fx), [*TRAIN[:-2], "--dataset", "iris", "--out",
                                                                        "m.safetensors", "--fit", "icebreaker"])[-1],
         ("already exists",)),
    Case("sweep-trials-0", _sweep("--trials", "0"), ("--trials",)),
    Case("sweep-depth-reversed", _sweep("--depth", "3-1"), ("--depth",)),
    Case("sweep-width-letters", _sweep("--width", "a-b"), ("--width",)),
    Case("sweep-k-9", _sweep("--k", "2,9"), ("--k",)),
    Case("sweep-objectives-without-accuracy", _sweep("--objectives", "lc"), ("--objectives",)),
    Case("sweep-interval-0", _sweep("--interval", "0"), ("--interval",)),
    Case("sweep-dlgn-without-k2", _sweep("--parametrization", "dlgn", "--k", "4"), ("DLGN",)),
    Case("sweep-folded-on-ecp5", _sweep("--arch", "folded", "--board", "ulx3s-85f"), ("SPRAM",)),
    Case("sweep-board-unknown", _sweep("--board", "nosuchboard"), ("nosuchboard",)),
    Case("sweep-storage-bad-url", _sweep("--storage", "nosuchdb://x"), ("storage",)),
    Case("sweep-out-foreign-files", lambda d, fx: ((d / "sw").mkdir(), (d / "sw" / "notes.txt").write_text("mine"),
                                                   ["sweep", "--dataset", "iris", "--out", d / "sw"])[-1],
         ("not a warpc sweep",)),
    Case("sweep-into-another-datasets-sweep", lambda d, fx: (
        (d / "sw").mkdir(), (d / "sw" / "sweep.json").write_text('{"format": "warpc-sweep", "dataset": "digits"}'),
        ["sweep", "--dataset", "iris", "--out", d / "sw", "--trials", "2"])[-1], ("sweep of digits",)),
    Case("eval-split-bad", lambda d, fx: ["eval", fx.ckpt, "--split", "bad"], ("bad",), exit_code=2),
    Case("eval-other-feature-count", lambda d, fx: ["eval", fx.ckpt, "--dataset", "wine"], ("features",)),
    Case("eval-data-dir-missing", lambda d, fx: ["eval", fx.ckpt, "--data-dir", d / "nodir"], ("nodir",)),
    Case("eval-device-nonsense", lambda d, fx: ["eval", fx.ckpt, "--device", "nonsense"], ("nonsense",)),
    Case("eval-unknown-dataset", lambda d, fx: ["eval", fx.ckpt, "--dataset", "nosuchset"], ("nosuchset",)),
]
