"""Defaults sized from the data (training/auto.py): what `warpc train --dataset X` picks, the --budget parser, and
the two early ends (time budget, validation plateau) of the training loop."""
import json
from types import SimpleNamespace

import numpy as np
import pytest
from click.testing import CliRunner

from warpc.cli import main
from warpc.config import ModelConfig
from warpc.data import load_dataset
from warpc.errors import ConfigError
from warpc.training import plan_training, train
from warpc.training.auto import AUTO_FIELDS, choose, parse_budget


@pytest.mark.parametrize("text, seconds", [
    ("90s", 90.0), ("2m", 120.0), ("1h", 3600.0), ("1m30s", 90.0), ("45", 45.0), ("1.5m", 90.0), (" 2 m ", 120.0),
    ("1h2m3s", 3723.0), ("1m30", 90.0), (30, 30.0), (0.5, 0.5), ("none", None), ("off", None), ("0", None), (None, None)])
def test_parse_budget(text, seconds):
    assert parse_budget(text) == seconds


@pytest.mark.parametrize("text", ["soon", "-5", "3d", "", "m", "2mm", "nan", -1, float("inf")])
def test_parse_budget_refuses_with_the_option_named(text):
    with pytest.raises(ConfigError, match="--budget"):
        parse_budget(text)


def _shape(features, classes, samples):
    """A stand-in with the three numbers choose() reads."""
    return SimpleNamespace(n_features=features, classes=classes, y_train=np.zeros(samples, dtype=np.int64))


def test_digits_gets_the_defaults_the_readme_measures():
    c = choose(load_dataset("digits"), set(), 120.0, batch_size=128)
    assert c.fields == {"thresholds": 7, "encoder": "uniform", "widths": [2000, 1000], "tau_head": 7.0}
    assert c.fields == {k: ModelConfig.__dataclass_fields__[k].default for k in AUTO_FIELDS} | {
        "widths": [2000, 1000]}
    assert c.steps == 1500 and c.time_limit == 120.0 and c.patience >= c.steps  # the plateau cannot end digits


def test_tabular_sets_get_quantile_thresholds_and_longer_runs():
    c = choose(load_dataset("iris"), set(), None, batch_size=128)
    assert c.fields["encoder"] == "distributive" and c.fields["thresholds"] == 31  # 4 features: at most 31
    assert c.fields["widths"] == [2000, 999]                                      # a multiple of 3 classes
    assert c.steps == 5000 and c.time_limit is None                               # under 1,000 samples
    assert any("distributive" in r for r in c.reasons) and any("5,000 steps" in r for r in c.reasons)
    breast = choose(load_dataset("breast_cancer"), set(), None, batch_size=128)
    assert breast.fields["thresholds"] == 15                                      # 448 bits / 30 features


def test_widths_grow_with_the_samples_up_to_four_times():
    assert choose(_shape(784, 10, 9_000), set(), None, batch_size=128).fields["widths"] == [2000, 1000]
    assert choose(_shape(784, 10, 90_000), set(), None, batch_size=128).fields["widths"] == [6000, 3000]
    assert choose(_shape(784, 10, 10**7), set(), None, batch_size=128).fields["widths"] == [8000, 4000]
    big = choose(_shape(784, 10, 54_000), set(), 120.0, batch_size=128)
    assert big.fields["encoder"] == "uniform" and big.steps == 150 * (54_000 // 128)


def test_fields_the_user_gave_are_left_alone():
    c = choose(load_dataset("iris"), {"widths", "thresholds", "encoder", "tau_head"}, 60.0, batch_size=128,
               length_given=True)
    assert c.fields == {} and c.steps is None and c.patience is None
    plan = plan_training("iris", overrides={"widths": [30, 30], "thresholds": 4}, auto=True, budget="1m",
                         steps=50)
    assert plan.config.widths == [30, 30] and plan.config.thresholds == 4
    assert plan.config.encoder == "distributive"                  # not given: chosen
    assert plan.options["steps"] == 50 and plan.options["time_limit"] == 60.0 and "patience" not in plan.options
    config_file = plan_training("iris", config={"widths": [30, 30]}, auto=True)
    assert config_file.config.thresholds == 31                    # the config file gave only the widths
    off = plan_training("iris", overrides={"widths": [30, 30]})    # the library default: no auto
    assert off.config.thresholds == ModelConfig.__dataclass_fields__["thresholds"].default and off.choices == []


def _tiny(**kw):
    return train(ModelConfig(n_features=4, classes=3, widths=[30, 30], thresholds=3), load_dataset("iris"),
                 progress=False, curve=False, device="cpu", **kw)


def test_a_plateau_ends_the_run_at_a_validation():
    # iris' validation split has 12 samples: at most 12 new bests, so 20-step patience must end 5,000 steps early.
    m = _tiny(steps=5000, eval_every=10, patience=20).metrics
    assert m["stopped"] == "plateau" and m["steps"] < 5000 and m["steps"] % 10 == 0
    assert m["steps"] - m["best_step"] >= 20


def test_a_budget_ends_the_run_before_it_would_overrun():
    m = _tiny(steps=5000, eval_every=10, time_limit=1e-6).metrics
    assert m["stopped"] == "budget" and m["steps"] == 10        # the first validation already overran it
    assert _tiny(steps=30, eval_every=10, time_limit=3600).metrics["stopped"] == "steps"


@pytest.mark.parametrize("bad", [{"time_limit": 0}, {"time_limit": "2m"}, {"patience": 0}, {"patience": 2.5}])
def test_train_refuses_bad_limits(bad):
    with pytest.raises(ConfigError):
        _tiny(steps=10, **bad)


def test_cli_says_what_it_chose_and_why(tmp_path):
    res = CliRunner().invoke(main, ["train", "--dataset", "iris", "--out", str(tmp_path / "m.safetensors"),
                                    "--widths", "60,30", "--budget", "3s", "--device", "cpu", "--json"],
                             catch_exceptions=False)
    assert res.exit_code == 0, res.output
    auto = [line for line in res.stderr.splitlines() if line.startswith("auto: ")]
    assert any("31 thresholds per feature" in line for line in auto), auto
    assert any("distributive" in line for line in auto) and any("3 s budget" in line for line in auto), auto
    assert not any("widths" in line for line in auto), auto      # given, so not chosen
    m = json.loads(res.stdout.strip().splitlines()[-1])
    assert m["stopped"] in ("budget", "plateau", "steps") and m["steps"] <= 5000
