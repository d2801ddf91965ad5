"""A failed command leaves no empty folder, nor lock files, that it made itself (issue 24: N43, C20).

On main: an option refused after the destination was checked (``train`` with a bad ``--set``,
``benchmark --eval-only`` with two tasks), or a stage failing at its start (``split`` in a new work folder
without records, ``audit`` of a folder that is not a release), left the new ``--out`` or work folder
behind, empty or holding only ``.<stage>.lock``.
"""

from __future__ import annotations

import pytest

from .conftest import cli_error_line

pytestmark = pytest.mark.no_data


@pytest.mark.parametrize("argv, start", [
    (["split"], "Error: "),
    (["train", "--task", "normal-covid", "--out", "{new}/run", "--set", "lr=.inf"], "Error: lr must be a finite number"),
    (["audit", "{rel}", "--out", "{new}/audit"], "Error: "),
    (["benchmark", "--arm", "real", "--external", "a|b={rel}", "--out", "{new}/bench"], "Error: "),
])
def test_a_failed_command_removes_the_folders_it_made(tmp_path, capsys, argv, start):
    rel = tmp_path / "not-a-release"
    rel.mkdir()
    new = tmp_path / "new"
    argv = [a.format(new=new, rel=rel) for a in argv]
    line = cli_error_line(capsys, ["-w", str(new / "wd")] + argv)
    assert line.startswith(start), line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["not-a-release"]


def test_a_usage_error_makes_no_out_folder(tmp_path, capsys):
    from cxrsynth.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["-w", str(tmp_path / "wd"), "benchmark", "--eval-only", "x.safetensors", "--out", str(tmp_path / "out")])
    assert exc.value.code == 2 and "--eval-only needs exactly one --task" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_folders_that_existed_or_hold_anything_are_kept(tmp_path, capsys):
    from cxrsynth.locks import hold, remove_if_unused

    old = tmp_path / "old"
    old.mkdir()
    cli_error_line(capsys, ["-w", str(old), "split"])  # no records: fails, but the folder was there before
    assert old.is_dir()
    made = tmp_path / "made" / "a"
    made.mkdir(parents=True)
    (made / "result.json").write_text("{}")
    assert not remove_if_unused(tmp_path / "made") and (made / "result.json").is_file()
    held = tmp_path / "held"
    with hold(held, "stage", "a stage"):
        assert not remove_if_unused(held)  # a lock someone holds keeps its folder
    assert remove_if_unused(held) and not held.exists()
