"""The CLI's own words: every option has help, each command's ``--set`` example is a key of that command's
config, and a stage run before its inputs exist says which command makes them."""

from __future__ import annotations

import re

import click
import pytest

from cxrsynth.cli import cli

from .conftest import cli_error_line


def test_every_visible_option_has_help():
    missing = [f"{name} {p.opts[0]}" for name, cmd in cli.commands.items() for p in cmd.params
               if isinstance(p, click.Option) and not p.hidden and not p.help]
    assert missing == []


def _resolvers():
    from cxrsynth.stages.audit.run import AuditConfig
    from cxrsynth.stages.benchmark.run import BenchmarkConfig
    from cxrsynth.core.config import resolve
    from cxrsynth.stages.generate import GenerateConfig
    from cxrsynth.stages.ingest import IngestConfig
    from cxrsynth.pipeline import resolve_pipeline
    from cxrsynth.stages.plan import PlanConfig
    from cxrsynth.stages.splits import SplitConfig
    from cxrsynth.stages.translate.train import resolve_train_config

    plain = {"ingest": IngestConfig, "split": SplitConfig, "plan": PlanConfig, "generate": GenerateConfig,
             "benchmark": BenchmarkConfig, "audit": AuditConfig}
    out = {name: (lambda ov, c=c: resolve(c, overrides=ov)) for name, c in plain.items()}
    out["train"] = lambda ov: resolve_train_config(None, ov)
    out["release"] = lambda ov: resolve_pipeline(None, ov)
    return out


@pytest.mark.parametrize("command", ["ingest", "split", "plan", "train", "generate", "release", "benchmark", "audit"])
def test_set_example_is_a_key_of_this_command(command):
    opt = next(p for p in cli.commands[command].params if p.name == "overrides")
    example = re.search(r"e\.g\. --set (\S+)\.$", opt.help).group(1)
    key, value = example.split("=", 1)
    cfg = _resolvers()[command]([example])
    node = cfg
    for part in key.split("."):
        node = node[part] if isinstance(node, dict) else getattr(node, part)
    assert str(node).replace(" ", "").strip("()[]") == value.strip("[]") or float(node) == float(value), (example, node)


@pytest.mark.parametrize("command", [["train", "--task", "normal-covid"], ["generate"]])
def test_a_stage_without_a_plan_names_the_command_that_makes_it(command, tmp_path, capsys):
    line = cli_error_line(capsys, ["-w", str(tmp_path), *command])
    assert "plan.json" in line and "run `cxrsynth plan` first" in line
