"""New inputs refused in one line, and a no-op resume that keeps the run's time (issue 24: N05, N28,
N31, N32, N37, N01, N34).

On main: a ``!!python`` tag in ``--set`` gave a ``ConstructorError`` traceback (N05); an external NAME with
``|`` shifted the markdown table (N28); a deeply nested patient-map JSON gave ``RecursionError`` (N31) and
a Data_Entry CSV row with an extra field a ``TypeError`` (N32); ``push --tag '../../main'`` was accepted
(N37); ``train --resume`` on a finished run rewrote ``train_report.json`` with the no-op's time (N01); a
patient map that joined 26,684 RSNA ids to one NIH image made one "patient" of 96% of the records, silently
(N34).
"""

from __future__ import annotations

import json

import pytest

from cxrsynth.core.errors import BadInputError, ConfigError

from .conftest import TINY, cli_error_line
from .test_hardening_finite import ingested_copy


@pytest.mark.no_data
def test_a_python_tag_in_set_is_one_line_and_runs_nothing(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    line = cli_error_line(capsys, ["-w", str(tmp_path / "wd"), "plan", "--set",
                                   'per_domain=!!python/object/apply:os.system ["touch pwned"]'])
    assert line.startswith("Error: override value does not parse (per_domain=!!python/object/apply:os.system")
    assert "could not determine a constructor" in line and not (tmp_path / "pwned").exists()


@pytest.mark.no_data
@pytest.mark.parametrize("tag", ["../../main", "main", "v1 .0", "v1..0", ".hidden", "x.lock", "a//b", "v1@{0}",
                                 "-rc", "refs/tags/v1", "v1/", "v1.", "HEAD", "a:b", "a~1", "a^", "a*", "a[", "a\\b",
                                 "", "@", "a\tb"])
def test_push_tag_follows_git_ref_name_rules(tag):
    from cxrsynth.stages.release.refname import check_tag

    with pytest.raises(ConfigError, match="not a usable tag name"):
        check_tag(tag)


@pytest.mark.no_data
def test_push_refuses_a_bad_tag_before_any_work(tmp_path, capsys):
    rel = tmp_path / "covid-cxr-synth"
    rel.mkdir()  # not even a release: the tag is refused first
    line = cli_error_line(capsys, ["push", str(rel), "--repo-id", "org/x", "--tag", "../../main"])
    assert line.startswith("Error: not a usable tag name (../../main)")
    from cxrsynth.stages.release.refname import check_tag

    for good in ("v1.0.0", "1.0.0", "release/v1.0.0-rc.1", "v1.0.0+build_2"):
        assert check_tag(good) == good


@pytest.mark.no_data
def test_external_name_is_letters_digits_dot_dash_underscore(tmp_path):
    from cxrsynth.stages.external_sets import parse_externals

    assert parse_externals([f"site-b.v2_1={tmp_path}"]) == {"site-b.v2_1": str(tmp_path)}
    for bad in ("a|b", "<script>", "a b", "a,b", "ü"):
        with pytest.raises(ConfigError, match="NAME may hold only letters, digits"):
            parse_externals([f"{bad}={tmp_path}"])


def test_patient_map_parser_errors_are_one_line(planned_workdir, tmp_path, capsys):
    wd = ingested_copy(planned_workdir, tmp_path / "wd")
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100000 + "]" * 100000)
    line = cli_error_line(capsys, ["-w", str(wd), "split", "--patient-map", str(deep)])
    assert line == f"Error: RSNA mapping file is not readable JSON ({deep}); nested too deeply"
    extra = tmp_path / "Data_Entry_2017.csv"
    extra.write_text("Image Index,Patient ID,Other\n00000001_000.png,1,x\n00000002_000.png,2,x,EXTRA\n")
    line = cli_error_line(capsys, ["-w", str(wd), "split", "--patient-map", str(extra)])
    assert line.startswith(f"Error: patient mapping file has a malformed row ({extra}); line 3: 4 fields")
    assert not (wd / "splits.json").exists()
    from cxrsynth.data.identity import load_identity

    good = tmp_path / "ok.csv"
    good.write_text("Image Index,Patient ID\n00000001_000.png,0001\n")
    assert load_identity([good]).nih_patient == {"00000001_000.png": "0001"}
    with pytest.raises(BadInputError):
        load_identity([deep])


def test_resume_of_a_finished_run_keeps_its_time(planned_workdir, tmp_path):
    from cxrsynth.core.config import resolve
    from cxrsynth.stages.translate.train import TrainConfig, train

    cfg = resolve(TrainConfig, overrides=TINY + ["task=normal-covid", "max_steps=3"])
    run = tmp_path / "run"
    first = train(planned_workdir, cfg, out_dir=run)
    again = train(planned_workdir, cfg, resume=True, out_dir=run)  # nothing left to train: re-export only
    saved = json.loads((run / "train_report.json").read_text())
    for key in ("seconds", "seconds_per_step", "last_losses"):
        assert again[key] == first[key] == saved[key]
    assert saved["steps"] == 3 and saved["translator_id"] == first["translator_id"]


def test_a_patient_map_that_makes_one_huge_patient_is_refused_or_warned(tmp_path):
    """N34: a map that names one NIH image for half of the RSNA ids makes one "patient" of half the records."""
    from cxrsynth.data.identity import RSNA_MAPPING, load_identity
    from cxrsynth.data.sources.rsna import RsnaConfig, read
    from cxrsynth.stages.splits import SplitConfig, make_splits

    from .conftest import RSNA_META

    recs = read(RSNA_META, RsnaConfig(), "rsna").records[:2000]
    plain = make_splits(recs, SplitConfig(seed=0))
    assert plain["largest_group"] == {"records": 1, "share": 0.0005, "groups": 2000}
    assert not any("patient group" in n for n in plain["notes"])
    collapse = tmp_path / RSNA_MAPPING
    collapse.write_text(json.dumps([{"subset_img_id": r.image_key, "img_id": "00000013_005.png"} for r in recs[:1000]]))
    ident = load_identity([collapse])
    with pytest.raises(ConfigError, match=r"one patient group holds 50.0% of the records \(1,000 of 2,000\)") as err:
        make_splits(recs, SplitConfig(seed=0), identity=ident)
    assert "max_group_share 0.05" in err.value.one_line() and "--set max_group_share=1" in err.value.one_line()
    allowed = make_splits(recs, SplitConfig(seed=0, max_group_share=1), identity=ident)
    assert allowed["largest_group"]["share"] == 0.5
    assert any(n.startswith("WARNING: one patient group holds 50.0%") and "all its records are in one split" in n
               for n in allowed["notes"])
    paper = make_splits(recs, SplitConfig(method="paper"), identity=ident)  # the paper rule splits by rows: warned
    assert any(n.startswith("WARNING: one patient group holds 50.0%") for n in paper["notes"])
    with pytest.raises(ConfigError, match="max_group_share must be a finite number"):
        SplitConfig(max_group_share=float("nan"))
    with pytest.raises(ConfigError, match="max_group_share must be between 0 and 1"):
        SplitConfig(max_group_share=2)
