"""Publishing releases to a local server that speaks the Hub's HTTP protocol, and loading them back.

``tests/hub_server.py`` is a test fixture (a stand-in for the Hub on 127.0.0.1), not a product. Each
push and load runs in a subprocess: ``huggingface_hub`` reads ``HF_ENDPOINT`` when it is imported.
"""

from __future__ import annotations

import json

from cxrsynth.stages.release.croissant import REQUIRED

from ._hub_client import CONTACT, REPO, TOKEN, _cli, _copy, _push, _py, _version
from .hub_server import yaml_errors


def _files(repo, rev):
    return set(repo.commits[repo.tags.get(rev) or repo.branches[rev]])


def _text(repo, rev, path):
    return repo.commits[repo.tags.get(rev) or repo.branches[rev]][path].content.decode()


def test_push_then_load_back_by_tag(built, hub, tmp_path):
    rel = _copy(built, tmp_path)
    before = {p.name: p.read_bytes() for p in rel.iterdir() if p.is_file()}
    rep = _push(hub, rel)
    assert len(rep["uploaded"]) == 8 and rep["tag"] == "v1.0.0" and len(rep["commits"]) == 1 and rep["deleted"] == []
    repo = hub.state.repos[REPO]
    assert repo.tags == {"v1.0.0": rep["commits"][0]} == {"v1.0.0": rep["tag_commit"]}
    assert TOKEN in hub.state.tokens_seen
    assert not any("private" in p for p in _files(repo, "v1.0.0"))  # the private folder stays home
    assert {p.name: p.read_bytes() for p in rel.iterdir() if p.is_file()} == before  # the release is not edited
    # the published card and Croissant name the repo; the card's YAML is what the Hub accepts
    card = repo.commits[rep["tag_commit"]]["README.md"].content.decode()
    assert f'load_dataset("{REPO}", revision="v1.0.0")' in card and "ORG/" not in card and yaml_errors(card) == []
    croissant = json.loads(repo.commits[rep["tag_commit"]]["croissant.json"].content)
    assert croissant["url"] == f"https://huggingface.co/datasets/{REPO}" and croissant["publisher"][0]["name"] == "org"
    assert all(k in croissant for k in REQUIRED)  # every property Croissant 1.0 requires, url included
    # a second push of the same version finds it published: no upload, no commit, the tag stays
    again = _push(hub, rel)
    assert again["uploaded"] == [] and again["commits"] == [] and len(again["unchanged"]) == 8
    assert again["tag_commit"] == rep["tag_commit"] and len(repo.log) == 1
    code = """
import json
from datasets import load_dataset
ds = load_dataset("org/covid-cxr-synth", revision="v1.0.0")
pc = load_dataset("org/covid-cxr-synth", "g_pc", revision="v1.0.0", split="train")
print(json.dumps({"n": ds["train"].num_rows, "pc": pc.num_rows, "mode": ds["train"][0]["image"].mode,
                  "label": ds["train"].features["label"].names}))
"""
    assert _py(hub, code) == {"n": 48, "pc": 24, "mode": "L", "label": ["normal", "pneumonia", "covid"]}
    # the benchmark's loader takes a Hub id and a revision as well as a folder
    code = ("import json, sys, cxrsynth\nds = cxrsynth.load('normal-covid', 'real+g_nc+g_pc', workdir=sys.argv[1], "
            "release='org/covid-cxr-synth', revision='v1.0.0', size=64)\nprint(json.dumps({'synthetic': ds.origins.count('synthetic')}))")
    assert _py(hub, code, str(built[0])) == {"synthetic": 48}


def test_new_version_replaces_the_old_files_and_both_tags_load(built, hub, tmp_path):
    v0 = _copy(built, tmp_path)
    v1 = _version(built, tmp_path, "1.0.1", max_shard_bytes=60_000, drop=4)  # more, renamed shards; 44 images
    old_shards = {p.relative_to(v0).as_posix() for p in (v0 / "data").glob("*.parquet")}
    new_shards = {p.relative_to(v1).as_posix() for p in (v1 / "data").glob("*.parquet")}
    assert old_shards and new_shards and not old_shards & new_shards
    r0, r1 = _push(hub, v0), _push(hub, v1)
    assert sorted(r1["deleted"]) == sorted(old_shards) and r1["tag"] == "v1.0.1"
    repo = hub.state.repos[REPO]
    assert repo.tags == {"v1.0.0": r0["tag_commit"], "v1.0.1": r1["tag_commit"]} and r0["tag_commit"] != r1["tag_commit"]
    assert repo.branches["main"] == r1["tag_commit"]
    main = _files(repo, "main")
    assert {p for p in main if p.startswith("data/")} == new_shards and main == _files(repo, "v1.0.1")
    assert {p for p in _files(repo, "v1.0.0") if p.startswith("data/")} == old_shards
    code = """
import json
from datasets import load_dataset
out = {}
for rev in ("v1.0.0", "v1.0.1"):  # main is v1.0.1's commit (asserted above)
    ds = load_dataset("org/covid-cxr-synth", revision=rev, split="train")
    nc = load_dataset("org/covid-cxr-synth", "g_nc", revision=rev, split="train")
    out[rev] = [ds.num_rows, nc.num_rows]
print(json.dumps(out))
"""
    m1 = json.loads((v1 / "manifest.json").read_text())["counts"]
    assert m1["all"] == 44
    assert _py(hub, code) == {"v1.0.0": [48, 24], "v1.0.1": [44, m1["g_nc"]]}


def test_changed_version_is_refused_and_tag_stays(built, hub, tmp_path):
    rep = _push(hub, _copy(built, tmp_path))
    repo = hub.state.repos[REPO]
    changed = _version(built, tmp_path, "1.0.0", max_shard_bytes=60_000)  # same version, other files
    res = _cli(hub, "push", str(changed), "--repo-id", REPO)
    assert res.returncode == 1
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: tag v1.0.0 already marks commit " + rep["tag_commit"]), lines
    assert f"main is at commit {rep['tag_commit']}" in lines[0] and "bump the version" in lines[0]
    assert repo.tags == {"v1.0.0": rep["tag_commit"]} and len(repo.log) == 1  # nothing moved, nothing committed


def test_rejected_card_yaml_is_one_error_line_and_no_repo(built, hub, tmp_path):
    from cxrsynth.stages.release.card import rerender

    rel = _copy(built, tmp_path)
    m = json.loads((rel / "manifest.json").read_text())
    m["license"] = "cc-by-nc-sa-5.0"  # not a Hub licence id
    (rel / "manifest.json").write_text(json.dumps(m))
    rerender(rel)  # the card follows the manifest; SHA256SUMS too, so the release still verifies
    res = _cli(hub, "push", str(rel), "--repo-id", REPO)
    assert res.returncode == 1
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in res.stderr, res.stderr
    assert lines[0].startswith("Error: the Hub rejects the dataset card's YAML (README.md)")
    assert '"license" must be a license id from the list, got "cc-by-nc-sa-5.0"' in lines[0]
    assert hub.state.repos == {} and not any("/api/repos/create" in r for r in hub.state.requests)


def test_gating_and_visibility_are_set(built, hub, tmp_path):
    rel = _copy(built, tmp_path)
    rep = _push(hub, rel)
    repo = hub.state.repos[REPO]
    assert repo.private is False and repo.gated == "manual" and rep["access"] == "manual"  # a new repo is gated
    first = rep["tag_commit"]
    rep = _push(hub, rel, "--private", "--gated", "manual")  # an existing public repo
    assert repo.private is True and repo.gated == "manual"
    assert rep["private"] is True and rep["gated"] == "manual" and "visibility changed to private" in rep["notes"]
    # the version was already there: main's card and Croissant now say "private", the tag keeps its files
    assert rep["uploaded"] == ["README.md", "SHA256SUMS", "croissant.json"] and len(repo.log) == 2
    assert repo.tags["v1.0.0"] == first and "repository is private" in _text(repo, "main", "README.md")
    assert "approve each request by hand" in _text(repo, "v1.0.0", "README.md")
    # a new repo is created private and gated before any data goes up (the plain-text report says so)
    res = _cli(hub, "push", str(rel), "--repo-id", "org/other", "--private", "--gated", "auto", "--contact", CONTACT)
    assert res.returncode == 0 and "gating set to auto" in res.stdout, res.stderr
    other = hub.state.repos["org/other"]
    assert other.private is True and other.gated == "auto"
    first_commit = next(i for i, r in enumerate(hub.state.requests) if r.startswith("POST /api/datasets/org/other/commit"))
    settings = [i for i, r in enumerate(hub.state.requests) if r == "PUT /api/datasets/org/other/settings"]
    assert settings and max(settings) < first_commit


def test_interrupted_push_resumes_without_sending_blobs_twice(built, hub, tmp_path):
    rel = _copy(built, tmp_path)
    hub.state.fail_commits_after = 0  # the commit fails, as a dropped connection would
    res = _cli(hub, "push", str(rel), "--repo-id", REPO, "--contact", CONTACT)
    assert res.returncode == 1 and res.stderr.startswith("Error: the Hub refused the push") and TOKEN not in res.stderr
    repo = hub.state.repos[REPO]
    assert repo.log == [] and not repo.tags and repo.branches["main"] is None  # nothing half-pushed
    puts = [r for r in hub.state.requests if r.startswith("PUT /lfs-upload/")]
    assert len(puts) == 3  # the two shards and the sample grid went up before the commit failed
    hub.state.fail_commits_after = None
    rep = _push(hub, rel)
    assert [r for r in hub.state.requests if r.startswith("PUT /lfs-upload/")] == puts  # not sent again
    assert len(repo.log) == 1 and repo.tags == {"v1.0.0": rep["tag_commit"]} and len(_files(repo, "v1.0.0")) == 8


def test_dry_run_contacts_nothing_and_bad_release_is_refused(built, hub, tmp_path):
    rel = built[1]
    res = _cli(hub, "push", str(rel), "--repo-id", "org/x", "--dry-run")
    assert res.returncode == 0 and "would upload 8 files" in res.stdout
    assert hub.state.requests == []
    bad = _copy(built, tmp_path)
    (bad / "manifest.json").write_text("{}")
    res = _cli(hub, "push", str(bad), "--repo-id", "org/x")
    assert res.returncode == 1 and "does not verify" in res.stderr and hub.state.requests == []
    res = _cli(hub, "push", str(rel), "--repo-id", "noslash")
    assert res.returncode == 1 and "repo id must be ORG/NAME" in res.stderr


def test_version_order_and_restoring_main(built, hub, tmp_path):
    """The review's sequence: v1.0.1, then v0.9.0 (refused; accepted with --allow-older), then v1.0.1
    again (main holds 0.9.0: said, and --restore-main puts 1.0.1 back on main)."""
    new = _version(built, tmp_path, "1.0.1", max_shard_bytes=60_000)  # 48 images
    old = _version(built, tmp_path, "0.9.0", max_shard_bytes=1_000_000, drop=4)  # 44 images, other shards
    r1 = _push(hub, new)
    repo = hub.state.repos[REPO]
    res = _cli(hub, "push", str(old), "--repo-id", REPO)
    lines = res.stderr.strip().splitlines()
    assert res.returncode == 1 and len(lines) == 1, res.stderr[-2000:]
    assert lines[0].startswith("Error: version 0.9.0 is older than the newest published version v1.0.1") and "--allow-older" in lines[0]
    assert repo.branches["main"] == r1["tag_commit"] and set(repo.tags) == {"v1.0.1"}  # nothing moved
    r0 = _push(hub, old, "--allow-older")
    assert repo.tags["v0.9.0"] == r0["tag_commit"] == repo.branches["main"] != r1["tag_commit"]
    assert any("older than v1.0.1" in n for n in r0["notes"])
    # v1.0.1 again: not "nothing to upload" but where main is
    res = _cli(hub, "push", str(new), "--repo-id", REPO)
    lines = res.stderr.strip().splitlines()
    assert res.returncode == 1 and len(lines) == 1, res.stderr[-2000:]
    assert f"v1.0.1 is already published with these files (commit {r1['tag_commit']}), but main" in lines[0]
    assert "holds version 0.9.0" in lines[0] and "--restore-main" in lines[0] and "nothing to upload" not in lines[0]
    assert repo.branches["main"] == r0["tag_commit"]
    rep = _push(hub, new, "--restore-main")
    assert repo.branches["main"] == rep["commits"][0] and repo.tags == {"v1.0.1": r1["tag_commit"], "v0.9.0": r0["tag_commit"]}
    assert _files(repo, "main") == _files(repo, "v1.0.1") and any("main held version 0.9.0" in n for n in rep["notes"])
    assert {k: e.sha256 for k, e in repo.commits[repo.branches["main"]].items()} == \
        {k: e.sha256 for k, e in repo.commits[r1["tag_commit"]].items()}  # the tag's tree, byte for byte
    # main, downloaded, verifies and loads as 1.0.1 (no revision: what users get by default)
    code = """
import json, subprocess, sys
from datasets import load_dataset
from huggingface_hub import snapshot_download
d = snapshot_download("org/covid-cxr-synth", repo_type="dataset", local_dir=sys.argv[1] + "/main-copy/covid-cxr-synth")
v = subprocess.run([sys.executable, "-m", "cxrsynth.cli", "verify", d, "--private", sys.argv[2]], capture_output=True, text=True)
ds = load_dataset("org/covid-cxr-synth", split="train")
print(json.dumps({"verify": v.returncode, "out": v.stdout[-500:], "n": ds.num_rows,
                  "version": json.load(open(d + "/manifest.json"))["version"]}))
"""
    got = _py(hub, code, str(tmp_path), str(new.parent / f"{new.name}.private"))
    assert got["verify"] == 0, got["out"]
    assert (got["n"], got["version"]) == (48, "1.0.1")
    # once main holds it, a push of v1.0.1 is a no-op again; --allow-older does not bypass a changed tag
    again = _push(hub, new)
    assert again["commits"] == [] and any("main serves it" in n for n in again["notes"])


def test_card_and_croissant_state_the_access_the_hub_reports(built, hub, tmp_path):
    """Gating rendered from the repo's setting as read back, never claimed; an ungated public repo only
    with --public --gated off; the contact in the manifest, the card and Croissant."""
    from cxrsynth.stages.release.verify import verify

    rel = _copy(built, tmp_path)
    local = (rel / "README.md").read_text()
    assert "has not been published" in local and "access is gated" not in local  # a local copy claims nothing
    res = _cli(hub, "push", str(rel), "--repo-id", REPO, "--contact", "not a contact")
    assert res.returncode == 1 and res.stderr.startswith("Error: the contact must be an email address or an http(s) "
                                                         "web address (not a contact)") and hub.state.requests == []
    res = _cli(hub, "push", str(rel), "--repo-id", REPO)  # a new version without a contact
    assert res.returncode == 1 and "Error: no contact for questions and takedown requests" in res.stderr
    res = _cli(hub, "push", str(rel), "--repo-id", REPO, "--gated", "off", "--contact", CONTACT)  # not --public
    assert res.returncode == 1 and "would leave the repo public and not gated" in res.stderr
    assert "--public --gated off" in res.stderr and REPO not in hub.state.repos  # refused before creating it
    rep = _push(hub, rel, "--public", "--gated", "off", "--contact", "https://example.org/takedown")
    repo = hub.state.repos[REPO]
    assert repo.gated is False and repo.private is False and rep["access"] == "public"
    card, croissant = _text(repo, "main", "README.md"), json.loads(_text(repo, "main", "croissant.json"))
    manifest = json.loads(_text(repo, "main", "manifest.json"))
    assert "**not gated**" in card and "access is gated" not in card and "approve" not in card
    assert "access is not gated" in " ".join(croissant["rai:personalSensitiveInformation"])
    assert manifest["contact"] == "https://example.org/takedown" and "Contact and takedown" in card
    assert "go to **https://example.org/takedown**" in card
    assert "https://example.org/takedown" in croissant["rai:dataReleaseMaintenancePlan"]
    # gating changed on the Hub's website: the next push reads it back and the card follows, contact kept
    repo.gated = "auto"
    rep = _push(hub, rel, "--contact", "https://example.org/takedown")
    card, croissant = _text(repo, "main", "README.md"), json.loads(_text(repo, "main", "croissant.json"))
    assert rep["access"] == "auto" and "(approved automatically)" in card and "**not gated**" not in card
    assert "approved automatically" in " ".join(croissant["rai:personalSensitiveInformation"])
    # turning the public repo's gating off needs --public too; asked for explicitly it is allowed
    res = _cli(hub, "push", str(rel), "--repo-id", REPO, "--gated", "off")
    assert res.returncode == 1 and "would leave the repo public and not gated" in res.stderr and repo.gated == "auto"
    res = _cli(hub, "push", str(rel), "--repo-id", REPO, "--public", "--gated", "off")
    assert res.returncode == 0 and "contact https://example.org/takedown kept from main" in res.stdout, res.stderr
    assert json.loads(_text(repo, "main", "manifest.json"))["contact"] == "https://example.org/takedown"
    # the downloaded main verifies: the access it states is recorded in its front matter
    dl = tmp_path / "dl" / rel.name
    dl.mkdir(parents=True)
    for path, e in repo.commits[repo.branches["main"]].items():
        (dl / path).parent.mkdir(parents=True, exist_ok=True)
        (dl / path).write_bytes(hub.state.lfs[e.sha256] if e.lfs else e.content)
    assert verify(dl, rel.parent / f"{rel.name}.private") == []
