"""Finite or refused (issue 24, probes N02, N03, N04).

On main ``train --set lr=.inf`` passed the "above 0" check, trained and exported a translator whose
weights were all NaN or infinite, with exit 0 (N02); ``split --set 'fractions=[.nan, 0.5, 0.5]'`` put
every record in train (N03) and ``fractions=[1, 0, 0]`` left validation and test empty without a word
(N04). Now every float option is finite or refused with its key named, training stops at the first
non-finite loss naming its step and loss, and no checkpoint or export holds a non-finite weight.
"""

from __future__ import annotations

import json
import math

import pytest
import torch

from cxrsynth.core.errors import ConfigError

from .conftest import TINY, cli_error_line

TINY_SET = [a for kv in TINY for a in ("--set", kv)]


@pytest.mark.no_data
@pytest.mark.parametrize("argv, expected", [
    (["train", "--task", "normal-covid", "--set", "lr=.inf"], "lr must be a finite number (inf)"),
    (["train", "--task", "normal-covid", "--set", "lr=.nan"], "lr must be a finite number (nan)"),
    (["train", "--task", "normal-covid", "--set", "lambda_cycle=.inf"], "lambda_cycle must be a finite number (inf)"),
    (["train", "--task", "normal-covid", "--set", "save_every_minutes=.inf"],
     "save_every_minutes must be a finite number (inf)"),
    (["release", "--set", "train.lr=.inf"], "train.lr must be a finite number (inf)"),
    (["benchmark", "--arm", "real", "--set", "fit.lr=-.inf"], "fit.lr must be a finite number (-inf)"),
    (["split", "--set", "fractions=[.nan, 0.5, 0.5]"], "fractions must be a finite number (nan)"),
    (["ingest", "--set", "dedupe_max_zmad=.nan"], "dedupe_max_zmad must be a finite number (nan)"),
])
def test_non_finite_options_are_refused_before_any_work(argv, expected, tmp_path, capsys):
    """The work folder is empty: on main these got past the options (and trained, for lr=.inf, once data
    was there) and failed on something else, or not at all."""
    line = cli_error_line(capsys, ["-w", str(tmp_path / "wd")] + argv)
    assert line == f"Error: {expected}"
    assert not [p for p in (tmp_path / "wd").rglob("*") if p.is_file() and not p.name.endswith(".lock")]


@pytest.mark.no_data
def test_config_helpers_refuse_nan_and_infinity():
    from cxrsynth.core.config import at_least, between, finite, positive

    for helper, args in ((at_least, (0,)), (positive, ()), (between, (0, 1))):
        for bad in (math.nan, math.inf, -math.inf):
            with pytest.raises(ConfigError, match="x must be a finite number"):
                helper("x", bad, *args)
    finite("x", 10 ** 3)
    with pytest.raises(ConfigError, match="x must be a finite number"):
        finite("x", 10 ** 400)  # an int no float can hold


@pytest.mark.no_data
def test_split_fractions_are_checked_in_the_dataclass_too():
    from cxrsynth.stages.splits import SplitConfig

    for bad in ((math.nan, 0.5, 0.5), (math.inf, 0, 0), (1.2, -0.1, -0.1), (0.5, 0.5, 0.5)):
        with pytest.raises(ConfigError, match="three finite, non-negative numbers summing to 1"):
            SplitConfig(fractions=bad)


def ingested_copy(workdir, dst):
    """A new work folder holding only ``workdir``'s ingest (records and reports), ready to split."""
    dst.mkdir()
    for name in ("records.parquet", "ingest_report.json", "ingest_config.json"):
        (dst / name).write_bytes((workdir / name).read_bytes())
    return dst


def test_empty_validation_and_test_are_said_plainly(planned_workdir, tmp_path, capsys):
    """N04: fractions [1, 0, 0] is what the user asked for, so it is made, and said plainly."""
    from cxrsynth.cli import main

    wd = ingested_copy(planned_workdir, tmp_path / "wd")
    main(["-w", str(wd), "split", "--set", "fractions=[1, 0, 0]"])
    out = capsys.readouterr().out
    manifest = json.loads((wd / "splits.json").read_text())
    assert manifest["counts"]["validation"] == {} and manifest["counts"]["test"] == {}
    note = [n for n in manifest["notes"] if "the rigorous benchmark cannot use this split" in n]
    assert note and note[0].startswith("validation and test are empty") and f"note: {note[0]}" in out
    # a fraction that asks for images and gets none (too few patient groups) is refused
    from cxrsynth.stages.splits import empty_split_notes

    with pytest.raises(ConfigError, match="the test split came out empty"):
        empty_split_notes({"a": "train", "b": "validation"}, (0.8, 0.1, 0.1))
    assert empty_split_notes({"a": "train", "b": "validation", "c": "test"}, (0.8, 0.1, 0.1)) == []


def test_non_finite_loss_stops_training_and_saves_nothing_from_it(planned_workdir, tmp_path, capsys, monkeypatch):
    """A loss forced to NaN from step 3 on: checkpoint 2 (finite) stays, training stops with one line naming
    step 3 and the loss, and no later checkpoint nor any generator is written."""
    from cxrsynth.stages.translate.train import CycleGAN

    real = CycleGAN._generator_losses
    calls = []

    def poisoned(self, real_A, real_B, *rest):
        out, fake_B, fake_A = real(self, real_A, real_B, *rest)
        calls.append(1)
        if len(calls) >= 3:
            out["cycle_A"] = out["cycle_A"] * float("nan")
        return out, fake_B, fake_A

    monkeypatch.setattr(CycleGAN, "_generator_losses", poisoned)
    run = tmp_path / "run"
    line = cli_error_line(capsys, ["-w", str(planned_workdir), "train", "--task", "normal-covid", *TINY_SET,
                                   "--max-steps", "6", "--set", "log_every=20", "--out", str(run)])
    assert line.startswith("Error: training stopped at step 3: the loss cycle_A is nan") and str(run) in line
    assert sorted(p.name for p in (run / "checkpoints").iterdir() if p.is_dir()) == ["step-00000002"]
    assert not (run / "generator.safetensors").exists() and not (run / "train_report.json").exists()
    rows = (run / "losses.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in rows[1:]] == ["1", "2", "3", "4"] and "nan" in rows[3]


@pytest.mark.no_data
def test_non_finite_weights_are_never_written(tmp_path):
    from cxrsynth.core.errors import NonFiniteError
    from cxrsynth.stages.translate.checkpoint import export_generator, save_checkpoint

    net = torch.nn.Linear(2, 2)
    with torch.no_grad():
        net.weight[0, 0] = float("inf")
    with pytest.raises(NonFiniteError, match=r"1 tensors hold NaN or infinite values \(first: weight\); not written"):
        export_generator(net, tmp_path / "generator.safetensors", {"size": 64})
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(NonFiniteError, match=r"first: net.G_A.weight"):
        save_checkpoint(tmp_path, 4, 0, {"G_A": net}, {}, {}, {}, {})
    assert not list(tmp_path.rglob("*.safetensors")) and not list(tmp_path.rglob(".step-*"))
