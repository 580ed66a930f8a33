"""The defaults table: `warpc train --dataset X` with no other options vs scikit-learn's logistic regression and
gradient boosting on the same splits, for every bundled dataset, Fashion-MNIST, MNIST (when its files are here)
and two tabular CSV sets that the `river` package (PyPI) ships: UCI Image Segmentation and UCI Phishing.
Beside them, warpc's earlier fixed defaults (the "fixed" column in docs/frontend.md; `--no-fixed` skips them).

    python -u scripts/bench_defaults.py                      # all; writes scripts/results/defaults.{json,md}
    python -u scripts/bench_defaults.py --only iris,wine --seeds 1 --out /tmp/d

warpc runs as the CLI does (plan_training(auto=True, budget=...)), over --seeds training seeds on the dataset's
fixed split; the baselines fit on train + validation (warpc uses validation to keep its best step) and see the
same integer features. Baselines: StandardScaler + LogisticRegression(max_iter=2000), and
HistGradientBoostingClassifier(random_state=0), both with scikit-learn's defaults otherwise.
"""
from __future__ import annotations

import argparse
import gzip
import importlib.resources
import json
import os
import platform
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from warpc.data import DEFAULT_DIRS, load_dataset  # noqa: E402
from warpc.errors import DatasetError  # noqa: E402
from warpc.training import plan_training  # noqa: E402
from warpc.training.auto import DEFAULT_BUDGET  # noqa: E402

SETS = ("iris", "wine", "breast_cancer", "digits", "segment", "phishing", "fashion-mnist", "mnist")
RIVER = {"segment": ("segment.csv.zip", "UCI Image Segmentation (river.datasets.ImageSegments)"),
         "phishing": ("phishing.csv.gz", "UCI Phishing websites (river.datasets.Phishing)")}


def river_csv(name: str, folder: Path) -> Path:
    """The CSV that `river` ships for `name`, unpacked into `folder` (pip install -e ".[bench]")."""
    try:
        src = Path(str(importlib.resources.files("river.datasets"))) / RIVER[name][0]
    except ModuleNotFoundError:
        raise DatasetError(f"{name}: install the river package (pip install river) for its bundled CSV") from None
    out = folder / f"{name}.csv"
    if src.suffix == ".zip":
        with zipfile.ZipFile(src) as z:
            out.write_bytes(z.read(z.namelist()[0]))
    else:
        out.write_bytes(gzip.decompress(src.read_bytes()))
    return out


def baselines(ds) -> dict:
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x = np.concatenate([ds.x_train, ds.x_val]).astype(np.float64)
    y = np.concatenate([ds.y_train, ds.y_val])
    out = {}
    for name, model in (("logistic_regression", make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))),
                        ("gradient_boosting", HistGradientBoostingClassifier(random_state=0))):
        t = time.perf_counter()
        model.fit(x, y)
        out[name] = {"test_accuracy": float(model.score(ds.x_test.astype(np.float64), ds.y_test)),
                     "seconds": round(time.perf_counter() - t, 2)}
    return out


def warpc_runs(spec: str, seeds: list[int], budget: str | None, folder: Path, auto: bool = True) -> dict:
    runs = []
    choices = None
    for seed in seeds:
        plan = plan_training(spec, out=folder / f"s{seed}.safetensors", force=True, seed=seed, auto=auto,
                             budget=budget)
        choices = plan.choices
        t = time.perf_counter()
        res = plan.run(progress=False, curve=False)
        m = res.metrics
        runs.append({"seed": seed, "test_accuracy": m["test_accuracy"], "val_accuracy": m["val_accuracy"],
                     "steps": m["steps"], "best_step": m["best_step"], "stopped": m["stopped"],
                     "train_seconds": m["seconds"], "wall_seconds": round(time.perf_counter() - t, 1)})
        print(f"  warpc seed {seed}: {m['test_accuracy']:.4f} ({m['steps']} steps, {m['stopped']}, "
              f"{m['seconds']:.0f} s)", flush=True)
    acc = [r["test_accuracy"] for r in runs]
    c = plan.config
    return {"mean": float(np.mean(acc)), "min": float(min(acc)), "max": float(max(acc)), "runs": runs,
            "choices": choices, "model": {"widths": c.widths, "thresholds": c.thresholds, "encoder": c.encoder,
                                          "tau_head": c.tau_head, "k": c.k}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default=",".join(SETS))
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--budget", default=DEFAULT_BUDGET)
    ap.add_argument("--out", default=str(ROOT / "scripts" / "results"))
    ap.add_argument("--no-fixed", action="store_true",
                    help="skip the comparison column: warpc's earlier fixed defaults (ModelConfig's fields, 1,500 "
                    "steps, no budget)")
    a = ap.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    load_start = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for name in a.only.split(","):
            print(f"{name}:", flush=True)
            try:
                spec = str(river_csv(name, tmp)) if name in RIVER else name
                ds = load_dataset(spec)
            except DatasetError as e:
                print(f"  skipped: {e}", flush=True)
                rows.append({"dataset": name, "skipped": str(e).split(";")[0]})
                continue
            row = {"dataset": name, "source": RIVER[name][1] if name in RIVER else
                   (DEFAULT_DIRS.get(name) or "scikit-learn bundled"), "features": ds.n_features,
                   "classes": ds.classes, "train": len(ds.y_train), "val": len(ds.y_val), "test": len(ds.y_test)}
            seeds = list(range(a.seeds))
            row["warpc"] = warpc_runs(spec, seeds, a.budget, tmp / name)
            if not a.no_fixed:
                print("  the earlier fixed defaults:", flush=True)
                row["fixed"] = warpc_runs(spec, seeds, None, tmp / f"{name}_fixed", auto=False)
            row.update(baselines(ds))
            print(f"  LR {row['logistic_regression']['test_accuracy']:.4f}, "
                  f"GB {row['gradient_boosting']['test_accuracy']:.4f}", flush=True)
            rows.append(row)
    result = {"budget": a.budget, "seeds": a.seeds, "machine": f"{platform.machine()}, {os.cpu_count()} cores",
              "load_average_start": load_start, "load_average_end": os.getloadavg(),
              "date": time.strftime("%Y-%m-%d"), "rows": rows}
    (out / "defaults.json").write_text(json.dumps(result, indent=1))
    (out / "defaults.md").write_text(table(result))
    print(table(result))


def table(result: dict) -> str:
    lines = [f"warpc defaults (`warpc train --dataset X`, budget {result['budget']}, mean of {result['seeds']} "
             f"training seeds [min-max]) vs warpc's earlier fixed defaults and scikit-learn on the same split; "
             f"{result['date']}, {result['machine']}", "",
             "| dataset | features / classes / train / test | warpc defaults: model | warpc test acc. | "
             "steps (ended by) | train s | earlier fixed defaults | logistic regression | gradient boosting |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        if "skipped" in r:
            lines.append(f"| {r['dataset']} | not on this machine: {r['skipped']} | | | | | | | |")
            continue
        w = r["warpc"]
        m = w["model"]
        ended = sorted({x["stopped"] for x in w["runs"]})
        steps = "/".join(str(x["steps"]) for x in w["runs"])
        secs = "/".join(f"{x['train_seconds']:.0f}" for x in w["runs"])
        fixed = f"{100 * r['fixed']['mean']:.2f} %" if "fixed" in r else "(not run)"
        lines.append(f"| {r['dataset']} | {r['features']} / {r['classes']} / {r['train']:,} / {r['test']:,} | "
                     f"{'+'.join(f'{v:,}' for v in m['widths'])}, {m['thresholds']} thr. ({m['encoder']}), "
                     f"τ {m['tau_head']:g} | **{100 * w['mean']:.2f} %** [{100 * w['min']:.2f}-{100 * w['max']:.2f}] | "
                     f"{steps} ({', '.join(ended)}) | {secs} | {fixed} | "
                     f"{100 * r['logistic_regression']['test_accuracy']:.2f} % | "
                     f"{100 * r['gradient_boosting']['test_accuracy']:.2f} % |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
