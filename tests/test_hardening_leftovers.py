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
    from cxrsynth.core.locks import hold, remove_if_unused

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


def test_a_failed_command_removes_the_lock_files_it_made_and_only_those(tmp_path, capsys):
    from cxrsynth.core.locks import hold

    out = tmp_path / "audit-out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")  # the folder existed and holds a file: it stays
    rel = tmp_path / "not-a-release"
    rel.mkdir()
    cli_error_line(capsys, ["-w", str(tmp_path / "wd"), "audit", str(rel), "--out", str(out)])
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]
    with hold(out, "audit", "the audit folder"):  # a lock file that was there before the command stays
        pass
    cli_error_line(capsys, ["-w", str(tmp_path / "wd"), "audit", str(rel), "--out", str(out)])
    assert sorted(p.name for p in out.iterdir()) == [".audit.lock", "notes.txt"]


def test_a_lock_file_removed_between_open_and_flock_is_opened_anew(tmp_path, monkeypatch):
    """The race that removing lock files opens: B opens the file, A removes it, B locks the removed
    file while C makes a new one; B must see that its file is gone and open the path again."""
    import fcntl as real_fcntl

    from cxrsynth.core import locks

    folder = tmp_path / "f"
    path = folder / ".stage.lock"
    folder.mkdir()
    path.write_text("")
    calls = []

    class Racing:
        LOCK_EX, LOCK_SH, LOCK_NB = real_fcntl.LOCK_EX, real_fcntl.LOCK_SH, real_fcntl.LOCK_NB

        @staticmethod
        def flock(fd, op):
            calls.append(fd)
            if len(calls) == 1:  # A: the file is free, so removed while B holds only an open descriptor
                locks.remove_free_locks([path])  # (its own flock is calls[1])
            return real_fcntl.flock(fd, op)

    monkeypatch.setattr(locks, "fcntl", Racing)
    with locks.hold(folder, "stage", "a stage") as held:
        assert len(calls) == 3 and held.is_file()  # B locked the removed file, saw it, and locked the new one
        monkeypatch.setattr(locks, "fcntl", real_fcntl)
        assert locks.holder_of(folder, "stage") is not None  # the path's file is the one held
        locks.remove_free_locks([path])
        assert path.is_file()  # a held lock is never removed
