"""The bad-input table (the project's promise for user mistakes; see tests/bad_inputs/harness.py): every case
exits non-zero with one line `error: ...`, no traceback, and leaves every pre-existing file as it was."""
from __future__ import annotations

import json
import shutil

import pytest

from bad_inputs import backend, checkpoints, frontend, middle
from bad_inputs.harness import Fixtures, run_case

CASES = [*frontend.CASES, *checkpoints.CASES, *middle.CASES, *backend.CASES]


@pytest.fixture(scope="session")
def fx(tmp_path_factory) -> Fixtures:
    import warpc
    from warpc.config import ModelConfig
    from warpc.data import load_dataset

    root = tmp_path_factory.mktemp("bad_inputs_fixtures")
    ds = load_dataset("iris")
    cfg = ModelConfig(n_features=ds.n_features, classes=ds.classes, widths=[30, 30], thresholds=3)
    ckpt = root / "iris.safetensors"
    warpc.train(cfg, ds, steps=20, eval_every=10, out=ckpt, progress=False, curve=False, device="cpu")
    net = warpc.compile(ckpt)
    paths = net.save(root / "net")
    build = root / "build"
    build.mkdir()
    shutil.copy(paths["netlist.json"], build / "netlist.json")
    (build / "top.bin").write_bytes(b"\x00" * 64)
    (build / "report.json").write_text(json.dumps({"format": "warpc-build-report", "board": "icebreaker"}))
    return Fixtures(ckpt=ckpt, netlist=paths["netlist.json"], build_dir=build)


def test_table_is_large_enough():
    assert len(CASES) >= 60, len(CASES)
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids)), "case ids must be unique"


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case, fx, tmp_path):
    run_case(case, tmp_path / "case", fx)
