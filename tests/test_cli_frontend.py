"""`warpc train` / `warpc eval` through click's CliRunner: contract flags, JSON output, one-line errors."""
import json

import click
import numpy as np
import pytest
from click.testing import CliRunner

from warpc.cli import main

SMALL = ["--widths", "120,60", "--thresholds", "3", "--steps", "60", "--eval-every", "20", "--quiet",
         "--device", "cpu"]


def _run(args):
    return CliRunner().invoke(main, args, catch_exceptions=False)


def _one_line_error(res, *words):
    assert res.exit_code != 0
    err = res.stderr if hasattr(res, "stderr") else res.output
    assert "Traceback" not in res.output and "Traceback" not in err
    lines = [l for l in err.strip().splitlines() if l.startswith("error:")]
    assert len(lines) == 1, err
    for w in words:
        assert w in lines[0], lines[0]


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "wine.safetensors"
    res = _run(["train", "--dataset", "wine", "--out", str(out), *SMALL, "--json"])
    assert res.exit_code == 0, res.output
    metrics = json.loads(res.stdout.strip().splitlines()[-1])
    assert 0 <= metrics["test_accuracy"] <= 1 and metrics["steps"] == 60
    return out, metrics


def test_train_writes_checkpoint_and_curve(ckpt):
    out, _ = ckpt
    assert out.is_file() and out.with_name("wine.curve.png").is_file()
    assert out.with_name("wine.last.safetensors").is_file()


def test_eval_json_uses_recorded_dataset(ckpt):
    out, metrics = ckpt
    res = _run(["eval", str(out), "--json"])
    assert res.exit_code == 0, res.output
    d = json.loads(res.stdout)
    assert d["n_samples"] == metrics["n_test"] == 36
    assert d["accuracy"] == pytest.approx(metrics["test_accuracy"])
    assert np.array(d["confusion"]).sum() == 36 and len(d["per_class"]) == 3
    res = _run(["eval", str(out), "--dataset", "wine"])
    assert res.exit_code == 0 and "confusion matrix" in res.stdout and "accuracy" in res.stdout


def test_resume_and_config_file(ckpt, tmp_path):
    out, _ = ckpt
    res = _run(["train", "--dataset", "wine", "--out", str(out), "--resume", "--steps", "80", "--quiet", "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout.strip().splitlines()[-1])["steps"] == 80
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps({"widths": [30, 30], "k": [2, 4], "thresholds": 2}))
    res = _run(["train", "--dataset", "iris", "--config", str(cfg), "--out", str(tmp_path / "i.safetensors"),
                "--steps", "20", "--quiet", "--device", "cpu"])
    assert res.exit_code == 0, res.output
    import warpc

    loaded = warpc.load(tmp_path / "i.safetensors").config
    assert loaded.k == [2, 4] and loaded.thresholds == 2   # untyped options keep the config file's values


def test_bad_inputs_are_one_line_errors(ckpt, tmp_path):
    out, _ = ckpt
    _one_line_error(_run(["train", "--dataset", "nosuchset", "--out", str(tmp_path / "x.safetensors")]),
                    "unknown dataset", "digits")
    _one_line_error(_run(["train", "--dataset", "fashion-mnist", "--data-dir", str(tmp_path),
                          "--out", str(tmp_path / "x.safetensors")]), str(tmp_path))
    _one_line_error(_run(["eval", str(tmp_path / "missing.safetensors")]), "not found")
    (tmp_path / "junk.safetensors").write_bytes(b"\x00" * 64)
    _one_line_error(_run(["eval", str(tmp_path / "junk.safetensors")]), "junk.safetensors")
    _one_line_error(_run(["eval", str(out), "--dataset", "iris"]), "features")
    _one_line_error(_run(["train", "--dataset", "wine", "--widths", "100,7", "--out", str(tmp_path / "y.st")]),
                    "multiple")
    _one_line_error(_run(["train", "--dataset", "wine", "--out", str(tmp_path / "z.safetensors"),
                          "--resume"]), "resume")


def test_nan_loss_is_a_one_line_error(tmp_path, monkeypatch):
    import warpc.training.loop as wt

    monkeypatch.setattr(wt, "_loss", lambda s, y: s.sum() * float("nan"))
    res = _run(["train", "--dataset", "iris", "--out", str(tmp_path / "n.safetensors"), *SMALL[:2],
                "--widths", "30,30", "--steps", "10", "--eval-every", "5", "--quiet"])
    _one_line_error(res, "loss became nan")


@pytest.mark.parametrize("name", ["train", "eval", "sweep"])
def test_every_option_is_described_and_shows_its_default(name):
    """--help explains each option; non-flag options show their default and choices are listed."""
    cmd = main.commands[name]
    text = CliRunner().invoke(main, [name, "--help"]).output
    for opt in cmd.params:
        if not isinstance(opt, click.Option) or opt.name == "help":
            continue
        assert opt.help, f"{name} {opt.opts[0]} has no description"
        if not opt.is_flag and not opt.required:
            assert opt.show_default, f"{name} {opt.opts[0]} does not show its default"
    for words in (["--encoder", "uniform|distributive|learnable"], ["--wiring", "[default: learnable]"],
                  ["--parametrization", "warp|dlgn"], ["--sampling", "gumbel_st"], ["--init", "residual|random"],
                  ["--k", "[default: 2]"], ["--thresholds", "sized from the data"], ["--tau-head", "at least 7"],
                  ["--data-dir"], ["--force"], ["--nproc", "[default: 1]"], ["--fit-arch", "auto|spatial|folded"]) \
            if name == "train" else (["--split", "test|val|train"], ["--data-dir"]) if name == "eval" else (
                ["--trials", "[default: 40]"], ["--objectives", "accuracy,lc"], ["--arch", "spatial|auto|folded"]):
        assert all(" ".join(w.split()) in " ".join(text.split()) for w in words), words


def test_force_replaces_a_run_and_without_it_the_run_is_kept(tmp_path):
    out = tmp_path / "iris.safetensors"
    args = ["train", "--dataset", "iris", "--out", str(out), "--widths", "30,30", "--thresholds", "3",
            "--steps", "10", "--eval-every", "5", "--quiet", "--device", "cpu"]
    assert _run(args).exit_code == 0
    before = out.read_bytes()
    _one_line_error(_run(args), "already exists", "--force", "--resume")
    assert out.read_bytes() == before
    res = _run([*args, "--seed", "3", "--force", "--json"])
    assert res.exit_code == 0, res.output
    import warpc

    assert out.read_bytes() != before and warpc.load(out).config.seed == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["iris.curve.png", "iris.last.safetensors",
                                                          "iris.safetensors"]
    # --resume without --steps continues to the run's own length: already done here
    _one_line_error(_run(["train", "--dataset", "iris", "--out", str(out), "--resume", "--quiet"]),
                    "already trained 10 steps")
    res = _run(["train", "--dataset", "iris", "--out", str(out), "--resume", "--steps", "15", "--quiet", "--json"])
    assert res.exit_code == 0 and json.loads(res.stdout.strip().splitlines()[-1])["steps"] == 15
