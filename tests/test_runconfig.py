"""One run configuration for run.py, the pipeline and the CLI: checked once, overridable."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from archft.core.errors import ConfigError
from archft.runconfig import RunConfig, load_run_config

ROOT = Path(__file__).resolve().parents[1]


def test_round_trip_and_defaults():
    config = RunConfig()
    assert RunConfig.from_dict(config.to_dict()) == config
    assert RunConfig.from_dict({}) == config  # every section has defaults
    assert config.search.budget == 200 and config.data.image_size == 32


@pytest.mark.parametrize("data, message", [
    ({"search_config": {}}, "unknown parameter 'search_config' (renamed to 'search')"),
    ({"serch": {}}, "unknown parameter 'serch'"),
    ({"search": {"budjet": 5}}, "unknown search option 'budjet'"),
    ({"data": {"sorce": "digits"}}, "unknown data option 'sorce'"),
    ({"space": {"scope": "tiny"}}, "unknown scope 'tiny'"),
    ({"validation": {"min_train_images_per_class": 0}}, "must be a positive integer"),
    ({"finetune": 3}, "parameters.finetune must be a mapping"),
    ({"vanilla": "yes"}, "vanilla must be true or false"),
])
def test_bad_fields_are_named(data, message):
    with pytest.raises(ConfigError, match="^cfg.yaml: ") as e:
        RunConfig.from_dict(data, "cfg.yaml")
    assert message in str(e.value)


def test_overrides_reach_every_field():
    config = RunConfig().with_overrides(["search.early_stop.tau=0.8", "space.kernels=[3,5]",
                                         "data.flip=false", "finetune.features.views=2",
                                         "vanilla=false"])
    assert config.search.early_stop.tau == 0.8 and config.space.kernels == (3, 5)
    assert config.data.flip is False and config.finetune.features.views == 2
    assert config.vanilla is False
    for pair, message in (("search.budjet=5", "names no field"), ("budget", "key=value"),
                          ("search.budget=0", "budget must be a positive integer")):
        with pytest.raises(ConfigError, match=message):
            RunConfig().with_overrides([pair])


def test_scalar_fields_are_type_checked():
    """YAML 1.1 reads 3e-3 (no dot) as a string: a float field takes it as the number; a value
    of the wrong type is named instead of failing later inside torch."""
    config = RunConfig().with_overrides(["search.controller_lr=3e-3", "finetune.lr=1",
                                         "search.early_stop.min_top_p=0.5"])
    assert config.search.controller_lr == 0.003 and isinstance(config.finetune.lr, float)
    assert config.search.early_stop.min_top_p == 0.5
    for pair, message in (("search.controller_lr=fast", "'controller_lr' must be a number"),
                          ("search.budget=2.5", "'budget' must be an integer"),
                          ("search.early_stop.dry_run=3", "'dry_run' must be true/false"),
                          ("search.early_stop.min_top_p=1.5", "min_top_p must be a number in"),
                          ("space.base=7", "'base' must be a string")):
        with pytest.raises(ConfigError, match=message):
            RunConfig().with_overrides([pair])


@pytest.mark.parametrize("name", sorted(c.name for c in (ROOT / "configs").glob("*.yaml")))
def test_every_shipped_config_loads(name):
    config = load_run_config(ROOT / "configs" / name)
    assert config.space.base in ("efficientnet_lite0", "resnet18", "resnet50")


def test_cli_takes_a_config_flags_and_overrides(tmp_path):
    """The file gives the defaults, flags win over it, --set wins over both."""
    out = tmp_path / "search"
    proc = subprocess.run(
        [sys.executable, "-m", "archft.cli", "search", "--config",
         str(ROOT / "configs" / "smoke.yaml"), "--budget", "3", "--strategy", "random",
         "--set", "search.strategy=reinforce", "search.controller_steps=1", "--out", str(out)],
        capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["search_budget"] == 3  # the flag over the file's 12
    assert summary["strategy"] == "reinforce"  # --set over the flag
    assert summary["config"]["checkpoint_every"] == 5  # the file's, not the default 50
    assert summary["controller_updates"] == 3  # one per step (--set), none in the file


def test_cli_config_errors_are_one_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("parameters:\n  search: {budjet: 5}\n")
    proc = subprocess.run([sys.executable, "-m", "archft.cli", "search", "--config", str(bad),
                           "--out", str(tmp_path / "s")], capture_output=True, text=True)
    assert proc.returncode == 1 and proc.stderr.strip().count("\n") == 0
    assert f"{bad}: unknown search option 'budjet'" in proc.stderr
