"""Shared fixtures: the real sample data (read in place, never copied) and an ingest of all of it.

Caches are redirected to a temporary folder and the Hub is off, so no test downloads anything.
"""

from __future__ import annotations

import os
import re

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TQDM_DISABLE", "1")

from cxrsynth.core.paths import sample_data_dir  # noqa: E402

DATA = sample_data_dir()
COVID = DATA / "covid-chestxray-dataset"
NIH = DATA / "nih-chestxray14-sample"
RSNA_META = DATA / "rsna-pneumonia-detection-challenge"
RSNA_SAMPLE = DATA / "rsna-format-sample"
GENUINE_DCM = RSNA_META / "stage_2_train_images" / "c64d5667-a776-4f95-9e21-bfabafb07740.dcm"


def pytest_collection_modifyitems(config, items):
    """Almost every test reads the real sample data: without it, say so once per test, clearly."""
    if not DATA.is_dir():
        skip = pytest.mark.skip(reason=f"sample data not found at {DATA} (set CXRSYNTH_SAMPLE_DATA)")
        for item in items:
            if "no_data" not in item.keywords:
                item.add_marker(skip)


@pytest.fixture(autouse=True)
def _isolated_caches(tmp_path_factory, monkeypatch):
    cache = tmp_path_factory.getbasetemp() / "caches"
    monkeypatch.setenv("HF_HOME", str(cache / "hf"))
    monkeypatch.setenv("TORCH_HOME", str(cache / "torch"))
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(cache / "numba"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def all_sources_ingest(tmp_path_factory):
    """One ingest of every sample folder, shared by the tests that only read it."""
    from cxrsynth.stages.ingest import default_roots, ingest

    out = tmp_path_factory.mktemp("ingest_all")
    return ingest(default_roots(DATA), out_dir=out)


TINY = ["size=64", "base=8", "blocks=2", "epochs_constant=1", "epochs_decay=1", "save_every=2", "sample_every=4"]


@pytest.fixture(scope="session")
def planned_workdir(tmp_path_factory):
    """records -> rigorous splits -> a plan with 8 images per domain, from the COVID and NIH samples."""
    from cxrsynth.stages.ingest import ingest
    from cxrsynth.core.paths import read_json
    from cxrsynth.stages.plan import PlanConfig, make_plan
    from cxrsynth.data.records import read_records
    from cxrsynth.stages.splits import SplitConfig, make_splits

    wd = tmp_path_factory.mktemp("planned")
    ingest([COVID, NIH], out_dir=wd)
    make_splits(read_records(wd / "records.parquet"), SplitConfig(seed=0), wd / "records.parquet", wd / "splits.json")
    make_plan(read_records(wd / "records.parquet"), read_json(wd / "splits.json"), PlanConfig(per_domain=8), wd / "plan.json")
    return wd


@pytest.fixture(scope="session")
def trained(planned_workdir):
    """The planned work folder with both translators trained for 2 tiny steps."""
    from cxrsynth.core.config import resolve
    from cxrsynth.stages.translate.train import TrainConfig, train

    for task in ("normal-covid", "pneumonia-covid"):
        train(planned_workdir, resolve(TrainConfig, overrides=TINY + [f"task={task}", "max_steps=2"]))
    return planned_workdir


def copy_workdir(src, dst, keep_generated: bool = False):
    import shutil

    shutil.copytree(src, dst, ignore=None if keep_generated else shutil.ignore_patterns("generated", "release"))
    return dst


def translate_only_the_first(wd, n: int):
    """Cut the plan of the work folder ``wd`` (a copy) to translate only the first ``n`` planned images of
    each task, for the tests of ``benchmark --translator``: it generates every planned image (633 in the
    sample work folder) and those tests read a few. The translators' training sets are left as they are."""
    from cxrsynth.core.layout import WorkLayout
    from cxrsynth.core.paths import read_json, write_json

    path = WorkLayout(wd).plan
    plan = read_json(path)
    for task in plan["tasks"].values():
        ids = task["translate"]["record_ids"][:n]
        task["translate"] |= {"record_ids": ids, "n": len(ids), "with_pixels": len(ids)}
        plan["totals"]["by_config"][task["config"]] = len(ids)
    plan["totals"] |= {"translate": sum(plan["totals"]["by_config"].values()),
                       "translate_with_pixels": sum(plan["totals"]["by_config"].values())}
    write_json(path, plan)
    return wd


@pytest.fixture(scope="session")
def built(trained, tmp_path_factory):
    """A verified release of 24 + 24 images, made by `cxrsynth release` from the trained work folder."""
    from cxrsynth.pipeline import PipelineConfig, release

    from .test_release import GEN

    wd = copy_workdir(trained, tmp_path_factory.mktemp("rel") / "wd")
    manifest = release(wd, wd / "release", PipelineConfig(generate=GEN), audit=False)
    return wd, wd / "release" / "covid-cxr-synth", manifest


@pytest.fixture(scope="session")
def rigorous(built, tmp_path_factory):
    """The rigorous benchmark of ``built`` (tiny: a two-layer CNN at 32 px, 1 epoch, 6 images a class): every arm of
    both tasks, 2 seeds, with the external set of ``test_benchmark.external_folder``, figures on. The
    largest fixture of the suite (28 classifier trainings), so one per session: test_benchmark.py reads
    all of it, test_attribution.py its normal-covid arms against real and real-oversampled.
    Returns (work folder, benchmark folder, summary)."""
    from cxrsynth.stages.benchmark.run import BenchmarkConfig, run_benchmark
    from cxrsynth.core.config import resolve

    from .test_benchmark import TINY, external_folder

    wd, rel, _ = built
    base = tmp_path_factory.mktemp("bench")
    ext = external_folder(wd, base / "site-b")
    summary = run_benchmark(wd, base / "rigorous", resolve(BenchmarkConfig, overrides=TINY + ["seeds=2"]),
                            release=str(rel), externals={"site-b": str(ext)})
    return wd, base / "rigorous", summary


_FAILURE = re.compile(r"^(Error: |Traceback |\s+File \"|\w*(Error|Exception)\b)")


def error_lines(text: str) -> list[str]:
    """The lines of stderr that report a failure: ``Error:`` lines and any part of a traceback. Stage,
    progress and other informational lines (cxrsynth.core.progress, the benchmark's power statement) that a
    command logged before it failed are left out."""
    return [line for line in text.strip().splitlines() if _FAILURE.match(line)]


def cli_error_line(capsys, argv) -> str:
    """Run the CLI in-process; assert it failed with exactly one `Error: ` line on stderr and no traceback
    (informational lines logged before the failure aside) and return it."""
    from cxrsynth.cli import main

    with pytest.raises(SystemExit) as exc:
        main(argv)
    err = error_lines(capsys.readouterr().err)
    assert exc.value.code == 1 and len(err) == 1 and err[0].startswith("Error: "), err
    return err[0]
