"""Outputs a user shares hold no absolute local paths unless ``--record-paths`` (issue 24, note S4).

On main: the benchmark's results.json and config.json recorded the release folder, the external sets'
folders and the ``--init`` checkpoint by absolute path (user names, home folders), and audit.json the
``classifier:PATH`` embedding; splits.json its records file.
"""

from __future__ import annotations

import json

import pytest

from cxrsynth.core.paths import sha256_file, shareable


@pytest.mark.no_data
def test_shareable_names_local_paths_by_place_or_name_and_sha(tmp_path):
    wd = tmp_path / "home" / "someone" / "wd"
    (wd / "ckpt").mkdir(parents=True)
    inside = wd / "ckpt" / "model.pt"
    inside.write_bytes(b"weights")
    outside = tmp_path / "home" / "someone" / "ft.pt"
    outside.write_bytes(b"other")
    sha_in, sha_out = sha256_file(inside), sha256_file(outside)
    obj = {"init": str(outside), "embedding": f"classifier:{inside}", "folders": [str(tmp_path / "home"), str(wd)],
           "keep": ["random", "imagenet", "org/name", "timm:resnet18", "a note with /home/x in it", 3, None]}
    got = shareable(obj, (wd,))
    assert got == {"init": f"ft.pt (sha256 {sha_out})", "embedding": f"classifier:ckpt/model.pt (sha256 {sha_in})",
                   "folders": ["home", "."], "keep": obj["keep"]}
    assert shareable(obj, (wd,), record=True) is obj


def test_benchmark_outputs_hold_no_absolute_paths_unless_asked(planned_workdir, tmp_path, capsys):
    import torch
    import torchvision

    from cxrsynth.cli import main

    from .test_benchmark import external_folder

    ext = external_folder(planned_workdir, tmp_path / "users" / "someone" / "site-b")
    init = tmp_path / "users" / "someone" / "tv.pth"
    torch.save(torchvision.models.resnet18().state_dict(), init)
    args = ["-w", str(planned_workdir), "benchmark", "--model", "resnet18", "--init", str(init), "--task", "normal-covid",
            "--arm", "real", "--seeds", "1", "--limit", "4", "--max-epochs", "1", "--image-size", "32",
            "--set", "figures=false", "--set", "bootstrap=20", "--external", f"site-b={ext}"]
    main(args + ["--out", str(tmp_path / "shared")])
    texts = {p.name: p.read_text() for p in (tmp_path / "shared").glob("*") if p.suffix in (".json", ".md", ".csv", ".html")}
    assert {"results.json", "config.json", "inputs.json", "tables.md", "tables.csv"} <= set(texts)
    for name, text in texts.items():
        assert str(tmp_path) not in text and str(planned_workdir) not in text, name
    results = json.loads(texts["results.json"])
    assert results["controls"]["external"]["site-b"]["folder"] == "site-b"
    assert results["config"]["init"] == f"tv.pth (sha256 {sha256_file(init)})"
    assert json.loads(texts["config.json"])["externals"] == {"site-b": "site-b"}
    main(args + ["--out", str(tmp_path / "kept"), "--record-paths"])
    results = json.loads((tmp_path / "kept" / "results.json").read_text())
    assert results["controls"]["external"]["site-b"]["folder"] == str(ext) and results["config"]["init"] == str(init)
    capsys.readouterr()


def test_audit_json_holds_no_absolute_paths_unless_asked(built, tmp_path):
    from cxrsynth.pipeline import audit_in
    from cxrsynth.stages.audit.run import AuditConfig

    wd, rel = built[0], built[1]
    weights = tmp_path / "users" / "someone" / "inception.pth"  # recorded in the config, not read (features: embedding)
    cfg = AuditConfig(embedding="pixels", sample=10, pool=30, heldout=20, inverse_sample=4, quality_sample=12,
                      fidelity=False, quality_repeats=2, bootstrap=100, quality_features="embedding",
                      inception_weights=str(weights))
    audit_in(wd, rel, cfg, out_dir=tmp_path / "a")
    text = (tmp_path / "a" / "audit.json").read_text()
    assert str(tmp_path) not in text and str(wd) not in text
    assert json.loads(text)["config"]["inception_weights"] == "inception.pth"
    kept = audit_in(wd, rel, cfg, out_dir=tmp_path / "b", record_paths=True)
    assert kept.data["config"]["inception_weights"] == str(weights)
