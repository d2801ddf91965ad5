"""The command line: help lists the stages, stages chain through the work folder, errors are one line."""

from __future__ import annotations

import json
import subprocess
import sys

from click.testing import CliRunner

from cxrsynth.cli import cli

from .conftest import COVID, NIH, RSNA_META


def run(*args, env=None):
    return subprocess.run([sys.executable, "-m", "cxrsynth.cli", *args], capture_output=True, text=True, env=env)


def test_help_lists_stages():
    """Every command is described, in stage order, in `cxrsynth --help` and in the module docstring."""
    import cxrsynth.cli as module

    out = CliRunner().invoke(cli, ["--help"]).output
    table = [line.split()[0] for line in out.split("Options:")[0].splitlines() if "->" in line and line.startswith("    ")]
    assert table == list(cli.commands)[:len(table)] and set(table) == set(cli.commands)
    assert out.split("Commands:")[1].split()[0] == "ingest"  # stage order, not alphabetical
    for cmd in cli.commands:
        assert f"cxrsynth {cmd}" in module.__doc__


def test_ingest_split_plan_chain(tmp_path):
    wd = str(tmp_path / "wd")
    r = CliRunner().invoke(cli, ["-w", wd, "ingest", str(COVID), str(NIH), str(RSNA_META)])
    assert r.exit_code == 0, r.output
    assert "nih-chestxray14-sample (nih): 1,000 rows -> 904 records" in r.output
    r = CliRunner().invoke(cli, ["-w", wd, "split", "--method", "paper", "--json"])
    assert r.exit_code == 0, r.output
    # paper rule per collection: RSNA 16,537 + the first int(0.8 * 427) = 341 NIH normal rows
    assert json.loads(r.output)["counts"]["train"]["normal"] == 16537 + 341
    r = CliRunner().invoke(cli, ["-w", wd, "plan"])
    assert r.exit_code == 0, r.output
    assert "Total to translate" in r.output
    assert (tmp_path / "wd" / "plan.json").is_file()


def test_errors_are_one_line_with_exit_1(tmp_path):
    res = run("-w", str(tmp_path / "empty"), "split")
    assert res.returncode == 1
    assert res.stderr.strip().splitlines() == [
        f"Error: record table not found ({tmp_path / 'empty' / 'records.parquet'}); run `cxrsynth ingest` first"]
    res = run("-w", str(tmp_path), "ingest", "--set", "bogus=1", str(NIH))
    assert res.returncode == 1 and "unknown config key bogus" in res.stderr


def test_no_data_names_upstream_urls(tmp_path):
    import os

    env = dict(os.environ, CXRSYNTH_SAMPLE_DATA=str(tmp_path / "nowhere"))
    res = run("-w", str(tmp_path / "w"), "ingest", env=env)
    assert res.returncode == 1
    assert "no chest X-ray data found" in res.stderr and "github.com/ieee8023/covid-chestxray-dataset" in res.stderr


import pytest  # noqa: E402

from .conftest import RSNA_SAMPLE  # noqa: E402


@pytest.mark.parametrize("folder", [COVID, NIH, RSNA_META, RSNA_SAMPLE], ids=lambda p: p.name)
def test_every_folder_alone(folder, tmp_path):
    wd = str(tmp_path / "wd")
    for args in (["ingest", str(folder)], ["split"], ["plan"]):
        r = CliRunner().invoke(cli, ["-w", wd, *args])
        assert r.exit_code == 0, (args, r.output)
    plan = json.loads((tmp_path / "wd" / "plan.json").read_text())
    splits = json.loads((tmp_path / "wd" / "splits.json").read_text())
    assert splits["leakage"]["patients_in_several_splits"] == 0
    planned = sum(t["translate"]["n"] for t in plan["tasks"].values())
    train_neg = sum(splits["counts"]["train"].get(lab, 0) for lab in ("normal", "pneumonia"))
    assert planned == train_neg  # every train image of a source class is planned, nothing else
