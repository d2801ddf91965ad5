"""The client side of the tests that publish to the local Hub stand-in (``tests/hub_server.py``):
its token, the repo and the helpers that push a copy of a release and load it back in subprocesses.
Shared by test_push.py and test_benchmark_release.py; the ``hub`` fixture is in conftest.py."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

TOKEN = "hf_test_SECRET_token_0123456789"
REPO = "org/covid-cxr-synth"
CONTACT = "data-team@example.org"


def _copy(built, tmp_path, name="a"):
    """A private copy of the built release (and its private folder): push must not touch the fixture."""
    rel = built[1]
    dst = tmp_path / name / rel.name
    shutil.copytree(rel, dst)
    shutil.copytree(rel.parent / f"{rel.name}.private", dst.parent / f"{rel.name}.private")
    return dst


def _version(built, tmp_path, version: str, max_shard_bytes: int, drop: int = 0):
    """Another release from the same work folder: a new version, other shard names, ``drop`` images fewer."""
    from cxrsynth.artifacts import ReleaseFolder
    from cxrsynth.pipeline import package_in
    from cxrsynth.stages.release.package import ReleaseConfig

    wd, rel, manifest = built
    exclude = None
    if drop:
        ids = [json.loads(x)["id"] for x in (rel / "provenance.jsonl").read_text().splitlines()][:drop]
        exclude = tmp_path / f"exclude-{version}.txt"
        exclude.write_text("\n".join(ids) + "\n")
    out = tmp_path / f"v{version}-{max_shard_bytes}" / rel.name
    package_in(wd, ReleaseFolder(out),
               ReleaseConfig(version=version, max_shard_bytes=max_shard_bytes, exclude=str(exclude) if exclude else None))
    return out


def _cli(hub, *args):
    return subprocess.run([sys.executable, "-m", "cxrsynth.cli", *args], capture_output=True, text=True,
                          env=hub.env, timeout=300)


def _push(hub, rel, *extra, repo=REPO):
    contact = () if "--contact" in extra else ("--contact", CONTACT)
    res = _cli(hub, "push", str(rel), "--repo-id", repo, "--json", *contact, *extra)
    assert res.returncode == 0, res.stderr[-3000:]
    assert TOKEN not in res.stdout + res.stderr
    return json.loads(res.stdout)


def _py(hub, code, *args):
    res = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=hub.env, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    return json.loads(res.stdout.strip().splitlines()[-1])
