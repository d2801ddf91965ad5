"""Reproducible benchmark inputs (issue 21): ``--release ORG/NAME@REV`` / ``--revision``, and the release's
name, version, data_sha256 and resolved commit in results.json and the tables' header.

The Hub is ``tests/hub_server.py`` on 127.0.0.1; the benchmark is tiny (one task, one arm, one seed,
resnet18 from scratch at 32 px, 4 images a class, one epoch, no figures).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from cxrsynth.artifacts.release_ref import ReleaseRef, parse
from cxrsynth.core.errors import ConfigError

from ._hub_client import REPO, _copy, _push, _version

TINY = ["--task", "normal-covid", "--arm", "real+own", "--model", "resnet18", "--init", "random", "--image-size", "32",
        "--limit", "4", "--max-epochs", "1", "--seeds", "1", "--set", "bootstrap=0", "--set", "figures=false"]


@pytest.mark.no_data
def test_parse_release_references(tmp_path):
    assert parse("org/x@v1.0.1") == ReleaseRef("org/x", "v1.0.1") == parse("org/x", "v1.0.1")
    assert parse("org/x") == ReleaseRef("org/x") and str(parse("org/x@abc")) == "org/x@abc"
    folder = tmp_path / "rel@2"  # a folder is taken whole, even with an @ in its path
    folder.mkdir()
    assert parse(folder) == ReleaseRef(str(folder)) and parse(folder).local
    with pytest.raises(ConfigError, match="two different revisions"):
        parse("org/x@v1", "v2")
    with pytest.raises(ConfigError, match="empty revision"):
        parse("org/x@")
    with pytest.raises(ConfigError, match="--revision is for a Hub release"):
        parse(folder, "v1")


def test_a_local_release_is_recorded(built, tmp_path):
    from cxrsynth.cli import main

    wd, rel, manifest = built
    main(["-w", str(wd), "benchmark", "--release", str(rel), "--out", str(tmp_path / "b"), *TINY])
    res = json.loads((tmp_path / "b" / "results.json").read_text())
    shown = rel.relative_to(wd).as_posix()  # no absolute local path in what is shared, unless --record-paths
    assert res["release_info"] == {"id": shown, "name": manifest["name"], "version": manifest["version"],
                                   "data_sha256": manifest["data_sha256"], "source": "folder", "revision": None,
                                   "commit": None}
    head = (tmp_path / "b" / "tables.md").read_text().split("###")[0]
    assert f"Release: {manifest['name']} {manifest['version']} (data_sha256 {manifest['data_sha256']}; folder {shown})" in head


def test_a_hub_release_is_pinned_to_its_revision(built, hub, tmp_path):
    wd, _, _ = built
    v0 = _push(hub, _copy(built, tmp_path))
    v1 = _push(hub, _version(built, tmp_path, "1.0.1", max_shard_bytes=60_000, drop=4))
    repo = hub.state.repos[REPO]
    assert repo.branches["main"] == v1["tag_commit"] != v0["tag_commit"]
    # main holds 1.0.1 now; the run asks for v1.0.0 and must read, and record, exactly that
    cmd = [sys.executable, "-m", "cxrsynth.cli", "-w", str(wd), "benchmark", "--release", REPO, "--revision", "v1.0.0",
           "--out", str(tmp_path / "b"), *TINY]
    run = subprocess.run(cmd, capture_output=True, text=True, env=hub.env, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    res = json.loads((tmp_path / "b" / "results.json").read_text())
    manifest = json.loads(repo.commits[v0["tag_commit"]]["manifest.json"].content)
    info = res["release_info"]
    assert info == {"id": REPO, "name": "covid-cxr-synth", "version": "1.0.0", "data_sha256": manifest["data_sha256"],
                    "source": "hub", "revision": "v1.0.0", "commit": v0["tag_commit"]}
    assert res["release"] == f"{REPO}@{v0['tag_commit']}" and res["release_data_sha256"] == manifest["data_sha256"]
    assert res["runs"][0]["train"]["positives_synthetic"] == 4  # --limit 4 of v1.0.0's 24 g_nc images
    head = (tmp_path / "b" / "tables.md").read_text().split("###")[0]
    assert f"revision v1.0.0, commit {v0['tag_commit']}" in head and "covid-cxr-synth 1.0.0" in head
    # every shard the run read came from that commit, none from main
    gets = [r for r in hub.state.requests if "/resolve/" in r and ".parquet" in r]
    assert gets and all(f"/resolve/{v0['tag_commit']}/" in r for r in gets), gets
