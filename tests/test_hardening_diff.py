"""``cxrsynth diff`` reads both releases as untrusted and never breaks NEW in place (issue 24: N39-N41).

On main: an OLD manifest.json that is not JSON gave a ``JSONDecodeError`` traceback (N39); OLD newer than
NEW (swapped arguments) printed "Changes from version 1.0.1 to 1.0.0" with no warning (N40); ``--write``
took OLD's manifest unvalidated, so HTML, record ids and absolute paths went into NEW's verified card and
SHA256SUMS was rewritten: NEW no longer verified, with no backup (N41).
"""

from __future__ import annotations

import json
import shutil

import pytest

from cxrsynth.core.paths import sha256_file
from cxrsynth.stages.release.verify import verify

from .conftest import cli_error_line


def _copy(built, dst):
    rel = built[1]
    shutil.copytree(rel, dst / rel.name)
    shutil.copytree(rel.parent / f"{rel.name}.private", dst / f"{rel.name}.private")
    return dst / rel.name


def _set(release, **fields):
    m = json.loads((release / "manifest.json").read_text())
    m.update(fields)
    (release / "manifest.json").write_text(json.dumps(m))


def _files(folder):
    return {p.relative_to(folder).as_posix(): sha256_file(p) for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture()
def newer(built, tmp_path):
    """NEW: a verified copy of the built release as version 1.0.1 (its card rendered again)."""
    from cxrsynth.stages.release.card import rerender

    new = _copy(built, tmp_path / "new")
    _set(new, version="1.0.1")
    rerender(new)
    assert verify(new) == []
    return new


@pytest.mark.no_data
def test_old_manifest_that_is_not_json_is_one_line(tmp_path, capsys):
    for name in ("old", "new"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "manifest.json").write_text("x")
        (tmp_path / name / "SHA256SUMS").write_text("zz\n")
    line = cli_error_line(capsys, ["diff", str(tmp_path / "old"), str(tmp_path / "new")])
    assert line.startswith(f"Error: OLD's manifest.json is not JSON ({tmp_path / 'old' / 'manifest.json'})"), line


def test_swapped_arguments_are_refused_and_equal_versions_said(built, newer, tmp_path, capsys):
    from cxrsynth.cli import main

    old = built[1]
    line = cli_error_line(capsys, ["diff", str(newer), str(old)])
    assert line.startswith("Error: OLD is newer than NEW (OLD 1.0.1, NEW 1.0.0)") and "swap them" in line
    main(["diff", str(old), str(old)])
    assert "WARNING: OLD and NEW are both version 1.0.0" in capsys.readouterr().err
    before = _files(old)
    line = cli_error_line(capsys, ["diff", str(old), str(old), "--write"])
    assert line.startswith("Error: --write needs NEW to be a later version than OLD (both 1.0.0)")
    assert _files(old) == before


def test_a_hostile_old_never_reaches_the_new_card(built, newer, tmp_path, capsys):
    new_files = _files(newer)
    cases = {  # what OLD holds -> the start of the one line
        "html-version": ({"version": "0.9.0 <img src=x onerror=alert(1)> 0066bda00f19b568"},
                         "Error: release_manifest does not match its schema at version"),
        "path-translator": ({"translators": [{"config": "g_nc", "task": "normal-covid", "generator_sha256": "0" * 64,
                                              "translator_id": "/data/nih-chestxray14-sample/images/00000013_005.png"}]},
                            "Error: OLD's manifest.json has a translator id that a release never writes"),
        "html-licence": ({"license": "<b>mit</b>"}, "Error: OLD's manifest.json has a licence that a release never writes"),
    }
    for name, (fields, start) in cases.items():
        old = _copy(built, tmp_path / name)
        _set(old, **fields)
        line = cli_error_line(capsys, ["diff", str(old), str(newer), "--write"])
        assert line.startswith(start) and "OLD" in line, (name, line)
    old = _copy(built, tmp_path / "sums")
    with open(old / "SHA256SUMS", "a") as fh:
        fh.write(f"{'0' * 64}  /home/someone/data/00000013_005.png\n")
    line = cli_error_line(capsys, ["diff", str(old), str(newer), "--write"])
    assert line.startswith("Error: OLD's SHA256SUMS has a line that is not '<sha256>  <relative path>'")
    assert _files(newer) == new_files and verify(newer) == []


def test_write_that_would_not_verify_leaves_new_as_it_was(built, newer, monkeypatch, capsys):
    import cxrsynth.stages.release.diff as D

    new_files = _files(newer)
    monkeypatch.setattr(D, "changes_markdown", lambda d: "Changes: see /home/someone/notes.txt")
    line = cli_error_line(capsys, ["diff", str(built[1]), str(newer), "--write"])
    assert line.startswith("Error: the card with these changes does not verify (") and "absolute path" in line, line
    assert line.endswith("nothing was changed in NEW")
    assert _files(newer) == new_files and verify(newer) == []
    assert sorted(p.name for p in newer.parent.iterdir()) == [newer.name, f"{newer.name}.private"]  # nor a lock file
    monkeypatch.undo()
    # the real changes go in, and the swapped-in folder verifies; the built release (OLD) is untouched
    old_files = _files(built[1])
    from cxrsynth.cli import main

    main(["diff", str(built[1]), str(newer), "--write"])
    assert "Changes from version 1.0.0 to 1.0.1" in (newer / "README.md").read_text()
    assert verify(newer) == [] and _files(built[1]) == old_files
    changed = {k for k in new_files if _files(newer).get(k) != new_files[k]}
    # SHA256SUMS leaves the card out (verify checks its protected sections instead), so it changes only
    # when croissant.json does
    assert changed - {"croissant.json", "SHA256SUMS"} == {"README.md"}
    assert ("SHA256SUMS" in changed) == ("croissant.json" in changed)
