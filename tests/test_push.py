"""Pushing a release to a local server that speaks the Hub's HTTP protocol, and loading it back.

``tests/hub_server.py`` is a test fixture (a stand-in for the Hub on 127.0.0.1), not a product. Each
push and load runs in a subprocess: ``huggingface_hub`` reads ``HF_ENDPOINT`` when it is imported.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from .hub_server import LocalHub


TOKEN = "hf_test_SECRET_token_0123456789"


@pytest.fixture()
def hub(tmp_path):
    with LocalHub() as h:
        env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")}
        env.update(HF_ENDPOINT=h.url, HF_TOKEN=TOKEN, HF_HUB_DISABLE_XET="1", HF_HOME=str(tmp_path / "hf"),
                   HF_HUB_DISABLE_TELEMETRY="1")
        h.env = env
        yield h


def _cli(hub, *args):
    return subprocess.run([sys.executable, "-m", "cxrsynth.cli", *args], capture_output=True, text=True,
                          env=hub.env, timeout=300)


def test_push_then_load_back_by_tag(built, hub):
    rel = built[1]
    res = _cli(hub, "push", str(rel), "--repo-id", "org/covid-cxr-synth", "--json")
    assert res.returncode == 0, res.stderr[-3000:]
    rep = json.loads(res.stdout)
    assert len(rep["uploaded"]) == 8 and rep["tag"] == "v1.0.0" and len(rep["commits"]) == 1
    assert rep["uploaded"][-1] == "README.md"  # the card goes last
    repo = hub.state.repos["org/covid-cxr-synth"]
    assert set(repo.tags) == {"v1.0.0"} and TOKEN in hub.state.tokens_seen
    assert TOKEN not in res.stdout + res.stderr
    assert not any("private" in p for p in repo.commits[repo.tags["v1.0.0"]])  # the private folder stays home
    # a second push finds everything there: no upload, no commit
    again = json.loads(_cli(hub, "push", str(rel), "--repo-id", "org/covid-cxr-synth", "--json").stdout)
    assert again["uploaded"] == [] and again["commits"] == [] and len(again["unchanged"]) == 8
    assert len(repo.log) == 1
    code = """
import json
from datasets import load_dataset
ds = load_dataset("org/covid-cxr-synth", revision="v1.0.0")
pc = load_dataset("org/covid-cxr-synth", "g_pc", revision="v1.0.0", split="train")
print(json.dumps({"n": ds["train"].num_rows, "pc": pc.num_rows, "mode": ds["train"][0]["image"].mode,
                  "label": ds["train"].features["label"].names}))
"""
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=hub.env, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    assert json.loads(res.stdout.strip().splitlines()[-1]) == {"n": 48, "pc": 24, "mode": "L",
                                                               "label": ["normal", "pneumonia", "covid"]}
    # the benchmark's loader takes a Hub id as well as a folder
    code = ("import json, sys, cxrsynth\nds = cxrsynth.load('normal-covid', 'real+g_nc+g_pc', workdir=sys.argv[1], "
            "release='org/covid-cxr-synth', size=64)\nprint(json.dumps({'synthetic': ds.origins.count('synthetic')}))")
    res = subprocess.run([sys.executable, "-c", code, str(built[0])], capture_output=True, text=True, env=hub.env, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    assert json.loads(res.stdout.strip().splitlines()[-1]) == {"synthetic": 48}


def test_interrupted_push_resumes_without_duplicates(built, hub):

    rel = built[1]
    hub.state.fail_commits_after = 1  # the second commit fails, as a dropped connection would
    env = dict(hub.env)
    code = ("import json, sys\nfrom cxrsynth.release.hub import push\n"
            "try:\n    push(sys.argv[1], 'org/r', files_per_commit=3)\nexcept Exception as e:\n"
            "    print(json.dumps({'error': type(e).__name__, 'msg': str(e)}))\n")
    res = subprocess.run([sys.executable, "-c", code, str(rel)], capture_output=True, text=True, env=env, timeout=300)
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["error"] == "PushError" and TOKEN not in out["msg"]
    repo = hub.state.repos["org/r"]
    assert len(repo.log) == 1 and not repo.tags
    first_commit_files = set(repo.commits[repo.branches["main"]])
    assert len(first_commit_files) == 3
    hub.state.fail_commits_after = None
    res = subprocess.run([sys.executable, "-c", "import json, sys\nfrom cxrsynth.release.hub import push\n"
                          "r = push(sys.argv[1], 'org/r', files_per_commit=3)\nprint(json.dumps(r.__dict__))",
                          str(rel)], capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    rep = json.loads(res.stdout.strip().splitlines()[-1])
    assert set(rep["unchanged"]) == first_commit_files and len(rep["uploaded"]) == 5
    assert len(repo.log) == 3 and set(repo.tags) == {"v1.0.0"}
    assert len(repo.commits[repo.tags["v1.0.0"]]) == 8


def test_dry_run_contacts_nothing_and_bad_release_is_refused(built, hub, tmp_path):
    rel = built[1]
    res = _cli(hub, "push", str(rel), "--repo-id", "org/x", "--dry-run")
    assert res.returncode == 0 and "would upload 8 files" in res.stdout
    assert hub.state.requests == []
    import shutil

    bad = tmp_path / "covid-cxr-synth"
    shutil.copytree(rel, bad)
    (bad / "manifest.json").write_text("{}")
    res = _cli(hub, "push", str(bad), "--repo-id", "org/x")
    assert res.returncode == 1 and "does not verify" in res.stderr
    res = _cli(hub, "push", str(rel), "--repo-id", "noslash")
    assert res.returncode == 1 and "repo id must be ORG/NAME" in res.stderr
