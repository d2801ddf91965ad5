"""The benchmark end to end on the sample data (tiny: a two-layer CNN at 32 px, 1 epoch, 6 images a class)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from cxrsynth.artifacts import SplitData
from cxrsynth.stages.benchmark.evaluate import evaluate
from cxrsynth.stages.benchmark.run import BenchmarkConfig, run_benchmark
from cxrsynth.core.config import resolve
from cxrsynth.core.errors import CheckpointError, ConfigError
from cxrsynth.core.schemas import validate

#: A two-layer CNN (tiny_cnn below) instead of resnet18: what these tests check is the benchmark's grid,
#: controls, intervals and outputs, not the trunk; resnet18's convolutions were most of the suite's
#: benchmark time (issue 23). resnet18 itself still trains in test_benchmark_release.py, test_external.py and
#: test_hardening_paths.py, and timm's resnet18 scores here in test_timm_and_factory_models.
TINY_MODEL = "tests.test_benchmark:tiny_cnn"
TINY = [f"model={TINY_MODEL}", "init=random", "image_size=32", "limit=6", "fit.max_epochs=1", "bootstrap=100"]
# Where no figure is under test: the model figures (Grad-CAM, UMAP: numba compiles UMAP in every new
# process) are left out; the notices and warnings checked are in tables.md and report.html either way.
NO_FIGURES = ["figures=false"]
ROOT = Path(__file__).resolve().parent.parent
ARMS = ["real", "real+own", "real+all", "synthetic-only", "synthetic-only-both", "real-oversampled", "real+null"]


def external_folder(wd: Path, root: Path) -> Path:
    """A plain <label>/ folder as if from another site: 3 normal NIH images of children (ingest leaves them out
    of the work folder) and 3 COVID-19 films of the Hannover repository, plus 1 normal TRAINING image and 1
    normal TEST image of the work folder, which the benchmark must drop as duplicates of the split."""
    import csv

    from cxrsynth.core.paths import read_json
    from cxrsynth.data.records import read_records

    from .conftest import DATA, NIH

    assign = read_json(wd / "splits.json")["assignments"]
    recs = [r for r in read_records(wd / "records.parquet") if r.has_pixels]
    for label, split, n in (("normal", "train", 1), ("normal", "test", 1)):
        (root / label).mkdir(parents=True, exist_ok=True)
        for r in [r for r in recs if r.label == label and assign[r.record_id] == split][:n]:
            shutil.copy(r.path, root / label / f"{split}-{Path(r.source_path).name}")
    with open(NIH / "Data_Entry_2017.csv", newline="") as fh:
        kids = [r["Image Index"] for r in csv.DictReader(fh) if r["Finding Labels"] == "No Finding"
                and int(r["Patient Age"]) < 18 and (NIH / "images" / r["Image Index"]).is_file()][:3]
    for name in kids:
        shutil.copy(NIH / "images" / name, root / "normal" / name)
    (root / "covid").mkdir(parents=True, exist_ok=True)
    for p in sorted((DATA / "covid-19-image-repository" / "png").iterdir())[:3]:
        shutil.copy(p, root / "covid" / p.name)
    return root


def test_rigorous_all_arms_both_tasks(rigorous):
    wd, out, summary = rigorous
    validate(json.loads((out / "results.json").read_text()), "benchmark_results")
    assert summary["test_used_for_selection"] is False and summary["warning"] is None
    # the only notices: site-b's copy of a test image (dropped), and its lack of pneumonias
    assert [n.split(":")[0].split(" has ")[0] for n in summary["notices"]] == ["external set site-b"] * 2
    assert "no negatives for pneumonia-covid" in summary["notices"][0] and "1 images duplicate" in summary["notices"][1]
    assert summary["split_method"] == "rigorous"
    check = summary["release_check"]  # the release was made from this work folder: it matches, mapping included
    assert check["problems"] == [] and check["private_mapping"]["by_split"] == {"train": 48}
    assert set(summary["summary"]) == {"normal-covid", "pneumonia-covid"}
    for task, arms in summary["summary"].items():
        assert list(arms) == ARMS
        assert all(a["seeds"] == 2 for a in arms.values())
        assert arms["real"].get("auroc_vs_real") is None and arms["real+all"]["auroc_vs_real"] is not None
        assert arms["real+all"]["skew"] < arms["real"]["skew"]  # synthetic positives lower the skew
        for arm in ARMS[1:]:  # the difference against real is the difference of the AUROC columns (paired by seed)
            d = arms[arm]["auroc_vs_real"]
            assert d["seeds_paired"] == 2
            assert d["difference"] == pytest.approx(arms[arm]["auroc"]["mean"] - arms["real"]["auroc"]["mean"])
    runs = summary["runs"]
    assert len(runs) == 2 * 7 * 2
    assert all(r["threshold_source"].startswith("validation") and r["validation"] is not None for r in runs)
    for r in runs:
        cm = r["test"]["confusion"]
        assert cm["tp"] + cm["fn"] == 6 and cm["tn"] + cm["fp"] == 6  # limit 6 a class
    table = (out / "tables.md").read_text()
    for name in ("real+g_nc+g_pc", "real+g_pc+g_nc", "synthetic-only (g_nc)", "synthetic-only (g_pc)",
                 "synthetic-only (g_nc+g_pc)", "real-oversampled", "(sensitivity %, FN)"):
        assert name in table
    assert (out / "tables.csv").read_text().count("\n") == 1 + 14
    figs = sorted(p.name for p in (out / "figures").glob("*.png"))
    assert figs == sorted(f"{t}-{k}.png" for t in ("normal-covid", "pneumonia-covid")
                          for k in ("confidence", "roc-pr", "gradcam", "umap", "reliability"))
    # issue 20: power before the grid, arms at one specificity, primary + Holm, calibration, subgroups
    assert table.index("Power (stated before training") < table.index("### normal-covid")
    assert {"operating_points", "power", "comparisons", "calibration", "subgroups"} <= set(summary)
    ops = summary["operating_points"]["normal-covid"]
    assert ops["arms"]["real+all"]["specificity_90"]["vs_real"]["seeds_paired"] == 2
    assert summary["comparisons"]["primary"]["normal-covid"]["against"] == "real-oversampled"
    assert "sensitivity at one specificity" in table and "p (Holm)" in table and "ECE" in table
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 10
    # no link out (an embedded figure's base64 may spell "http" by chance: those are left out of the search)
    assert "http" not in re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", html).replace("http://www.w3.org", "")


def test_synthetic_only_uses_the_tasks_own_translator(rigorous):
    """Tables 1-2 of the paper: only G_NC for normal-covid, only G_PC for pneumonia-covid; both is an extra arm."""
    runs = {(r["task"], r["arm"]): r["train"] for r in rigorous[2]["runs"] if r["seed"] == 0}
    for task in ("normal-covid", "pneumonia-covid"):
        own, both = runs[(task, "synthetic-only")], runs[(task, "synthetic-only-both")]
        assert own["positives_synthetic"] == own["positives"] == 6  # limit 6 of the own config, no real COVID-19
        assert both["positives_synthetic"] == both["positives"] == 12  # 6 of each config


def test_shortcut_controls_and_external_set_in_every_output(rigorous):
    wd, out, summary = rigorous
    ctl = summary["controls"]
    # the COVID-19 collection's own non-COVID X-rays with files present: 56 in the sample (7 more are absent)
    # frontal only: 52 in the sample (4 more are absent, 7 are laterals); per task the matched negatives
    assert ctl["same_source"]["n"] == 52 and ctl["same_source"]["missing_files"] == 4
    assert ctl["same_source"]["not_frontal"] == 7
    assert ctl["same_source"]["per_task"] == {"normal-covid": 2, "pneumonia-covid": 46}
    assert ctl["same_source"]["by_finding"]["SARS"] == 16
    ext = ctl["external"]["site-b"]
    assert ext["images"] == 8 and ext["duplicates_of_training_dropped"] == 1  # the training image is dropped, counted
    assert ext["duplicates_of_test_dropped"] == 1  # so is the test image: it is not external
    assert ext["per_task"]["normal-covid"] == {"negatives": 3, "covid": 3}
    for run in summary["runs"]:
        ss = run["controls"]["same_source"]
        assert ss["n_negatives"] == ctl["same_source"]["per_task"][run["task"]] and 0 <= ss["fpr"] <= 1
        assert ss["fpr_ci95"] is not None and ss["test_negatives"] == 6 and 0 <= ss["p_more_than_test"] <= 1
        assert (ss["not_measurable"] is None) == (run["task"] == "pneumonia-covid")
        e = run["controls"]["external"]["site-b"]
        assert e["n"] == (6 if run["task"] == "normal-covid" else 3)
        assert e["confusion"]["tp"] + e["confusion"]["fn"] == 3
    for arms in summary["summary"].values():
        for a in arms.values():
            assert a["controls"]["same_source"]["fpr"]["n"] == 2 and a["controls"]["external"]["site-b"]["auroc"]["n"] >= 0
    probe = ctl["source_probe"]["pneumonia"]  # collection pneumonias vs NIH pneumonias: label fixed, source differs
    assert probe["n_b"] == 46 and probe["auroc"] > 0.7 and probe["auroc_ci95"][0] < probe["auroc"] < probe["auroc_ci95"][1]
    assert set(ctl["real_vs_synthetic"]) == {"g_nc", "g_pc"} and ctl["real_vs_synthetic"]["g_nc"]["n_b"] == 24
    table = (out / "tables.md").read_text()
    assert "site-b sensitivity %" in table and "same-source FPR %" in table and "real vs synthetic: g_nc" in table
    header = (out / "tables.csv").read_text().splitlines()[0]
    assert "external_site-b_auroc_mean" in header and "same_source_fpr_mean" in header
    html = (out / "report.html").read_text()
    assert "site-b AUROC" in html and "Same-source negatives are frontal X-rays" in html


def test_rerun_keeps_finished_runs(rigorous, tmp_path):
    wd, done, summary = rigorous
    # rerun in a copy (file times kept), with figures off: they are no input of a cell (its key is the same), and
    # the shared folder keeps its figures for the tests that read them; no UMAP is fitted again here
    out = tmp_path / "rigorous"
    shutil.copytree(done, out)
    first = out / "runs" / "normal-covid" / "real" / "seed-0" / "result.json"
    stamp = first.stat().st_mtime_ns
    again = run_benchmark(wd, out, resolve(BenchmarkConfig, overrides=TINY + ["seeds=2"] + NO_FIGURES),
                          release=summary["release"], externals={"site-b": str(done.parent / "site-b")})
    assert first.stat().st_mtime_ns == stamp
    assert again["summary"]["normal-covid"]["real"]["auroc"] == summary["summary"]["normal-covid"]["real"]["auroc"]
    assert again["summary"]["normal-covid"]["real"]["controls"] == summary["summary"]["normal-covid"]["real"]["controls"]
    # the same folder with other inputs is refused, never answered with the old numbers
    for change in (["fit.max_epochs=3"], ["image_size=48"]):
        with pytest.raises(ConfigError, match="runs made from other inputs") as err:
            run_benchmark(wd, out, resolve(BenchmarkConfig, overrides=TINY + ["seeds=2"] + change), release=summary["release"])
        assert change[0].split("=")[0] in str(err.value)
    assert first.stat().st_mtime_ns == stamp


def test_a_narrower_or_wider_grid_keeps_finished_cells_and_old_keys_are_renewed(rigorous, tmp_path):
    """How many seeds, arms and tasks a run has is no input of any one cell: a rerun with another grid reuses
    the cells it shares (issue 20 asks for 5 seeds where 3 were run). A cell written when the key covered the
    whole inputs is re-keyed on the next run, not trained again."""
    from cxrsynth.artifacts.benchmark_run import cell_key, legacy_cell_key

    wd, done, summary = rigorous
    out = tmp_path / "grid"
    shutil.copytree(done, out)
    first = out / "runs" / "normal-covid" / "real" / "seed-0" / "result.json"
    inputs = json.loads((out / "inputs.json").read_text())
    res = json.loads(first.read_text())
    assert res["cell_key"] == cell_key(inputs, "normal-covid", "real", 0)
    first.write_text(json.dumps(res | {"cell_key": legacy_cell_key(inputs, "normal-covid", "real", 0)}))  # an old folder
    from cxrsynth.stages.benchmark.run import benchmark_status

    state = {c["cell"]: c for c in benchmark_status(out)["cells"]}["normal-covid/real/seed-0"]
    assert state["state"] == "done"  # not "made from other inputs; it is run again"
    narrower = run_benchmark(wd, out, resolve(BenchmarkConfig, overrides=TINY + ["seeds=1", "arms=[real]"] + NO_FIGURES),
                             release=summary["release"], externals={"site-b": str(done.parent / "site-b")})
    again = json.loads(first.read_text())
    assert again["model_sha256"] == res["model_sha256"] and again["fit"] == res["fit"]  # kept, not trained again
    renewed = json.loads((out / "inputs.json").read_text())
    assert renewed["config"]["seeds"] == 1 and renewed["config"]["arms"] == ["real"]
    assert again["cell_key"] == cell_key(renewed, "normal-covid", "real", 0) == cell_key(inputs, "normal-covid", "real", 0)
    assert narrower["summary"]["normal-covid"]["real"]["seeds"] == 1
    assert narrower["runs"][0]["test"]["auroc"] == res["test"]["auroc"]


def test_paper_protocol_is_flagged(built, tmp_path):
    wd, rel, _ = built
    out = tmp_path / "paper"
    res = subprocess.run([sys.executable, "-m", "cxrsynth.cli", "-w", str(wd), "benchmark", "--release", str(rel),
                          "--protocol", "paper", "--arm", "real", "--arm", "synthetic-only", "--out", str(out)]
                         + [x for kv in TINY + NO_FIGURES for x in ("--set", kv)], capture_output=True, text=True, timeout=900,
                         cwd=ROOT)  # TINY's model factory is imported from tests/
    assert res.returncode == 0, res.stderr[-3000:]
    assert "WARNING: PAPER PROTOCOL" in res.stderr
    # the work folder was split with the rigorous method: recorded, and warned about
    assert "WARNING: PAPER PROTOCOL ON A RIGOROUS SPLIT" in res.stderr
    summary = json.loads((out / "results.json").read_text())
    assert summary["split_method"] == "rigorous" and any("RIGOROUS SPLIT" in n for n in summary["notices"])
    assert summary["test_used_for_selection"] is True and "TEST set" in summary["warning"]
    assert {r["threshold"] for r in summary["runs"]} == {0.5}
    assert len(summary["runs"]) == 4  # one seed by default, 2 arms, 2 tasks
    assert "PAPER PROTOCOL" in (out / "tables.md").read_text() and "PAPER PROTOCOL" in (out / "report.html").read_text()


def test_foreign_release_refused_unless_allowed(built, tmp_path):
    """A release made before the work folder was split again is refused; the flag lets it through and every
    output says so."""
    from cxrsynth.core.paths import read_json
    from cxrsynth.stages.plan import PlanConfig, make_plan
    from cxrsynth.data.records import read_records
    from cxrsynth.stages.splits import SplitConfig, make_splits

    from .conftest import copy_workdir

    wd, rel, _ = built
    other = copy_workdir(wd, tmp_path / "wd")
    recs = read_records(other / "records.parquet")
    make_splits(recs, SplitConfig(seed=1), other / "records.parquet", other / "splits.json")
    make_plan(recs, read_json(other / "splits.json"), PlanConfig(per_domain=8), other / "plan.json")
    cfg = resolve(BenchmarkConfig, overrides=TINY + ["seeds=1", "tasks=normal-covid", "arms=real,real+own"])
    with pytest.raises(ConfigError, match="does not match this work folder's split: it was made from another split") as err:
        run_benchmark(other, tmp_path / "refused", cfg, release=str(rel))
    # the private mapping beside the release shows translations of images that are now test or validation
    assert "translations of non-train images (test: " in err.value.one_line()
    assert "--allow-foreign-release" in err.value.one_line()
    assert not (tmp_path / "refused" / "results.json").exists()
    out = tmp_path / "allowed"
    res = subprocess.run([sys.executable, "-m", "cxrsynth.cli", "-w", str(other), "benchmark", "--release", str(rel),
                          "--allow-foreign-release", "--task", "normal-covid", "--arm", "real", "--arm", "real+own",
                          "--seeds", "1", "--out", str(out)] + [x for kv in TINY + NO_FIGURES for x in ("--set", kv)],
                         capture_output=True, text=True, timeout=900, cwd=ROOT)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "WARNING: FOREIGN RELEASE" in res.stderr
    summary = json.loads((out / "results.json").read_text())
    assert summary["release_check"]["allowed_by_flag"] and summary["release_check"]["foreign"]
    assert any(n.startswith("FOREIGN RELEASE") for n in summary["notices"])
    assert "FOREIGN RELEASE" in (out / "tables.md").read_text() and "FOREIGN RELEASE" in (out / "report.html").read_text()
    rows = (out / "tables.csv").read_text().splitlines()  # N30: the CSV too, on every row
    assert rows[0].endswith(",notices") and all("FOREIGN RELEASE" in r for r in rows[1:])


def tiny_trunk():
    """A model factory for ``--model tests.test_benchmark:tiny_trunk``."""
    import torch

    return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU())


def tiny_cnn():
    """The tiny benchmarks' model (``TINY``): two strided convolutions with batch norm, 16 features; its last
    convolution is the Grad-CAM layer."""
    import torch

    nn = torch.nn
    return nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                         nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.BatchNorm2d(16), nn.ReLU())


def test_timm_and_factory_models(built, tmp_path):
    import timm
    import torch

    from cxrsynth.measure.classifiers import build
    from cxrsynth.stages.benchmark.run import _save_model

    ref = timm.create_model("resnet18", pretrained=False)  # with its 1000-class head, as a downloaded file has
    torch.save(ref.state_dict(), tmp_path / "timm.pth")
    model = build("timm:resnet18", str(tmp_path / "timm.pth"))
    assert torch.equal(model.stem.net.conv1.weight, ref.conv1.weight) and model(torch.zeros(2, 1, 32, 32)).shape == (2, 2)
    assert isinstance(model.cam_layer, torch.nn.Conv2d)
    with pytest.raises(ConfigError, match="weights from a local file"):
        build("timm:resnet18", "imagenet")
    with pytest.raises(ConfigError, match=r"unknown timm model \(timm:no_such_net\); accepted: .*package.module:factory"):
        build("timm:no_such_net")
    with pytest.raises(ConfigError, match="cannot import the model factory"):
        build("tests.no_such_module:make")
    fac = build("tests.test_benchmark:tiny_trunk")
    assert fac.head.in_features == 4 and fac.cam_layer is fac.stem[0]
    # --eval-only takes a checkpoint of a timm model
    _save_model(model, tmp_path / "m.safetensors", "timm:resnet18")
    summary = evaluate(str(tmp_path / "m.safetensors"), "normal-covid", built[0], model="timm:resnet18", image_size=32,
                       limit=6, bootstrap=100, out_dir=tmp_path / "eval").results
    run = summary["runs"][0]
    assert run["model"] == "timm:resnet18" and sum(run["test"]["confusion"].values()) == 12
    assert run["controls"]["same_source"]["n_negatives"] == (2 if run["task"] == "normal-covid" else 46)


def test_fit_uses_kerass_adadelta_and_plateau():
    import torch

    from cxrsynth.stages.benchmark.fit import FitConfig, optimizer

    opt, sched = optimizer(torch.nn.Linear(2, 2), FitConfig())
    assert opt.defaults["rho"] == 0.95 and opt.defaults["eps"] == 1e-7 and opt.defaults["lr"] == 1e-3
    assert sched.threshold_mode == "abs" and sched.threshold == 1e-4 and sched.patience == 5


def test_eval_only_on_a_saved_checkpoint(rigorous, tmp_path):
    wd, out, _ = rigorous
    ckpt = out / "runs" / "pneumonia-covid" / "real+all" / "seed-1" / "model.safetensors"
    summary = evaluate(str(ckpt), "pneumonia-covid", wd, model=TINY_MODEL, image_size=32, limit=6, bootstrap=100,
                       out_dir=tmp_path / "eval", figures=True).results
    run = summary["runs"][0]
    assert summary["eval_only"] and run["arm"] == "eval-only"
    trained = json.loads((ckpt.parent / "result.json").read_text())
    assert run["test"]["auroc"] == pytest.approx(trained["test"]["auroc"])  # the same model, the same test set
    assert (tmp_path / "eval" / "report.html").is_file()


def test_inits_and_clear_errors(built, tmp_path):
    from cxrsynth.measure.classifiers import build

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
    vgg = build("vgg16")  # Grad-CAM reads the last conv layer (the paper's block5_conv3), not the last max-pool
    assert vgg.cam_layer is [m for m in vgg.stem if isinstance(m, torch.nn.Conv2d)][-1]
    with pytest.raises(ConfigError, match="unknown model.*timm:NAME"):
        build("no_such_net")
    wd = built[0]
    with pytest.raises(ConfigError, match="need a release or translators"):
        run_benchmark(wd, tmp_path / "x", resolve(BenchmarkConfig, overrides=TINY))


def test_translators_instead_of_a_release(trained, tmp_path):
    from .conftest import copy_workdir

    wd = copy_workdir(trained, tmp_path / "wd")
    trans = {t: str(wd / "translators" / t / "generator.safetensors") for t in ("normal-covid", "pneumonia-covid")}
    cfg = resolve(BenchmarkConfig, overrides=TINY + ["seeds=1", "tasks=normal-covid", "arms=real,real+all",
                                                     "figures=false"])
    summary = run_benchmark(wd, tmp_path / "b", cfg, translators=trans)
    rel = Path(summary["release"])  # synthetic/release-<what its images were made from>/covid-cxr-synth
    assert rel.name == "covid-cxr-synth" and rel.parent.parent == tmp_path / "b" / "synthetic"
    manifest = json.loads((rel / "manifest.json").read_text())
    assert summary["release_data_sha256"] == manifest["data_sha256"]
    # --limit 6 translates the 6 images of each config it reads, not all 633 planned
    assert manifest["counts"] == {"g_nc": 6, "g_pc": 6, "all": 12} and manifest["plan"]["planned"]["g_nc"] > 100
    assert summary["summary"]["normal-covid"]["real+all"]["seeds"] == 1
    assert [r["train"]["positives_synthetic"] for r in summary["runs"]] == [0, 12]  # real; real+all: 6 of each config


def test_report_renders_in_headless_chromium(rigorous, tmp_path):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium:
        pytest.skip("chromium is not installed (.ci/run installs it)")
    page = tmp_path / "report.html"
    probe = ("<script>window.addEventListener('load', () => { const imgs = [...document.images]; "
             "document.title = 'loaded ' + imgs.filter(i => i.complete && i.naturalWidth > 0).length + ' of ' + imgs.length; });"
             "</script></body>")
    html = (rigorous[1] / "report.html").read_text()
    n = html.count("<img")  # 8 figures before the reliability diagrams (one per task) joined them
    assert n >= 10
    page.write_text(html.replace("</body>", probe))
    res = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                          "--disable-background-networking", "--disable-component-update", "--disable-sync",
                          f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=5000", "--dump-dom",
                          page.as_uri()], capture_output=True, text=True, timeout=120)
    assert f"<title>loaded {n} of {n}</title>" in res.stdout, res.stdout[:500] + res.stderr[-500:]
    assert f"normal-covid ({TINY_MODEL}, rigorous protocol, rigorous split)" in res.stdout
    # the external set's columns and the controls' plain-words reading, as the browser renders them
    assert "<th>site-b sensitivity % [patient CI]</th>" in res.stdout and "shortcut controls" in res.stdout
    assert "The source probe tells the collection" in res.stdout


def test_release_check_reads_the_manifests_checksums(built, tmp_path):
    """No training: a release whose manifest lacks the split checksum (an older release), or names another
    plan, is refused; the release's own manifest matches."""
    from cxrsynth.stages.benchmark.release_check import check_release

    wd, rel, manifest = built
    data = SplitData.read(wd)
    assert check_release(data, str(rel))["problems"] == []
    for name, edit, message in (("old", lambda m: m.pop("split_assignment_sha256"), "records no split checksum"),
                                ("replanned", lambda m: m.update(plan_sha256="0" * 64), "made from another plan")):
        other = tmp_path / name
        other.mkdir()
        m = dict(manifest)
        edit(m)
        (other / "manifest.json").write_text(json.dumps(m))
        with pytest.raises(ConfigError, match=message):
            check_release(data, str(other))
        assert check_release(data, str(other), allow_foreign=True)["allowed_by_flag"]


def test_external_option_errors_are_clear(tmp_path):
    from cxrsynth.stages.external_sets import parse_externals
    from cxrsynth.core.errors import BadInputError

    assert parse_externals([f"site={tmp_path}"]) == {"site": str(tmp_path)}
    with pytest.raises(ConfigError, match=r"an external set is NAME=DIR \(nothing\)"):
        parse_externals(["nothing"])
    with pytest.raises(ConfigError, match="external set named twice"):
        parse_externals([f"a={tmp_path}", f"a={tmp_path}"])
    with pytest.raises(BadInputError, match="external set folder not found"):
        parse_externals([f"a={tmp_path / 'absent'}"])


def test_paper_umap_takes_180_training_images_per_group(built):
    """Fig. 8 of the paper: 180 training images per group, real vs synthetic (n_neighbors 15 in figures)."""
    from collections import Counter

    from cxrsynth.stages.benchmark.arms import eval_items
    from cxrsynth.stages.benchmark.figure_inputs import umap_set

    wd, rel, _ = built
    data = SplitData.read(wd)
    ds, groups = umap_set(data, "normal-covid", str(rel), 32, None)
    train = eval_items(data, "normal-covid", "train")
    covid_train = sum(i.label == 1 for i in train)
    assert sum(i.label == 0 for i in train) > 180 and covid_train > 100
    assert Counter(groups.tolist()) == {0: 180, 1: min(180, covid_train), 2: 24}  # the release holds 24 g_nc images
    assert len(ds) == len(groups)


def test_report_is_rendered_from_files_alone(rigorous, tmp_path, monkeypatch):
    """The report reads result.json and figure_inputs.npz; with every model constructor made to fail it
    still draws every figure, Grad-CAM and UMAP included."""
    import torchvision

    import cxrsynth.measure.classifiers as classifiers
    from cxrsynth.stages.benchmark.report import write_outputs

    wd, out, summary = rigorous
    copy = tmp_path / "copy"
    # no model to load, even if the report tried: the 28 classifiers are left out of the copy
    shutil.copytree(out, copy, ignore=shutil.ignore_patterns("model.safetensors", "figures", "report.html"))
    assert (out / "runs" / "normal-covid" / "real" / "seed-0" / "model.safetensors").is_file()
    assert not list(copy.rglob("model.safetensors")) and not (copy / "figures").exists()

    def refuse(*args, **kwargs):
        raise AssertionError("the report built a model")

    monkeypatch.setattr(classifiers, "build", refuse)
    for name in torchvision.models.list_models():
        monkeypatch.setattr(torchvision.models, name, refuse, raising=False)
    results = [json.loads(p.read_text()) for p in sorted((copy / "runs").glob("*/*/seed-*/result.json"))]
    cfg = resolve(BenchmarkConfig, overrides=TINY + ["seeds=2"])
    write_outputs(copy, summary, results, cfg)
    names = sorted(p.name for p in (copy / "figures").glob("*.png"))
    assert names == sorted(f"{t}-{f}.png" for t in ("normal-covid", "pneumonia-covid")
                           for f in ("confidence", "roc-pr", "gradcam", "umap", "reliability"))
    page = (copy / "report.html").read_text()
    assert page.count("<figure>") == 10 and "no Grad-CAM" not in page


def test_figures_off_writes_no_figure_inputs_and_says_so(built, tmp_path):
    wd, rel, _ = built
    out = tmp_path / "nofig"
    run_benchmark(wd, out, resolve(BenchmarkConfig, overrides=TINY + ["seeds=1", "figures=false",
                                                                      "arms=[real]", "tasks=[normal-covid]"]))
    assert not list((out / "runs").glob("*/*/*/figure_inputs.npz"))
    assert sorted(p.name for p in (out / "figures").glob("*.png")) == []
    assert "figures were off" in (out / "report.html").read_text()
