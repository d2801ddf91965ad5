"""The words every stage shares: tasks, synthetic configs and benchmark arms.

They used to be spelt out in a dozen modules (and the CLI's choices), with three spellings for arms.
Now this module is the only definition; the CLI, plan, train, generate, loader, benchmark, audit and
card import it.

- A **task** is one translation, named ``<source label>-covid``: ``normal-covid`` and ``pneumonia-covid``.
- A **config** is the synthetic image set one task's translator makes: ``g_nc`` (from normal images)
  and ``g_pc`` (from pneumonia images); a release has one Hub config per synthetic config.
- An **arm** is what a benchmark classifier trains on. :data:`ARMS` are the names users see (CLI
  ``--arm``, tables, results.json): generic, so one list serves both tasks. For one task an arm has a
  *concrete* spelling that names its configs (:func:`concrete_arm`): ``real+own`` for ``normal-covid``
  is ``real+g_nc``. The plan's arm table uses the concrete spellings (they are in published plan files),
  :func:`cxrsynth.load` takes either (a name means there what it means in the benchmark), and
  :func:`arm_parts` reads the concrete ones.
"""

from __future__ import annotations

from typing import Literal, get_args

from .errors import ConfigError

#: A translation task; the ``Literal`` types config fields (``TrainConfig.task``), :data:`TASKS` lists it.
Task = Literal["normal-covid", "pneumonia-covid"]
TASKS: tuple[str, ...] = get_args(Task)

#: task -> (negative label, positive label): the two domains a translator maps between, and the two
#: classes of the task's benchmark classifier.
TASK_LABELS: dict[str, tuple[str, str]] = {"normal-covid": ("normal", "covid"), "pneumonia-covid": ("pneumonia", "covid")}

#: synthetic config -> the task whose translator makes it (in release order).
CONFIG_TASK: dict[str, str] = {"g_nc": "normal-covid", "g_pc": "pneumonia-covid"}
CONFIGS: tuple[str, ...] = tuple(CONFIG_TASK)
#: task -> its own synthetic config.
TASK_CONFIG: dict[str, str] = {task: config for config, task in CONFIG_TASK.items()}
#: synthetic config -> the label of the real images it translates.
SOURCE_LABEL: dict[str, str] = {config: TASK_LABELS[task][0] for config, task in CONFIG_TASK.items()}

#: The null-translator control: the train negatives the task's translator translates, put through a
#: trivial transform (blur and contrast, ``benchmark/null_arm.py``) and labelled COVID-19, at the count of
#: ``real+own``'s synthetic images. It tells "the translator adds COVID-19 features" from "any transform of
#: a negative labelled COVID-19 does as well". Benchmark-only: it is built from the work folder, never
#: published, so :func:`cxrsynth.load` does not offer it.
NULL_ARM = "real+null"

#: The benchmark arms, as users name them, in table order.
ARMS: tuple[str, ...] = ("real", "real+own", "real+all", "synthetic-only", "synthetic-only-both", "real-oversampled",
                         NULL_ARM)

#: Arm names whose meaning in ``cxrsynth.load`` changed -> the name of their old meaning. Each arm name
#: has one meaning everywhere: ``cxrsynth.load(task, "synthetic-only")`` meant both configs (the
#: benchmark's ``synthetic-only-both``) and now means the task's own config, as the benchmark's
#: ``synthetic-only`` does; ``cxrsynth.load`` warns (FutureWarning) when it is used, naming both spellings.
CHANGED_MEANING: dict[str, str] = {"synthetic-only": "synthetic-only-both"}


def check_task(task: str) -> str:
    if task not in TASKS:
        raise ConfigError("unknown task", task, f"use one of {', '.join(TASKS)}")
    return task


def other_config(config: str) -> str:
    """The other task's config (``g_nc`` <-> ``g_pc``)."""
    return next(c for c in CONFIGS if c != config)


def own_and_other(task: str) -> tuple[str, str]:
    """(the task's own config, the other one), the order of ``real+all``'s concrete name."""
    own = TASK_CONFIG[check_task(task)]
    return own, other_config(own)


def concrete_arm(task: str, arm: str) -> str:
    """The spelling of benchmark arm ``arm`` for ``task``, naming its configs: ``real+own`` ->
    ``real+g_nc`` for normal-covid, ``synthetic-only`` -> ``synthetic-only (g_nc)``."""
    own, other = own_and_other(task)
    names = {"real": "real", "real+own": f"real+{own}", "real+all": f"real+{own}+{other}",
             "synthetic-only": f"synthetic-only ({own})", "synthetic-only-both": f"synthetic-only ({'+'.join(CONFIGS)})",
             "real-oversampled": "real-oversampled", NULL_ARM: NULL_ARM}
    if arm not in names:
        raise ConfigError("unknown arm", arm, f"use {', '.join(ARMS)}")
    return names[arm]


def plan_arm(task: str, arm: str) -> str:
    """The key of arm ``arm`` in the plan's arm table: :func:`concrete_arm`, except that
    ``synthetic-only-both`` names the task's own config first (``synthetic-only (g_pc+g_nc)`` for
    pneumonia-covid), as plan files have always had it; a new spelling would change their checksum,
    which releases record."""
    if arm == "synthetic-only-both":
        own, other = own_and_other(task)
        return f"synthetic-only ({own}+{other})"
    return concrete_arm(task, arm)


def arm_parts(arm: str) -> tuple[bool, tuple[str, ...], bool]:
    """A concrete arm -> (real COVID-19 used, synthetic configs in order, real COVID-19 oversampled).
    ``real+g_nc+g_pc`` and ``real+g_pc+g_nc`` are the same arm. A benchmark name that depends on the
    task (``synthetic-only``, ``real+own``) is not concrete: :func:`concrete_arm` first."""
    if arm == NULL_ARM:
        raise ConfigError("real+null is a benchmark control, not a release arm", arm,
                          "the benchmark builds it (cxrsynth benchmark --arm real+null)")
    if arm in ("real", "real-oversampled"):
        return True, (), arm == "real-oversampled"
    if arm.startswith("synthetic-only (") and arm.endswith(")"):
        use_real, configs = False, arm[len("synthetic-only ("):-1].split("+")
    elif arm.startswith("real+"):
        use_real, configs = True, arm.split("+")[1:]
    else:
        configs = []
    if not configs or not set(configs) <= set(CONFIGS) or len(set(configs)) != len(configs):
        raise ConfigError("unknown arm", arm, "use real, real+g_nc, real+g_pc, real+g_nc+g_pc, synthetic-only (g_nc), "
                          "synthetic-only (g_pc), synthetic-only (g_nc+g_pc) or real-oversampled (or, with the task "
                          f"given, a benchmark arm: {', '.join(ARMS)})")
    return use_real, tuple(configs), False
