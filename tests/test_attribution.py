"""What the translator adds (issue 20): the null-translator arm, each arm against real and real-oversampled
with its step budget, and the prior-shift reading of the 0.5 cut."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from cxrsynth.artifacts import SplitData
from cxrsynth.stages.benchmark.attribution import prior_shift, prior_shift_lines
from cxrsynth.stages.benchmark.null_arm import CONTRAST, SIGMA_SHARE, null_transform, parameters
from cxrsynth.stages.benchmark.run import BenchmarkConfig, run_benchmark
from cxrsynth.core.config import resolve
from cxrsynth.core.errors import ConfigError
from cxrsynth.core.vocab import NULL_ARM, concrete_arm

from .test_benchmark import TINY


def test_null_transform_is_the_stated_blur_and_contrast():
    rng = np.random.default_rng(3)
    img = rng.integers(0, 256, (32, 32)).astype(np.uint8)
    sigma, contrast = parameters("covid-0001", 32)
    assert SIGMA_SHARE[0] * 32 <= sigma <= SIGMA_SHARE[1] * 32 and CONTRAST[0] <= contrast <= CONTRAST[1]
    assert parameters("covid-0001", 32) == (sigma, contrast) and parameters("covid-0002", 32) != (sigma, contrast)
    blurred = gaussian_filter(img.astype(float), sigma)
    want = np.clip(np.rint(blurred.mean() + contrast * (blurred - blurred.mean())), 0, 255)
    out = null_transform(img, "covid-0001")
    assert out.dtype == np.uint8 and np.array_equal(out, want)
    assert np.abs(out.astype(int) - img).mean() > 1  # not the source (at 32 px the blur is under half a pixel)


def test_null_arm_is_benchmark_only():
    assert concrete_arm("normal-covid", NULL_ARM) == NULL_ARM
    from cxrsynth.stages.load.loader import parse_arm

    with pytest.raises(ConfigError, match="benchmark control"):
        parse_arm(NULL_ARM, "normal-covid")


def _run(seed, scores, labels):
    from cxrsynth.measure import metrics as M

    return {"seed": seed, "test_labels": labels, "test_scores": scores, "test": {"auroc": M.auroc(labels, scores)}}


def test_prior_shift_named_when_sensitivity_rises_and_auroc_does_not():
    labels = [0, 0, 0, 0, 1, 1, 1, 1]
    real = [0.1, 0.2, 0.3, 0.6, 0.35, 0.4, 0.45, 0.7]  # sensitivity at 0.5: 1/4
    shifted = [s + 0.2 for s in real]  # same ranking, every score up: sensitivity 4/4, specificity 3/4 -> 2/4
    better = [0.1, 0.2, 0.3, 0.4, 0.6, 0.7, 0.8, 0.9]  # a better ranking
    rows = prior_shift({"real": [_run(0, real, labels)], "real+own": [_run(0, shifted, labels)],
                        "real+all": [_run(0, better, labels)]})
    assert rows["real"]["prior_shift"] is False
    own = rows["real+own"]
    assert own["sensitivity_vs_real"] == pytest.approx(0.75) and own["auroc_vs_real"] == pytest.approx(0)
    assert own["specificity_vs_real"] == pytest.approx(-0.25) and own["prior_shift"] is True
    assert rows["real+all"]["auroc_vs_real"] > 0 and rows["real+all"]["prior_shift"] is False
    text = "\n".join(prior_shift_lines("normal-covid", rows, {a: a for a in rows}))
    assert "real+own: sensitivity at 0.5 rises by +75.0 points" in text and "real+all: sensitivity" not in text


ARMS = ["real", "real+own", "real-oversampled", NULL_ARM]


@pytest.fixture(scope="module")
def null_bench(rigorous):
    """The null arm, real+own and both references, 2 seeds, normal-covid: read from the session's rigorous
    benchmark (conftest.py), which runs every arm of both tasks with this same tiny config (TINY, 2 seeds),
    instead of training those 8 classifiers a second time."""
    wd, out, summary = rigorous
    return wd, summary["release"], out, summary


def test_null_arm_built_from_the_translators_sources(built):
    from cxrsynth.stages.benchmark.arms import train_set
    from cxrsynth.data.images import load_canonical
    from cxrsynth.core.paths import read_json
    from cxrsynth.data.records import read_records

    wd, rel, _ = built
    data = SplitData.read(wd)
    own = train_set(data, "normal-covid", "real+own", str(rel), 32, None)
    null = train_set(data, "normal-covid", NULL_ARM, str(rel), 32, None)
    real = train_set(data, "normal-covid", "real", str(rel), 32, None)
    n_syn = own.origins.count("synthetic")
    assert n_syn > 0 and null.origins.count("null") == n_syn and null.origins.count("synthetic") == 0
    assert len(null) == len(real) + n_syn and null.real == real.real
    assert null.labels[len(real):] == [1] * n_syn  # labelled COVID-19
    # the sources: the plan's translate list (with pixels, in order): the same negatives real+own's images came from
    by_id = {r.record_id: r for r in read_records(wd / "records.parquet")}
    planned = [i for i in read_json(wd / "plan.json")["tasks"]["normal-covid"]["translate"]["record_ids"]
               if by_id[i].has_pixels][:n_syn]
    assert [rid for rid, _ in null.synthetic[0].sources] == planned
    assert all(by_id[i].label == "normal" for i in planned)
    real_paths = {p for p, lab in real.real if lab == 0}
    for k in (0, n_syn - 1):
        rid = planned[k]
        src = load_canonical(by_id[rid].path, 32)
        x, y = null[len(real) + k]
        assert y == 1 and str(by_id[rid].path) in real_paths  # a train negative, now also a positive
        got = np.rint(x.numpy()[0] * 255).astype(np.uint8)
        assert np.array_equal(got, null_transform(src, rid)) and not np.array_equal(got, src)
    capped = train_set(data, "normal-covid", NULL_ARM, str(rel), 32, 6)  # --limit caps it as the synthetic arms
    assert capped.origins.count("null") == 6 and capped.labels.count(0) == 6


def test_null_arm_scored_and_every_arm_against_both_references(null_bench):
    wd, rel, out, summary = null_bench
    arms = summary["summary"]["normal-covid"]
    assert [a for a in arms if a in ARMS] == ARMS  # in the configured order (the grid holds every arm)
    runs_nc = [r for r in summary["runs"] if r["task"] == "normal-covid"]
    null_runs = [r for r in runs_nc if r["arm"] == NULL_ARM]
    assert len(null_runs) == 2 and all(r["train"]["positives_null"] == 6 and r["train"]["positives_synthetic"] == 0
                                       for r in null_runs)
    assert all(r["test"]["auroc"] is not None for r in null_runs)
    for arm in ("real+own", NULL_ARM):
        for key, ref in (("auroc_vs_real", "real"), ("auroc_vs_oversampled", "real-oversampled")):
            d = arms[arm][key]
            assert d["seeds_paired"] == 2
            assert d["difference"] == pytest.approx(arms[arm]["auroc"]["mean"] - arms[ref]["auroc"]["mean"])
    assert "auroc_vs_oversampled" not in arms["real-oversampled"] and "auroc_vs_real" not in arms["real"]
    for arm in ARMS:  # the budget, per arm: 1 epoch, steps = ceil(train n / batch 16)
        s = arms[arm]
        runs = [r for r in runs_nc if r["arm"] == arm]
        b = s["budget"]
        assert b["steps"]["mean"] == pytest.approx(np.mean([-(-r["train"]["n"] // 16) for r in runs]))
        assert b["epochs_run"]["mean"] == 1 and b["best_at_last_epoch"] == 2 and b["seeds"] == 2
        assert set(s["at_0.5"]) >= {"sensitivity_at_0.5", "specificity_at_0.5", "auroc", "prior_shift"}
    assert arms["real-oversampled"]["budget"]["steps"]["mean"] > arms["real"]["budget"]["steps"]["mean"]
    table = (out / "tables.md").read_text()
    assert "what the synthetic images add" in table and "the prior-shift reading" in table and "real+null" in table
    csv_head = (out / "tables.csv").read_text().splitlines()[0]
    assert "auroc_vs_oversampled" in csv_head and "steps_mean" in csv_head


def test_paper_protocol_tables_show_no_intervals(null_bench):
    from cxrsynth.stages.benchmark.report import NO_INTERVALS, tables

    wd, rel, out, _ = null_bench
    summary = json.loads((out / "results.json").read_text())
    md, _ = tables(summary)
    assert "[" in md and NO_INTERVALS not in md  # rigorous: intervals shown
    md, rows = tables(summary | {"protocol": "paper"})
    # no interval anywhere, the external set's included; only column headers name them
    assert NO_INTERVALS in md and " [" not in md.replace("[95% CI]", "").replace("[patient CI]", "")
    assert all(c == "" for r in rows[1:] for h, c in zip(rows[0], r) if h.endswith("ci95"))


def test_select_on_validation_never_scores_test(built, tmp_path, monkeypatch):
    """Judging translators: only the validation split is read and scored; test never is."""
    from cxrsynth.stages.benchmark import run as R
    from cxrsynth.core.paths import read_json

    wd, rel, _ = built
    asked = []
    real_eval_items = R.eval_items

    def spy(data, task, split, limit=None):
        asked.append(split)
        return real_eval_items(data, task, split, limit)

    monkeypatch.setattr(R, "eval_items", spy)
    cfg = resolve(BenchmarkConfig, overrides=TINY + ["tasks=normal-covid", "arms=real,real+null", "seeds=1",
                                                     "select_on=validation"])
    summary = run_benchmark(wd, tmp_path / "val", cfg, release=str(rel))
    assert asked and set(asked) == {"validation"}
    assign = read_json(wd / "splits.json")["assignments"]
    for r in json.loads((tmp_path / "val" / "results.json").read_text())["runs"]:
        assert r["scored_split"] == "validation"
    for res in (tmp_path / "val" / "runs").rglob("result.json"):
        assert {assign[i] for i in json.loads(res.read_text())["test_record_ids"]} == {"validation"}
    assert summary["controls"] is None and any("VALIDATION ONLY" in n for n in summary["notices"])
    assert "VALIDATION ONLY" in (tmp_path / "val" / "tables.md").read_text()
    with pytest.raises(ConfigError, match="rigorous"):
        resolve(BenchmarkConfig, overrides=["select_on=validation", "protocol=paper"])


def test_paper_protocol_shows_an_external_sensitivity_without_calling_it_unmeasurable():
    """The paper protocol withholds intervals; an external set's readability is still judged by its interval
    (found in the eleventh session: the paper protocol's tables said "not measurable (71 patients)" for
    the Hannover set, whose interval spans 23 points)."""
    from cxrsynth.stages.benchmark.report import _external_cells, without_intervals

    def entry(ci, patients):
        return {"sensitivity": {"mean": 0.537, "std": 0.0, "n": 1}, "specificity": {"mean": None},
                "auroc": {"mean": None}, "n_positive_patients": patients, "sensitivity_patient_ci95": ci}

    readable = without_intervals({"hannover": entry([0.407, 0.636], 71)})["hannover"]
    assert readable["sensitivity_patient_ci95"] is None
    sens, drop = _external_cells(readable, 0.61)[:2]
    assert sens == "53.70" and drop == "-7.3"
    wide = without_intervals({"hannover": entry([0.1, 0.9], 6)})["hannover"]
    assert _external_cells(wide, 0.61)[:2] == ["not measurable (6 patients)", "-"]
    assert _external_cells(entry([0.407, 0.636], 71), 0.61)[0] == "53.70 [40.7, 63.6]"  # rigorous: with it
