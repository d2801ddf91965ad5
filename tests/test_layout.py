"""The work folder has one owner (cxrsynth/core/layout.py): its paths, and no file name joined elsewhere."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from cxrsynth.core.layout import AuditFolder, BenchmarkFolder, TranslatorFolder, WorkLayout, translator_folder
from cxrsynth.stages.translate import describe_run

pytestmark = pytest.mark.no_data

PACKAGE = Path(__file__).resolve().parent.parent / "cxrsynth"

# A work folder joined by hand (`workdir / "plan.json"`, `wd / ...`, `_workdir(ctx) / ...`), or one of
# its file names spelt out: both belong to layout.py alone.
JOIN = re.compile(r"\b(?:workdir|wd|work|_workdir\(ctx\))\s*/\s*")
NAMES = re.compile(r'"(?:records\.parquet|ingest_report\.json|ingest_config\.json|splits\.json|plan\.json|'
                   r'train_report\.json|generator\.safetensors|reverse_generator\.safetensors|audit\.json|'
                   r'tables\.md|report_section\.html)"')


def _offending_lines(patterns, owner) -> list[str]:
    """Lines of the package's code (comments left out) that match one of ``patterns``, outside the
    modules for which ``owner(path)`` is true."""
    out = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if owner(path):
            continue
        for n, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#", 1)[0]
            if any(p.search(code) for p in patterns):
                out.append(f"{path.relative_to(PACKAGE.parent)}:{n}: {line.strip()}")
    return out


def test_no_module_but_layout_joins_work_folder_paths():
    assert _offending_lines((JOIN, NAMES), lambda p: p == PACKAGE / "core" / "layout.py") == []


def test_the_scan_would_see_a_hand_made_join():
    assert JOIN.search('plan = read_json(workdir / "plan.json")')
    assert JOIN.search('x = _workdir(ctx) / "generated"')
    assert NAMES.search('p = out / "records.parquet"')
    assert not JOIN.search("network / 2") and not NAMES.search('"plan"')


def test_work_layout_names_every_stage_file(tmp_path):
    wl = WorkLayout(str(tmp_path))  # a string is accepted and kept as a Path
    assert wl.root == tmp_path
    assert wl.records == tmp_path / "records.parquet"
    assert wl.ingest_report == tmp_path / "ingest_report.json"
    assert wl.ingest_config == tmp_path / "ingest_config.json"
    assert wl.splits == tmp_path / "splits.json"
    assert wl.plan == tmp_path / "plan.json"
    assert wl.translator("normal-covid") == TranslatorFolder(tmp_path / "translators" / "normal-covid")
    assert wl.generated == tmp_path / "generated"
    assert wl.generated_config("g_nc") == tmp_path / "generated" / "g_nc"
    assert wl.release == tmp_path / "release"
    assert wl.audit_files == AuditFolder(tmp_path / "audit")
    assert wl.audit_files.json == tmp_path / "audit" / "audit.json"
    assert wl.benchmark_files.tables == tmp_path / "benchmark" / "tables.md"
    assert not list(tmp_path.iterdir())  # naming creates nothing


def test_layout_is_frozen(tmp_path):
    import dataclasses

    with pytest.raises(dataclasses.FrozenInstanceError):
        WorkLayout(tmp_path).root = tmp_path / "other"


def test_translator_folder_files(tmp_path):
    run = TranslatorFolder(tmp_path)
    assert run.generator == tmp_path / "generator.safetensors"
    assert run.generator_info == tmp_path / "generator.json"
    assert run.reverse_generator == tmp_path / "private" / "reverse_generator.safetensors"
    assert run.report == tmp_path / "train_report.json"
    assert run.config == tmp_path / "config.json"
    assert run.checkpoints == tmp_path / "checkpoints"
    assert run.sample_grid(12) == tmp_path / "samples" / "step-00000012.png"
    # --translator TASK=PATH takes a run folder or its generator file
    (tmp_path / "generator.safetensors").write_bytes(b"")
    assert translator_folder(tmp_path) == translator_folder(tmp_path / "generator.safetensors") == run


def test_benchmark_models_sorted_per_task(tmp_path):
    for task in ("pneumonia-covid", "normal-covid"):
        model = tmp_path / "runs" / task / "real" / "seed-0" / "model.safetensors"
        model.parent.mkdir(parents=True)
        model.write_bytes(b"")
    assert [p.parts[-4] for p in BenchmarkFolder(tmp_path).models()] == ["normal-covid", "pneumonia-covid"]
    assert BenchmarkFolder(tmp_path).models("real+own") == []


def test_describe_run_reads_a_run_folder_or_generator(tmp_path):
    run = TranslatorFolder(tmp_path / "run")
    run.root.mkdir()
    run.generator.write_bytes(b"weights")
    run.generator_info.write_text(json.dumps({"sha256": "abc", "arch": {"size": 64}}))
    run.report.write_text(json.dumps({"steps": 2, "total_steps": 4}))
    run.config.write_text(json.dumps({"seed": 3}))
    for given in (run.root, run.generator):
        d = describe_run(given)
        assert d.folder == run and d.generator == run.generator
        assert d.info["arch"] == {"size": 64} and d.report["steps"] == 2 and d.config["seed"] == 3
        assert d.exported and d.made("abc") and not d.made("other")
    empty = describe_run(tmp_path / "none")
    assert (empty.info, empty.report, empty.config, empty.exported) == ({}, {}, {}, False)


# The benchmark stage takes the records, split and plan already read (issue 23): a read of a work-folder
# file (`read_records(`, `grouped_records(`, `layout.splits`, `WorkLayout(workdir).plan` ...) belongs to
# its inputs.py alone (SplitData.read, which pipeline.benchmark_in calls for it).
READS = re.compile(r"\b(?:read_records|grouped_records)\(|(?:\blayout|\))\.(?:records|splits|plan|ingest_report)\b")
BENCHMARK = PACKAGE / "stages" / "benchmark"


def test_no_benchmark_module_but_its_inputs_reads_a_work_folder_file():
    assert _offending_lines((READS,), lambda p: p.parent != BENCHMARK or p.name == "inputs.py") == []


def test_the_benchmark_scan_would_see_a_read():
    assert READS.search("records, splits = grouped_records(layout)")
    assert READS.search('read_json(WorkLayout(workdir).splits)["config"]["method"]')
    assert READS.search("plan_file = layout.plan") and READS.search("internal = read_records(x)")
    assert not READS.search("data.splits") and not READS.search("data.records")


# The release folder's names and its ``.private`` sibling rule belong to cxrsynth/artifacts/ alone.
RELEASE_NAMES = re.compile(r'"(?:manifest\.json|mapping\.jsonl|identifiers\.json|layout\.json)"|'
                           r'\.private\b["}]|\.done\.json"')


def test_only_artifacts_name_release_and_generated_files():
    assert _offending_lines((RELEASE_NAMES,), lambda p: p.parent.name == "artifacts") == []


def test_the_release_scan_would_see_a_hand_made_join():
    assert RELEASE_NAMES.search('read_json(release / "manifest.json")')
    assert RELEASE_NAMES.search('release.parent / f"{release.name}.private"')
    assert RELEASE_NAMES.search('priv / "mapping.jsonl"')
    assert RELEASE_NAMES.search('out / config / f"{name}.done.json"')
    assert not RELEASE_NAMES.search("info.private") and not RELEASE_NAMES.search('"manifest"')


def test_release_folder_names_and_private_sibling(tmp_path):
    from cxrsynth.artifacts import ReleaseFolder, staging_pair
    from cxrsynth.core.errors import DataNotFoundError

    rel = ReleaseFolder(tmp_path / "covid-cxr-synth")
    assert rel.private == tmp_path / "covid-cxr-synth.private"
    assert rel.mapping_path == tmp_path / "covid-cxr-synth.private" / "mapping.jsonl"
    assert ReleaseFolder(rel.root, tmp_path / "p").identifiers_path == tmp_path / "p" / "identifiers.json"
    st = staging_pair(tmp_path, "x", 42)
    assert (st.root.name, st.private.name) == (".x.staging-42", ".x.private.staging-42")
    with pytest.raises(DataNotFoundError, match="not a release folder"):
        rel.manifest()
    rel.root.mkdir()
    rel.write_manifest({"data_sha256": "ab"})
    assert rel.is_release() and rel.data_sha256 == "ab"


# The audit stage takes artefacts too (issue 23): the records, split and plan as SplitData, the translator
# runs, the encoder cache path and the benchmark folder, all found by pipeline.audit_in. No audit module
# names a work folder (WorkLayout, TranslatorFolder), reads one of its files (read_records,
# grouped_records, SplitData.read, layout.splits ...), or takes a work folder path in place of SplitData.
AUDIT = PACKAGE / "stages" / "audit"
WORK_FOLDER_READERS = {"WorkLayout", "TranslatorFolder", "translator_folder", "read_records", "grouped_records",
                       "as_split_data", "from_workdir"}


def _work_folder_uses(source: str) -> list[str]:
    """The names of ``WORK_FOLDER_READERS`` that ``source`` imports or uses, and its ``SplitData.read``
    calls (docstrings and comments left out: the AST sees code only)."""
    import ast

    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom):
            found += [a.name for a in node.names if a.name in WORK_FOLDER_READERS]
        elif isinstance(node, ast.Name) and node.id in WORK_FOLDER_READERS:
            found.append(node.id)
        elif isinstance(node, ast.Attribute):
            if node.attr in WORK_FOLDER_READERS:
                found.append(node.attr)
            elif node.attr == "read" and isinstance(node.value, ast.Name) and node.value.id == "SplitData":
                found.append("SplitData.read")
    return found


def test_no_audit_module_opens_a_work_folder():
    modules = sorted(AUDIT.glob("*.py"))
    assert len(modules) >= 9  # run, fidelity, encoder, own_classifier, ... all scanned
    assert {p.name: _work_folder_uses(p.read_text()) for p in modules} == {p.name: [] for p in modules}
    assert _offending_lines((READS, JOIN), lambda p: p.parent != AUDIT) == []


# The benchmark stage likewise (issue 23): its functions take SplitData, never a work folder path in its
# place (the path-accepting wrapper as_split_data is gone). Two entry points are given a folder and read it:
# run.py (benchmark_in / run_benchmark: the work folder; Setup.loaded: the inputs folder a launched job
# gets) and evaluate.py (--eval-only on a saved checkpoint).
BENCHMARK = PACKAGE / "stages" / "benchmark"
BENCHMARK_ENTRY_POINTS = {"run.py", "evaluate.py"}


def test_no_benchmark_module_but_its_entry_points_opens_a_work_folder():
    modules = {p.name: p for p in sorted(BENCHMARK.glob("*.py"))}
    assert len(modules) >= 15 and BENCHMARK_ENTRY_POINTS <= set(modules)
    uses = {name: _work_folder_uses(p.read_text()) for name, p in modules.items() if name not in BENCHMARK_ENTRY_POINTS}
    assert uses == {name: [] for name in uses}
    assert not hasattr(__import__("cxrsynth.artifacts.split_data", fromlist=["x"]), "as_split_data")


def test_the_audit_scan_would_see_a_work_folder_read():
    assert _work_folder_uses("from ...core.layout import AuditFolder, WorkLayout") == ["WorkLayout"]
    assert _work_folder_uses("data = SplitData.read(workdir)") == ["SplitData.read"]
    assert _work_folder_uses("from ..splits import grouped_records\nx = grouped_records(y)") == \
        ["grouped_records", "grouped_records"]
    assert _work_folder_uses("import cxrsynth.core.layout as L\np = L.WorkLayout(w).plan") == ["WorkLayout"]
    assert _work_folder_uses('"""WorkLayout.cxr_encoder names the cache"""\nx = inputs.grouped') == []
