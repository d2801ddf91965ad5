"""Numbers that would silently mean something else are refused, with the field named (issue 15).

Each case ran on main and did something else: ``train --max-steps 0`` started the full schedule,
``generate --limit -3`` made all but the last 3, ``--world 0`` divided by zero, ``--rank 3 --world 2``
exited 0 having made nothing, ``--generator bogus-task=...`` was ignored, and so on. Now each is one
``Error:`` line naming the option, exit code 1, before any work (the work folder is empty here, so
the old code got past the option and failed later on something else, or not at all).
"""

from __future__ import annotations

import pytest

from cxrsynth.cli import main
from cxrsynth.core.config import resolve
from cxrsynth.core.errors import ConfigError

from .conftest import error_lines

pytestmark = pytest.mark.no_data


def _error(capsys, *argv) -> str:
    with pytest.raises(SystemExit) as exc:
        main(list(argv))
    err = error_lines(capsys.readouterr().err)
    assert exc.value.code == 1, err
    assert len(err) == 1 and err[0].startswith("Error: "), err
    return err[0]


@pytest.mark.parametrize("argv, expected", [
    (["train", "--task", "normal-covid", "--max-steps", "0"], "max_steps must be at least 1 (0)"),
    (["train", "--task", "normal-covid", "--max-steps", "-5"], "max_steps must be at least 1 (-5)"),
    (["train", "--task", "normal-covid", "--size", "0"], "size must be at least 16 (0)"),
    (["train", "--task", "normal-covid", "--size", "-64"], "size must be at least 16 (-64)"),
    (["train", "--task", "normal-covid", "--set", "base=-8"], "base must be at least 1 (-8)"),
    (["train", "--task", "normal-covid", "--set", "lr=-0.1"], "lr must be above 0 (-0.1)"),
    (["train", "--task", "normal-covid", "--set", "batch_size=0"], "batch_size must be at least 1 (0)"),
    (["generate", "--limit", "-3"], "limit must be at least 1 (-3)"),
    (["generate", "--limit", "0"], "limit must be at least 1 (0)"),
    (["generate", "--batch-size", "0"], "batch_size must be at least 1 (0)"),
    (["generate", "--world", "0"], "world (the number of processes) must be at least 1 (0)"),
    (["generate", "--rank", "3", "--world", "2"], "rank must be between 0 and world - 1 = 1 (3)"),
    (["generate", "--rank", "-1", "--world", "2"], "rank must be between 0 and world - 1 = 1 (-1)"),
    (["generate", "--generator", "bogus-task=x.safetensors"], "--generator: unknown task 'bogus-task'"),
    (["generate", "--generator", "normal-covid"], "--generator takes TASK=PATH (normal-covid)"),
    (["plan", "--per-domain", "0"], "per_domain must be at least 1 (0)"),
    (["benchmark", "--limit", "0"], "limit must be at least 1 (0)"),
    (["benchmark", "--max-epochs", "0"], "max_epochs must be at least 1 (0)"),
    (["benchmark", "--image-size", "-5"], "image_size must be at least 16 (-5)"),
    (["benchmark", "--set", "fit.batch_size=0"], "batch_size must be at least 1 (0)"),
    (["benchmark", "--set", "fit.lr=-1"], "lr must be above 0 (-1.0)"),
    (["benchmark", "--translator", "normal-covid"], "--translator takes TASK=PATH (normal-covid)"),
    (["release", "--translator", "normal-covid"], "--translator takes TASK=PATH (normal-covid)"),
    (["release", "--translator", "pneumonia=x"], "--translator: unknown task 'pneumonia'"),
    (["split", "--seed", "-1"], "seed must be at least 0 (-1)"),
])
def test_bad_number_is_one_error_line(argv, expected, tmp_path, capsys):
    line = _error(capsys, "-w", str(tmp_path / "wd"), *argv)
    assert expected in line
    assert not (tmp_path / "wd" / "generated").exists()  # refused before any work


def test_generator_path_must_exist(tmp_path, capsys):
    line = _error(capsys, "-w", str(tmp_path), "generate", "--generator", f"normal-covid={tmp_path / 'nope'}")
    assert "no such file or folder" in line and str(tmp_path / "nope") in line


@pytest.mark.parametrize("text", ["0.6,0.2,0.2", "[0.6, 0.2, 0.2]", "0.6, 0.2, 0.2"])
def test_lists_take_both_forms(text):
    from cxrsynth.stages.splits import SplitConfig

    assert resolve(SplitConfig, overrides=[f"fractions={text}"]).fractions == (0.6, 0.2, 0.2)


def test_text_lists_stay_text():
    from cxrsynth.stages.benchmark.run import BenchmarkConfig

    assert resolve(BenchmarkConfig, overrides=["tasks=normal-covid,pneumonia-covid"]).tasks == (
        "normal-covid", "pneumonia-covid")
    with pytest.raises(ConfigError, match="fractions must be a number"):
        from cxrsynth.stages.splits import SplitConfig

        resolve(SplitConfig, overrides=["fractions=0.6,x,0.4"])


@pytest.mark.parametrize("cls, override, message", [
    ("cxrsynth.stages.translate.train:TrainConfig", "keep_checkpoints=0", "keep_checkpoints must be at least 1"),
    ("cxrsynth.stages.translate.train:TrainConfig", "blocks=0", "blocks must be at least 1"),
    ("cxrsynth.stages.translate.train:TrainConfig", "beta1=1.0", "beta1 must be in [0, 1)"),
    ("cxrsynth.stages.translate.train:TrainConfig", "lambda_cycle=-1", "lambda_cycle must be at least 0"),
    ("cxrsynth.stages.translate.train:TrainConfig", "save_every=0", "save_every must be at least 1"),
    ("cxrsynth.stages.generate:GenerateConfig", "shard_size=0", "shard_size must be at least 1"),
    ("cxrsynth.stages.generate:GenerateConfig", "workers=-1", "workers must be at least 0"),
    ("cxrsynth.stages.plan:PlanConfig", "seed=-2", "seed must be at least 0"),
    ("cxrsynth.stages.benchmark.run:BenchmarkConfig", "seeds=0", "seeds must be at least 1"),
    ("cxrsynth.stages.benchmark.run:BenchmarkConfig", "bootstrap=-1", "bootstrap must be at least 0"),
])
def test_config_dataclasses_check_their_numbers(cls, override, message):
    import importlib

    mod, name = cls.split(":")
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")):
        resolve(getattr(importlib.import_module(mod), name), overrides=[override])


def test_defaults_still_build():
    from cxrsynth.stages.benchmark.run import BenchmarkConfig
    from cxrsynth.stages.generate import GenerateConfig
    from cxrsynth.stages.plan import PlanConfig
    from cxrsynth.stages.splits import SplitConfig
    from cxrsynth.stages.translate.train import TrainConfig

    for cls in (TrainConfig, GenerateConfig, PlanConfig, SplitConfig, BenchmarkConfig):
        resolve(cls)
    assert resolve(TrainConfig, overrides=["max_steps=1", "size=16", "lambda_identity=0"]).max_steps == 1
