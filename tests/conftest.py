"""Shared fixtures: the real sample data (read in place, never copied) and an ingest of all of it.

Caches are redirected to a temporary folder and the Hub is off, so no test downloads anything.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TQDM_DISABLE", "1")

# Torch threads, set here and nowhere else: every pytest process imports this file before any test module
# imports torch (each pytest-xdist worker too), and the processes tests start (CLI runs, launcher and SLURM
# jobs, torchrun ranks) inherit OMP_NUM_THREADS. One thread by default: at the suite's tiny sizes a second
# OpenMP thread mostly waits at barriers, and spins when the other core is busy (bench/README.md, "Test suite
# time"); the two xdist workers of scripts/test.sh use the two cores. CXRSYNTH_TEST_THREADS overrides; tests
# that compare results made in one run all make them under the same setting.
THREADS = int(os.environ.get("CXRSYNTH_TEST_THREADS", "1"))
os.environ["OMP_NUM_THREADS"] = str(THREADS)
if "torch" in sys.modules:  # imported already (by a plugin): OMP_NUM_THREADS was read, so set it
    sys.modules["torch"].set_num_threads(THREADS)

from cxrsynth.core.paths import sample_data_dir  # noqa: E402

from ._once import once_per_run, worker  # noqa: E402

DATA = sample_data_dir()
COVID = DATA / "covid-chestxray-dataset"
NIH = DATA / "nih-chestxray14-sample"
RSNA_META = DATA / "rsna-pneumonia-detection-challenge"
RSNA_SAMPLE = DATA / "rsna-format-sample"
GENUINE_DCM = RSNA_META / "stage_2_train_images" / "c64d5667-a776-4f95-9e21-bfabafb07740.dcm"


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the xdist_group marks (--dist loadgroup)
def pytest_collection_modifyitems(config, items):
    """Almost every test reads the real sample data: without it, say so once per test, clearly.

    And the xdist groups (:func:`xdist_groups`)."""
    for item, group in xdist_groups(items).items():
        item.add_marker(pytest.mark.xdist_group(group))
    if not DATA.is_dir():
        skip = pytest.mark.skip(reason=f"sample data not found at {DATA} (set CXRSYNTH_SAMPLE_DATA)")
        for item in items:
            if "no_data" not in item.keywords:
                item.add_marker(skip)


def xdist_groups(items) -> dict:
    """Which tests run on one pytest-xdist worker (scripts/test.sh: ``--dist loadgroup``), as item -> group.

    Session fixtures are built once and shared by the workers (``_once.py``), but a worker that needs one
    while the other builds it waits. So these stay on one worker: the tests on ``rigorous`` (its build is
    the suite's longest; they also fit UMAP, which numba compiles once per process), the tests of one module
    that use a module fixture (built once per worker that runs them), the ``slurm`` tests (one one-node
    cluster, and a test that waits for SLURM's time limit), and those marked ``xdist_group(name)``. A test
    in two of these joins them into one group, named by its explicit mark if any."""
    keys = {}
    for item in items:
        info = getattr(item, "_fixtureinfo", None)
        defs = info.name2fixturedefs if info else {}
        own = {str(m.args[0] if m.args else m.kwargs.get("name", "default")) for m in item.iter_markers("xdist_group")}
        k = set(own)
        k |= {"slurm"} if item.get_closest_marker("slurm") else set()
        k |= {"rigorous"} if "rigorous" in item.fixturenames else set()
        k |= {item.module.__name__} if any(fds and fds[-1].scope == "module" for fds in defs.values()) else set()
        if k:
            keys[item] = (k, own)
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        while parent.setdefault(x, x) != x:
            x = parent[x]
        return x

    for k, _ in keys.values():
        first, *rest = sorted(k)
        for other in rest:
            parent[find(other)] = find(first)
    named: dict[str, set] = {}
    for k, own in keys.values():
        named.setdefault(find(next(iter(k))), set()).update(own)
    for root, own in named.items():
        assert len(own) <= 1, f"one group of tests has several xdist_group names: {sorted(own)}"
    return {item: next(iter(named[find(next(iter(k)))]), find(next(iter(k)))) for item, (k, _) in keys.items()}


def numba_cache(tmp_path_factory) -> Path:
    """Where numba keeps compiled functions for the suite.

    pynndescent, which UMAP imports, compiles about 40 functions as it is imported: 10 to 15 s of CPU when
    cold, about a twentieth of the suite's CPU, on its critical worker. The result is a pure function of the
    installed code (numba keys each entry by its source file's time stamp and the CPU), so in a virtual
    environment it is kept with that environment (``.venv/cache/numba``; ``scripts/setup.sh`` fills it once,
    as pip byte-compiles), and every run reuses it. Outside a venv, or with ``CXRSYNTH_TEST_NUMBA_CACHE=run``,
    the run's workers share one cache in the run's temporary folder, as before."""
    where = os.environ.get("CXRSYNTH_TEST_NUMBA_CACHE", "venv")
    if where == "venv" and sys.prefix != sys.base_prefix:
        return Path(sys.prefix) / "cache" / "numba"
    return (tmp_path_factory.getbasetemp().parent if worker() else tmp_path_factory.getbasetemp() / "caches") / "numba"


@pytest.fixture(autouse=True)
def _isolated_caches(tmp_path_factory, monkeypatch):
    cache = tmp_path_factory.getbasetemp() / "caches"
    monkeypatch.setenv("HF_HOME", str(cache / "hf"))
    monkeypatch.setenv("TORCH_HOME", str(cache / "torch"))
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(numba_cache(tmp_path_factory)))
    # compile: auto reads this machine's speed record (bench/bench_speed.py writes ~/.cache/cxrsynth/...): a
    # developer's record saying "compiled is faster" must not make the suite's tiny trainings compile
    monkeypatch.setenv("CXRSYNTH_COMPILE_RECORD", str(cache / "compile-speed.json"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def all_sources_ingest(tmp_path_factory):
    """One ingest of every sample folder, shared by the tests that only read it."""
    from cxrsynth.stages.ingest import default_roots, ingest

    with once_per_run("ingest_all", tmp_path_factory, lambda out: ingest(default_roots(DATA), out_dir=out)) as res:
        yield res


TINY = ["size=64", "base=8", "blocks=2", "epochs_constant=1", "epochs_decay=1", "save_every=2", "sample_every=4"]


def _planned(wd):
    from cxrsynth.stages.ingest import ingest
    from cxrsynth.core.paths import read_json
    from cxrsynth.stages.plan import PlanConfig, make_plan
    from cxrsynth.data.records import read_records
    from cxrsynth.stages.splits import SplitConfig, make_splits

    ingest([COVID, NIH], out_dir=wd)
    make_splits(read_records(wd / "records.parquet"), SplitConfig(seed=0), wd / "records.parquet", wd / "splits.json")
    make_plan(read_records(wd / "records.parquet"), read_json(wd / "splits.json"), PlanConfig(per_domain=8), wd / "plan.json")
    return wd


@pytest.fixture(scope="session")
def planned_workdir(tmp_path_factory):
    """records -> rigorous splits -> a plan with 8 images per domain, from the COVID and NIH samples."""
    with once_per_run("planned", tmp_path_factory, _planned) as wd:
        yield wd


def _trained(planned, base):
    from cxrsynth.core.config import resolve
    from cxrsynth.stages.translate.train import TrainConfig, train

    wd = copy_workdir(planned, base / "wd")
    for task in ("normal-covid", "pneumonia-covid"):
        train(wd, resolve(TrainConfig, overrides=TINY + [f"task={task}", "max_steps=2"]))
    return wd


@pytest.fixture(scope="session")
def trained(planned_workdir, tmp_path_factory):
    """A copy of the planned work folder with both translators trained for 2 tiny steps (a copy: with
    xdist another worker may read ``planned_workdir`` while this one trains)."""
    with once_per_run("trained", tmp_path_factory, lambda base: _trained(planned_workdir, base)) as wd:
        yield wd


def copy_workdir(src, dst, keep_generated: bool = False):
    import shutil

    shutil.copytree(src, dst, ignore=None if keep_generated else shutil.ignore_patterns("generated", "release"))
    return dst


def _built(trained, base):
    from cxrsynth.pipeline import PipelineConfig, release

    from .test_release import GEN

    wd = copy_workdir(trained, base / "wd")
    manifest = release(wd, wd / "release", PipelineConfig(generate=GEN), audit=False)
    return wd, wd / "release" / "covid-cxr-synth", manifest


@pytest.fixture(scope="session")
def built(trained, tmp_path_factory):
    """A verified release of 24 + 24 images, made by `cxrsynth release` from the trained work folder."""
    with once_per_run("built", tmp_path_factory, lambda base: _built(trained, base)) as value:
        yield value


def _rigorous(built, base):
    from cxrsynth.stages.benchmark.run import BenchmarkConfig, run_benchmark
    from cxrsynth.core.config import resolve

    from .test_benchmark import TINY, external_folder

    wd, rel, _ = built
    ext = external_folder(wd, base / "site-b")
    summary = run_benchmark(wd, base / "rigorous", resolve(BenchmarkConfig, overrides=TINY + ["seeds=2"]),
                            release=str(rel), externals={"site-b": str(ext)})
    return wd, base / "rigorous", summary


@pytest.fixture(scope="session")
def rigorous(built, tmp_path_factory):
    """The rigorous benchmark of ``built`` (tiny: a two-layer CNN at 32 px, 1 epoch, 6 images a class): every arm of
    both tasks, 2 seeds, with the external set of ``test_benchmark.external_folder``, figures on. The
    largest fixture of the suite (28 classifier trainings), so one per run: test_benchmark.py reads
    all of it, test_attribution.py its normal-covid arms against real and real-oversampled.
    Returns (work folder, benchmark folder, summary)."""
    with once_per_run("rigorous", tmp_path_factory, lambda base: _rigorous(built, base)) as value:
        yield value


@pytest.fixture(scope="session")
def serial_benchmark(planned_workdir, tmp_path_factory):
    """The serial benchmark (``test_launch.CFG``: 2 cells) of the planned work folder, which the launcher
    tests (test_launch.py, test_slurm.py) run again as jobs and compare with. Returns (work folder, run).

    Run in a fresh process, as the jobs are: made inside a pytest worker after other tests (under xdist,
    whichever ran there first), its weights once differed from the jobs' in the last float bits."""
    import subprocess

    from .test_launch import CFG

    code = ("import sys; from pathlib import Path; from cxrsynth.core.config import resolve; "
            "from cxrsynth.stages.benchmark.run import BenchmarkConfig, run_benchmark; "
            "run_benchmark(Path(sys.argv[1]), Path(sys.argv[2]), resolve(BenchmarkConfig, overrides=sys.argv[3:]))")

    def run(base):
        subprocess.run([sys.executable, "-c", code, str(planned_workdir), str(base / "serial"), *CFG], check=True,
                       timeout=900)
        return planned_workdir, base / "serial"

    with once_per_run("serial", tmp_path_factory, run) as value:
        yield value


@pytest.fixture()
def hub(tmp_path):
    """The local Hub stand-in (``tests/hub_server.py``, on a free port of 127.0.0.1, so each test and each
    xdist worker has its own), with ``hub.env``: the environment for the subprocesses that push and load."""
    from ._hub_client import TOKEN
    from .hub_server import LocalHub

    with LocalHub() as h:
        env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")}
        env.update(HF_ENDPOINT=h.url, HF_TOKEN=TOKEN, HF_HUB_DISABLE_XET="1", HF_HOME=str(tmp_path / "hf"),
                   HF_HUB_DISABLE_TELEMETRY="1")
        h.env = env
        yield h


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
