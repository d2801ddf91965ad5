"""Progress outside a terminal: one plain line per stage and per stretch of a long loop (rate, time left),
``-q`` silences them, ``--log-file`` keeps them with timestamps."""

from __future__ import annotations

import logging
import re

import pytest

from cxrsynth.core import progress
from cxrsynth.cli import main

from .conftest import copy_workdir


@pytest.fixture(autouse=True)
def _plain_lines(monkeypatch):
    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    yield
    progress.configure(0)  # drop a test's log file handler


def test_plain_progress_says_rate_and_time_left(capsys):
    progress.configure(0)
    items = list(progress.PlainProgress(range(20), desc="decode", unit="img", every_s=3600))
    err = capsys.readouterr().err.splitlines()
    assert items == list(range(20))
    # a line at each tenth (every 2 images) but the last, then the closing line
    assert len(err) == 10, err
    assert re.fullmatch(r"decode: 2/20 img \(10%\), [0-9.e+]+ img/s, about \S+ left", err[0]), err[0]
    assert err[-1].startswith("decode: done, 20 img in ")


def test_bar_is_plain_off_a_terminal_and_silent_when_quiet(capsys):
    progress.configure(0)
    assert isinstance(progress.bar(range(3), desc="x"), progress.PlainProgress)
    progress.configure(-1)
    list(progress.bar(range(3), desc="x"))
    assert capsys.readouterr().err == ""


@pytest.mark.slow
def test_non_tty_release_prints_one_line_per_stage(built, tmp_path, capsys):
    wd = copy_workdir(built[0], tmp_path / "wd", keep_generated=True)
    log_file = tmp_path / "logs" / "release.log"
    main(["-w", str(wd), "--log-file", str(log_file), "release", "--out", str(tmp_path / "out"), "--limit", "24",
          "--no-audit"])
    cap = capsys.readouterr()
    assert re.fullmatch(r"release covid-cxr-synth 1\.0\.0: g_nc 24, g_pc 24, all 48 images -> \S+ \(verified\)\n", cap.out)
    done = [m.group(1) for m in re.finditer(r"^stage (.+): done in \S+$", cap.err, re.M)]
    assert done == ["plan", "train (normal-covid, pneumonia-covid)", "generate", "package", "card", "verify", "promote"]
    started = re.findall(r"^stage (.+) \.\.\.$", cap.err, re.M)
    assert started == done
    logged = log_file.read_text().splitlines()
    assert sum(" INFO cxrsynth: stage " in line for line in logged) == 2 * len(done)
    assert all(re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ ", line) for line in logged)


@pytest.mark.slow
def test_quiet_release_prints_no_stage_lines(built, tmp_path, capsys):
    wd = copy_workdir(built[0], tmp_path / "wd", keep_generated=True)
    main(["-w", str(wd), "-q", "release", "--out", str(tmp_path / "out"), "--limit", "24", "--no-audit"])
    cap = capsys.readouterr()
    assert "(verified)" in cap.out and cap.err == ""
    assert logging.getLogger("cxrsynth").level == logging.WARNING


@pytest.mark.slow
def test_train_off_a_terminal_reports_steps(planned_workdir, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(progress, "EVERY_S", 0.0)  # a line per update: this run is seconds long
    wd = copy_workdir(planned_workdir, tmp_path / "wd")
    main(["-w", str(wd), "train", "--task", "normal-covid", "--set", "size=64", "--set", "base=8", "--set", "blocks=2",
          "--set", "epochs_constant=1", "--set", "epochs_decay=1", "--max-steps", "3", "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert re.search(r"^train normal-covid: 1/\d+ it \(\d+%\), [0-9.e+]+ it/s, about \S+ left", err, re.M), err
    assert re.search(r"^train normal-covid: done, 3 it in \S+", err, re.M), err


@pytest.mark.xdist_group("rigorous")  # numba compiles UMAP once per process: where the rigorous tests did
def test_umap_figure_leaks_no_third_party_warning(tmp_path):
    import warnings

    import numpy as np

    from cxrsynth.stages.benchmark.figures import umap_features

    x = np.random.RandomState(0).randn(30, 8)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = umap_features(tmp_path / "umap.png", "normal-covid", {"real": (x, np.repeat([0, 1, 2], 10))})
    assert out.is_file() and [str(w.message) for w in caught] == []


def test_audit_reports_each_step_off_a_terminal(built, tmp_path, capsys):
    from cxrsynth.pipeline import audit_in
    from cxrsynth.stages.audit.run import AuditConfig

    progress.configure(0)
    cfg = AuditConfig(embedding="pixels", sample=10, pool=30, heldout=20, inverse_sample=4, quality_sample=12,
                      fidelity=False, quality_repeats=2, bootstrap=100)
    res = audit_in(built[0], built[1], cfg, out_dir=tmp_path / "a")
    steps = re.findall(r"^stage audit (.+): done in \S+$", capsys.readouterr().err, re.M)
    assert steps[:3] == ["read release", "load real images", "inverse generator"]
    assert {"embed", "privacy measures", "quality", "write"} <= set(steps)
    assert sorted({s.replace(" ", "_") for s in steps}) == sorted(res.data["timing"])
