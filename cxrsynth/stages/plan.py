"""``cxrsynth plan``: from records and splits, what a release will make (``plan.json``).

Per task (``normal-covid`` makes config ``g_nc``; ``pneumonia-covid`` makes ``g_pc``):

- the translator's training sets: ``per_domain`` (180) images of the source class and of COVID-19,
  drawn by seed from the *train* split among records that have pixels (a translator cannot learn from
  labels alone; a shortfall is reported);
- the images to translate: every train-split image of the source class. This count needs labels only,
  so the plan of the real 21,295-image release can be made from the RSNA metadata before any DICOM is
  downloaded; how many of them have pixels now is reported beside it;
- the test counts, and the training skew of every benchmark arm.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import __version__
from ..core.config import at_least, to_dict
from ..core.errors import ConfigError
from ..core.paths import write_json
from ..data.records import Record
from ..artifacts.plan import plan_sha256  # noqa: F401  (re-exported: the release and the benchmark import it here)
from ..core.schemas import validate
from .splits import skew
from ..core.vocab import TASK_CONFIG, TASK_LABELS, TASKS, own_and_other, plan_arm


@dataclass(frozen=True)
class PlanConfig:
    per_domain: int = 180  # translator training images per domain (the paper's 180)
    seed: int = 0

    def __post_init__(self):
        at_least("per_domain", self.per_domain, 1)
        at_least("seed", self.seed, 0)


def _draw(ids: list[str], n: int, seed: int, salt: int) -> list[str]:
    ids = sorted(ids)
    if len(ids) <= n:
        return ids
    rng = np.random.default_rng([seed, salt])
    return sorted(ids[i] for i in rng.choice(len(ids), size=n, replace=False))


def arms(task: str, negatives: int, covid: int, own: int, other: int) -> dict:
    """Training-set composition and skew of each benchmark arm (``vocab.ARMS``) for one task, keyed by
    the arm's plan spelling (``vocab.plan_arm``: ``real+g_nc`` ...); ``own`` and ``other`` are the
    image counts of the task's own config and of the other one."""
    both = own + other
    rows = {
        "real": (covid, 0),
        "real+own": (covid, own),
        "real+all": (covid, both),
        "synthetic-only": (0, own),  # the paper's Tables 1-2: the task's own translator only
        "synthetic-only-both": (0, both),
        "real-oversampled": (both + covid, 0),  # count-matched control: real COVID-19 repeated
    }
    return {plan_arm(task, arm): {"negatives": negatives, "positives_real": r, "positives_synthetic": s,
                                  "skew": skew(negatives, r + s)} for arm, (r, s) in rows.items()}


def make_plan(records: list[Record], splits: dict, cfg: PlanConfig = PlanConfig(), out_path=None) -> dict:
    assign = splits["assignments"]
    missing = [r.record_id for r in records if r.record_id not in assign]
    if missing:
        raise ConfigError(f"{len(missing)} records have no split (splits are from other records?)", missing[0],
                          "rerun `cxrsynth split` on this record table")

    def ids(label: str, split: str, pixels: bool | None = None) -> list[str]:
        return [r.record_id for r in records if r.label == label and assign[r.record_id] == split
                and (pixels is None or r.has_pixels == pixels)]

    covid_train = ids("covid", "train")
    tasks, translate_total, translate_pixels = {}, 0, 0
    for salt, task in enumerate(TASKS):
        src, config = TASK_LABELS[task][0], TASK_CONFIG[task]
        src_pix = ids(src, "train", True)
        covid_pix = ids("covid", "train", True)
        a = _draw(src_pix, cfg.per_domain, cfg.seed, 2 * salt)
        b = _draw(covid_pix, cfg.per_domain, cfg.seed, 2 * salt + 1)
        translate = ids(src, "train")
        src_pix_set = set(src_pix)
        with_pixels = [i for i in translate if i in src_pix_set]
        translate_total += len(translate)
        translate_pixels += len(with_pixels)
        tasks[task] = {
            "config": config, "source_label": src, "target_label": "covid",
            "translator_train": {"source": a, "covid": b, "n_source": len(a), "n_covid": len(b),
                                 "shortfall": {"source": cfg.per_domain - len(a), "covid": cfg.per_domain - len(b)}},
            "translate": {"n": len(translate), "with_pixels": len(with_pixels), "record_ids": translate},
            "train": {"negatives": len(translate), "covid": len(covid_train)},
            "validation": {"negatives": len(ids(src, "validation")), "covid": len(ids("covid", "validation"))},
            "test": {"negatives": len(ids(src, "test")), "covid": len(ids("covid", "test"))},
        }
    g = {t["config"]: t["translate"]["n"] for t in tasks.values()}
    for task, t in tasks.items():
        own, other = own_and_other(task)
        t["arms"] = arms(task, t["train"]["negatives"], len(covid_train), g[own], g[other])
    plan = {
        "kind": "cxrsynth.plan", "code_version": __version__, "config": to_dict(cfg),
        "split_method": splits["config"]["method"], "splits_sha256": splits["assignment_sha256"],
        "tasks": tasks,
        "totals": {"translate": translate_total, "translate_with_pixels": translate_pixels, "by_config": g},
    }
    validate(plan, "plan")
    if out_path is not None:
        write_json(out_path, plan)
    return plan


def format_plan(plan: dict) -> str:
    """The plan as a short human-readable table (what `cxrsynth plan` prints)."""
    lines = [f"Release plan ({plan['split_method']} split, {plan['config']['per_domain']} images per domain)"]
    for task, t in plan["tasks"].items():
        tt = t["translator_train"]
        lines += [
            f"\n{task} -> {t['config']}",
            f"  translator training set: {tt['n_source']} {t['source_label']} + {tt['n_covid']} covid"
            + (f"  (short by {tt['shortfall']['source']} / {tt['shortfall']['covid']}: too few images with pixels)"
               if tt["shortfall"]["source"] > 0 or tt["shortfall"]["covid"] > 0 else ""),
            f"  to translate: {t['translate']['n']:,} {t['source_label']} images ({t['translate']['with_pixels']:,} with pixels now)",
            f"  test: {t['test']['negatives']:,} {t['source_label']}, {t['test']['covid']:,} covid;"
            f" validation: {t['validation']['negatives']:,} {t['source_label']}, {t['validation']['covid']:,} covid",
            "  arm                         negatives  real+  synth+   skew",
        ]
        for name, a in t["arms"].items():
            sk = "-" if a["skew"] is None else f"{a['skew']:.2f}"
            lines.append(f"  {name:26s} {a['negatives']:>10,} {a['positives_real']:>6,} {a['positives_synthetic']:>7,} {sk:>6}")
    tot = plan["totals"]
    by = ", ".join(f"{k} {v:,}" for k, v in tot["by_config"].items())
    lines.append(f"\nTotal to translate: {tot['translate']:,} ({by}); {tot['translate_with_pixels']:,} have pixels now")
    return "\n".join(lines)
