"""The dataset card's External test set section: each arm's sensitivity on the Hannover set, with its
patient-level interval, beside the internal one, from a stamped benchmark result built in tmp_path (no
pipeline run); and, with no result attached, a sentence instead of numbers."""

from __future__ import annotations

import re

import numpy as np
import pytest

from cxrsynth.measure import metrics as M
from cxrsynth.stages.benchmark.arms import EvalItem
from cxrsynth.stages.benchmark import external as E
from cxrsynth.core.paths import write_json
from cxrsynth.stages.release.benchmark_sections import (DROP_SENTENCE, NO_EXTERNAL_BENCHMARK, RISE_SENTENCE, WHERE,
                                                         external_section)

from .test_artifacts import _copy_release

#: 24 Hannover films, one per patient; a model that finds COVID-19 in the first 12 only: 50% sensitivity
PATIENTS = [f"hannover:p{i}" for i in range(24)]
#: the same films as 6 patients with 4 films each: 6 patients' worth of evidence
FEW_PATIENTS = [f"hannover:p{i // 4}" for i in range(24)]
HALF = np.array([0.9 if i < 12 else 0.1 for i in range(24)])


def _runs(internal: float, scores: np.ndarray, seeds: int = 2, patients: list[str] = PATIENTS) -> list[dict]:
    """Cells' result dicts as the benchmark keeps them: the test sensitivity and the external entry that
    ``external.score_external`` computes from the model's scores at its threshold (0.5)."""
    items = [EvalItem(f"/x/{i}.png", 1, p, f"r{i}") for i, p in enumerate(patients)]
    ext = E.score_external([1] * 24, scores, items, 0.5, 400, 0)
    return [{"seed": s, "test": {"sensitivity": internal}, "controls": {"same_source": None, "external": {"hannover": ext}}}
            for s in range(seeds)]


def _results(stamp: str, protocol: str = "rigorous", patients: list[str] = PATIENTS) -> dict:
    from cxrsynth.stages.benchmark.run import _control_summary

    arms = {}
    for arm, internal, scores in (("real", 0.8, HALF), ("real+own", 0.6, np.full(24, 0.9))):
        runs = _runs(internal, scores, patients=patients)
        arms[arm] = {"concrete_arm": arm if arm == "real" else "real+g_nc", "seeds": len(runs),
                     "sensitivity": M.summarise_seeds([r["test"]["sensitivity"] for r in runs]),
                     "controls": _control_summary(runs, bootstrap=400)}
    report = {"format": "hannover", "kept": 24, "patients": len(set(patients)), "by_label": {"covid": 24},
              "per_task": {"normal-covid": {"negatives": 0, "covid": 24}, "pneumonia-covid": {"negatives": 0, "covid": 24}}}
    return {"kind": "cxrsynth.benchmark_results", "protocol": protocol, "release_data_sha256": stamp,
            "summary": {"normal-covid": arms}, "controls": {"external": {"hannover": report}}}


def _bench(path, results: dict):
    path.mkdir(parents=True)
    write_json(path / "results.json", results)
    (path / "tables.md").write_text("| arm | AUROC |\n|---|---|\n| real | 0.9 |\n")
    return path


def _row(card: str, arm: str) -> list[str]:
    line = next(line for line in card.splitlines() if line.startswith(f"| {arm} |"))
    return [c.strip() for c in line.strip("|").split("|")]


def test_section_shows_each_arms_external_sensitivity_beside_the_internal_one():
    res = _results("a" * 64)
    text = external_section(res)
    real = _row(text, "real")
    assert real[1] == "80.0 ± 0.0" and real[3] == "-30.0"  # internal 80%, Hannover 50%: 30 points lower
    lo, hi = (float(v) for v in re.fullmatch(r"50\.0 ± 0\.0 \[(.+), (.+)\]", real[2]).groups())
    ci = res["summary"]["normal-covid"]["real"]["controls"]["external"]["hannover"]["sensitivity_patient_ci95"]
    assert (lo, hi) == (round(100 * ci[0], 1), round(100 * ci[1], 1))
    assert lo < 50 < hi and 30 < hi - lo <= 50  # 24 patients: wide, but readable
    own = _row(text, "real+g_nc")
    assert own[2].startswith("100.0 ± 0.0") and own[3] == "+40.0"
    # one arm drops (real) and one rises (real+g_nc): each sentence is printed, the rise naming its arm
    assert DROP_SENTENCE.format(where=WHERE["hannover"]) in text
    assert RISE_SENTENCE.format(which="real+g_nc (normal-covid)", where=WHERE["hannover"]) in text
    assert "24 images of 24 patients" in text and "pneumonia-covid" not in text  # only tasks the summary holds
    # the same 24 films from 6 patients: the patient interval spans more than 50 points, and the card
    # says "not measurable" as the report does, instead of a number
    few = external_section(_results("a" * 64, patients=FEW_PATIENTS))
    assert _row(few, "real")[2:] == ["not measurable (6 patients)", "-"] and "24 images of 6 patients" in few

    paper = external_section(_results("a" * 64, protocol="paper"))
    assert _row(paper, "real")[2] == "50.0 ± 0.0" and "no interval" in paper  # the test set chose the model
    assert external_section(None) == NO_EXTERNAL_BENCHMARK and not re.search(r"\d+\.\d", NO_EXTERNAL_BENCHMARK)
    # every arm higher outside than inside: no sentence that expects a drop
    rise = _results("a" * 64)
    rise["summary"]["normal-covid"]["real"]["sensitivity"] = M.summarise_seeds([0.3, 0.3])
    risen = external_section(rise)
    assert "A drop from the internal sensitivity is expected" not in risen
    assert "Higher than the internal sensitivity for real (normal-covid), real+g_nc (normal-covid): not better" in risen
    no_ext = external_section(_results("a" * 64) | {"controls": None})
    assert "scored no external set" in no_ext and "%" not in no_ext


def test_card_with_the_external_section_verifies(built, tmp_path):
    from cxrsynth.stages.release.card import rerender, sections
    from cxrsynth.stages.release.describe import describe
    from cxrsynth.stages.release.verify import verify as verify_release

    rel = _copy_release(built, tmp_path)
    manifest = rel.manifest()
    assert sections(rel.card.read_text())["External test set"] == NO_EXTERNAL_BENCHMARK  # no numbers invented
    res = _results(manifest["data_sha256"])
    describe(rel, manifest, _bench(tmp_path / "bench", res))
    card = rel.card.read_text()
    section = sections(card)["External test set"]
    assert section == external_section(res) and _row(section, "real")[3] == "-30.0"
    assert card.index("## Benchmark") < card.index("## External test set") < card.index("## Citation")
    assert verify_release(rel.root) == []
    rerender(rel.root)  # rendered again from the manifest (as push does): the section is carried over
    assert sections(rel.card.read_text())["External test set"] == section
    assert verify_release(rel.root) == []
    with pytest.raises(Exception, match="other images"):  # a result of other images never reaches the card
        describe(rel, manifest, _bench(tmp_path / "foreign", _results("0" * 64)))
    assert sections(rel.card.read_text())["External test set"] == section


def test_verify_with_the_benchmark_checks_its_sections(built, tmp_path, capsys):
    """``verify --benchmark BENCH_DIR`` renders the Benchmark and External test set sections again from the
    stamped result and reports a hand-edited number as it reports a protected section; a result of other
    images is refused with one Error line naming its folder; without the folder those sections are not
    checked, and verify says so."""
    from cxrsynth.cli import main
    from cxrsynth.core.errors import DataNotFoundError, StampError
    from cxrsynth.stages.release.describe import describe
    from cxrsynth.stages.release.verify import verify as verify_release

    rel = _copy_release(built, tmp_path)
    manifest = rel.manifest()
    bench = _bench(tmp_path / "bench", _results(manifest["data_sha256"]))
    describe(rel, manifest, bench)
    assert verify_release(rel.root, benchmark=bench) == []  # the untouched card
    main(["verify", str(rel.root), "--benchmark", str(bench)])
    cap = capsys.readouterr()
    assert cap.out.strip().endswith(": OK") and "not checked" not in cap.out + cap.err
    main(["verify", str(rel.root)])
    assert "Benchmark and External test set sections were not checked" in capsys.readouterr().err

    untouched = rel.card.read_text()
    real = next(line for line in untouched.splitlines() if line.startswith("| real |") and line.endswith("| -30.0 |"))
    # the card is not in SHA256SUMS (the Hub lets its text be edited), so only the re-rendering catches these
    for title, old, new in (("External test set", real, real.replace("| -30.0 |", "| -10.0 |")),
                            ("Benchmark", "| real | 0.9 |", "| real | 0.95 |")):
        assert untouched.count(old) == 1
        rel.card.write_text(untouched.replace(old, new))
        assert verify_release(rel.root) == []  # without the benchmark: not checked
        problems = verify_release(rel.root, benchmark=bench)
        assert len(problems) == 1 and f"(benchmark section {title!r})" in problems[0], problems
        assert f"reads {new[:80]!r}, expected {old[:80]!r}" in problems[0]
        with pytest.raises(SystemExit) as exc:
            main(["verify", str(rel.root), "--benchmark", str(bench)])
        out = capsys.readouterr().out
        assert exc.value.code == 1 and f"FAIL {problems[0]}" in out
    rel.card.write_text(untouched)

    foreign = _bench(tmp_path / "foreign", _results("0" * 64))  # the same numbers, measured on other images
    with pytest.raises(StampError, match="other images") as err:
        verify_release(rel.root, benchmark=foreign)
    assert str(foreign) in str(err.value)
    with pytest.raises(SystemExit) as exc:
        main(["verify", str(rel.root), "--benchmark", str(foreign)])
    err_lines = capsys.readouterr().err.strip().splitlines()
    assert exc.value.code == 1 and err_lines[-1].startswith("Error: the benchmark was run on other images")
    assert str(foreign) in err_lines[-1]
    with pytest.raises(DataNotFoundError, match="benchmark folder not found"):
        verify_release(rel.root, benchmark=tmp_path / "nowhere")
