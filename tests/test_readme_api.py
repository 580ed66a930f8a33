"""README.md's "Python API" examples, run as written (only the sizes shrunk), twice in one process: the second run
must give the same results as the first (warpc.compile once failed on its second call because a submodule rebound
the package attribute). And no public function of the `warpc` package may share its name with a submodule."""
from __future__ import annotations

import inspect
import os
import pkgutil
import re
from pathlib import Path

import numpy as np
import pytest

import warpc

README = Path(__file__).resolve().parents[1] / "README.md"

# README text -> test size. Each pattern must be found, so an edited README fails here instead of being skipped.
SHRINK = {
    "steps=1500": "steps=60",
    "widths=[2000, 1000]": "widths=[120, 60]",
    'out="runs/d.safetensors")': 'out="runs/d.safetensors", progress=False, curve=False, device="cpu")',
    "out_features=2000": "out_features=50",
}
BUILD_LINE = re.compile(r"^report = warpc\.build\(.*$", re.M)


def python_api_blocks() -> list[str]:
    """The ```python blocks of the README section "## Python API ..." (up to the next ## heading)."""
    text = README.read_text()
    m = re.search(r"^## Python API.*?$(.*?)^## ", text, re.M | re.S)
    assert m, "README.md has no '## Python API' section"
    blocks = re.findall(r"```python\n(.*?)```", m.group(1), re.S)
    assert len(blocks) >= 2, "expected the pipeline example and the layer example"
    return blocks


def shrunk(code: str) -> str:
    for old, new in SHRINK.items():
        code = code.replace(old, new)
    return code


def test_shrink_patterns_are_in_the_readme():
    text = "".join(python_api_blocks())
    missing = [old for old in SHRINK if old not in text]
    assert not missing, f"README's Python API changed; update SHRINK for {missing}"
    assert len(BUILD_LINE.findall(python_api_blocks()[0])) == 1


def run_blocks(folder: Path, with_build: bool) -> list[dict]:
    """exec every block in `folder` (a fresh cwd: the README writes to relative paths) with seeded torch."""
    import torch

    namespaces = []
    old = Path.cwd()
    folder.mkdir(parents=True)
    os.chdir(folder)
    try:
        for code in python_api_blocks():
            code = shrunk(code)
            if with_build:
                code = BUILD_LINE.sub(lambda m: m.group(0)[:-1] + ", max_vectors=40, formal=True)", code)
            else:
                code = BUILD_LINE.sub("report = None", code)
            torch.manual_seed(0)
            ns: dict = {}
            exec(compile(code, f"README.md Python API ({folder.name})", "exec"), ns)
            namespaces.append(ns)
    finally:
        os.chdir(old)
    return namespaces


def _results(ns: list[dict]) -> dict:
    import torch

    pipe, layers = ns
    ds, model, net = pipe["ds"], pipe["model"], pipe["net"]
    x = torch.as_tensor(ds.x_test, dtype=torch.float32)
    return {
        "metrics": {k: v for k, v in pipe["result"].metrics.items() if not any(w in k for w in ("second", "time"))},
        "model_counts": model.counts(x).numpy(),
        "net_counts": net.counts(ds.x_test),
        "net_predict": net.predict(ds.x_test),
        "luts": len(net.netlist.nodes),
        "truth_tables": np.asarray(layers["layer"].truth_tables()),
    }


def _assert_same(a: dict, b: dict) -> None:
    assert a["metrics"] == b["metrics"]
    assert a["luts"] == b["luts"]
    for key in ("model_counts", "net_counts", "net_predict", "truth_tables"):
        assert np.array_equal(a[key], b[key]), key


def test_readme_python_api_twice(tmp_path):
    first = _results(run_blocks(tmp_path / "first", with_build=False))
    # bit-exact as the README promises: compiled netlist == PyTorch model, argmax ties to the lowest class
    assert np.array_equal(first["net_counts"], first["model_counts"])
    assert np.array_equal(first["net_predict"], first["model_counts"].argmax(1))
    second = _results(run_blocks(tmp_path / "second", with_build=False))
    _assert_same(first, second)
    assert callable(warpc.compile) and callable(warpc.build) and callable(warpc.train)


@pytest.mark.slow
def test_readme_python_api_twice_with_build(tmp_path):
    """The same with the build line (yowasp toolchain): a tiny net, 40 equivalence vectors, formal on."""
    runs = [run_blocks(tmp_path / name, with_build=True) for name in ("first", "second")]
    _assert_same(_results(runs[0]), _results(runs[1]))
    reports = [r[0]["report"] for r in runs]
    for name, rep in zip(("first", "second"), reports):
        assert (tmp_path / name / "build" / "d" / "top.bin").is_file()
        assert rep["equivalence"]["passed"] is True
    keys = ("LUT", "LC", "Latency_cycles")
    assert {k: reports[0][k] for k in keys} == {k: reports[1][k] for k in keys}


def test_no_public_function_shares_a_submodule_name():
    """`warpc.compile = <function>` would be rebound to the module by `import warpc.compile` (the old bug)."""
    functions = {n for n, v in vars(warpc).items() if not n.startswith("_") and inspect.isfunction(v)}
    assert {"train", "compile", "build", "load"} <= functions
    modules = {m.name for m in pkgutil.iter_modules(warpc.__path__)}
    assert not functions & modules, f"functions named like submodules: {sorted(functions & modules)}"
    # importing every subpackage must leave the functions in place
    import importlib

    for m in sorted(modules):
        importlib.import_module(f"warpc.{m}")
    assert all(inspect.isfunction(getattr(warpc, n)) for n in functions)
