"""One vocabulary (cxrsynth/core/vocab.py): tasks, configs, arms, and the mappings between arm spellings."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from cxrsynth.core import vocab
from cxrsynth.core.errors import ConfigError
from cxrsynth.core.vocab import ARMS, CONFIG_TASK, CONFIGS, TASK_CONFIG, TASKS, arm_parts, concrete_arm, plan_arm

pytestmark = pytest.mark.no_data

PACKAGE = Path(__file__).resolve().parent.parent / "cxrsynth"


def test_tasks_and_configs_agree():
    assert TASKS == ("normal-covid", "pneumonia-covid")
    assert CONFIGS == ("g_nc", "g_pc")
    assert {TASK_CONFIG[CONFIG_TASK[c]] for c in CONFIGS} == set(CONFIGS)
    assert vocab.SOURCE_LABEL == {"g_nc": "normal", "g_pc": "pneumonia"}
    assert all(vocab.TASK_LABELS[t] == (t.split("-")[0], "covid") for t in TASKS)


def test_no_module_spells_a_task_or_config_list_itself():
    """Tasks and configs are defined once: no other module writes them as literals in code."""
    literal = re.compile(r"""["'](?:normal-covid|pneumonia-covid|g_nc|g_pc)["']""")
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "vocab.py":
            continue
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if "``" not in line and literal.search(line.split("#", 1)[0]):  # docs may give examples
                found.append(f"{path.name}:{n}: {line.strip()}")
    assert found == []


CONCRETE = {  # in ARMS order
    "normal-covid": ["real", "real+g_nc", "real+g_nc+g_pc", "synthetic-only (g_nc)", "synthetic-only (g_nc+g_pc)",
                     "real-oversampled", "real+null"],
    "pneumonia-covid": ["real", "real+g_pc", "real+g_pc+g_nc", "synthetic-only (g_pc)", "synthetic-only (g_nc+g_pc)",
                        "real-oversampled", "real+null"],
}


@pytest.mark.parametrize("task", TASKS)
def test_concrete_arm(task):
    """The benchmark's tables name arms this way (results.json ``concrete_arm``)."""
    assert [concrete_arm(task, arm) for arm in ARMS] == CONCRETE[task]


@pytest.mark.parametrize("task", TASKS)
def test_every_arm_spelling_means_the_same_images(task):
    """The benchmark's name, its concrete spelling and the plan's key all read as the same arm (real+null is
    built by the benchmark alone: no release or plan spelling)."""
    own = TASK_CONFIG[task]
    want = {"real": (True, {()}, False), "real+own": (True, {(own,)}, False),
            "real+all": (True, {CONFIGS, CONFIGS[::-1]}, False), "synthetic-only": (False, {(own,)}, False),
            "synthetic-only-both": (False, {CONFIGS, CONFIGS[::-1]}, False), "real-oversampled": (True, {()}, True)}
    for arm in (a for a in ARMS if a != "real+null"):
        for spelling in (concrete_arm(task, arm), plan_arm(task, arm)):
            real, configs, over = arm_parts(spelling)
            assert (real, over) == (want[arm][0], want[arm][2]) and configs in want[arm][1], spelling


def test_plan_keys_keep_their_spelling():
    """Plan files key arms as they always have (a release records the plan's checksum)."""
    assert plan_arm("pneumonia-covid", "synthetic-only-both") == "synthetic-only (g_pc+g_nc)"
    assert plan_arm("normal-covid", "synthetic-only-both") == "synthetic-only (g_nc+g_pc)"
    assert [plan_arm("normal-covid", a) for a in ARMS][:3] == ["real", "real+g_nc", "real+g_nc+g_pc"]


def test_loader_synthetic_only_means_the_benchmarks():
    """One meaning per arm name: ``synthetic-only`` is the task's own config in the loader too; without a
    task it names no configs."""
    from cxrsynth.stages.load.loader import parse_arm

    assert parse_arm("synthetic-only", "pneumonia-covid") == (False, ("g_pc",), False)
    assert parse_arm("synthetic-only-both", "pneumonia-covid") == (False, CONFIGS, False)
    with pytest.raises(ConfigError, match="unknown arm"):
        parse_arm("synthetic-only")
    # a benchmark arm name is made concrete for the task
    assert parse_arm("real+own", "pneumonia-covid") == (True, ("g_pc",), False)
    assert parse_arm("real+g_pc+g_nc") == (True, ("g_pc", "g_nc"), False)


@pytest.mark.parametrize("bad", ["real+g_nc+g_nc", "real+g_xx", "real+", "synthetic", "synthetic-only ()",
                                 "real+own"])
def test_unknown_arms_fail(bad):
    with pytest.raises(ConfigError, match="unknown arm"):
        arm_parts(bad)


def test_unknown_task_or_arm_named():
    with pytest.raises(ConfigError, match="unknown task"):
        concrete_arm("covid-normal", "real")
    with pytest.raises(ConfigError, match="unknown arm"):
        concrete_arm("normal-covid", "real+mine")


def test_cli_choices_come_from_the_vocabulary():
    from cxrsynth.cli import cli

    opts = {p.name: p for p in cli.commands["benchmark"].params}
    assert tuple(opts["tasks"].type.choices) == TASKS and tuple(opts["arms"].type.choices) == ARMS
    assert tuple({p.name: p for p in cli.commands["train"].params}["task"].type.choices) == TASKS
