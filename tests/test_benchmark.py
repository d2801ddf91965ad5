"""The benchmark end to end on the sample data (tiny: resnet18 at 32 px, 1 epoch, 6 images a class)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from cxrsynth.benchmark.run import BenchmarkConfig, evaluate_checkpoint, run_benchmark
from cxrsynth.config import resolve
from cxrsynth.errors import CheckpointError, ConfigError
from cxrsynth.schemas import validate

TINY = ["model=resnet18", "init=random", "image_size=32", "limit=6", "fit.max_epochs=1", "bootstrap=100"]
ARMS = ["real", "real+own", "real+all", "synthetic-only", "real-oversampled"]


@pytest.fixture(scope="module")
def rigorous(built, tmp_path_factory):
    wd, rel, _ = built
    out = tmp_path_factory.mktemp("bench") / "rigorous"
    summary = run_benchmark(wd, out, resolve(BenchmarkConfig, overrides=TINY + ["seeds=2"]), release=str(rel))
    return wd, out, summary


def test_rigorous_all_arms_both_tasks(rigorous):
    wd, out, summary = rigorous
    validate(json.loads((out / "results.json").read_text()), "benchmark_results")
    assert summary["test_used_for_selection"] is False and summary["warning"] is None
    assert set(summary["summary"]) == {"normal-covid", "pneumonia-covid"}
    for task, arms in summary["summary"].items():
        assert list(arms) == ARMS
        assert all(a["seeds"] == 2 for a in arms.values())
        assert arms["real"].get("auroc_vs_real") is None and arms["real+all"]["auroc_vs_real"] is not None
        assert arms["real+all"]["skew"] < arms["real"]["skew"]  # synthetic positives lower the skew
    runs = summary["runs"]
    assert len(runs) == 2 * 5 * 2
    assert all(r["threshold_source"].startswith("validation") and r["validation"] is not None for r in runs)
    for r in runs:
        cm = r["test"]["confusion"]
        assert cm["tp"] + cm["fn"] == 6 and cm["tn"] + cm["fp"] == 6  # limit 6 a class
    table = (out / "tables.md").read_text()
    for name in ("real+g_nc+g_pc", "real+g_pc+g_nc", "synthetic-only", "real-oversampled", "(sensitivity %, FN)"):
        assert name in table
    assert (out / "tables.csv").read_text().count("\n") == 1 + 10
    figs = sorted(p.name for p in (out / "figures").glob("*.png"))
    assert figs == sorted(f"{t}-{k}.png" for t in ("normal-covid", "pneumonia-covid")
                          for k in ("confidence", "roc-pr", "gradcam", "umap"))
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 8 and "http" not in html.replace("http://www.w3.org", "")


def test_rerun_keeps_finished_runs(rigorous):
    wd, out, summary = rigorous
    first = out / "runs" / "normal-covid" / "real" / "seed-0" / "result.json"
    stamp = first.stat().st_mtime_ns
    again = run_benchmark(wd, out, resolve(BenchmarkConfig, overrides=TINY + ["seeds=2"]), release=summary["release"])
    assert first.stat().st_mtime_ns == stamp
    assert again["summary"]["normal-covid"]["real"]["auroc"] == summary["summary"]["normal-covid"]["real"]["auroc"]


def test_paper_protocol_is_flagged(built, tmp_path):
    wd, rel, _ = built
    out = tmp_path / "paper"
    res = subprocess.run([sys.executable, "-m", "cxrsynth.cli", "-w", str(wd), "benchmark", "--release", str(rel),
                          "--protocol", "paper", "--out", str(out)] + [x for kv in TINY for x in ("--set", kv)],
                         capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "WARNING: PAPER PROTOCOL" in res.stderr
    summary = json.loads((out / "results.json").read_text())
    assert summary["test_used_for_selection"] is True and "TEST set" in summary["warning"]
    assert {r["threshold"] for r in summary["runs"]} == {0.5}
    assert len(summary["runs"]) == 10  # one seed by default
    assert "PAPER PROTOCOL" in (out / "tables.md").read_text() and "PAPER PROTOCOL" in (out / "report.html").read_text()


def test_eval_only_on_a_saved_checkpoint(rigorous, tmp_path):
    wd, out, _ = rigorous
    ckpt = out / "runs" / "pneumonia-covid" / "real+all" / "seed-1" / "model.safetensors"
    cfg = resolve(BenchmarkConfig, overrides=TINY + ["tasks=pneumonia-covid"])
    summary = evaluate_checkpoint(wd, tmp_path / "eval", str(ckpt), "pneumonia-covid", cfg)
    run = summary["runs"][0]
    assert summary["eval_only"] and run["arm"] == "eval-only"
    trained = json.loads((ckpt.parent / "result.json").read_text())
    assert run["test"]["auroc"] == pytest.approx(trained["test"]["auroc"])  # the same model, the same test set
    assert (tmp_path / "eval" / "report.html").is_file()


def test_inits_and_clear_errors(built, tmp_path):
    from cxrsynth.benchmark.classifiers import build

    with pytest.raises(CheckpointError, match="ImageNet weights for resnet18 are not in the local torch cache") as err:
        build("resnet18", "imagenet")
    assert "resnet18-" in err.value.one_line() and "download https://" in err.value.one_line()
    # with the file in the torch cache, --init imagenet loads it (weights_only) and downloads nothing
    import os

    import torch
    import torchvision
    from torch.hub import get_dir

    cached = Path(get_dir()) / "checkpoints" / torchvision.models.ResNet18_Weights.DEFAULT.url.rsplit("/", 1)[-1]
    cached.parent.mkdir(parents=True, exist_ok=True)
    reference = torchvision.models.resnet18()
    torch.save(reference.state_dict(), cached)
    try:
        model = build("resnet18", "imagenet")
        assert torch.equal(model.stem[0].weight, reference.conv1.weight)
    finally:
        os.remove(cached)
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="not a readable"):
        build("resnet18", str(bad))
    sd_path = tmp_path / "tv.pth"
    torch.save(torchvision.models.resnet18().state_dict(), sd_path)
    model = build("resnet18", str(sd_path))  # a plain torchvision state dict initialises the trunk
    assert model(torch.zeros(2, 1, 32, 32)).shape == (2, 2)
    for arch in ("vgg16", "densenet121", "mobilenet_v3_small"):
        assert build(arch).eval()(torch.zeros(1, 1, 64, 64)).shape == (1, 2)
    with pytest.raises(ConfigError, match="unknown torchvision model"):
        build("no_such_net")
    wd = built[0]
    with pytest.raises(ConfigError, match="need a release or translators"):
        run_benchmark(wd, tmp_path / "x", resolve(BenchmarkConfig, overrides=TINY))


def test_translators_instead_of_a_release(trained, tmp_path):
    from .conftest import copy_workdir

    wd = copy_workdir(trained, tmp_path / "wd")
    trans = {t: str(wd / "translators" / t / "generator.safetensors") for t in ("normal-covid", "pneumonia-covid")}
    cfg = resolve(BenchmarkConfig, overrides=TINY + ["seeds=1", "tasks=normal-covid", "arms=real,real+all"])
    summary = run_benchmark(wd, tmp_path / "b", cfg, translators=trans)
    assert Path(summary["release"]).name == "covid-cxr-synth"
    assert (tmp_path / "b" / "synthetic" / "covid-cxr-synth" / "manifest.json").is_file()
    assert summary["summary"]["normal-covid"]["real+all"]["seeds"] == 1


def test_report_renders_in_headless_chromium(rigorous, tmp_path):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium:
        pytest.skip("chromium is not installed (.ci/run installs it)")
    page = tmp_path / "report.html"
    probe = ("<script>window.addEventListener('load', () => { const imgs = [...document.images]; "
             "document.title = 'loaded ' + imgs.filter(i => i.complete && i.naturalWidth > 0).length + ' of ' + imgs.length; });"
             "</script></body>")
    page.write_text((rigorous[1] / "report.html").read_text().replace("</body>", probe))
    res = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                          "--disable-background-networking", "--disable-component-update", "--disable-sync",
                          f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=5000", "--dump-dom",
                          page.as_uri()], capture_output=True, text=True, timeout=120)
    assert "<title>loaded 8 of 8</title>" in res.stdout, res.stdout[:500] + res.stderr[-500:]
    assert "normal-covid (resnet18, rigorous protocol)" in res.stdout
