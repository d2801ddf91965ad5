"""The typed inputs of the stages (cxrsynth/artifacts/): records, split, plan, a translator run and the
three read together (SplitData). Each reads back what it wrote, and its stamp follows its content."""

from __future__ import annotations

import dataclasses
import json

import pytest

from cxrsynth.artifacts import Plan, Records, SplitData, Splits, TranslatorRun
from cxrsynth.core.layout import TranslatorFolder, WorkLayout

from .test_benchmark_stage import _split_manifest
from .test_stages import _generator, _records

pytestmark = pytest.mark.no_data


def test_records_round_trip_and_a_stamp_of_their_content(tmp_path):
    items = _records(tmp_path / "src", 3)
    written = Records(items).write(tmp_path / "a" / "records.parquet")
    back = Records.read(written.path)
    assert back.items == items and back.path == tmp_path / "a" / "records.parquet"
    assert back.sha256 == Records(items).sha256  # of the content, not of where or how it was written
    assert Records(items[:2]).sha256 != back.sha256
    assert Records([dataclasses.replace(items[0], label="covid")] + items[1:]).sha256 != back.sha256
    assert set(back.by_id()) == {"r0", "r1", "r2"}


def test_splits_round_trip_stamp_and_patient_grouping(tmp_path):
    from cxrsynth.stages.splits import assignment_sha256 as split_stage_sha

    manifest = {"assignments": {"r0": "train", "r1": "test"}, "config": {"method": "rigorous"},
                "patient_groups": {"r0": "g", "r1": "g"}}
    s = Splits(manifest)
    s.write(tmp_path / "splits.json")
    back = Splits.read(tmp_path / "splits.json")
    assert back.data == manifest and back.method == "rigorous" and back.assignments == manifest["assignments"]
    assert back.assignment_sha256 == split_stage_sha(manifest["assignments"])  # the stage's own rule
    other = Splits(dict(manifest, assignments={"r0": "train", "r1": "train"}))
    assert other.assignment_sha256 != back.assignment_sha256
    assert Splits(dict(manifest, assignment_sha256="a" * 64)).assignment_sha256 == "a" * 64  # as recorded
    grouped = back.grouped(_records(tmp_path / "src", 3))
    assert [r.patient_group for r in grouped] == ["g", "g", None]  # r2: not in the manifest, ingest's kept


def test_plan_round_trip_stamp_and_translator_training_images(tmp_path):
    from cxrsynth.stages.plan import plan_sha256

    data = {"code_version": "1", "tasks": {"normal-covid": {"translator_train": {"source": ["a"], "covid": ["c1"]}},
                                          "pneumonia-covid": {"translator_train": {"source": ["b"], "covid": ["c2"]}}}}
    Plan(data).write(tmp_path / "plan.json")
    back = Plan.read(tmp_path / "plan.json")
    assert back.data == data and back.sha256 == plan_sha256(data)  # the checksum a release records
    assert back.translator_train("covid") == {"c1", "c2"} and back.translator_train("source") == {"a", "b"}
    assert Plan(dict(data, code_version="2")).sha256 == back.sha256  # a new code version, the same plan
    data["tasks"]["normal-covid"]["translator_train"]["covid"] = ["c3"]
    assert Plan(data).sha256 != back.sha256


def test_split_data_is_made_of_the_three_and_read_from_a_work_folder(tmp_path):
    records = _records(tmp_path / "src", 3)
    splits = _split_manifest({"r0": "train", "r1": "test"})
    data = SplitData.of(Records(records), Splits(splits), Plan({"tasks": {}}))
    layout = WorkLayout(data.write(tmp_path / "wd"))
    assert layout.records.is_file() and layout.splits.is_file() and layout.plan.is_file()
    back = SplitData.read(layout.root)
    assert (back.records, back.splits, back.plan, back.ingest_report) == (records, splits, {"tasks": {}}, None)
    assert back.split.assignment_sha256 == splits["assignment_sha256"] and back.release_plan.data == {"tasks": {}}
    from cxrsynth.stages.benchmark.inputs import SplitData as BenchmarkSplitData

    assert BenchmarkSplitData is SplitData  # the benchmark's name for it still works


def test_translator_run_reads_its_generator_stamp_and_state(tmp_path):
    run = TranslatorFolder(tmp_path / "run")
    empty = TranslatorRun.read(run.root)
    assert (empty.exported, empty.finished(), empty.sha256, empty.reverse_generator) == (False, False, None, None)
    _generator(run.generator)
    _generator(run.reverse_generator)
    run.report.write_text(json.dumps({"steps": 5, "total_steps": 10, "translator_id": "t-1"}))
    got = TranslatorRun.read(run.root)
    assert got.generator == run.generator and got.reverse_generator == run.reverse_generator
    assert got.sha256 == json.loads(run.generator_info.read_text())["sha256"] and got.made(got.sha256)
    assert got.translator_id == "t-1" and got.exported
    assert not got.finished() and got.finished(max_steps=5) and not got.finished(max_steps=6)
    assert TranslatorRun.read(run.generator) == got  # the generator file names the same run
    run.generator_info.write_text(json.dumps({"sha256": "b" * 64}))  # another export: the stamp follows it
    assert TranslatorRun.read(run.root).sha256 == "b" * 64 != got.sha256
