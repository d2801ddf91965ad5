"""One implementation of "the benchmark on a work folder" (issue 23 review): ``pipeline.benchmark_in`` is the
stage's ``benchmark_in``, and the older ``run_benchmark`` returns its summary with the same arguments."""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = pytest.mark.no_data


def test_run_benchmark_is_benchmark_in_and_the_pipeline_offers_the_same(tmp_path, monkeypatch):
    from cxrsynth import pipeline
    from cxrsynth.core.layout import WorkLayout
    from cxrsynth.stages.benchmark import run as R

    assert pipeline.benchmark_in is R.benchmark_in
    data = R.SplitData(records=[], splits={"assignments": {}}, plan={"tasks": {}}, ingest_report={"totals": {}})
    read, calls = [], []
    monkeypatch.setattr(R.SplitData, "read", classmethod(lambda cls, wd: read.append(Path(wd)) or data))

    class Result:
        summary = {"summary": "of the result"}

    def fake(records, splits, release, cfg, rt, out_dir, **kw):
        calls.append(((records, splits, release, cfg, rt, out_dir), kw))
        return Result()

    monkeypatch.setattr(R, "benchmark", fake)
    cfg = R.BenchmarkConfig(bootstrap=10)
    assert R.run_benchmark(str(tmp_path), tmp_path / "out", cfg, "rel", {"normal-covid": "t"}, True,
                           {"x": "dir"}, True, None, None, True) == {"summary": "of the result"}
    assert isinstance(pipeline.benchmark_in(tmp_path, tmp_path / "out", cfg, "rel", {"normal-covid": "t"},
                                            externals={"x": "dir"}, allow_foreign_release=True, record_paths=True,
                                            progress=True), Result)
    assert read == [tmp_path, tmp_path]
    (args1, kw1), (args2, kw2) = calls
    assert args1 == args2 == ([], {"assignments": {}}, "rel", cfg, None, tmp_path / "out")
    assert kw1 == kw2 and kw1["plan"] == {"tasks": {}} and kw1["ingest_report"] == {"totals": {}}
    assert kw1["audit"] == WorkLayout(tmp_path).audit_files and kw1["home"] == tmp_path
    assert (kw1["translators"], kw1["externals"], kw1["allow_foreign_release"], kw1["record_paths"], kw1["progress"]) == \
        ({"normal-covid": "t"}, {"x": "dir"}, True, True, True)
