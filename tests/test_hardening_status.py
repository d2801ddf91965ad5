"""A benchmark folder's own files read back without trust (issue 24: N14-N17, N19).

On main: ``benchmark --status`` gave tracebacks on an inputs.json that is not JSON (N14), ``[]``, ``{}`` or
``{"config": 5}`` (N15), and on a result.json that is a list (N16); a result.json of ``{}`` counted as
done and the rerun died with ``KeyError: 'threshold'`` (N17); a start that failed on a bad ``--init``
wrote inputs.json and blocked the corrected command into the same ``--out`` (N19).
"""

from __future__ import annotations

import json
import pickle

import pytest

from cxrsynth.stages.benchmark.run import NOT_RUN_DEFINING, BenchmarkConfig, benchmark_status
from cxrsynth.core.config import resolve, to_dict

from .conftest import cli_error_line

CFG = ["model=resnet18", "init=random", "image_size=32", "limit=4", "fit.max_epochs=1", "bootstrap=20", "seeds=1",
       "tasks=normal-covid", "arms=real", "figures=false"]
CELL = ("runs", "normal-covid", "real", "seed-0")


def _inputs() -> dict:
    cfg = resolve(BenchmarkConfig, overrides=CFG)
    return {"config": {k: v for k, v in to_dict(cfg).items() if k not in NOT_RUN_DEFINING},
            "release_data_sha256": None, "split_assignment_sha256": "x", "code_version": "0"}


@pytest.mark.no_data
@pytest.mark.parametrize("text, problem", [
    ("garbage", "the benchmark's inputs.json is not JSON"),
    ("[]", "the benchmark's inputs.json is not a JSON object"),
    ("{}", "the benchmark's inputs.json has no config object"),
    ('{"config": 5}', "the benchmark's inputs.json has no config object"),
    ('{"config": {"seeds": "many"}}', "the benchmark's inputs.json holds a config this version cannot read"),
    ('{"config": {"no_such_key": 1}}', "the benchmark's inputs.json holds a config this version cannot read"),
])
def test_status_on_a_broken_inputs_json_is_one_line(tmp_path, capsys, text, problem):
    (tmp_path / "inputs.json").write_text(text)
    line = cli_error_line(capsys, ["benchmark", "--status", str(tmp_path)])
    assert line.startswith(f"Error: {problem} ({tmp_path / 'inputs.json'})"), line


@pytest.mark.no_data
@pytest.mark.parametrize("result, problem", [
    ("[1, 2]", "result.json is not a JSON object: it holds a list"),
    ("not json", "result.json is not JSON"),
    ("{}", "result.json lacks what a finished cell writes (task, arm, seed, threshold, test"),
    ('{"task": "pneumonia-covid", "arm": "real", "seed": 0, "threshold": 0.5, "test": {"auroc": 0.5}, '
     '"test_scores": [], "test_labels": [], "model_sha256": "x"}', "result.json is another cell's"),
])
def test_status_does_not_count_a_result_that_is_not_a_finished_cells(tmp_path, capsys, result, problem):
    from cxrsynth.cli import main

    (tmp_path / "inputs.json").write_text(json.dumps(_inputs()))
    tmp_path.joinpath(*CELL).mkdir(parents=True)
    tmp_path.joinpath(*CELL, "result.json").write_text(result)
    st = benchmark_status(tmp_path)
    assert st["counts"] == {"done": 0, "running": 0, "failed": 0, "missing": 1}
    detail = st["cells"][0]["detail"]
    assert detail.startswith(problem) and detail.endswith("; it is run again"), detail
    main(["benchmark", "--status", str(tmp_path)])
    assert f"missing  normal-covid/real/seed-0  ({problem}" in capsys.readouterr().out


def test_a_failed_start_does_not_block_the_folder_and_a_broken_result_is_rerun(planned_workdir, tmp_path, capsys):
    from cxrsynth.cli import main

    out = tmp_path / "b"
    evil = tmp_path / "evil.pt"
    evil.write_bytes(pickle.dumps({"x": 1}) + b"")  # a pickle, not a checkpoint: refused at the cell's start
    args = ["-w", str(planned_workdir), "benchmark", "--out", str(out)] + [a for c in CFG for a in ("--set", c)]
    cli_error_line(capsys, args + ["--init", str(evil)])
    # N19: the corrected command into the same --out runs (no cell had finished, so nothing to protect)
    main(args + ["--init", "random"])
    capsys.readouterr()
    result = out.joinpath(*CELL, "result.json")
    good = json.loads(result.read_text())
    assert benchmark_status(out)["counts"]["done"] == 1
    # N17: a result of {} is not a finished cell: --status says so, and the rerun computes the cell again
    result.write_text("{}")
    assert benchmark_status(out)["cells"][0]["state"] == "missing"
    main(args + ["--init", "random"])
    assert "normal-covid/real/seed-0 is run again: result.json lacks what a finished cell writes" in capsys.readouterr().err
    again = json.loads(result.read_text())
    assert again["cell_key"] == good["cell_key"] and again["test"]["auroc"] == good["test"]["auroc"]
    # a folder whose finished cells came from other inputs is still refused, in one line
    line = cli_error_line(capsys, args + ["--init", "random", "--set", "fit.max_epochs=2"])
    assert "this benchmark folder holds runs made from other inputs" in line and "fit.max_epochs" in line
    # and a broken inputs.json beside finished cells is named, not a traceback
    (out / "inputs.json").write_text("[]")
    line = cli_error_line(capsys, args + ["--init", "random"])
    assert line.startswith(f"Error: the benchmark's inputs.json is not a JSON object ({out / 'inputs.json'})")
